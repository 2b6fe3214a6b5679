"""With --exit-on-error a model that cannot load ends the server with its reason."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.serving.harness import free_port


def test_a_model_that_cannot_load_exits_with_the_reason_in_the_termination_message(
        tmp_path: Path):
    version = tmp_path / "repo" / "broken" / "1"
    version.mkdir(parents=True)
    (version / "model.onnx").write_bytes(b"not an onnx model at all")
    log = tmp_path / "termination-log"

    done = subprocess.run(
        [sys.executable, "-m", "modelship_serving.server.main",
         "--model-repository", str(tmp_path / "repo"), "--host", "127.0.0.1",
         "--http-port", str(free_port()), "--grpc-port", str(free_port()),
         "--metrics-port", "-1", "--exit-on-error=true"],
        env={**os.environ, "MODELSHIP_TERMINATION_LOG": str(log)},
        capture_output=True, text=True, timeout=120,
    )

    assert done.returncode == 1, done.stderr[-2000:]
    message = log.read_text()
    assert message.startswith("ModelLoadFailed: model 'broken': ")


def test_a_taken_grpc_port_ends_the_server_with_one_clear_line(tmp_path: Path):
    (tmp_path / "repo").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        done = subprocess.run(
            [sys.executable, "-m", "modelship_serving.server.main",
             "--model-repository", str(tmp_path / "repo"), "--host", "127.0.0.1",
             "--http-port", str(free_port()), "--grpc-port", str(port),
             "--metrics-port", "-1", "--log-format", "text"],
            capture_output=True, text=True, timeout=120,
        )

    assert done.returncode == 1
    assert f"cannot listen for gRPC on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
