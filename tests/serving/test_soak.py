"""Soak: five minutes of high load over every protocol, no errors, no memory growth.

Excluded from the default run; one command runs it:

    /root/.cache/modelship/venv/bin/pytest -m soak tests/serving/test_soak.py

MODELSHIP_SOAK_SECONDS shortens or lengthens it (default 300). The server's
resident memory is read from /proc after a warm-up fifth of the run and again
at the end; growth beyond 10% + 32 MiB fails the test.
"""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc.aio as grpcaio
import tritonclient.http.aio as httpaio
from tritonclient.utils import InferenceServerException

from tests.serving import onnx_models
from tests.serving.harness import start_server

SECONDS = float(os.environ.get("MODELSHIP_SOAK_SECONDS", "300"))
CONCURRENCY = 12  # a protocol
MIB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc status")


@pytest.mark.soak
def test_five_minutes_of_load_cause_no_errors_and_no_memory_growth(tmp_path: Path):
    repo = tmp_path / "repo"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_models.write_model(repo, "mlp", onnx_models.breast_cancer_mlp(), config="""
            max_batch_size: 32
            dynamic_batching { max_queue_delay_microseconds: 200 }""")
    onnx_models.write_model(repo, "words", onnx_models.identity_model("BYTES"))
    server = start_server(repo, tmp_path / "server.log", "--log-level", "WARNING")
    rng = np.random.default_rng(0)
    rows = rng.random((64, 30), dtype=np.float32)
    words = np.array([[b"a", b"bb", b"ccc", b"dddd"]] * 2, dtype=np.object_)

    async def soak() -> tuple[dict[str, int], dict[str, int], int, int]:
        counts = {"http-binary": 0, "http-json": 0, "grpc": 0, "bytes": 0, "refused": 0}
        errors: dict[str, int] = {}
        end = time.monotonic() + SECONDS
        warm_at = time.monotonic() + SECONDS / 5
        warm_rss = 0
        http = httpaio.InferenceServerClient(server.http_url, conn_limit=2 * CONCURRENCY)
        grpc = grpcaio.InferenceServerClient(server.grpc_url)

        async def http_loop(worker: int, binary: bool) -> None:
            label = "http-binary" if binary else "http-json"
            i = worker
            while time.monotonic() < end:
                i += 1
                tensor = httpaio.InferInput("input", [1, 30], "FP32")
                tensor.set_data_from_numpy(rows[i % 64][None], binary_data=binary)
                try:
                    if i % 50 == 0:  # a malformed request now and then must stay a 400
                        bad = httpaio.InferInput("input", [1, 29], "FP32")
                        bad.set_data_from_numpy(rows[0][None, :29], binary_data=binary)
                        try:
                            await http.infer("mlp", [bad])
                        except InferenceServerException as exc:
                            assert exc.status() == "400", exc
                            counts["refused"] += 1
                        continue
                    result = await http.infer("mlp", [tensor], outputs=[
                        httpaio.InferRequestedOutput("probabilities", binary_data=binary)])
                    assert result.as_numpy("probabilities").shape == (1, 2)
                    counts[label] += 1
                except Exception as exc:  # counted, reported at the end
                    errors[f"{label}: {type(exc).__name__}: {exc}"[:200]] = \
                        errors.get(f"{label}: {type(exc).__name__}: {exc}"[:200], 0) + 1

        async def grpc_loop(worker: int) -> None:
            i = worker
            while time.monotonic() < end:
                i += 1
                try:
                    if i % 7 == 0:
                        tensor = grpcaio.InferInput("INPUT0", [2, 4], "BYTES")
                        tensor.set_data_from_numpy(words)
                        result = await grpc.infer("words", [tensor])
                        assert result.as_numpy("OUTPUT0").shape == (2, 4)
                        counts["bytes"] += 1
                        continue
                    tensor = grpcaio.InferInput("input", [1, 30], "FP32")
                    tensor.set_data_from_numpy(rows[i % 64][None])
                    result = await grpc.infer("mlp", [tensor])
                    assert result.as_numpy("label").shape == (1,)
                    counts["grpc"] += 1
                except Exception as exc:
                    key = f"grpc: {type(exc).__name__}: {exc}"[:200]
                    errors[key] = errors.get(key, 0) + 1

        async def sample_memory() -> None:
            nonlocal warm_rss
            await asyncio.sleep(max(0.0, warm_at - time.monotonic()))
            warm_rss = rss_bytes(server.process.pid)

        await asyncio.gather(
            *(http_loop(w, True) for w in range(CONCURRENCY)),
            *(http_loop(w, False) for w in range(CONCURRENCY // 2)),
            *(grpc_loop(w) for w in range(CONCURRENCY)),
            sample_memory())
        final_rss = rss_bytes(server.process.pid)
        await http.close()
        await grpc.close()
        return counts, errors, warm_rss, final_rss

    try:
        counts, errors, warm_rss, final_rss = asyncio.run(soak())
    finally:
        code = server.terminate()
    total = sum(counts.values())
    print(f"soak: {total} requests in {SECONDS:.0f}s ({total / SECONDS:.0f}/s) {counts}; "
          f"RSS {warm_rss / MIB:.1f} -> {final_rss / MIB:.1f} MiB")
    assert not errors, errors
    assert code == 0, server.log()
    assert counts["refused"] > 0 and all(counts[k] > 0 for k in counts)
    assert final_rss <= warm_rss * 1.10 + 32 * MIB, (warm_rss, final_rss)
