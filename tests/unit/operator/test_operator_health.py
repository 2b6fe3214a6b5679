"""What pods and the server Deployment say: failures read from pods, rollout progress."""

from __future__ import annotations

from typing import Any

import pytest

from modelship_operator.reconcile.conditions import Condition
from modelship_operator.reconcile.health import assess, pod_failure


def _pod(
    *,
    name: str = "clf-predictor-abc",
    init: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    """A pod whose storage-initializer and server statuses are ``init`` and ``server``."""
    status: dict[str, Any] = {}
    if init is not None:
        status["initContainerStatuses"] = [{"name": "storage-initializer", **init}]
    if server is not None:
        status["containerStatuses"] = [{"name": "server", **server}]
    metadata: dict[str, Any] = {"name": name}
    if deleting:
        metadata["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    return {"metadata": metadata, "status": status}


def _terminated(code: int, message: str | None = None, reason: str = "Error") -> dict[str, Any]:
    term: dict[str, Any] = {"exitCode": code, "reason": reason}
    if message is not None:
        term["message"] = message
    return {"terminated": term}


def _waiting(reason: str, message: str | None = None) -> dict[str, Any]:
    waiting: dict[str, Any] = {"reason": reason}
    if message is not None:
        waiting["message"] = message
    return {"waiting": waiting}


_COMPLETED = _terminated(0, reason="Completed")
_RUNNING = {"running": {"startedAt": "2030-01-01T00:00:00Z"}}


# pod_failure: the storage initializer.

def test_an_initializer_that_exited_non_zero_is_a_storage_failure_with_its_message() -> None:
    pod = _pod(init={"state": _terminated(1, "fetching\nno such key: s3://b/clf/1/model.onnx")})

    assert pod_failure(pod) == Condition(
        "ModelLoaded", "False", "StorageInitializerFailed",
        "pod clf-predictor-abc: the storage initializer failed: "
        "no such key: s3://b/clf/1/model.onnx",
    )


def test_an_initializer_failure_in_last_state_is_reported_while_it_backs_off() -> None:
    pod = _pod(init={"state": _waiting("CrashLoopBackOff", "back-off 10s"),
                     "lastState": _terminated(3, "checksum mismatch")})

    failure = pod_failure(pod)

    assert failure is not None
    assert failure.reason == "StorageInitializerFailed"
    assert failure.message == (
        "pod clf-predictor-abc: the storage initializer failed: checksum mismatch")


def test_an_initializer_failure_without_a_message_names_the_exit_code() -> None:
    pod = _pod(init={"state": {"terminated": {"exitCode": 137}}})

    failure = pod_failure(pod)

    assert failure is not None
    assert failure.message == (
        "pod clf-predictor-abc: the storage initializer failed: exit code 137")


def test_an_initializer_failure_without_a_message_falls_back_to_the_reason() -> None:
    pod = _pod(init={"state": _terminated(137, reason="OOMKilled")})

    failure = pod_failure(pod)

    assert failure is not None
    assert failure.message.endswith("the storage initializer failed: OOMKilled")


def test_a_long_initializer_message_is_trimmed_to_four_hundred_characters() -> None:
    pod = _pod(init={"state": _terminated(1, "e" * 1000)})

    failure = pod_failure(pod)

    assert failure is not None
    assert failure.message == "pod clf-predictor-abc: the storage initializer failed: " + (
        "e" * 400)


def test_an_initializer_that_cannot_pull_its_image_is_reported_by_its_waiting_reason() -> None:
    pod = _pod(init={"state": _waiting("ImagePullBackOff", "pull access denied")})

    assert pod_failure(pod) == Condition(
        "ModelLoaded", "False", "ImagePullBackOff",
        "pod clf-predictor-abc: storage initializer: pull access denied",
    )


def test_an_initializer_that_completed_is_not_a_failure() -> None:
    assert pod_failure(_pod(init={"state": _COMPLETED}, server={"state": _RUNNING})) is None


def test_an_initializer_that_succeeded_on_a_retry_is_not_a_failure() -> None:
    pod = _pod(init={"state": _COMPLETED, "lastState": _terminated(1, "timeout")},
               server={"state": _RUNNING})

    assert pod_failure(pod) is None


def test_a_pod_that_is_still_initializing_is_not_a_failure() -> None:
    pod = _pod(init={"state": _RUNNING}, server={"state": _waiting("PodInitializing")})

    assert pod_failure(pod) is None


def test_a_pod_without_any_status_is_not_a_failure() -> None:
    assert pod_failure({"metadata": {"name": "p"}}) is None
    assert pod_failure({}) is None


# pod_failure: the server.

def test_a_crash_looping_server_is_failing_with_its_last_termination_message() -> None:
    pod = _pod(init={"state": _COMPLETED},
               server={"state": _waiting("CrashLoopBackOff", "back-off 40s"),
                       "lastState": _terminated(1, "Traceback\nInvalidGraph: bad opset 99")})

    assert pod_failure(pod) == Condition(
        "ModelLoaded", "False", "ServerFailing",
        "pod clf-predictor-abc: the model server is CrashLoopBackOff: InvalidGraph: bad opset 99",
    )


def test_a_crash_looping_server_without_a_last_state_uses_the_waiting_message() -> None:
    pod = _pod(server={"state": _waiting("CrashLoopBackOff", "back-off 40s")})

    failure = pod_failure(pod)

    assert failure is not None
    assert failure.message == (
        "pod clf-predictor-abc: the model server is CrashLoopBackOff: back-off 40s")


def test_a_server_image_that_cannot_run_is_a_server_failure() -> None:
    pod = _pod(server={"state": _waiting("ImageCannotRun", "exec format error")})

    assert pod_failure(pod) == Condition(
        "ModelLoaded", "False", "ServerFailing",
        "pod clf-predictor-abc: the model server is ImageCannotRun: exec format error",
    )


@pytest.mark.parametrize("reason", ["ErrImagePull", "InvalidImageName",
                                    "CreateContainerConfigError", "RunContainerError"])
def test_a_server_stuck_waiting_is_a_server_failure(reason: str) -> None:
    failure = pod_failure(_pod(server={"state": _waiting(reason)}))

    assert failure is not None
    assert failure.reason == "ServerFailing"
    assert failure.message == f"pod clf-predictor-abc: the model server is {reason}: {reason}"


def test_a_server_waiting_for_an_ordinary_reason_is_not_a_failure() -> None:
    assert pod_failure(_pod(server={"state": _waiting("ContainerCreating")})) is None


def test_other_containers_are_not_read() -> None:
    pod = {"metadata": {"name": "p"}, "status": {
        "initContainerStatuses": [{"name": "istio-init", "state": _terminated(1, "x")}],
        "containerStatuses": [{"name": "sidecar", "state": _waiting("CrashLoopBackOff")}],
    }}

    assert pod_failure(pod) is None


def test_the_initializer_failure_is_reported_before_a_server_failure() -> None:
    pod = _pod(init={"state": _terminated(1, "no model")},
               server={"state": _waiting("CrashLoopBackOff")})

    failure = pod_failure(pod)

    assert failure is not None
    assert failure.reason == "StorageInitializerFailed"


# assess.

def _deployment(
    *, wanted: int | None = 2, generation: int = 3, observed: int = 3, **status: int,
) -> dict[str, Any]:
    """A server Deployment with spec.replicas ``wanted`` and the given status counts."""
    spec = {} if wanted is None else {"replicas": wanted}
    return {"metadata": {"name": "clf-predictor", "generation": generation},
            "spec": spec, "status": {"observedGeneration": observed, **status}}


def test_no_deployment_yet_is_nothing_ready_and_no_rollout_done() -> None:
    health = assess(None, [], desired_replicas=2)

    assert (health.replicas, health.ready_replicas, health.updated_replicas,
            health.desired_replicas, health.rollout_done, health.failure) == (
        0, 0, 0, 2, False, None)
    assert health.serving is False


def test_a_rollout_is_done_when_every_wanted_pod_is_updated_and_ready() -> None:
    deployment = _deployment(wanted=2, replicas=2, updatedReplicas=2, readyReplicas=2)

    health = assess(deployment, [], desired_replicas=1)

    assert health.rollout_done is True
    assert health.serving is True
    assert health.desired_replicas == 2  # the Deployment's own number wins


def test_a_rollout_is_not_done_while_old_pods_remain() -> None:
    deployment = _deployment(replicas=3, updatedReplicas=2, readyReplicas=3)

    assert assess(deployment, [], desired_replicas=2).rollout_done is False


def test_a_rollout_is_not_done_while_updated_pods_are_not_ready() -> None:
    deployment = _deployment(replicas=2, updatedReplicas=2, readyReplicas=1)

    health = assess(deployment, [], desired_replicas=2)

    assert health.rollout_done is False
    assert health.serving is True


def test_a_rollout_is_not_done_until_the_controller_saw_the_newest_generation() -> None:
    deployment = _deployment(generation=4, observed=3,
                             replicas=2, updatedReplicas=2, readyReplicas=2)

    assert assess(deployment, [], desired_replicas=2).rollout_done is False


def test_without_spec_replicas_the_desired_count_is_the_callers() -> None:
    deployment = _deployment(wanted=None, replicas=1, updatedReplicas=1, readyReplicas=1)

    health = assess(deployment, [], desired_replicas=3)

    assert health.desired_replicas == 3
    assert health.rollout_done is False


def test_scaled_to_zero_is_a_finished_rollout() -> None:
    health = assess(_deployment(wanted=0), [], desired_replicas=0)

    assert health.rollout_done is True
    assert health.serving is False


def test_assess_reports_the_first_failing_pod() -> None:
    pods = [
        _pod(name="ok", init={"state": _COMPLETED}, server={"state": _RUNNING}),
        _pod(name="bad", server={"state": _waiting("CrashLoopBackOff")}),
        _pod(name="worse", init={"state": _terminated(1, "gone")}),
    ]

    health = assess(_deployment(), pods, desired_replicas=2)

    assert health.failure is not None
    assert health.failure.message.startswith("pod bad:")


def test_pods_being_deleted_are_ignored() -> None:
    pods = [_pod(name="old", server={"state": _waiting("CrashLoopBackOff")}, deleting=True)]

    assert assess(_deployment(), pods, desired_replicas=2).failure is None


def test_a_server_that_exited_with_an_error_reports_its_termination_message() -> None:
    pod = {"metadata": {"name": "p"}, "status": {"containerStatuses": [{
        "name": "server", "state": {"terminated": {
            "exitCode": 1, "message": "ModelLoadFailed: model 'm': no version 7"}}}]}}

    failure = pod_failure(pod)

    assert failure is not None
    assert (failure.reason, failure.status) == ("ServerFailing", "False")
    assert "ModelLoadFailed: model 'm': no version 7" in failure.message
