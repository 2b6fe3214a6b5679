"""Running modelship-router in a subprocess on free loopback ports, for the tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.serving.harness import RunningServer, free_port

T = TypeVar("T")


@dataclass
class RunningRouter:
    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    metrics_port: int
    config_path: Path
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, *, port: int | None = None) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{port or self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def terminate(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def member(name: str, server: RunningServer, model: str, **extra: Any) -> dict[str, Any]:
    """A member entry of ensemble.json for `model` on `server`."""
    return {"name": name, "url": f"http://{server.http_url}", "grpcUrl": server.grpc_url,
            "model": model, **extra}


def write_config(directory: Path, config: dict[str, Any]) -> Path:
    path = directory / f"{config['name']}.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def start_router(config: dict[str, Any], directory: Path, *extra: str,
                 wait_ready: bool = True, timeout: float = 60.0) -> RunningRouter:
    """Start modelship-router on `config`; wait until it is live (and ready)."""
    path = write_config(directory, config)
    http, grpc_port, metrics = free_port(), free_port(), free_port()
    log_path = directory / f"{config['name']}.log"
    cmd = [sys.executable, "-m", "modelship_serving.router.main", "--config", str(path),
           "--http-port", str(http), "--grpc-port", str(grpc_port),
           "--metrics-port", str(metrics), "--log-format", "text", *extra]
    env = {**os.environ, "MODELSHIP_BIND_ADDRESS": "127.0.0.1"}
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    router = RunningRouter(process, http, grpc_port, metrics, path, log_path)
    wanted = "/v2/health/ready" if wait_ready else "/v2/health/live"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"router exited with {process.returncode}:\n{router.log()}")
        try:
            if router.get(wanted)[0] == 200:
                return router
        except OSError:
            pass
        time.sleep(0.05)  # polling a subprocess: there is no event to await
    process.kill()
    raise RuntimeError(f"router did not become {'ready' if wait_ready else 'live'}:\n"
                       f"{router.log()}")


def poll_until(check: Callable[[], T | None], *, timeout: float = 30.0,
               what: str = "the condition") -> T:
    """The first truthy result of `check`, polled (a subprocess has no event to await)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def check_config(config: dict[str, Any], directory: Path) -> subprocess.CompletedProcess[str]:
    """Run `modelship-router --check-config` on `config`."""
    path = write_config(directory, config)
    return subprocess.run(
        [sys.executable, "-m", "modelship_serving.router.main", "--config", str(path),
         "--check-config", "--log-format", "text"],
        capture_output=True, text=True, timeout=60)
