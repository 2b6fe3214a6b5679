"""Running the real server in a subprocess on free loopback ports, for the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from tests.serving import onnx_models

MLP_CONFIG = """
max_batch_size: 32
dynamic_batching { }
"""

DIABETES_CONFIG = """
max_batch_size: 16
version_policy: { all { } }
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    metrics_port: int
    repository: Path
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def start_server(repository: Path, log_path: Path, *extra: str,
                 ready_timeout: float = 60.0, wait_ready: bool = True,
                 env: dict[str, str] | None = None) -> RunningServer:
    """Start modelship-server and wait until /v2/health/live (and ready) answers."""
    http, grpc_port, metrics = free_port(), free_port(), free_port()
    cmd = [sys.executable, "-m", "modelship_serving.server.main",
           "--model-repository", str(repository), "--host", "127.0.0.1",
           "--http-port", str(http), "--grpc-port", str(grpc_port),
           "--metrics-port", str(metrics), *extra]
    full_env = {**os.environ, "MODELSHIP_CPU_LIMIT": "1", **(env or {})}
    log_file = open(log_path, "wb")
    process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=full_env)
    log_file.close()
    server = RunningServer(process, http, grpc_port, metrics, repository, log_path)
    path = "/v2/health/ready" if wait_ready else "/v2/health/live"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"http://{server.http_url}{path}", timeout=1) as r:
                if r.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.05)  # polling a subprocess: there is no event to await
    server.process.kill()
    raise RuntimeError(f"server did not become ready:\n{server.log()}")


def build_repository(root: Path) -> Path:
    """The shared repository: the MLP, two diabetes versions, one identity model a type."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_models.write_model(root, "mlp", onnx_models.breast_cancer_mlp(), config=MLP_CONFIG)
    onnx_models.write_model(root, "diabetes", onnx_models.diabetes_regressor(), version=1,
                            config=DIABETES_CONFIG)
    onnx_models.write_model(root, "diabetes", onnx_models.diabetes_regressor(), version=2)
    for dt in onnx_models.ONNX_TYPES:
        onnx_models.write_model(root, f"identity_{dt.lower()}", onnx_models.identity_model(dt))
    return root
