"""Modelship's ONNX Runtime server side by side with in-process onnxruntime,
a bare hello-world on the same stacks, and MLServer 1.7, in one run.

    /root/.cache/modelship/venv/bin/python benchmarks/serving/bench_server.py

Everything runs on loopback: one Modelship server (the MLP, the small CNN and
ResNet-18, each with and without dynamic batching), one hello-world process
(uvicorn+httptools and grpc.aio, as the server), and one MLServer (its own
virtual environment, created on first use, a minimal ONNX runtime class,
adaptive batching for the batched variants). Clients are tritonclient's
asyncio clients in this process: HTTP with binary tensors (tritonclient's
default), HTTP with JSON (MLServer needs it) and gRPC; one request is one row.

The load generator does not share cores with what it measures: the servers
(and the in-process limit) run on `--server-cpus`, the clients on
`--client-cpus` (by default the last CPU is the clients' and the others the
servers'), and the servers' CPU limit is the number of server CPUs. On a
shared machine a client competing for the server's cores measures the
client, not the server.

Every point is measured `--rounds` times, the targets interleaved and their
order rotated each round, and the table reports medians: on a shared machine
a single pass mostly measures the neighbours. The in-process limit is
measured in each round right after the batched points it is compared with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import models  # noqa: E402
from loadgen import Point, in_process, log, run_point, stats_of  # noqa: E402
from report import CONCURRENCY, report  # noqa: E402
from servers import Process, start_hello, start_mlserver, start_modelship  # noqa: E402

# name: (config.pbtxt without batching, with dynamic batching, MLServer's max_batch_time)
MODELS = {
    "mlp": ("max_batch_size: 32\n",
            "max_batch_size: 32\ndynamic_batching { max_queue_delay_microseconds: 100 }\n",
            0.0005),
    "cnn": ("max_batch_size: 32\n",
            "max_batch_size: 32\ndynamic_batching { max_queue_delay_microseconds: 2000 }\n",
            0.002),
    "resnet18": ("max_batch_size: 32\n",
                 "max_batch_size: 32\n"
                 "dynamic_batching { max_queue_delay_microseconds: 5000 }\n",
                 0.005),
}
INPUTS = {"mlp": "input", "cnn": "image", "resnet18": "image"}
# A point must hold many requests: at concurrency 32 one ResNet-18 request takes
# a quarter of a second on one core.
MIN_SECONDS = {"resnet18": 4.0}
BUILD = {"mlp": models.mlp, "cnn": models.cnn, "resnet18": models.resnet18}


def cpu_split(server: str | None, client: str | None) -> tuple[set[int], set[int]]:
    """The CPUs of the servers and of the load generator (disjoint when possible)."""
    mine = sorted(os.sched_getaffinity(0))
    parse = (lambda text: {int(c) for c in text.split(",") if c.strip()})
    if client is None:
        client_cpus = {mine[-1]} if len(mine) > 1 else set(mine)
    else:
        client_cpus = parse(client)
    if server is None:
        server_cpus = (set(mine) - client_cpus) or set(mine)
    else:
        server_cpus = parse(server)
    return server_cpus, client_cpus


def targets_for(name: str, batching: bool, ours: Process, hello: Process,
                mlserver: Process | None) -> list[tuple[str, str, str, bool, Process]]:
    """(label, protocol, url, binary, process) of every target for one model variant."""
    targets = [("modelship http-binary", "http", ours.http, True, ours),
               ("modelship http-json", "http", ours.http, False, ours),
               ("modelship grpc", "grpc", ours.grpc, True, ours)]
    if mlserver is not None:
        targets += [("mlserver http-json", "http", mlserver.http, False, mlserver),
                    ("mlserver grpc", "grpc", mlserver.grpc, True, mlserver)]
    if name == "mlp" and not batching:
        targets += [("hello-world http", "http", hello.http, True, hello),
                    ("hello-world grpc", "grpc", hello.grpc, True, hello)]
    return targets


def measure(args: argparse.Namespace, wanted: list[str],
            built: dict[str, tuple[onnx.ModelProto, np.ndarray]], files: dict[str, Path],
            ours: Process, hello: Process, mlserver: Process | None, threads: int,
            cpus: tuple[set[int], set[int]]
            ) -> tuple[list[Point], dict[tuple[int, str, int], float]]:
    points: list[Point] = []
    limits: dict[tuple[int, str, int], float] = {}
    for round_ in range(args.rounds):
        for name in wanted:
            rows = built[name][1]
            for batching in (False, True):
                model = f"{name}_batched" if batching else name
                targets = targets_for(name, batching, ours, hello, mlserver)
                shift = round_ % len(targets)
                targets = targets[shift:] + targets[:shift]
                for c in CONCURRENCY:
                    for label, protocol, url, binary, proc in targets:
                        before = stats_of(ours.http, model) if proc is ours else None
                        tput, p50, p99, errors = asyncio.run(run_point(
                            protocol, url, model, INPUTS[name], rows, binary=binary,
                            concurrency=c, duration=max(args.duration, MIN_SECONDS.get(name, 0)),
                            warmup=max(args.warmup, MIN_SECONDS.get(name, 0) / 4)))
                        avg = None
                        if before is not None:
                            after = stats_of(ours.http, model)
                            runs = after[1] - before[1]
                            avg = (after[0] - before[0]) / runs if runs else None
                        points.append(Point(name, batching, label, c, tput, p50, p99,
                                            errors, avg, round_))
                        log(f"round {round_} {model:12s} {label:22s} c={c:<3d} {tput:8.0f} "
                            f"req/s p50 {p50:7.2f} ms p99 {p99:7.2f} ms errors {errors}"
                            + (f" batch {avg:.1f}" if avg else ""))

            # The limit, measured now, under the same neighbours as the points above.
            sizes = {1} | {max(1, round(p.avg_batch)) for p in points
                           if p.model == name and p.round == round_ and p.batching
                           and p.avg_batch and p.concurrency == 32}
            for size in sorted(sizes):
                os.sched_setaffinity(0, cpus[0])  # where the servers run
                try:
                    limits[(round_, name, size)] = in_process(
                        files[name], rows, size, threads, min(1.5, args.duration))
                finally:
                    os.sched_setaffinity(0, cpus[1])
                log(f"round {round_} in-process {name} batch {size}: "
                    f"{limits[(round_, name, size)]:.0f} inferences/s")
    return points, limits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=1.5, help="seconds measured a point")
    parser.add_argument("--warmup", type=float, default=0.3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--server-cpus", help="CPUs of the servers, e.g. 0,1 "
                        "(default: all but the last)")
    parser.add_argument("--client-cpus", help="CPUs of the load generator (default: the last)")
    parser.add_argument("--cpu-limit", help="the servers' CPU limit (default: their CPUs)")
    parser.add_argument("--models", default="mlp,cnn,resnet18")
    parser.add_argument("--skip-mlserver", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the raw points here")
    args = parser.parse_args()
    cpus = cpu_split(args.server_cpus, args.client_cpus)
    args.cpu_limit = args.cpu_limit or str(len(cpus[0]))
    threads = max(1, round(float(args.cpu_limit)))
    wanted = [m for m in args.models.split(",") if m]
    unknown = set(wanted) - set(MODELS)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; choose from {sorted(MODELS)}")

    work = Path(tempfile.mkdtemp(prefix="modelship-bench-"))
    repo, logs = work / "repo", work / "logs"
    logs.mkdir(parents=True)
    built = {name: BUILD[name]() for name in wanted}
    files: dict[str, Path] = {}
    for name in wanted:
        plain, batched, _ = MODELS[name]
        files[name] = models.write(repo, name, built[name][0], plain)
        models.write(repo, f"{name}_batched", built[name][0], batched)

    processes: list[Process] = []
    started = time.monotonic()
    load_before = os.getloadavg()
    try:
        log("starting Modelship, hello-world" + ("" if args.skip_mlserver else ", MLServer")
            + f" on CPUs {sorted(cpus[0])}; clients on CPUs {sorted(cpus[1])}")
        os.sched_setaffinity(0, cpus[0])  # the servers inherit it
        ours = start_modelship(repo, logs, args.cpu_limit)
        processes.append(ours)
        hello = start_hello(logs)
        processes.append(hello)
        mlserver = None
        if not args.skip_mlserver:
            mlserver = start_mlserver(work / "mlserver", logs, files, threads,
                                      {name: MODELS[name][2] for name in wanted})
            processes.append(mlserver)
        os.sched_setaffinity(0, cpus[1])
        points, limits = measure(args, wanted, built, files, ours, hello, mlserver, threads,
                                 cpus)
    finally:
        for process in processes:
            process.stop()

    print(report(points, limits, args=args, elapsed=time.monotonic() - started,
                 load=(load_before, os.getloadavg()), cpus=cpus))
    if args.json:
        args.json.write_text(json.dumps({
            "points": [p.__dict__ for p in points],
            "in_process": [{"round": r, "model": m, "batch": b, "per_second": v}
                           for (r, m, b), v in limits.items()]}, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 1 if any(p.errors for p in points if p.target.startswith("modelship")) else 0


if __name__ == "__main__":
    sys.exit(main())
