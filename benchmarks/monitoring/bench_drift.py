"""What drift and anomaly detection costs: per batch, per request, and on a real server.

Part 1 times ``DriftObserver.observe`` in-process over a grid of batch sizes
and input widths (two output columns, as a binary classifier has), plus the
cost of one scrape (the lazy PSI). Part 2 starts the real modelship-server
twice on the same model, once with a reference.json (drift on) and once
without (drift off: the monitor's one dict lookup), and drives both with the
same closed-loop HTTP load, alternating rounds so machine noise hits both.

    /root/.cache/modelship/venv/bin/python benchmarks/monitoring/bench_drift.py

Every loop is bounded in count; all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from modelship_serving.monitoring import (  # noqa: E402
    DriftObserver,
    build_reference,
    parse_reference,
)
from modelship_serving.monitoring.metrics import attach  # noqa: E402


def observer_for(features: int) -> DriftObserver:
    rng = np.random.default_rng(0)
    reference = parse_reference(build_reference(
        {"x": rng.normal(size=(2_000, features))}, {"y": rng.random((2_000, 2))}))
    return DriftObserver(reference, model="m", version="1")


def time_observe(features: int, batch: int, repeats: int) -> float:
    """Median CPU microseconds of one observe() call."""
    observer = observer_for(features)
    rng = np.random.default_rng(batch)
    inputs = {"x": rng.normal(size=(batch, features)).astype(np.float32)}
    outputs = {"y": rng.random((batch, 2)).astype(np.float32)}
    number = max(20, 4_000 // batch)
    # CPU time of this thread: other processes on a shared machine do not count.
    runs = timeit.repeat(lambda: observer.observe("m", "1", inputs, outputs),
                         number=number, repeat=repeats, timer=time.thread_time)
    return statistics.median(runs) / number * 1e6


def time_scrape(features: int, repeats: int) -> float:
    """Median CPU microseconds of one /metrics rendering after new traffic (PSI recomputed)."""
    registry = CollectorRegistry()
    observer = observer_for(features)
    attach(observer, registry)
    rng = np.random.default_rng(1)
    inputs = {"x": rng.normal(size=(32, features)).astype(np.float32)}
    outputs = {"y": rng.random((32, 2)).astype(np.float32)}
    samples = []
    for _ in range(repeats * 10):
        observer.observe("m", "1", inputs, outputs)  # invalidates the cached scores
        start = time.thread_time()
        generate_latest(registry)
        samples.append(time.thread_time() - start)
    return statistics.median(samples) * 1e6


def part_one(quick: bool) -> None:
    repeats = 3 if quick else 7
    batches = [1, 8, 32, 128]
    widths = [10, 30, 100] if quick else [10, 30, 100, 784]
    print(f"## observe() cost (CPU time, median of {repeats} runs)\n")
    print("| input features | batch | µs per batch | µs per request (row) |")
    print("|---:|---:|---:|---:|")
    for features in widths:
        for batch in batches:
            per_batch = time_observe(features, batch, repeats)
            print(f"| {features} | {batch} | {per_batch:.1f} | {per_batch / batch:.2f} |")
    print("\n## scrape cost (CPU time; PSI recomputed, whole exposition)\n")
    print("| input features | µs per scrape |")
    print("|---:|---:|")
    for features in widths:
        print(f"| {features} | {time_scrape(features, repeats):.0f} |")
    print()


def load(port: int, body: bytes, *, requests: int, concurrency: int) -> tuple[float, list[float]]:
    """Closed-loop load: ``concurrency`` keep-alive clients, ``requests`` in all.

    Returns requests per second and every request's latency in seconds.
    """
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = requests // concurrency
    start_gate = threading.Barrier(concurrency + 1)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        start_gate.wait()
        for _ in range(per_client):
            t0 = time.perf_counter()
            conn.request("POST", "/v2/models/clf/infer", body,
                         {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"inference failed with HTTP {response.status}")
            mine.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - t0
    return len(latencies) / elapsed, latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batches(scrape: str) -> tuple[float, float]:
    """Inferences and executions the server counted, from its /metrics."""
    values = {}
    for line in scrape.splitlines():
        for name in ("nv_inference_count", "nv_inference_exec_count"):
            if line.startswith(name + "{"):
                values[name] = float(line.rsplit(" ", 1)[1])
    return values["nv_inference_count"], values["nv_inference_exec_count"]


def part_two(quick: bool, requests: int, concurrency: int, rounds: int) -> None:
    from tests.monitoring import serving_process

    rows = serving_process.breast_cancer()
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32",
                                   "data": rows[0].tolist()}]}).encode()
    results: dict[str, list[tuple[float, list[float]]]] = {"on": [], "off": []}
    cpu: dict[str, list[float]] = {"on": [], "off": []}
    batch_means: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        repos = {
            "on": serving_process.write_repository(tmp_path / "on"),
            "off": serving_process.write_repository(tmp_path / "off", with_reference=False),
        }
        for mode in ("on", "off"):
            # Warm up each server once so the first round is not a cold start.
            with serving_process.running_server(repos[mode], tmp_path / f"{mode}.log") as s:
                port = int(s.http.rsplit(":", 1)[1])
                load(port, body, requests=200, concurrency=concurrency)
        for _ in range(rounds):
            for mode in ("on", "off"):
                log = tmp_path / f"{mode}.log"
                with serving_process.running_server(repos[mode], log) as server:
                    port = int(server.http.rsplit(":", 1)[1])
                    load(port, body, requests=200, concurrency=concurrency)  # warm-up
                    inferences, executions = batches(server.scrape())
                    cpu_before = cpu_seconds(server.process.pid)
                    results[mode].append(load(port, body, requests=requests,
                                              concurrency=concurrency))
                    cpu[mode].append((cpu_seconds(server.process.pid) - cpu_before)
                                     / requests * 1e6)
                    scraped = server.scrape()
                    after = batches(scraped)
                    batch_means[mode].append((after[0] - inferences) / (after[1] - executions))
                    if mode == "on":
                        assert "modelship_drift_score{" in scraped, "drift must be on"

    print(f"## server throughput, drift on vs off ({rounds} alternating rounds of "
          f"{requests} requests, {concurrency} keep-alive HTTP clients, batch 1, "
          "30 FP32 features, dynamic batching up to 32)\n")
    print("| drift | req/s (median) | req/s per round | p50 ms | p99 ms "
          "| server CPU µs/request (median) | mean batch |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    medians = {}
    for mode in ("off", "on"):
        rates = [r for r, _ in results[mode]]
        latencies = np.array([lat for _, lats in results[mode] for lat in lats]) * 1e3
        medians[mode] = statistics.median(rates)
        print(f"| {mode} | {medians[mode]:.0f} | {', '.join(f'{r:.0f}' for r in rates)} | "
              f"{np.percentile(latencies, 50):.2f} | {np.percentile(latencies, 99):.2f} | "
              f"{statistics.median(cpu[mode]):.0f} | "
              f"{statistics.median(batch_means[mode]):.1f} |")
    delta = (1 / medians["on"] - 1 / medians["off"]) * 1e6
    cpu_delta = statistics.median(cpu["on"]) - statistics.median(cpu["off"])
    print(f"\nDifference of the medians, drift on minus off: {delta:+.1f} µs of wall time "
          f"per request ({(medians['off'] / medians['on'] - 1) * 100:+.1f}%), "
          f"{cpu_delta:+.1f} µs of server CPU per request.\n")


async def core_run(mode: str, repository: Path, *, requests: int, concurrency: int
                   ) -> tuple[float, float]:
    """The server's core in this process, no transport: CPU µs and wall µs per request."""
    from modelship_serving.monitoring import DriftMonitor
    from modelship_serving.protocol.types import InferInput, InferRequest
    from modelship_serving.server.core import ModelServer
    from tests.monitoring import serving_process

    registry = CollectorRegistry()
    core = ModelServer(repository, registry=registry, cpu_limit=1)
    if mode == "on":
        core.add_observer(DriftMonitor(repository, registry))
    await core.start()
    row = serving_process.breast_cancer()[:1]

    async def client(count: int) -> None:
        for _ in range(count):
            request = InferRequest(serving_process.MODEL, "", "",
                                   [InferInput("input", "FP32", (1, 30), row.copy())])
            await core.infer(request, protocol="http")

    await asyncio.gather(*[client(50) for _ in range(concurrency)])  # warm-up
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*[client(requests // concurrency) for _ in range(concurrency)])
    cpu1, wall1 = time.process_time(), time.perf_counter()
    await core.close()
    return (cpu1 - cpu0) / requests * 1e6, (wall1 - wall0) / requests * 1e6


def part_three(requests: int, concurrency: int, rounds: int) -> None:
    from tests.monitoring import serving_process

    cpu: dict[str, list[float]] = {"on": [], "off": []}
    wall: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        repos = {
            "on": serving_process.write_repository(Path(tmp) / "on"),
            "off": serving_process.write_repository(Path(tmp) / "off", with_reference=False),
        }
        for _ in range(rounds):
            for mode in ("off", "on"):
                c, w = asyncio.run(core_run(mode, repos[mode], requests=requests,
                                            concurrency=concurrency))
                cpu[mode].append(c)
                wall[mode].append(w)
    print(f"## server core in-process, drift on vs off ({rounds} alternating rounds of "
          f"{requests} requests from {concurrency} concurrent tasks, no transport)\n")
    print("| drift | CPU µs/request (median) | per round | wall µs/request (median) |")
    print("|---|---:|---:|---:|")
    for mode in ("off", "on"):
        print(f"| {mode} | {statistics.median(cpu[mode]):.1f} | "
              f"{', '.join(f'{c:.1f}' for c in cpu[mode])} | "
              f"{statistics.median(wall[mode]):.1f} |")
    added = statistics.median(cpu["on"]) - statistics.median(cpu["off"])
    print(f"\nDrift detection adds {added:+.1f} µs of CPU per request in the core.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes")
    parser.add_argument("--no-server", action="store_true", help="skip the server runs")
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    part_one(args.quick)
    if not args.no_server:
        part_three(args.requests, args.concurrency, args.rounds)
        part_two(args.quick, args.requests, args.concurrency, args.rounds)


if __name__ == "__main__":
    main()
