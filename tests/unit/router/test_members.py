"""Calling a member: which failures are retried, how errors name the member, and what
the per-member metrics count."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from modelship_serving.protocol.errors import InvalidArgument
from modelship_serving.router.config import MemberConfig
from modelship_serving.router.members import (
    Backoff,
    Member,
    MemberFailed,
    MemberMetrics,
    MemberTimedOut,
)
from tests.unit.router.fakes import FakeTransport, refused, unavailable

CONFIG = MemberConfig(name="mlp", url="http://10.0.0.7:8000", grpc_url="10.0.0.7:8001",
                      model="cancer-mlp")
NO_WAIT = Backoff(base=0.0)


def answer(feed: dict) -> dict:
    return {"y": feed["x"] * 2}


def member(transport: FakeTransport, *, retries: int = 2, timeout: float = 5.0,
           metrics: MemberMetrics | None = None) -> Member:
    return Member(CONFIG, transport, timeout=timeout, retries=retries, metrics=metrics,
                  backoff=NO_WAIT)


def metric(registry: CollectorRegistry, name: str) -> float:
    value = registry.get_sample_value(name, {"ensemble": "ens", "member": "mlp"})
    assert value is not None
    return value


async def test_unavailable_and_unreachable_members_are_retried_until_they_answer() -> None:
    transport = FakeTransport("10.0.0.7:8001", answer=answer,
                              failures=[unavailable(), ConnectionRefusedError(111, "refused")])
    out = await member(transport).infer({"x": np.array([1.0])}, ["y"])
    np.testing.assert_array_equal(out["y"], [2.0])
    assert transport.calls == 3


async def test_a_kept_alive_connection_the_member_closed_is_retried() -> None:
    import aiohttp

    transport = FakeTransport("http://10.0.0.7:8000", answer=answer,
                              failures=[aiohttp.ServerDisconnectedError()])
    out = await member(transport).infer({"x": np.array([1.0])}, ["y"])
    np.testing.assert_array_equal(out["y"], [2.0])
    assert transport.calls == 2


async def test_a_member_still_unavailable_after_its_retries_fails_naming_it() -> None:
    registry = CollectorRegistry()
    metrics = MemberMetrics(registry, "ens", ["mlp"])
    transport = FakeTransport("10.0.0.7:8001", failures=[unavailable()] * 3)
    with pytest.raises(MemberFailed) as error:
        await member(transport, metrics=metrics).infer({"x": np.array([1.0])}, ["y"])
    assert error.value.message == ("member 'mlp' (10.0.0.7:8001) failed after 3 attempts: "
                                   "model is loading (UNAVAILABLE)")
    assert (error.value.http_status, error.value.grpc_code.name) == (502, "UNAVAILABLE")
    assert transport.calls == 3
    assert metric(registry, "modelship_member_request_failures_total") == 1
    assert metric(registry, "modelship_member_request_duration_seconds_count") == 1


async def test_a_refused_request_is_the_clients_error_and_is_not_retried() -> None:
    registry = CollectorRegistry()
    transport = FakeTransport("10.0.0.7:8001", failures=[refused()])
    with pytest.raises(InvalidArgument) as error:
        await member(transport, metrics=MemberMetrics(registry, "ens", ["mlp"])).infer(
            {"x": np.array([1.0])}, ["y"])
    assert error.value.message == ("member 'mlp' (10.0.0.7:8001) refused the request: "
                                   "input 'x': bad shape (400)")
    assert transport.calls == 1
    assert metric(registry, "modelship_member_request_failures_total") == 0


async def test_an_internal_error_fails_at_once_without_a_retry() -> None:
    transport = FakeTransport("10.0.0.7:8001", failures=[Exception("boom")])
    with pytest.raises(MemberFailed, match=r"member 'mlp' \(10.0.0.7:8001\) failed: "
                                           r"Exception: boom"):
        await member(transport).infer({"x": np.array([1.0])}, ["y"])
    assert transport.calls == 1


async def test_a_member_that_does_not_answer_in_time_is_a_504_and_is_not_retried() -> None:
    transport = FakeTransport("10.0.0.7:8001")
    transport.hang = True
    with pytest.raises(MemberTimedOut) as error:
        await member(transport, timeout=0.05).infer({"x": np.array([1.0])}, ["y"])
    assert error.value.message == ("member 'mlp' (10.0.0.7:8001) failed: no answer within "
                                   "0.05s")
    assert (error.value.http_status, error.value.grpc_code.name) == (504, "DEADLINE_EXCEEDED")
    assert transport.calls == 1 and transport.cancelled


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    backoff = Backoff(base=0.1, cap=0.5)
    assert 0.05 <= backoff.delay(0) <= 0.1
    assert 0.1 <= backoff.delay(1) <= 0.2
    assert 0.25 <= backoff.delay(10) <= 0.5
