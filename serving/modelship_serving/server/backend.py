"""What the HTTP, gRPC and metrics adapters need from whatever serves behind them.

Two backends speak the Open Inference Protocol through the same transport code:
`core.ModelServer` (models in a repository, run by ONNX Runtime) and the
ensemble router (members called over the network). The adapters are written
against this Protocol only, so both expose one surface with the same routes,
codecs and error mapping, and a fix to a transport reaches both.

Errors are `InferenceError`s, which carry their HTTP status and gRPC code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb

from modelship_serving.protocol.types import (
    InferRequest,
    InferResponse,
    RawTensor,
    RequestedOutput,
)
from modelship_serving.runtime.stats import StatsSnapshot


class Backend(Protocol):
    """The operations every transport adapter calls (see `core.ModelServer`)."""

    registry: CollectorRegistry

    # Life cycle, driven by `app.ServingProcess`.
    async def start(self) -> None: ...
    def begin_drain(self) -> None: ...
    async def close(self) -> None: ...

    # Health.
    def live(self) -> bool: ...
    def ready(self) -> bool: ...
    def model_ready(self, name: str, version: str = "") -> bool: ...

    def model_unready_reason(self, name: str, version: str = "") -> str:
        """Why `model_ready` is False, in a sentence ("" when it is ready)."""
        ...

    # Inference, metadata, configuration and statistics.
    async def infer(self, request: InferRequest, *, protocol: str) -> InferResponse: ...

    def infer_direct(self, name: str, version: str, request_id: str,
                     tensors: Iterable[RawTensor], outputs: Sequence[RequestedOutput] | None,
                     *, binary_default: bool, protocol: str) -> InferResponse | None:
        """The answer to a plain request when the backend can give it at once,
        without awaiting; None sends the request to `infer`."""
        ...

    def server_metadata(self) -> pb.ServerMetadataResponse: ...
    def model_metadata(self, name: str, version: str = "") -> pb.ModelMetadataResponse: ...
    def model_config(self, name: str, version: str = "") -> mc.ModelConfig: ...
    def config_json(self, name: str, version: str = "") -> dict[str, object]: ...
    def model_statistics(self, name: str = "", version: str = ""
                         ) -> pb.ModelStatisticsResponse: ...

    def stats_snapshots(self) -> list[tuple[str, str, StatsSnapshot]]:
        """(model, version, counters) of everything served, for the nv_* metrics."""
        ...

    # The repository extension (a backend without one answers Unavailable).
    def repository_index(self, *, ready_only: bool = False) -> pb.RepositoryIndexResponse: ...
    async def load_model(self, name: str, *, config_json: str | None = None) -> None: ...
    async def unload_model(self, name: str) -> None: ...


def fill_statistics(message: pb.ModelStatistics, name: str, version: str,
                    snap: StatsSnapshot) -> None:
    """Write one version's counters into a ModelStatistics message, as Triton does."""
    message.name = name
    message.version = version
    message.last_inference = snap.last_inference_ms
    message.inference_count = snap.inference_count
    message.execution_count = snap.execution_count
    stats = message.inference_stats
    for field in ("success", "fail", "queue", "compute_input", "compute_infer",
                  "compute_output"):
        duration = getattr(snap, field)
        getattr(stats, field).count = duration.count
        getattr(stats, field).ns = duration.ns
    for size, batch in snap.batches.items():
        entry = message.batch_stats.add(batch_size=size)
        for field in ("compute_input", "compute_infer", "compute_output"):
            duration = getattr(batch, field)
            getattr(entry, field).count = duration.count
            getattr(entry, field).ns = duration.ns
