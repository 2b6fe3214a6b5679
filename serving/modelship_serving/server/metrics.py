"""The /metrics endpoint: Triton's metric names, then everything in the registry.

Triton exposes its counters without the `_total` suffix that prometheus_client
appends, so alerts and dashboards written for Triton would miss ours. The
nv_* families are therefore rendered here, at scrape time, straight from the
same statistics the statistics endpoint reports (no per-request cost);
histograms and the drift and anomaly metrics of other modules come from the
Prometheus registry as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import generate_latest

from modelship_serving.runtime.stats import StatsSnapshot
from modelship_serving.server.backend import Backend

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

_COUNTERS: list[tuple[str, str, Callable[[StatsSnapshot], float]]] = [
    ("nv_inference_request_success", "Number of successful inference requests",
     lambda s: s.success.count),
    ("nv_inference_request_failure", "Number of failed inference requests",
     lambda s: s.fail.count),
    ("nv_inference_count", "Number of inferences performed (a batch of n counts n)",
     lambda s: s.inference_count),
    ("nv_inference_exec_count", "Number of model executions (batches) performed",
     lambda s: s.execution_count),
    ("nv_inference_request_duration_us", "Cumulative inference request duration in us",
     lambda s: s.success.ns // 1000),
    ("nv_inference_queue_duration_us", "Cumulative inference queuing duration in us",
     lambda s: s.queue.ns // 1000),
    ("nv_inference_compute_input_duration_us", "Cumulative compute input duration in us",
     lambda s: s.compute_input.ns // 1000),
    ("nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in us",
     lambda s: s.compute_infer.ns // 1000),
    ("nv_inference_compute_output_duration_us", "Cumulative compute output duration in us",
     lambda s: s.compute_output.ns // 1000),
]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(server: Backend) -> bytes:
    """The whole exposition: Triton-named families, then the registry's."""
    snapshots = server.stats_snapshots()
    lines: list[str] = []
    families: list[tuple[str, str, str, Callable[[StatsSnapshot], float]]] = [
        (name, help_text, "counter", get) for name, help_text, get in _COUNTERS
    ]
    families.append(("nv_inference_pending_request_count",
                     "Instantaneous number of pending requests awaiting execution", "gauge",
                     lambda s: s.pending))
    for name, help_text, kind, get in families:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for model, version, snap in snapshots:
            lines.append(f'{name}{{model="{_label(model)}",version="{_label(version)}"}} '
                         f"{get(snap)}")
    return "\n".join(lines).encode() + b"\n" + generate_latest(server.registry)


class MetricsApp:
    """ASGI application answering GET /metrics (anything else is 404)."""

    def __init__(self, server: Backend) -> None:
        self.server = server

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        if scope["type"] != "http":
            return
        if scope["path"].rstrip("/") == "/metrics" and scope["method"] in ("GET", "HEAD"):
            status, body, ctype = 200, render(self.server), CONTENT_TYPE
        else:
            status, body, ctype = 404, b"not found\n", b"text/plain"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
