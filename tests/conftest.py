"""Fixtures shared by every test folder.

The control plane is started once per test session, on first use, and only
by tests that ask for it (the `cluster` marker documents which ones do).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from tests.harness.controlplane import ControlPlane, scratch_namespace


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM (a CI timeout, a `kill`) ends the run the way Ctrl-C does, so
    # fixtures still stop the control planes, nodes and servers they started.
    signal.signal(signal.SIGTERM, _interrupted)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """A real etcd + kube-apiserver + kube-controller-manager on 127.0.0.1."""
    plane = ControlPlane.start()
    os.environ.setdefault("MODELSHIP_TEST_KUBECONFIG", str(plane.kubeconfig))
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own, deleted (without waiting) afterwards."""
    with scratch_namespace(control_plane, request.node.name) as name:
        yield name
