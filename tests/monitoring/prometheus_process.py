"""A real Prometheus (Debian's binary) on a free loopback port, for tests.

It scrapes the given targets every second, evaluates the given rules file
every second and keeps its data in a temporary directory. Readiness and
alert states are read from its own HTTP API.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.monitoring.promtool import binary

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float = 30.0,
             every: float = 0.2) -> T:
    """Poll ``probe`` until it returns something truthy; there is no event to await
    from another process, so this is the one place a test waits on a clock."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/alerts")["alerts"])

    def alert_state(self, name: str) -> str:
        """firing, pending, or inactive when Prometheus reports no such alert."""
        states = {a["state"] for a in self.alerts() if a["labels"]["alertname"] == name}
        return "firing" if "firing" in states else ("pending" if states else "inactive")

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/query", query=expr)["result"])

    def targets_up(self) -> bool:
        active = self.get("/api/v1/targets")["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)

    def last_evaluation(self) -> float:
        """Unix time of the latest rule evaluation (0 before the first)."""
        latest = 0.0
        for group in self.get("/api/v1/rules")["groups"]:
            stamp = group.get("lastEvaluation", "")
            if stamp and not stamp.startswith("0001"):
                latest = max(latest, _parse_rfc3339(stamp))
        return latest

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _parse_rfc3339(stamp: str) -> float:
    from datetime import datetime

    # Prometheus writes nanoseconds; Python parses up to microseconds.
    head, _, rest = stamp.partition(".")
    zone = rest[rest.find("Z"):] if "Z" in rest else rest[-6:]
    fraction = "".join(c for c in rest.removesuffix(zone) if c.isdigit())[:6] or "0"
    zone = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(f"{head}.{fraction.ljust(6, '0')}{zone}").timestamp()


@contextmanager
def running_prometheus(
    workdir: Path,
    *,
    targets: Sequence[str],
    target_labels: Mapping[str, str],
    rules: str,
) -> Iterator[Prometheus]:
    """Start Prometheus scraping ``targets`` (host:port) with ``rules``; stop it after."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules.yaml").write_text(rules)
    (workdir / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms",
                   "evaluation_interval": "1s"},
        "rule_files": ["rules.yaml"],
        "scrape_configs": [{
            "job_name": "modelship",
            "static_configs": [{"targets": list(targets), "labels": dict(target_labels)}],
        }],
    }))
    port = free_port()
    log_path = workdir / "prometheus.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [binary("prometheus"), f"--config.file={workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle",
             "--storage.tsdb.retention.time=1h"],
            stdout=log_file, stderr=subprocess.STDOUT, cwd=workdir,
        )
    prometheus = Prometheus(f"http://127.0.0.1:{port}", process, log_path)
    try:
        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{prometheus.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=1) as r:
                    return r.status == 200
            except (urllib.error.URLError, ConnectionError):
                return False

        wait_for("Prometheus to be ready", ready)
        yield prometheus
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
