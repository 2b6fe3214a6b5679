"""The router's core in-process, over scripted members: readiness that follows the
members, ties decided end to end, and failures that cancel what is still running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from modelship_serving.protocol.errors import InferenceError
from modelship_serving.protocol.types import InferInput, InferRequest
from modelship_serving.router.config import EnsembleConfig, parse_config
from modelship_serving.router.core import EnsembleRouter
from modelship_serving.router.members import Backoff, Member, MemberFailed
from tests.unit.router.fakes import FakeTransport, unavailable


def classifier_metadata(classes: int = 2) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, classes]},
                        {"name": "label", "datatype": "INT64", "shape": [-1]}]}


def constant(probabilities: list[list[float]]):
    p = np.array(probabilities, np.float32)
    return lambda feed: {"probabilities": p, "label": np.argmax(p, axis=1)}


def config(strategy: str, names: list[str], **extra: Any) -> EnsembleConfig:
    return parse_config({"name": "ens", "strategy": strategy, "retries": 1, "members": [
        {"name": n, "url": f"http://{n}:8000", "grpcUrl": f"{n}:8001", "model": n}
        for n in names], **extra})


async def started(cfg: EnsembleConfig, transports: dict[str, FakeTransport]
                  ) -> EnsembleRouter:
    members = [Member(m, transports[m.name], timeout=1.0, retries=cfg.retries,
                      backoff=Backoff(base=0.0)) for m in cfg.members]
    router = EnsembleRouter(cfg, registry=CollectorRegistry(), members=members,
                            recheck_seconds=3600)
    await router.start()
    return router


@pytest.fixture
async def closing() -> AsyncIterator[list[EnsembleRouter]]:
    routers: list[EnsembleRouter] = []
    yield routers
    for router in routers:
        await router.close()


def request(rows: np.ndarray) -> InferRequest:
    return InferRequest(model_name="ens", model_version="", id="r1",
                        inputs=[InferInput("x", "FP32", rows.shape, rows)])


async def test_a_two_member_tie_goes_to_the_higher_averaged_probability(
        closing: list[EnsembleRouter]) -> None:
    transports = {
        "a": FakeTransport("a:8001", metadata=classifier_metadata(),
                           answer=constant([[0.6, 0.4], [0.9, 0.1]])),
        "b": FakeTransport("b:8001", metadata=classifier_metadata(),
                           answer=constant([[0.3, 0.7], [0.2, 0.8]])),
    }
    router = await started(config("voting", ["a", "b"]), transports)
    closing.append(router)
    await router.wait_ready()

    response = await router.infer(request(np.zeros((2, 2), np.float32)), protocol="grpc")
    out = {o.name: o.data for o in response.outputs}
    # Row 0: 0.45 vs 0.55 -> class 1. Row 1: 0.55 vs 0.45 -> class 0.
    np.testing.assert_array_equal(out["label"], [1, 0])
    np.testing.assert_allclose(out["probabilities"], [[0.45, 0.55], [0.55, 0.45]], rtol=1e-6)
    assert response.model_name == "ens" and response.model_version == "1"


async def ready_voting_pair(closing: list[EnsembleRouter]
                            ) -> tuple[EnsembleRouter, dict[str, FakeTransport]]:
    """A ready voting router over two classifier members "a" and "b", and their fakes."""
    transports = {n: FakeTransport(f"{n}:8001", metadata=classifier_metadata())
                  for n in ("a", "b")}
    router = await started(config("voting", ["a", "b"]), transports)
    closing.append(router)
    await router.wait_ready()
    return router, transports


async def test_readiness_follows_a_member_replaced_by_a_model_of_another_shape(
        closing: list[EnsembleRouter]) -> None:
    router, transports = await ready_voting_pair(closing)
    assert router.ready() and router.model_unready_reason("ens") == ""

    transports["b"].metadata_answer = classifier_metadata(classes=3)
    await router.watch.check_once()  # type: ignore[union-attr]
    assert not router.model_ready("ens")
    assert "member 'a' gives FP32 [-1, 2] but member 'b' gives FP32 [-1, 3]" in \
        router.model_unready_reason("ens")

    transports["b"].metadata_answer = classifier_metadata()
    await router.watch.check_once()  # type: ignore[union-attr]
    assert router.model_ready("ens")


async def test_a_member_unreachable_at_a_recheck_keeps_its_last_metadata(
        closing: list[EnsembleRouter]) -> None:
    router, transports = await ready_voting_pair(closing)

    transports["b"].failures = [unavailable("connection refused")] * 2
    await router.watch.check_once()  # type: ignore[union-attr]
    assert router.ready()


async def test_a_router_waits_for_members_it_cannot_reach_and_says_which(
        closing: list[EnsembleRouter]) -> None:
    transports = {"a": FakeTransport("a:8001", metadata=classifier_metadata()),
                  "b": FakeTransport("b:8001", failures=[unavailable()] * 1000)}
    router = await started(config("voting", ["a", "b"]), transports)
    closing.append(router)
    await transports["b"].started.wait()
    await router.watch.check_once()  # type: ignore[union-attr]
    assert not router.ready()
    assert router.model_unready_reason("ens").startswith(
        "ensemble 'ens' is not ready: waiting for members: member 'b' (b:8001) failed")


async def test_the_first_member_to_fail_cancels_the_calls_still_running(
        closing: list[EnsembleRouter]) -> None:
    transports = {n: FakeTransport(f"{n}:8001", metadata=classifier_metadata(),
                                   answer=constant([[0.5, 0.5]])) for n in ("a", "b")}
    router = await started(config("voting", ["a", "b"], retries=0), transports)
    closing.append(router)
    await router.wait_ready()

    transports["a"].hang = True
    transports["a"].started = asyncio.Event()
    transports["b"].failures = [Exception("the model crashed")]
    with pytest.raises(MemberFailed, match=r"member 'b' \(b:8001\) failed"):
        await router.infer(request(np.zeros((1, 2), np.float32)), protocol="http")
    assert transports["a"].cancelled
    stats = router.model_statistics("ens").model_stats[0]
    assert stats.inference_stats.fail.count == 1


async def test_a_serial_step_fed_by_the_request_and_an_earlier_step(
        closing: list[EnsembleRouter]) -> None:
    double = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
              "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]}
    add = {"inputs": [{"name": "p", "datatype": "FP32", "shape": [-1, 2]},
                      {"name": "q", "datatype": "FP32", "shape": [-1, 2]}],
           "outputs": [{"name": "sum", "datatype": "FP32", "shape": [-1, 2]}]}
    transports = {
        "double": FakeTransport("d:8001", metadata=double,
                                answer=lambda feed: {"y": feed["x"] * 2}),
        "add": FakeTransport("s:8001", metadata=add,
                             answer=lambda feed: {"sum": feed["p"] + feed["q"]}),
    }
    cfg = config("serial", ["double", "add"], steps=[
        {"member": "double", "inputMapping": {"x": "$input.x"}},
        {"member": "add", "inputMapping": {"p": "double.y", "q": "$input.x"}}])
    router = await started(cfg, transports)
    closing.append(router)
    await router.wait_ready()

    rows = np.array([[1, 2], [3, 4]], np.float32)
    response = await router.infer(request(rows), protocol="http")
    np.testing.assert_array_equal(response.outputs[0].data, rows * 3)


async def test_requests_are_checked_against_the_ensembles_signature_first(
        closing: list[EnsembleRouter]) -> None:
    router, transports = await ready_voting_pair(closing)

    wrong = np.zeros((1, 3), np.float32)
    with pytest.raises(InferenceError, match=r"input 'x': shape \[1, 3\] does not match the "
                                             r"model's \[-1, 2\]") as error:
        await router.infer(request(wrong), protocol="http")
    assert error.value.http_status == 400
    assert transports["a"].calls == transports["b"].calls == 1  # the metadata calls only


async def test_requests_waiting_on_members_count_as_pending(
        closing: list[EnsembleRouter]) -> None:
    router, transports = await ready_voting_pair(closing)

    transports["a"].hang = True
    transports["a"].started = asyncio.Event()
    task = asyncio.create_task(router.infer(request(np.zeros((1, 2), np.float32)),
                                            protocol="grpc"))
    await transports["a"].started.wait()
    assert router.stats_snapshots()[0][2].pending == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert router.stats_snapshots()[0][2].pending == 0
