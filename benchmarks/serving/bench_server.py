"""Modelship's ONNX Runtime server side by side with in-process onnxruntime,
a bare hello-world on the same stacks, and MLServer 1.7, in one run.

    /root/.cache/modelship/venv/bin/python benchmarks/serving/bench_server.py

Everything runs on loopback: one Modelship server (the MLP and the CNN, each
with and without dynamic batching), one hello-world process (uvicorn+httptools
and grpc.aio, as the server), and one MLServer (its own virtual environment,
created on first use, a minimal ONNX runtime class, adaptive batching for the
batched variants). Clients are tritonclient's asyncio clients in this
process: HTTP with binary tensors (tritonclient's default), HTTP with JSON
(MLServer needs it) and gRPC. Each point runs `--duration` seconds after a
warm-up, at concurrency 1, 8 and 32, one request = one row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import tritonclient.grpc.aio as grpcaio
import tritonclient.http.aio as httpaio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import models  # noqa: E402
from mlserver_env import ensure_mlserver_venv  # noqa: E402

CONCURRENCY = (1, 8, 32)
MODELS = {
    # name: (config without batching, config with dynamic batching, queue delay for MLServer)
    "mlp": ("max_batch_size: 32\n",
            "max_batch_size: 32\ndynamic_batching { max_queue_delay_microseconds: 100 }\n",
            0.0005),
    "cnn": ("max_batch_size: 32\n",
            "max_batch_size: 32\ndynamic_batching { max_queue_delay_microseconds: 2000 }\n",
            0.002),
}


IDENTITY = {"Accept-Encoding": "identity"}
JSON_TYPE = {"Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- processes under test -------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    http: str
    grpc: str
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def wait_http(url: str, path: str, popen: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"{url} exited with {popen.returncode}")
        try:
            with urllib.request.urlopen(f"http://{url}{path}", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)  # polling another process; there is no event to await
    raise RuntimeError(f"{url}{path} did not answer within {timeout}s")


def start_modelship(repo: Path, logs: Path, cpu_limit: str) -> Process:
    http, grpc, metrics = free_port(), free_port(), free_port()
    popen = subprocess.Popen(
        [sys.executable, "-m", "modelship_serving.server.main", "--model-repository",
         str(repo), "--host", "127.0.0.1", "--http-port", str(http), "--grpc-port", str(grpc),
         "--metrics-port", str(metrics), "--log-format", "text", "--log-level", "WARNING"],
        stdout=open(logs / "modelship.log", "wb"), stderr=subprocess.STDOUT,
        env={**os.environ, "MODELSHIP_CPU_LIMIT": cpu_limit})
    process = Process("modelship", popen, f"127.0.0.1:{http}", f"127.0.0.1:{grpc}")
    wait_http(process.http, "/v2/health/ready", popen)
    return process


def start_hello(logs: Path) -> Process:
    http, grpc = free_port(), free_port()
    popen = subprocess.Popen(
        [sys.executable, str(HERE / "hello_world.py"), "--http-port", str(http),
         "--grpc-port", str(grpc)],
        stdout=open(logs / "hello.log", "wb"), stderr=subprocess.STDOUT)
    process = Process("hello", popen, f"127.0.0.1:{http}", f"127.0.0.1:{grpc}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", http), timeout=1):
                return process
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the hello-world server did not start")


def start_mlserver(root: Path, logs: Path, model_files: dict[str, Path], threads: int) -> Process:
    executable = ensure_mlserver_venv()
    http, grpc, metrics = free_port(), free_port(), free_port()
    for name, source in model_files.items():
        base, _, _ = name.partition("_")
        for variant, batched in ((name, False), (f"{name}_batched", True)):
            folder = root / variant
            folder.mkdir(parents=True)
            shutil.copyfile(source, folder / "model.onnx")
            shutil.copyfile(HERE / "mlserver_runtime.py", folder / "mlserver_runtime.py")
            settings: dict[str, object] = {
                "name": variant, "implementation": "mlserver_runtime.OnnxRuntime",
                "parameters": {"uri": "./model.onnx"}}
            if batched:
                settings["max_batch_size"] = 32
                settings["max_batch_time"] = MODELS[base][2]
            (folder / "model-settings.json").write_text(json.dumps(settings))
    (root / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": http, "grpc_port": grpc, "metrics_port": metrics,
        "debug": False}))
    popen = subprocess.Popen(
        [str(executable), "start", str(root)], cwd=root,
        stdout=open(logs / "mlserver.log", "wb"), stderr=subprocess.STDOUT,
        env={**os.environ, "BENCH_ORT_THREADS": str(threads), "PYTHONPATH": ""})
    process = Process("mlserver", popen, f"127.0.0.1:{http}", f"127.0.0.1:{grpc}")
    for variant in [v for n in model_files for v in (n, f"{n}_batched")]:
        wait_http(process.http, f"/v2/models/{variant}/ready", popen, timeout=180)
    return process


# -- load --------------------------------------------------------------------------------


@dataclass
class Point:
    model: str
    batching: bool
    target: str
    concurrency: int
    throughput: float
    p50_ms: float
    p99_ms: float
    errors: int
    avg_batch: float | None = None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_point(protocol: str, url: str, model: str, input_name: str, rows: np.ndarray,
                    *, binary: bool, concurrency: int, duration: float, warmup: float
                    ) -> tuple[float, float, float, int]:
    """Throughput (req/s), p50 and p99 (ms) and errors of `concurrency` closed loops."""
    if protocol == "http":
        client = httpaio.InferenceServerClient(url, conn_limit=max(concurrency, 1))
        mod = httpaio
    else:
        client = grpcaio.InferenceServerClient(url)
        mod = grpcaio
    output_names = None
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    measure_from = start + warmup
    end = measure_from + duration
    shape = [1, *rows.shape[1:]]

    async def loop(worker: int) -> None:
        nonlocal errors
        i = worker
        while True:
            now = time.perf_counter()
            if now >= end:
                return
            row = rows[i % len(rows)][None]
            i += concurrency
            tensor = mod.InferInput(input_name, shape, "FP32")
            if protocol == "http":
                tensor.set_data_from_numpy(row, binary_data=binary)
                outputs = None if binary else output_names
            else:
                tensor.set_data_from_numpy(row)
                outputs = None
            t0 = time.perf_counter()
            try:
                if protocol == "http":
                    # aiohttp offers gzip and tritonclient.aio cannot read a gzipped
                    # answer (MLServer compresses); ask every server for identity.
                    # MLServer (FastAPI) also needs a JSON content type, which the
                    # aio client leaves out. The client mutates the dict: a new one each.
                    headers = dict(IDENTITY) if binary else {**IDENTITY, **JSON_TYPE}
                    await client.infer(model, [tensor], outputs=outputs, headers=headers)
                else:
                    await client.infer(model, [tensor], outputs=outputs)
            except Exception as exc:
                errors += 1
                if errors == 1:
                    log(f"first error from {url} {model}: {str(exc)[:300]}")
                continue
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 <= end:
                latencies.append(t1 - t0)

    if protocol == "http" and not binary:
        meta = await client.get_model_metadata(model)
        output_names = [httpaio.InferRequestedOutput(o["name"], binary_data=False)
                        for o in meta["outputs"]]
    await asyncio.gather(*(loop(w) for w in range(concurrency)))
    await client.close()
    return (len(latencies) / duration, percentile(latencies, 0.5) * 1e3,
            percentile(latencies, 0.99) * 1e3, errors)


def stats_of(url: str, model: str) -> tuple[int, int]:
    with urllib.request.urlopen(f"http://{url}/v2/models/{model}/stats") as r:
        stats = json.loads(r.read())["model_stats"][0]
    return int(stats["inference_count"]), int(stats["execution_count"])


def in_process(path: Path, rows: np.ndarray, batch: int, threads: int, duration: float
               ) -> float:
    """Inferences per second of in-process onnxruntime at `batch` (server's options)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.ascontiguousarray(np.resize(rows, (batch, *rows.shape[1:])))
    for _ in range(3):
        session.run(None, {name: x})
    runs = 0
    start = time.perf_counter()
    while time.perf_counter() - start < duration:
        session.run(None, {name: x})
        runs += 1
    return runs * batch / (time.perf_counter() - start)


# -- the run --------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured a point")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--cpu-limit", default=str(len(os.sched_getaffinity(0))))
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--skip-mlserver", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the raw points here")
    args = parser.parse_args()
    threads = max(1, round(float(args.cpu_limit)))
    wanted = [m for m in args.models.split(",") if m]

    work = Path(tempfile.mkdtemp(prefix="modelship-bench-"))
    repo, logs = work / "repo", work / "logs"
    logs.mkdir(parents=True)
    built: dict[str, tuple[onnx.ModelProto, np.ndarray, str]] = {
        "mlp": (*models.mlp(), "input"),
        "cnn": (*models.cnn(), "image"),
    }
    files: dict[str, Path] = {}
    for name in wanted:
        model, _, _ = built[name]
        plain, batched, _ = MODELS[name]
        files[name] = models.write(repo, name, model, plain)
        models.write(repo, f"{name}_batched", model, batched)

    processes: list[Process] = []
    points: list[Point] = []
    started = time.monotonic()
    try:
        log("starting Modelship, hello-world" + ("" if args.skip_mlserver else ", MLServer"))
        ours = start_modelship(repo, logs, args.cpu_limit)
        processes.append(ours)
        hello = start_hello(logs)
        processes.append(hello)
        mlserver = None
        if not args.skip_mlserver:
            mlserver = start_mlserver(work / "mlserver", logs, files, threads)
            processes.append(mlserver)

        for name in wanted:
            _, rows, input_name = built[name]
            for batching in (False, True):
                model = f"{name}_batched" if batching else name
                targets: list[tuple[str, str, str, bool, Process]] = [
                    ("modelship http-binary", "http", ours.http, True, ours),
                    ("modelship http-json", "http", ours.http, False, ours),
                    ("modelship grpc", "grpc", ours.grpc, True, ours),
                ]
                if mlserver is not None:
                    targets += [("mlserver http-json", "http", mlserver.http, False, mlserver),
                                ("mlserver grpc", "grpc", mlserver.grpc, True, mlserver)]
                if name == "mlp" and not batching:
                    targets += [("hello-world http", "http", hello.http, True, hello),
                                ("hello-world grpc", "grpc", hello.grpc, True, hello)]
                for label, protocol, url, binary, proc in targets:
                    for c in CONCURRENCY:
                        before = stats_of(ours.http, model) if proc is ours else None
                        tput, p50, p99, errors = asyncio.run(run_point(
                            protocol, url, model, input_name, rows, binary=binary,
                            concurrency=c, duration=args.duration, warmup=args.warmup))
                        avg = None
                        if before is not None:
                            after = stats_of(ours.http, model)
                            executions = after[1] - before[1]
                            avg = (after[0] - before[0]) / executions if executions else None
                        points.append(Point(name, batching, label, c, tput, p50, p99, errors,
                                            avg))
                        log(f"{model:12s} {label:22s} c={c:<3d} {tput:8.0f} req/s "
                            f"p50 {p50:7.2f} ms p99 {p99:7.2f} ms errors {errors}"
                            + (f" batch {avg:.1f}" if avg else ""))
    finally:
        for process in processes:
            process.stop()

    # In-process onnxruntime at batch 1 and at every batch size the batcher formed.
    limits: dict[tuple[str, int], float] = {}
    for name in wanted:
        _, rows, _ = built[name]
        sizes = {1} | {max(1, round(p.avg_batch)) for p in points
                       if p.model == name and p.avg_batch and p.batching}
        for size in sorted(sizes):
            limits[(name, size)] = in_process(files[name], rows, size, threads, 1.5)
            log(f"in-process {name} batch {size}: {limits[(name, size)]:.0f} inferences/s")

    report(points, limits, args, time.monotonic() - started)
    if args.json:
        args.json.write_text(json.dumps({"points": [p.__dict__ for p in points],
                                         "in_process": {f"{m}@{b}": v
                                                        for (m, b), v in limits.items()}},
                                        indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 1 if any(p.errors for p in points if p.target.startswith("modelship")) else 0


def report(points: list[Point], limits: dict[tuple[str, int], float],
           args: argparse.Namespace, elapsed: float) -> None:
    def find(model: str, batching: bool, target: str, c: int) -> Point | None:
        for p in points:
            if (p.model, p.batching, p.target, p.concurrency) == (model, batching, target, c):
                return p
        return None

    out = []
    out.append(f"Run: {len(os.sched_getaffinity(0))} CPUs, cpu limit {args.cpu_limit}, "
               f"{args.duration:.0f}s a point, {elapsed:.0f}s in all.\n")
    out.append("| model | dyn. batching | target | c | req/s | p50 ms | p99 ms | batch | errors |")
    out.append("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for p in points:
        out.append(f"| {p.model} | {'on' if p.batching else 'off'} | {p.target} | "
                   f"{p.concurrency} | {p.throughput:.0f} | {p.p50_ms:.2f} | {p.p99_ms:.2f} | "
                   f"{'' if p.avg_batch is None else f'{p.avg_batch:.1f}'} | {p.errors} |")
    out.append("\nIn-process onnxruntime (same thread count, inferences/s): " + ", ".join(
        f"{m} batch {b}: {v:.0f}" for (m, b), v in sorted(limits.items())))

    out.append("\nRatios (same run):")
    for model in sorted({p.model for p in points}):
        for batching in (False, True):
            for c in CONCURRENCY:
                ml = find(model, batching, "mlserver http-json", c)
                mg = find(model, batching, "mlserver grpc", c)
                for ours_label, theirs in (("modelship http-binary", ml),
                                           ("modelship http-json", ml),
                                           ("modelship grpc", mg)):
                    mine = find(model, batching, ours_label, c)
                    if mine and theirs and theirs.throughput and not theirs.errors:
                        out.append(
                            f"- {model} batching {'on' if batching else 'off'} c={c}: "
                            f"{ours_label} vs {theirs.target}: throughput "
                            f"{mine.throughput / theirs.throughput:.2f}x, p99 "
                            f"{mine.p99_ms:.2f} vs {theirs.p99_ms:.2f} ms")
    for proto, hello_label in (("modelship http-binary", "hello-world http"),
                               ("modelship grpc", "hello-world grpc")):
        mine, hello = find("mlp", False, proto, 1), find("mlp", False, hello_label, 1)
        if mine and hello:
            out.append(f"- mlp c=1: {proto} p50 {mine.p50_ms:.3f} ms vs {hello_label} "
                       f"{hello.p50_ms:.3f} ms: {mine.p50_ms / hello.p50_ms:.2f}x")
    for p in points:
        if p.batching and p.avg_batch and p.target.startswith("modelship"):
            size = max(1, round(p.avg_batch))
            limit = limits.get((p.model, size))
            if limit and p.concurrency == 32:
                out.append(f"- {p.model} batching on c=32 {p.target}: {p.throughput:.0f} "
                           f"req/s vs in-process at batch {size} {limit:.0f}/s: "
                           f"{p.throughput / limit:.2f}x")
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
