"""SIGTERM: readiness goes off, listeners close, requests in flight finish, exit 0."""

from __future__ import annotations

import asyncio
import signal
import time
import warnings
from pathlib import Path

import numpy as np
from tests.serving import onnx_models
import tritonclient.grpc.aio as grpcaio
import tritonclient.http.aio as httpaio
from tests.serving.harness import start_server

# Requests wait up to 1.5 s in the batcher for a batch of 64 that never fills,
# so they are certainly in flight when the signal lands.
SLOW_BATCHING = """
max_batch_size: 64
dynamic_batching { preferred_batch_size: [64] max_queue_delay_microseconds: 1500000 }
"""


def test_sigterm_drains_requests_in_flight_over_both_protocols(tmp_path: Path):
    repo = tmp_path / "repo"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_models.write_model(repo, "mlp", onnx_models.breast_cancer_mlp(),
                                config=SLOW_BATCHING)
    server = start_server(repo, tmp_path / "server.log", "--drain-delay-seconds", "0.3")
    x = np.random.default_rng(0).random((1, 30), dtype=np.float32)

    async def scenario() -> tuple[list[object], bool]:
        http = httpaio.InferenceServerClient(server.http_url, conn_limit=32)
        grpc = grpcaio.InferenceServerClient(server.grpc_url)

        async def over_http() -> np.ndarray:
            tensor = httpaio.InferInput("input", [1, 30], "FP32")
            tensor.set_data_from_numpy(x)
            return (await http.infer("mlp", [tensor])).as_numpy("probabilities")

        async def over_grpc() -> np.ndarray:
            tensor = grpcaio.InferInput("input", [1, 30], "FP32")
            tensor.set_data_from_numpy(x)
            return (await grpc.infer("mlp", [tensor])).as_numpy("probabilities")

        calls = [asyncio.ensure_future(f()) for f in [over_http, over_grpc] * 8]
        # Wait until the server holds all 16 in its queue, then send SIGTERM.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if await asyncio.to_thread(_pending, server) >= 16:
                break
            await asyncio.sleep(0.02)  # polling another process's gauge
        server.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.1)
        ready_during_drain = await http.is_server_ready()
        results = await asyncio.gather(*calls, return_exceptions=True)
        await http.close()
        await grpc.close()
        return results, ready_during_drain

    results, ready_during_drain = asyncio.run(scenario())
    code = server.process.wait(timeout=30)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures
    assert all(r.shape == (1, 2) for r in results)
    assert not ready_during_drain
    assert code == 0, server.log()
    assert "Shutdown complete" in server.log()


def _pending(server) -> int:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as r:
        for line in r.read().decode().splitlines():
            if line.startswith('nv_inference_pending_request_count{model="mlp"'):
                return int(float(line.split()[-1]))
    return 0
