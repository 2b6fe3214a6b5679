"""Pod status as the kubelet computes it: phase, conditions, container statuses.

Pure functions over the node's records of each container, so the rules that
Deployments, Jobs and the operator depend on (when a pod is Running, when it
Succeeded, when it is Ready) can be read and tested on their own. The phase
follows the kubelet's ``getPhase``; a pod that is being deleted ends in a
terminal phase, Succeeded only if every container exited 0.

The result is sent as a strategic merge patch, so every container state
carries explicit nulls for the states it is not in (otherwise the patch would
merge ``running`` into an old ``waiting``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tests.harness.devnode.kubeapi import JSON

STATE_KEYS = ("waiting", "running", "terminated")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def waiting(reason: str, message: str = "") -> JSON:
    body = {"reason": reason}
    if message:
        body["message"] = message
    return {"waiting": body}


@dataclass
class ContainerRecord:
    """What the node knows of one container of a pod."""

    name: str
    image: str
    init: bool = False
    state: JSON = field(default_factory=lambda: waiting("ContainerCreating"))
    last_state: JSON = field(default_factory=dict)
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str = ""

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def terminated(self) -> JSON | None:
        return self.state.get("terminated")

    def as_status(self) -> JSON:
        status: JSON = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": _with_nulls(self.state),
            "lastState": _with_nulls(self.last_state),
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def _with_nulls(state: JSON) -> JSON:
    return {key: state.get(key) for key in STATE_KEYS}


def phase(
    init: list[ContainerRecord],
    main: list[ContainerRecord],
    restart_policy: str,
    *,
    terminal: bool = False,
) -> str:
    """The pod phase by the kubelet's rules (``getPhase``)."""
    pending_init = failed_init = 0
    for record in init:
        if record.running:
            pending_init += 1
        elif record.terminated is not None:
            failed_init += record.terminated.get("exitCode", 0) != 0
        elif record.last_state.get("terminated"):
            failed_init += record.last_state["terminated"].get("exitCode", 0) != 0
        else:
            pending_init += 1

    running = waiting_count = stopped = succeeded = 0
    for record in main:
        if record.running:
            running += 1
        elif record.terminated is not None:
            stopped += 1
            succeeded += record.terminated.get("exitCode", 0) == 0
        elif record.last_state.get("terminated"):
            stopped += 1
        else:
            waiting_count += 1

    if failed_init and restart_policy == "Never":
        return "Failed"
    if terminal:
        # Deleted: whatever ran is stopped now; exit codes decide.
        return "Succeeded" if main and stopped == succeeded == len(main) else "Failed"
    if pending_init or waiting_count:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if restart_policy == "Never" else "Running"
    return "Pending"


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> JSON:
    # Explicit nulls: a strategic merge patch would otherwise keep an old reason.
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": None if ok or not reason else reason,
        "message": None if ok or not message else message,
    }


def conditions(
    pod: JSON,
    init: list[ContainerRecord],
    main: list[ContainerRecord],
    *,
    pod_phase: str,
    sandbox_ready: bool,
) -> list[JSON]:
    """PodReadyToStartContainers, Initialized, ContainersReady and Ready (readiness gates too)."""
    incomplete = [r.name for r in init
                  if not (r.terminated is not None and r.terminated.get("exitCode") == 0)]
    unready = [r.name for r in main if not r.ready]
    completed = pod_phase in ("Succeeded", "Failed")

    out = [_condition("PodReadyToStartContainers", sandbox_ready and not completed)]
    if completed and not incomplete:
        out.append(_condition("Initialized", True))
    else:
        out.append(_condition("Initialized", not incomplete, "ContainersNotInitialized",
                              f"containers with incomplete status: [{' '.join(incomplete)}]"))
    if completed:
        out.append(_condition("ContainersReady", False, "PodCompleted"))
        out.append(_condition("Ready", False, "PodCompleted"))
        return out
    message = f"containers with unready status: [{' '.join(unready)}]"
    out.append(_condition("ContainersReady", not unready, "ContainersNotReady", message))

    gates = [g["conditionType"] for g in pod["spec"].get("readinessGates") or []]
    existing = {c["type"]: c.get("status") for c in pod.get("status", {}).get("conditions") or []}
    unmet = [g for g in gates if existing.get(g) != "True"]
    if unready:
        out.append(_condition("Ready", False, "ContainersNotReady", message))
    elif unmet:
        out.append(_condition("Ready", False, "ReadinessGatesNotReady",
                              f"corresponding condition of pod readiness gate {unmet[0]!r} "
                              "does not exist or is False"))
    else:
        out.append(_condition("Ready", True))
    return out


def stamp_transitions(new: list[JSON], previous: list[JSON] | None) -> list[JSON]:
    """Keep lastTransitionTime where a condition's status did not change."""
    before = {c["type"]: c for c in previous or []}
    stamp = now()
    for condition in new:
        old = before.get(condition["type"])
        same = old is not None and old.get("status") == condition["status"]
        condition["lastTransitionTime"] = old.get("lastTransitionTime") if same and old else stamp
        condition["lastProbeTime"] = None
    return new


def status_patch(
    pod: JSON,
    init: list[ContainerRecord],
    main: list[ContainerRecord],
    *,
    pod_ip: str | None,
    start_time: str | None,
    terminal: bool = False,
    sandbox_ready: bool = True,
) -> dict[str, Any]:
    """The ``status`` the node reports for ``pod``, without transition times."""
    restart_policy = pod["spec"].get("restartPolicy", "Always")
    pod_phase = phase(init, main, restart_policy, terminal=terminal)
    status: JSON = {
        "phase": pod_phase,
        "conditions": conditions(pod, init, main, pod_phase=pod_phase,
                                 sandbox_ready=sandbox_ready),
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "containerStatuses": [r.as_status() for r in main],
    }
    if init:
        status["initContainerStatuses"] = [r.as_status() for r in init]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if start_time:
        status["startTime"] = start_time
    return status
