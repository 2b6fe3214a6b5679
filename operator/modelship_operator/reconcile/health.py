"""What the pods and the server Deployment say about a ModelDeployment.

Pure functions over the live objects. Ready means the pods really serve the
model: a Deployment with ready replicas is not enough when the newest pods
crash-loop or their storage initializer failed, so the pods are read too and
their failure reasons travel, verbatim and trimmed, into the conditions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelship_operator.reconcile.conditions import Condition

INITIALIZER = "storage-initializer"
SERVER = "server"
# Waiting reasons that mean the pod will not become ready by itself.
_STUCK = frozenset({
    "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
    "ImageCannotRun",
})


@dataclass(frozen=True)
class Health:
    """The serving side's state, ready to be written as status."""

    replicas: int
    ready_replicas: int
    updated_replicas: int
    desired_replicas: int
    rollout_done: bool
    failure: Condition | None  # why pods cannot serve, when they cannot

    @property
    def serving(self) -> bool:
        return self.ready_replicas > 0


def _terminated_message(state: dict[str, Any]) -> str:
    term = state.get("terminated") or {}
    text = (term.get("message") or term.get("reason") or "").strip()
    return text.splitlines()[-1][:400] if text else f"exit code {term.get('exitCode')}"


def pod_failure(pod: dict[str, Any], *, servers: tuple[str, ...] = (SERVER,)) -> Condition | None:
    """The reason this pod cannot serve, or None when nothing is known to be wrong."""
    status = pod.get("status") or {}
    name = pod.get("metadata", {}).get("name", "?")
    for cs in status.get("initContainerStatuses") or []:
        if cs.get("name") != INITIALIZER and not str(cs.get("name")).startswith("fetch-"):
            continue
        current = cs.get("state") or {}
        if (current.get("terminated") or {}).get("exitCode") == 0:
            continue  # it succeeded on a later try; lastState is history
        for state in (current, cs.get("lastState") or {}):
            term = state.get("terminated")
            if term and term.get("exitCode", 0) != 0:
                return Condition(
                    "ModelLoaded", "False", "StorageInitializerFailed",
                    f"pod {name}: the storage initializer failed: {_terminated_message(state)}",
                )
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _STUCK:
            return Condition(
                "ModelLoaded", "False", waiting["reason"],
                f"pod {name}: storage initializer: {waiting.get('message') or waiting['reason']}",
            )
    for cs in status.get("containerStatuses") or []:
        if cs.get("name") not in servers:
            continue
        current = cs.get("state") or {}
        if (current.get("terminated") or {}).get("exitCode", 0) != 0:
            return Condition(
                "ModelLoaded", "False", "ServerFailing",
                f"pod {name}: the model server exited: {_terminated_message(current)}",
            )
        waiting = current.get("waiting") or {}
        if waiting.get("reason") in _STUCK:
            last = cs.get("lastState") or {}
            detail = _terminated_message(last) if last.get("terminated") else (
                waiting.get("message") or waiting["reason"])
            return Condition(
                "ModelLoaded", "False", "ServerFailing",
                f"pod {name}: the model server is {waiting['reason']}: {detail}",
            )
    return None


def assess(
    deployment: dict[str, Any] | None, pods: list[dict[str, Any]], *, desired_replicas: int,
    servers: tuple[str, ...] = (SERVER,),
) -> Health:
    """Summarise the server Deployment and its pods."""
    if deployment is None:
        return Health(0, 0, 0, desired_replicas, False, None)
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    replicas = int(status.get("replicas") or 0)
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    wanted = int(spec.get("replicas", desired_replicas))
    current = (status.get("observedGeneration") or 0) >= (
        deployment.get("metadata", {}).get("generation") or 0)
    rollout_done = current and updated >= wanted and replicas == updated and ready >= wanted

    live_pods = [p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")]
    failures = [f for p in live_pods if (f := pod_failure(p, servers=servers)) is not None]
    return Health(
        replicas=replicas,
        ready_replicas=ready,
        updated_replicas=updated,
        desired_replicas=wanted,
        rollout_done=rollout_done,
        failure=failures[0] if failures else None,
    )
