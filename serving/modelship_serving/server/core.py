"""The server's core: every protocol operation once, for both transports.

HTTP and gRPC are thin adapters over this class. They decode a request into
the protocol's neutral types, call one method here, and encode what comes
back; metadata, statistics and the repository index are built as the gRPC
service's protobuf messages, which the HTTP adapter renders as Triton's JSON.
Errors are `InferenceError`s that already carry both status codes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb

import modelship_serving
from modelship_serving.monitoring.payload import PayloadLogger
from modelship_serving.protocol.errors import (
    InferenceError,
    InternalError,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from modelship_serving.protocol.tensors import check_json_output
from modelship_serving.protocol.types import (
    InferOutput,
    InferRequest,
    InferResponse,
    RawTensor,
    RequestedOutput,
)
from modelship_serving.repository.config import config_to_json, parse_config_json
from modelship_serving.repository.errors import ModelConfigError
from modelship_serving.repository.layout import ModelRepository
from modelship_serving.runtime.cpu import cpu_limit as detect_cpu_limit
from modelship_serving.runtime.manager import READY, LoadedVersion, ModelManager
from modelship_serving.runtime.session import BatchObserver
from modelship_serving.runtime.stats import StatsSnapshot
from modelship_serving.server.backend import fill_statistics
from modelship_serving.server.histogram import FastHistogram
from modelship_serving.server.logs import new_request_id, request_context

log = logging.getLogger(__name__)

SERVER_NAME = "modelship"
EXTENSIONS = ["model_repository", "model_configuration", "statistics", "binary_tensor_data",
              "schedule_policy"]

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ModelsFailedToLoad(Exception):
    """Models the server was started to serve could not be loaded (with --exit-on-error)."""

    def __init__(self, failures: list[tuple[str, str]]):
        self.failures = failures
        super().__init__("; ".join(f"model '{name}': {reason}" for name, reason in failures))


class ModelServer:
    """One repository served over any number of transports (a `backend.Backend`)."""

    def __init__(
        self,
        repository: Path | str,
        *,
        control_mode: str = "none",
        startup_models: Iterable[str] = (),
        cpu_limit: float | None = None,
        registry: CollectorRegistry | None = None,
        observers: Iterable[BatchObserver] = (),
        payload_log_sample_rate: float = 0.0,
        strict_readiness: bool = True,
        exit_on_error: bool = False,
    ) -> None:
        if control_mode not in ("none", "explicit"):
            raise ValueError(f"model control mode must be none or explicit, not {control_mode!r}")
        if not 0.0 <= payload_log_sample_rate <= 1.0:
            raise ValueError("payload log sample rate must be within [0, 1]")
        self.control_mode = control_mode
        self.exit_on_error = exit_on_error
        self.startup_models = list(startup_models)
        self.strict_readiness = strict_readiness
        self.payload_log_sample_rate = payload_log_sample_rate
        self._payloads = PayloadLogger(payload_log_sample_rate)  # scrubs credentials
        self.observers: list[BatchObserver] = list(observers)
        # NB: prometheus_client treats registry=None as "do not register".
        self.registry: CollectorRegistry = registry if registry is not None else REGISTRY
        registry = self.registry
        self.request_seconds = FastHistogram(
            "modelship_request_duration_seconds",
            "Time from a request's arrival to its response, by protocol.",
            ["model", "version", "protocol"], _LATENCY_BUCKETS, registry,
        )
        batch_sizes = FastHistogram(
            "modelship_batch_size", "Inferences per execution of a model.",
            ["model", "version"], _BATCH_BUCKETS, registry,
        )
        self.manager = ModelManager(
            ModelRepository(Path(repository)),
            cpu_limit=cpu_limit if cpu_limit is not None else detect_cpu_limit(),
            observers=self.observers,
            batch_histogram=batch_sizes,
        )
        self._started = False
        self._draining = False
        self._expected: list[str] = []  # models start() loads; readiness waits for them
        self._latency_children: dict[tuple[str, str, str], object] = {}

    # -- life cycle -----------------------------------------------------------

    def add_observer(self, observer: BatchObserver) -> None:
        """Register an observer of every executed batch (drift, anomaly detection).

        Applies to models already loaded and to those loaded later.
        """
        self.observers.append(observer)

    async def start(self) -> None:
        """Load the models the control mode says to load; failures are reported, not raised."""
        if self.control_mode == "none" or "*" in self.startup_models:
            names = self.manager.known_names()
        else:
            names = self.startup_models
        self._expected = list(names)
        for name in names:
            try:
                await self.manager.load(name)
            except InferenceError:
                pass  # recorded as UNAVAILABLE with its reason; logged by the manager
        self._started = True
        if self.exit_on_error:
            failed = [(e.name, e.reason) for e in self.manager.entries()
                      if e.name in self._expected and e.state != READY]
            if failed:
                raise ModelsFailedToLoad(failed)
        ready = sum(1 for e in self.manager.entries() if e.state == READY)
        log.info("Serving %d of %d model(s) from %s.", ready, len(names),
                 self.manager.repository.root)

    def begin_drain(self) -> None:
        """Report not-ready from now on (first step of a graceful shutdown)."""
        self._draining = True

    async def close(self) -> None:
        await self.manager.close()

    # -- health -----------------------------------------------------------------

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        if not self._started or self._draining:
            return False
        if not self.strict_readiness:
            return True
        return all(self.manager.is_ready(name) for name in self._expected)

    def model_ready(self, name: str, version: str = "") -> bool:
        return not self._draining and self.manager.is_ready(name, version)

    def model_unready_reason(self, name: str, version: str = "") -> str:
        if self._draining:
            return "the server is shutting down"
        try:
            self.manager.get(name, version)
        except InferenceError as exc:
            return exc.message
        return ""

    # -- inference --------------------------------------------------------------

    async def infer(self, request: InferRequest, *, protocol: str) -> InferResponse:
        """Run one request; raises InferenceError (already logged when it is a bug)."""
        start = time.perf_counter_ns()
        request_id = request.id or new_request_id()
        with request_context(request_id, request.model_name):
            model = self.manager.get(request.model_name, request.model_version)
            try:
                feed, batch = model.signature.check_inputs(request.inputs)
                model.signature.check_outputs(request.outputs)
                result = await model.scheduler.submit(feed, batch)
                response = _response(model, request.id, request.outputs,
                                     request.binary_outputs_by_default, result.outputs)
            except Exception as exc:
                error = self._failed(model, start, protocol, exc)
                if error is exc:
                    raise
                raise error from exc

            elapsed = time.perf_counter_ns() - start
            timing = result.timing
            model.stats.request_done(
                ok=True, duration_ns=elapsed, queue_ns=result.queue_ns,
                input_ns=timing.input_ns, infer_ns=timing.infer_ns, output_ns=timing.output_ns,
            )
            self._observe_latency(model, protocol, elapsed)
            if self.payload_log_sample_rate:
                self._payloads.maybe_log(
                    request_id=request_id, model=model.name, version=model.version_str,
                    inputs=feed, outputs=result.outputs, parameters=request.parameters)
            return response

    def infer_direct(self, name: str, version: str, request_id: str,
                     tensors: Iterable[RawTensor], outputs: Sequence[RequestedOutput] | None,
                     *, binary_default: bool, protocol: str) -> InferResponse | None:
        """Answer a plain request to a version that runs on the event loop at once
        (see `runtime.direct`); None when the request or the model needs `infer`,
        which then gives the same answer, or the error."""
        model = self.manager.find(name, version)
        if model is None or model.direct is None or self.payload_log_sample_rate:
            return None
        start = time.perf_counter_ns()
        routed = model.direct.feed(tensors)
        if routed is None or (outputs and not _known_once(model, outputs)):
            return None
        feed, batch, elements = routed
        try:
            done = model.scheduler.run_inline(feed, batch, elements)
            if done is None:
                return None  # too large for the loop: the general path hands it off
            response = _response(model, request_id, outputs, binary_default, done[0])
        except Exception as exc:
            with request_context(request_id or new_request_id(), name):
                error = self._failed(model, start, protocol, exc)
            if error is exc:
                raise
            raise error from exc
        timing = done[1]
        elapsed = time.perf_counter_ns() - start
        model.stats.alone_done(duration_ns=elapsed, batch_size=batch, input_ns=timing.input_ns,
                               infer_ns=timing.infer_ns, output_ns=timing.output_ns)
        model.scheduler.record_batch(batch, None)
        self._observe_latency(model, protocol, elapsed)
        return response

    def _failed(self, model: LoadedVersion, start: int, protocol: str,
                exc: Exception) -> InferenceError:
        """Record a failed request and log it when it is not the client's fault;
        returns the InferenceError to raise."""
        error = exc if isinstance(exc, InferenceError) else InternalError(
            f"model '{model.name}' failed: {exc}")
        elapsed = time.perf_counter_ns() - start
        model.stats.request_done(ok=False, duration_ns=elapsed)
        self._observe_latency(model, protocol, elapsed)
        if error.is_client_error:
            log.debug("Refused request: %s", error.message)
        else:
            log.error("Request failed: %s", error.message,
                      exc_info=error is not exc or error.__cause__ is not None)
        return error

    def _observe_latency(self, model: LoadedVersion, protocol: str, elapsed_ns: int) -> None:
        key = (model.name, model.version_str, protocol)
        child = self._latency_children.get(key)
        if child is None:
            child = self._latency_children[key] = self.request_seconds.labels(*key)
        child.observe(elapsed_ns / 1e9)  # type: ignore[attr-defined]

    # -- metadata, config, statistics ------------------------------------------------

    def server_metadata(self) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=modelship_serving.__version__,
                                         extensions=EXTENSIONS)

    def model_metadata(self, name: str, version: str = "") -> pb.ModelMetadataResponse:
        model = self.manager.get(name, version)
        entry = {e.name: e for e in self.manager.entries()}[name]
        sig = model.signature
        message = pb.ModelMetadataResponse(
            name=name, versions=[str(v) for v in sorted(entry.versions)],
            platform=model.config.platform,
        )
        for kind, specs in (("inputs", sig.inputs), ("outputs", sig.outputs)):
            for spec in specs.values():
                getattr(message, kind).add(name=spec.name, datatype=spec.datatype.name,
                                           shape=spec.wire_shape(sig.batching))
        return message

    def stats_snapshots(self) -> list[tuple[str, str, StatsSnapshot]]:
        return [(v.name, v.version_str, v.stats.snapshot())
                for v in self.manager.loaded_versions()]

    def model_config(self, name: str, version: str = "") -> mc.ModelConfig:
        return self.manager.get(name, version).config

    def model_statistics(self, name: str = "", version: str = "") -> pb.ModelStatisticsResponse:
        if name:
            versions = [self.manager.get(name, version)]
        elif version:
            raise InvalidArgument("statistics for a version need a model name")
        else:
            versions = self.manager.loaded_versions()
        response = pb.ModelStatisticsResponse()
        for model in versions:
            fill_statistics(response.model_stats.add(), model.name, model.version_str,
                            model.stats.snapshot())
        return response

    def repository_index(self, *, ready_only: bool = False) -> pb.RepositoryIndexResponse:
        response = pb.RepositoryIndexResponse()
        entries = {e.name: e for e in self.manager.entries()}
        for name in self.manager.known_names():
            entry = entries.get(name)
            if entry is None:
                if not ready_only:
                    response.models.add(name=name)
                continue
            if entry.versions:
                for number in sorted(entry.versions):
                    response.models.add(name=name, version=str(number), state=READY,
                                        reason=entry.reason)
            elif not ready_only:
                response.models.add(name=name, state=entry.state, reason=entry.reason)
        return response

    async def load_model(self, name: str, *, config_json: str | None = None) -> None:
        """Load or reload a model (explicit control mode only)."""
        self._check_explicit("load")
        override = None
        if config_json:
            try:
                override = parse_config_json(config_json, source="load request 'config'")
            except ModelConfigError as exc:
                raise InvalidArgument(str(exc)) from None
        if name not in self.manager.known_names():
            raise NotFound(f"model '{name}' is not in the repository")
        await self.manager.load(name, config=override)

    async def unload_model(self, name: str) -> None:
        self._check_explicit("unload")
        await self.manager.unload(name)

    def _check_explicit(self, action: str) -> None:
        if self.control_mode != "explicit":
            raise Unavailable(f"explicit model {action} is not allowed: the server runs with "
                              f"--model-control-mode={self.control_mode}")

    def config_json(self, name: str, version: str = "") -> dict[str, object]:
        return config_to_json(self.model_config(name, version))


def _known_once(model: LoadedVersion, requested: Sequence[RequestedOutput]) -> bool:
    """Whether every requested output exists and is asked for once."""
    names = {o.name for o in requested}
    return len(names) == len(requested) and names <= model.signature.outputs.keys()


def _response(model: LoadedVersion, request_id: str,
              requested: Sequence[RequestedOutput] | None, binary_default: bool,
              outputs: dict[str, np.ndarray]) -> InferResponse:
    specs = model.signature.outputs
    if requested:
        chosen = [(o.name, o.binary) for o in requested]
    else:
        chosen = [(name, binary_default) for name in specs]
    tensors = []
    for name, binary in chosen:
        array = outputs[name]
        spec = specs[name]
        want = spec.datatype.dtype
        if array.dtype is not want and spec.datatype.name != "BYTES" and array.dtype != want:
            array = array.astype(want)
        if not binary:  # refused here, so that the statistics count it as failed
            check_json_output(array, spec.datatype, name=name)
        tensors.append(InferOutput(name, spec.datatype.name, array.shape, array, binary))
    return InferResponse(model_name=model.name, model_version=model.version_str,
                         id=request_id, outputs=tensors)
