"""The ``dev_node`` pytest fixture, for any test folder that needs pods to run.

Import it into a conftest (``from tests.harness.devnode.fixtures import
dev_node``). Several folders may do so in one session: they share one node
per control plane, started on first use and stopped with the last user,
because two agents cannot register the same Node.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.controlplane import ControlPlane
from tests.harness.devnode.container import Backoff
from tests.harness.devnode.devnode import DevNode

# Short back-off, so a crash-looping test container restarts within seconds.
TEST_BACKOFF = Backoff(initial=1.0, maximum=20.0, reset_after=60.0)

# Set MODELSHIP_DEVNODE_ROOT to keep pod folders and logs after the session, for debugging.
ROOT_ENV = "MODELSHIP_DEVNODE_ROOT"

_lock = threading.Lock()
_shared: dict[str, tuple[DevNode, int]] = {}


def acquire(plane: ControlPlane) -> DevNode:
    """The node of ``plane``, started if this is its first user."""
    key = str(plane.kubeconfig)
    with _lock:
        node, users = _shared.get(key, (None, 0))
        if node is None:
            kept = os.environ.get(ROOT_ENV)
            root = Path(kept) if kept else Path(tempfile.mkdtemp(prefix="modelship-devnode-"))
            node = DevNode(plane.kubeconfig, root, backoff=TEST_BACKOFF).start()
        _shared[key] = (node, users + 1)
        return node


def release(plane: ControlPlane) -> None:
    """Stop the node of ``plane`` when its last user lets go."""
    key = str(plane.kubeconfig)
    with _lock:
        node, users = _shared.pop(key)
        if users > 1:
            _shared[key] = (node, users - 1)
            return
    node.stop()
    if not os.environ.get(ROOT_ENV):
        shutil.rmtree(node.root, ignore_errors=True)


@pytest.fixture(scope="session")
def dev_node(control_plane: ControlPlane) -> Iterator[DevNode]:
    """A development node registered with the session's control plane."""
    node = acquire(control_plane)
    try:
        yield node
    finally:
        release(control_plane)
