"""Closed-loop load through tritonclient's asyncio clients, and the in-process limit."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tritonclient.grpc.aio as grpcaio
import tritonclient.http.aio as httpaio


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


IDENTITY = {"Accept-Encoding": "identity"}
JSON_TYPE = {"Content-Type": "application/json"}


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
    round: int = 0


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
            # Count what completes inside the window, whenever it started: a
            # window that only counted requests started and finished in it
            # would lose about one latency's worth of requests per loop.
            if measure_from <= t1 <= end:
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
    """Inferences per second of in-process onnxruntime at `batch`, on `threads` threads."""
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
