"""The router's core: one ensemble served as one model, behind the server's transports.

`EnsembleRouter` is a `server.backend.Backend`, so the very HTTP, gRPC and
metrics adapters of modelship-server serve it: same routes, codecs, limits
and error mapping. It checks requests against the ensemble's signature with
the server's own `Signature` (same messages for the same mistakes), runs them
through the members as the plan says, and keeps Triton-style statistics of
the ensemble model, which feed both the statistics endpoint and nv_* metrics.

The ensemble has one version, "1"; it is a composition, not a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb

import modelship_serving
from modelship_serving.protocol.datatypes import DATATYPES
from modelship_serving.protocol.errors import (
    InferenceError,
    InternalError,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from modelship_serving.protocol.types import InferOutput, InferRequest, InferResponse
from modelship_serving.repository.config import config_to_json
from modelship_serving.router import strategies
from modelship_serving.router.compat import ENSEMBLE_VERSION, EnsemblePlan, MemberCall, TensorMeta
from modelship_serving.router.config import EnsembleConfig
from modelship_serving.router.members import Member, MemberMetrics, make_member
from modelship_serving.router.watch import MemberWatch
from modelship_serving.runtime.signature import Signature, TensorSpec
from modelship_serving.runtime.stats import ModelStats, StatsSnapshot
from modelship_serving.server.backend import fill_statistics
from modelship_serving.server.core import SERVER_NAME
from modelship_serving.server.histogram import FastHistogram
from modelship_serving.server.logs import new_request_id, request_context

log = logging.getLogger(__name__)

PLATFORM = "ensemble"
EXTENSIONS = ["model_configuration", "statistics", "binary_tensor_data"]
_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class EnsembleRouter:
    """One ensemble, its members and its readiness (a `Backend`)."""

    def __init__(
        self,
        config: EnsembleConfig,
        *,
        registry: CollectorRegistry | None = None,
        members: list[Member] | None = None,
        recheck_seconds: float = 30.0,
        first_retry_seconds: float = 0.1,
    ) -> None:
        self.config = config
        self.name = config.name
        # NB: prometheus_client treats registry=None as "do not register".
        self.registry: CollectorRegistry = registry if registry is not None else REGISTRY
        self.request_seconds = FastHistogram(
            "modelship_request_duration_seconds",
            "Time from a request's arrival to its response, by protocol.",
            ["model", "version", "protocol"], _LATENCY_BUCKETS, self.registry,
        )
        self.member_metrics = MemberMetrics(self.registry, self.name,
                                            [m.name for m in config.members])
        self.stats = ModelStats()
        self._given_members = members
        self.members: dict[str, Member] = {}
        self._recheck_seconds = recheck_seconds
        self._first_retry_seconds = first_retry_seconds
        self.watch: MemberWatch | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._draining = False
        self._plan: EnsemblePlan | None = None
        self._signature: Signature | None = None

    # -- life cycle -----------------------------------------------------------

    async def start(self) -> None:
        """Create the member clients and start watching the members (returns at once)."""
        members = self._given_members or [
            make_member(m, protocol=self.config.member_protocol,
                        timeout=self.config.timeout_seconds, retries=self.config.retries,
                        metrics=self.member_metrics)
            for m in self.config.members
        ]
        self.members = {m.name: m for m in members}
        self.watch = MemberWatch(self.config, members, recheck_seconds=self._recheck_seconds,
                                 first_retry_seconds=self._first_retry_seconds)
        self._watch_task = asyncio.create_task(self.watch.run(), name="member-watch")
        log.info("Routing ensemble %s (%s) over %d member(s) called by %s.", self.name,
                 self.config.strategy, len(members), self.config.member_protocol)

    async def wait_ready(self) -> None:
        """Return once the ensemble is ready (tests and benchmarks await this)."""
        while self.plan() is None:
            assert self.watch is not None, "start() first"
            await self.watch.changed.wait()

    def begin_drain(self) -> None:
        self._draining = True

    async def close(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        for member in self.members.values():
            await member.close()

    # -- health -----------------------------------------------------------------

    def plan(self) -> EnsemblePlan | None:
        """The plan in force, rebuilding the signature when the members changed it."""
        plan = self.watch.current.plan if self.watch else None
        if plan is not self._plan:
            self._plan = plan
            self._signature = _signature(plan) if plan is not None else None
        return plan

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return not self._draining and self.plan() is not None

    def model_ready(self, name: str, version: str = "") -> bool:
        return self._addresses(name, version) and self.ready()

    def model_unready_reason(self, name: str, version: str = "") -> str:
        try:
            self._ready_plan(name, version)
        except InferenceError as exc:
            return exc.message
        return ""

    def _addresses(self, name: str, version: str) -> bool:
        return name == self.name and version in ("", ENSEMBLE_VERSION)

    def _ready_plan(self, name: str, version: str) -> tuple[EnsemblePlan, Signature]:
        """The plan for a request to `name`; NotFound or Unavailable saying why not."""
        if name != self.name:
            raise NotFound(f"model '{name}' is not served here; this router serves "
                           f"ensemble '{self.name}'")
        if version not in ("", ENSEMBLE_VERSION):
            raise NotFound(f"ensemble '{name}' has no version {version!r:.40}; it has "
                           f"version {ENSEMBLE_VERSION}")
        if self._draining:
            raise Unavailable(f"ensemble '{name}' is shutting down")
        plan = self.plan()
        if plan is None or self._signature is None:
            reason = self.watch.current.reason if self.watch else "the router has not started"
            raise Unavailable(f"ensemble '{name}' is not ready: {reason}")
        return plan, self._signature

    # -- inference --------------------------------------------------------------

    async def infer(self, request: InferRequest, *, protocol: str) -> InferResponse:
        """Run one request through the members; raises InferenceError naming what failed."""
        start = time.perf_counter_ns()
        request_id = request.id or new_request_id()
        with request_context(request_id, request.model_name):
            plan, signature = self._ready_plan(request.model_name, request.model_version)
            # "Pending" for an ensemble: requests waiting on their members.
            self.stats.request_queued()
            try:
                return await self._run(request, request_id, plan, signature, start, protocol)
            finally:
                self.stats.request_dequeued()

    def infer_direct(self, name: str, version: str, request_id: str, tensors: object,
                     outputs: object, *, binary_default: bool, protocol: str) -> None:
        """Never: every ensemble request awaits its members (see `Backend`)."""
        return None

    async def _run(self, request: InferRequest, request_id: str, plan: EnsemblePlan,
                   signature: Signature, start: int, protocol: str) -> InferResponse:
        try:
            feed, _ = signature.check_inputs(request.inputs)
            signature.check_outputs(request.outputs)
            checked = time.perf_counter_ns()
            outputs = await strategies.run(plan, feed, self._caller(request_id))
            answered = time.perf_counter_ns()
            response = _response(request, plan, signature, outputs)
        except InferenceError as exc:
            self._failed(start, protocol, exc)
            raise
        except Exception as exc:
            error = InternalError(f"ensemble '{self.name}' failed: {exc}")
            self._failed(start, protocol, error)
            raise error from exc

        # Triton's timing fields, read for an ensemble: input is checking the request,
        # infer is the members' work and combining it, output is building the response.
        elapsed = time.perf_counter_ns() - start
        timing = {"input_ns": checked - start, "infer_ns": answered - checked,
                  "output_ns": elapsed - (answered - start)}
        self.stats.batch_done(batch_size=_rows(feed), **timing)
        self.stats.request_done(ok=True, duration_ns=elapsed, **timing)
        self._observe(protocol, elapsed)
        return response

    def _caller(self, request_id: str) -> strategies.CallMember:
        members = self.members

        async def call(c: MemberCall, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return await members[c.member].infer(feed, c.outputs, request_id)
        return call

    def _failed(self, start: int, protocol: str, exc: InferenceError) -> None:
        elapsed = time.perf_counter_ns() - start
        self.stats.request_done(ok=False, duration_ns=elapsed)
        self._observe(protocol, elapsed)
        if exc.is_client_error:
            log.debug("Refused request: %s", exc.message)
        else:
            log.warning("Request failed: %s", exc.message)

    def _observe(self, protocol: str, elapsed_ns: int) -> None:
        self.request_seconds.labels(self.name, ENSEMBLE_VERSION, protocol).observe(
            elapsed_ns / 1e9)

    # -- metadata, config, statistics ------------------------------------------------

    def server_metadata(self) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=modelship_serving.__version__,
                                         extensions=EXTENSIONS)

    def model_metadata(self, name: str, version: str = "") -> pb.ModelMetadataResponse:
        plan, _ = self._ready_plan(name, version)
        message = pb.ModelMetadataResponse(name=self.name, versions=[ENSEMBLE_VERSION],
                                           platform=PLATFORM)
        for kind, tensors in (("inputs", plan.inputs), ("outputs", plan.outputs)):
            for t in tensors:
                getattr(message, kind).add(name=t.name, datatype=t.datatype, shape=t.shape)
        return message

    def model_config(self, name: str, version: str = "") -> mc.ModelConfig:
        plan, _ = self._ready_plan(name, version)
        return ensemble_model_config(self.config, plan)

    def config_json(self, name: str, version: str = "") -> dict[str, object]:
        return config_to_json(self.model_config(name, version))

    def model_statistics(self, name: str = "", version: str = "") -> pb.ModelStatisticsResponse:
        if name and not self._addresses(name, version):
            self._ready_plan(name, version)  # raises NotFound naming what exists
        if version and not name:
            raise InvalidArgument("statistics for a version need a model name")
        response = pb.ModelStatisticsResponse()
        fill_statistics(response.model_stats.add(), self.name, ENSEMBLE_VERSION,
                        self.stats.snapshot())
        return response

    def stats_snapshots(self) -> list[tuple[str, str, StatsSnapshot]]:
        return [(self.name, ENSEMBLE_VERSION, self.stats.snapshot())]

    def repository_index(self, *, ready_only: bool = False) -> pb.RepositoryIndexResponse:
        response = pb.RepositoryIndexResponse()
        if self.ready():
            response.models.add(name=self.name, version=ENSEMBLE_VERSION, state="READY")
        elif not ready_only:
            response.models.add(name=self.name, version=ENSEMBLE_VERSION, state="UNAVAILABLE",
                                reason=self.model_unready_reason(self.name))
        return response

    async def load_model(self, name: str, *, config_json: str | None = None) -> None:
        raise Unavailable("explicit model load is not allowed: the router serves one "
                          f"ensemble, '{self.name}', defined by its config file")

    async def unload_model(self, name: str) -> None:
        raise Unavailable("explicit model unload is not allowed: the router serves one "
                          f"ensemble, '{self.name}', defined by its config file")


def _signature(plan: EnsemblePlan) -> Signature:
    """The server's request checks, over the ensemble's tensors (first dim: -1 is any)."""
    def spec(t: TensorMeta) -> TensorSpec:
        return TensorSpec(name=t.name, datatype=DATATYPES[t.datatype], dims=t.shape)

    return Signature(model=plan.name, max_batch_size=0,
                     inputs={t.name: spec(t) for t in plan.inputs},
                     outputs={t.name: spec(t) for t in plan.outputs})


def _rows(feed: dict[str, np.ndarray]) -> int:
    for array in feed.values():
        return int(array.shape[0]) if array.ndim else 1
    return 1


def _response(request: InferRequest, plan: EnsemblePlan, signature: Signature,
              outputs: dict[str, np.ndarray]) -> InferResponse:
    if request.outputs:
        chosen = [(o.name, o.binary) for o in request.outputs]
    else:
        chosen = [(t.name, request.binary_outputs_by_default) for t in plan.outputs]
    tensors = []
    for name, binary in chosen:
        array = outputs[name]
        dt = signature.outputs[name].datatype
        if dt.name != "BYTES" and array.dtype != dt.dtype:
            array = array.astype(dt.dtype)
        tensors.append(InferOutput(name, dt.name, array.shape, array, binary))
    return InferResponse(model_name=plan.name, model_version=ENSEMBLE_VERSION,
                         id=request.id, outputs=tensors)


def ensemble_model_config(config: EnsembleConfig, plan: EnsemblePlan) -> mc.ModelConfig:
    """The ensemble's ModelConfig: its tensors, and one scheduling step per member call.

    Shapes keep their first dimension (max_batch_size 0), as the members'
    metadata gives them. Steps name internal tensors "<member>.<output>".
    """
    message = mc.ModelConfig(name=plan.name, platform=PLATFORM, max_batch_size=0)
    for kind, tensors in (("input", plan.inputs), ("output", plan.outputs)):
        for t in tensors:
            getattr(message, kind).add(name=t.name, dims=t.shape,
                                       data_type=mc.DataType.Value(
                                           DATATYPES[t.datatype].config_name))
    for call in plan.calls:
        member = config.member(call.member)
        step = message.ensemble_scheduling.step.add(
            model_name=member.model, model_version=int(member.version or -1))
        for name, source in call.inputs.items():
            step.input_map[name] = source.removeprefix("$input.")
        for name in call.outputs:
            step.output_map[name] = f"{call.member}.{name}"
    message.parameters["strategy"].string_value = config.strategy
    if plan.combine:
        message.parameters["combine"].string_value = plan.combine
    return message
