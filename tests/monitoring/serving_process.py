"""The real modelship-server, serving a tiny breast-cancer classifier with a drift reference.

The repository holds one model, ``clf``, version 1: a scikit-learn MLP written
as ONNX (tests/serving/onnx_models.py) and a reference.json computed the way
the trainer computes it, from the dataset and the model's own answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from modelship_serving.monitoring import build_reference
from tests.monitoring.prometheus_process import free_port, wait_for
from tests.serving.onnx_models import breast_cancer_mlp

MODEL = "clf"
CONFIG = "max_batch_size: 32\ndynamic_batching { }\n"


def breast_cancer() -> np.ndarray:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(return_X_y=True)[0].astype(np.float32)


def write_repository(root: Path, *, with_reference: bool = True) -> Path:
    """A model repository with ``clf`` version 1 (and its reference.json)."""
    version_dir = root / MODEL / "1"
    version_dir.mkdir(parents=True)
    model = breast_cancer_mlp()
    onnx.save(model, str(version_dir / "model.onnx"))
    (root / MODEL / "config.pbtxt").write_text(CONFIG)
    if with_reference:
        x = breast_cancer()
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        probabilities, label = session.run(["probabilities", "label"], {"input": x})
        reference = build_reference({"input": x},
                                    {"probabilities": probabilities, "label": label})
        (version_dir / "reference.json").write_text(json.dumps(reference))
    return root


@dataclass
class Server:
    http: str
    grpc: str
    metrics: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def metrics_target(self) -> str:
        return self.metrics.removeprefix("http://")

    def infer(self, rows: np.ndarray) -> dict[str, object]:
        body = json.dumps({"inputs": [{"name": "input", "shape": list(rows.shape),
                                       "datatype": "FP32",
                                       "data": rows.reshape(-1).tolist()}]}).encode()
        request = urllib.request.Request(f"{self.http}/v2/models/{MODEL}/infer", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return dict(json.load(response))

    def scrape(self) -> str:
        with urllib.request.urlopen(f"{self.metrics}/metrics", timeout=5) as response:
            return str(response.read().decode())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_server(repository: Path, log_path: Path, *extra: str) -> Iterator[Server]:
    """modelship-server on free loopback ports, ready to serve; SIGTERM on exit."""
    http, grpc, metrics = free_port(), free_port(), free_port()
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelship_serving.server.main",
             "--model-repository", str(repository), "--host", "127.0.0.1",
             "--http-port", str(http), "--grpc-port", str(grpc),
             "--metrics-port", str(metrics), "--log-format", "text", *extra],
            stdout=log_file, stderr=subprocess.STDOUT,
            env={**os.environ, "MODELSHIP_CPU_LIMIT": "1"},
        )
    server = Server(f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc}",
                    f"http://127.0.0.1:{metrics}", process, log_path)
    try:
        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"modelship-server exited:\n{server.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{server.http}/v2/health/ready", timeout=1) as r:
                    return r.status == 200
            except (urllib.error.URLError, ConnectionError):
                return False

        wait_for("modelship-server to be ready", ready, timeout=60)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
