"""`helm install --wait` and `helm test` with the operator's pod really running.

The development node runs Modelship's images as local processes, so the
chart's own Deployment starts the operator with its ServiceAccount's projected
token, Helm waits for Kopf's health endpoint to pass the probes, and the
`helm test` Pod calls the operator through its Service.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.harness.controlplane import ControlPlane, free_port
from tests.harness.devnode.fixtures import dev_node  # noqa: F401 - a fixture, used by name
from tests.unit.install.paths import CHART

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture
def watched(control_plane: ControlPlane) -> Iterator[str]:
    name = f"t-hook-{os.urandom(3).hex()}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_helm_waits_for_the_running_operator_and_helm_test_passes(
    control_plane: ControlPlane, dev_node, namespace: str, watched: str,  # noqa: F811
):
    name = f"ms-{os.urandom(3).hex()}"
    try:
        # Namespaced, so the running operator never touches other tests' objects. The
        # node's pods share this machine's ports, so the operator's two get free ones.
        control_plane.helm("install", name, str(CHART), "-n", namespace,
                           "--set", f"watchNamespaces={{{watched}}}",
                           "--set", f"health.port={free_port()}",
                           "--set", f"metrics.port={free_port()}",
                           "--wait", "--timeout=120s", timeout=180)
        done = control_plane.helm("test", name, "-n", namespace, "--timeout=120s",
                                  timeout=180)

        assert "Succeeded" in done.stdout, done.stdout
        # The hook pod exits 0 only when the operator's health and metrics endpoints
        # answered (`helm test --logs` would need a kubelet's log endpoint to show it).
    finally:
        control_plane.helm("uninstall", name, "-n", namespace, "--wait", "--timeout=60s",
                           check=False, timeout=90)
