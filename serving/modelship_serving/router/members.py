"""Calling one member: tritonclient's asyncio clients, with timeouts, retries and blame.

Each attempt has its own timeout. Failures that are safe to repeat (the
member could not be reached, or answered UNAVAILABLE / 503: not ready,
draining, restarting) are retried with exponential backoff and jitter;
inference on a stateless model is idempotent, so a repeat cannot do harm.
Anything else fails at once. Every error a client sees names the member and
the address it was called at; a member refusing the request's tensors is the
client's error (400, as the server answers it), the rest is a bad gateway
(502 / UNAVAILABLE) or a timeout (504 / DEADLINE_EXCEEDED).

The two transports are thin adapters over tritonclient; `Member` sorts what
they raise into one vocabulary and owns retries, metrics and messages.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiohttp
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from modelship_serving.protocol.datatypes import from_numpy
from modelship_serving.protocol.errors import (
    GrpcCode,
    InferenceError,
    InvalidArgument,
    RequestTooLarge,
)
from modelship_serving.router.config import MemberConfig

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

FailureKind = Literal["retry", "timeout", "client", "too_large", "other"]


class MemberFailed(InferenceError):
    """A member could not answer (unreachable, unavailable, or it failed)."""

    http_status = 502
    grpc_code = GrpcCode.UNAVAILABLE


class MemberTimedOut(InferenceError):
    """A member did not answer within the configured timeout."""

    http_status = 504
    grpc_code = GrpcCode.DEADLINE_EXCEEDED


class _Failure(Exception):
    """One failed attempt, classified by what the router does about it."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class Transport(Protocol):
    """One protocol to one member's server.

    Raises what its client raises (tritonclient's InferenceServerException,
    OSError for connections); `Member` classifies those.
    """

    address: str

    async def metadata(self, model: str, version: str, timeout: float) -> dict[str, Any]: ...

    async def infer(self, model: str, version: str, inputs: Mapping[str, np.ndarray],
                    outputs: Sequence[str], request_id: str, timeout: float
                    ) -> dict[str, np.ndarray]: ...

    async def close(self) -> None: ...


# Status strings of tritonclient's InferenceServerException, by what they mean here.
_STATUS_KINDS: dict[str, FailureKind] = {
    "StatusCode.UNAVAILABLE": "retry", "503": "retry",
    "StatusCode.DEADLINE_EXCEEDED": "timeout", "504": "timeout",
    "StatusCode.INVALID_ARGUMENT": "client", "400": "client",
    "StatusCode.RESOURCE_EXHAUSTED": "too_large", "413": "too_large",
}


def _classify(exc: BaseException) -> _Failure:
    from tritonclient.utils import InferenceServerException

    if isinstance(exc, _Failure):
        return exc
    if isinstance(exc, InferenceServerException):
        status = str(exc.status() or "")
        kind = _STATUS_KINDS.get(status, "other")
        detail = exc.message() or str(exc)
        return _Failure(kind, f"{detail} ({status.removeprefix('StatusCode.')})"
                        if status else detail)
    if isinstance(exc, TimeoutError):
        return _Failure("timeout", "the call timed out")
    # NB: a kept-alive connection to a member that restarted fails on reuse with
    # aiohttp's ServerDisconnectedError, which is not an OSError; both are retried.
    if isinstance(exc, (OSError, aiohttp.ClientConnectionError)):
        return _Failure("retry", f"cannot connect: {str(exc) or type(exc).__name__}")
    return _Failure("other", f"{type(exc).__name__}: {exc}")


class GrpcTransport:
    """tritonclient.grpc.aio; one HTTP/2 channel multiplexes every call."""

    def __init__(self, address: str) -> None:
        import tritonclient.grpc.aio as grpcaio

        self.address = address
        self._client = grpcaio.InferenceServerClient(address)

    async def metadata(self, model: str, version: str, timeout: float) -> dict[str, Any]:
        return await self._client.get_model_metadata(model, version, as_json=True,
                                                     client_timeout=timeout)

    async def infer(self, model: str, version: str, inputs: Mapping[str, np.ndarray],
                    outputs: Sequence[str], request_id: str, timeout: float
                    ) -> dict[str, np.ndarray]:
        import tritonclient.grpc as grpcclient

        tensors = []
        for name, array in inputs.items():
            tensor = grpcclient.InferInput(name, list(array.shape), from_numpy(array.dtype).name)
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        result = await self._client.infer(
            model, tensors, model_version=version, request_id=request_id,
            outputs=[grpcclient.InferRequestedOutput(n) for n in outputs],
            client_timeout=timeout)
        return _outputs(result, outputs)

    async def close(self) -> None:
        await self._client.close()


class HttpTransport:
    """tritonclient.http.aio with the binary tensor extension both ways."""

    def __init__(self, url: str, *, timeout: float) -> None:
        import tritonclient.http.aio as httpaio

        self.address = url
        secure = url.startswith("https://")
        self._client = httpaio.InferenceServerClient(
            url.split("://", 1)[-1], ssl=secure, conn_limit=256, conn_timeout=timeout)

    async def metadata(self, model: str, version: str, timeout: float) -> dict[str, Any]:
        return await self._client.get_model_metadata(model, version)

    async def infer(self, model: str, version: str, inputs: Mapping[str, np.ndarray],
                    outputs: Sequence[str], request_id: str, timeout: float
                    ) -> dict[str, np.ndarray]:
        import tritonclient.http as httpclient

        tensors = []
        for name, array in inputs.items():
            tensor = httpclient.InferInput(name, list(array.shape), from_numpy(array.dtype).name)
            tensor.set_data_from_numpy(array, binary_data=True)
            tensors.append(tensor)
        result = await self._client.infer(
            model, tensors, model_version=version, request_id=request_id,
            outputs=[httpclient.InferRequestedOutput(n, binary_data=True) for n in outputs])
        return _outputs(result, outputs)

    async def close(self) -> None:
        await self._client.close()


def _outputs(result: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in names:
        array = result.as_numpy(name)
        if array is None:
            raise _Failure("other", f"the response lacks output '{name}'")
        out[name] = array
    return out


class MemberMetrics:
    """Per-member latency and failures of one ensemble (created once per router)."""

    def __init__(self, registry: CollectorRegistry, ensemble: str,
                 members: Sequence[str]) -> None:
        self.duration = Histogram(
            "modelship_member_request_duration_seconds",
            "Time the router spent on one call to a member, retries included.",
            ["ensemble", "member"], buckets=_LATENCY_BUCKETS, registry=registry)
        self.failures = Counter(
            "modelship_member_request_failures",
            "Calls to a member that failed after their retries (client errors excluded).",
            ["ensemble", "member"], registry=registry)
        # Children exist from the start, so a member with no failures reports 0.
        self.children = {m: (self.duration.labels(ensemble, m), self.failures.labels(ensemble, m))
                         for m in members}


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: base * 2**attempt, capped, times [0.5, 1)."""

    base: float = 0.05
    cap: float = 2.0

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.base * 2 ** attempt) * random.uniform(0.5, 1.0)


class Member:
    """One member of the ensemble as the router calls it."""

    def __init__(
        self,
        config: MemberConfig,
        transport: Transport,
        *,
        timeout: float,
        retries: int,
        metrics: MemberMetrics | None = None,
        backoff: Backoff = Backoff(),
    ) -> None:
        self.name = config.name
        self.model = config.model
        self.version = config.version
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._metrics = metrics.children.get(config.name) if metrics else None

    @property
    def label(self) -> str:
        return f"member '{self.name}' ({self.transport.address})"

    async def metadata(self, *, retries: int | None = None) -> dict[str, Any]:
        """The member model's metadata JSON; MemberFailed / MemberTimedOut naming it."""
        return await self._call(
            lambda t: self.transport.metadata(self.model, self.version, t),
            retries=self.retries if retries is None else retries, record=False)

    async def infer(self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str],
                    request_id: str = "") -> dict[str, np.ndarray]:
        """Run the member model on `inputs`; raises an InferenceError naming the member."""
        return await self._call(
            lambda t: self.transport.infer(self.model, self.version, inputs, outputs,
                                           request_id, t),
            retries=self.retries, record=True)

    async def _call(self, op: Callable[[float], Awaitable[Any]], *, retries: int,
                    record: bool) -> Any:
        start = time.perf_counter()
        attempt = 0
        while True:
            try:
                async with asyncio.timeout(self.timeout):
                    result = await op(self.timeout)
                if record and self._metrics:
                    self._metrics[0].observe(time.perf_counter() - start)
                return result
            except TimeoutError:
                failure = _Failure("timeout", f"no answer within {self.timeout:g}s")
            except Exception as exc:
                failure = _classify(exc)
            if failure.kind == "retry" and attempt < retries:
                delay = self.backoff.delay(attempt)
                attempt += 1
                log.debug("Retrying %s in %.3fs (attempt %d of %d): %s", self.label, delay,
                          attempt + 1, retries + 1, failure.detail)
                await asyncio.sleep(delay)
                continue
            error = self._error(failure, attempt + 1)
            if record and self._metrics:
                self._metrics[0].observe(time.perf_counter() - start)
                if not error.is_client_error:
                    self._metrics[1].inc()
            raise error from None

    def _error(self, failure: _Failure, attempts: int) -> InferenceError:
        if failure.kind == "client":
            return InvalidArgument(f"{self.label} refused the request: {failure.detail}")
        if failure.kind == "too_large":
            return RequestTooLarge(f"{self.label} refused the request: {failure.detail}")
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        message = f"{self.label} failed{tries}: {failure.detail}"
        if failure.kind == "timeout":
            return MemberTimedOut(message)
        return MemberFailed(message)

    async def close(self) -> None:
        await self.transport.close()


def make_member(config: MemberConfig, *, protocol: str, timeout: float, retries: int,
                metrics: MemberMetrics | None = None) -> Member:
    """A Member calling over `protocol` ("grpc" or "http"); call from the event loop."""
    transport: Transport
    if protocol == "grpc":
        transport = GrpcTransport(config.grpc_url)
    else:
        transport = HttpTransport(config.url, timeout=timeout)
    return Member(config, transport, timeout=timeout, retries=retries, metrics=metrics)
