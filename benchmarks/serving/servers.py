"""The processes the benchmark measures, each started on free loopback ports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from loadgen import log
from mlserver_env import ensure_mlserver_venv

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def start_mlserver(root: Path, logs: Path, model_files: dict[str, Path], threads: int,
                   batch_delays: dict[str, float]) -> Process:
    executable = ensure_mlserver_venv()
    http, grpc, metrics = free_port(), free_port(), free_port()
    for name, source in model_files.items():
        base = name
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
                settings["max_batch_time"] = batch_delays[base]
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
