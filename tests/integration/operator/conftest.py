"""The operator, running in-process against the real local control plane."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kopf.testing import KopfRunner

from tests.harness.controlplane import ControlPlane, scratch_namespace

REPO = Path(__file__).resolve().parents[3]


def wait_until(predicate, what: str, timeout: float = 60.0, interval: float = 0.2):
    """Poll ``predicate`` until it returns something truthy; fail with ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def operator_plane() -> Iterator[ControlPlane]:
    """A control plane of the operator tests' own, with no node.

    The tests play the kubelet by writing pod statuses themselves; a
    development node registered by another test folder would run the pods and
    overwrite what they wrote, so these tests keep a cluster to themselves.
    """
    plane = ControlPlane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def namespace(operator_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own in the operator tests' control plane."""
    with scratch_namespace(operator_plane, request.node.name) as name:
        yield name


@pytest.fixture(scope="session")
def crds_installed(operator_plane: ControlPlane) -> ControlPlane:
    operator_plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    operator_plane.kubectl("wait", "--for=condition=Established", "crd", "--all",
                           "--timeout=60s")
    return operator_plane


@pytest.fixture(scope="session")
def operator(crds_installed: ControlPlane) -> Iterator[ControlPlane]:
    """Modelship's operator watching every namespace, in a thread of this process."""
    os.environ["KUBECONFIG"] = str(crds_installed.kubeconfig)
    args = ["run", "--all-namespaces", "--standalone", "--verbose",
            "-m", "modelship_operator.reconcile.handlers"]
    with KopfRunner(args, timeout=60) as runner:
        from modelship_operator.reconcile.handlers import STATE

        wait_until(lambda: STATE.queue is not None and STATE.client is not None,
                   "the operator to start")
        yield crds_installed
    assert runner.exit_code == 0, runner.output[-3000:]


def get(plane: ControlPlane, *args: str) -> dict | None:
    done = plane.kubectl("get", *args, "-o", "json", check=False)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout)
