"""Tests of the development node against the real local control plane.

``dev_node`` is the shared fixture from the harness; the helpers here apply
manifests and wait for what the API server reports, never for time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tests.harness.controlplane import ControlPlane
from tests.harness.devnode.fixtures import dev_node  # noqa: F401 - a fixture, used by name

T = TypeVar("T")

# The node runs a container as a process of this virtual environment; these
# names only have to look like Modelship's images.
SERVER_IMAGE = "ghcr.io/modelship/modelship-server:test"
TRAINER_IMAGE = "ghcr.io/modelship/modelship-trainer:test"
OPERATOR_IMAGE = "ghcr.io/modelship/modelship-operator:test"
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:25.10-py3"


def wait_until(predicate: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def apply(plane: ControlPlane, namespace: str, manifest: str) -> None:
    plane.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)


def get(plane: ControlPlane, namespace: str, *what: str) -> dict[str, Any] | None:
    done = plane.kubectl("get", "-n", namespace, *what, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


def pods(plane: ControlPlane, namespace: str, selector: str) -> list[dict[str, Any]]:
    listing = get(plane, namespace, "pods", "-l", selector) or {"items": []}
    return listing["items"]


def container_status(pod: dict[str, Any], name: str, *, init: bool = False) -> dict[str, Any]:
    key = "initContainerStatuses" if init else "containerStatuses"
    for status in pod.get("status", {}).get(key) or []:
        if status["name"] == name:
            return status
    return {}


def terminated(plane: ControlPlane, namespace: str, pod: str, container: str) -> dict[str, Any]:
    """Wait until ``container`` of ``pod`` has terminated; its ``terminated`` state."""
    def state() -> dict[str, Any] | None:
        body = get(plane, namespace, "pod", pod) or {}
        return container_status(body, container).get("state", {}).get("terminated")
    return wait_until(state, f"container {container} of pod {pod} to terminate")


def job_pod(plane: ControlPlane, namespace: str, job: str) -> dict[str, Any]:
    return wait_until(lambda: (pods(plane, namespace, f"job-name={job}") or [None])[0],
                      f"a pod of job {job}")
