"""The Node itself: registration, heartbeats, the shared fixture, and a clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness.controlplane import ControlPlane
from tests.harness.devnode import DevNode
from tests.harness.devnode.fixtures import acquire, release
from tests.integration.devnode.conftest import SERVER_IMAGE, apply, get, wait_until

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[3]
TAINT = {"key": "modelship.io/second-node", "value": "true", "effect": "NoSchedule"}


def listening(addresses: set[str]) -> list[tuple[str, int]]:
    """TCP sockets in LISTEN state on any of ``addresses`` (from /proc/net/tcp)."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state != "0A":
            continue
        hex_ip, hex_port = local.split(":")
        ip = socket.inet_ntoa(bytes.fromhex(hex_ip)[::-1])
        if ip in addresses:
            found.append((ip, int(hex_port, 16)))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_node_is_ready_untainted_and_has_room_but_no_gpus(
    control_plane: ControlPlane, dev_node: DevNode
) -> None:
    node = get(control_plane, "default", "node", dev_node.node_name)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert not node["spec"].get("taints")
    allocatable = node["status"]["allocatable"]
    assert allocatable["cpu"] == "64" and allocatable["pods"] == "500"
    assert "nvidia.com/gpu" not in allocatable
    lease = get(control_plane, "kube-node-lease", "lease", dev_node.node_name)
    assert lease["spec"]["holderIdentity"] == dev_node.node_name


@pytest.mark.slow
def test_the_node_renews_its_lease(control_plane: ControlPlane, dev_node: DevNode) -> None:
    def renew_time() -> str:
        return get(control_plane, "kube-node-lease", "lease", dev_node.node_name)["spec"][
            "renewTime"]

    first = renew_time()
    wait_until(lambda: renew_time() != first, "the lease to be renewed", timeout=25)


def test_test_folders_share_one_node_per_control_plane(
    control_plane: ControlPlane, dev_node: DevNode
) -> None:
    again = acquire(control_plane)
    try:
        assert again is dev_node
    finally:
        release(control_plane)
    assert dev_node.pids() is not None  # still running


@pytest.mark.slow
def test_stopping_a_node_leaves_no_process_no_listener_and_no_node(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    node = DevNode(control_plane.kubeconfig, tmp_path / "node", node_name="devnode-stop-test",
                   taints=[TAINT], provision_volumes=False).start()
    try:
        apply(control_plane, namespace, f"""
apiVersion: v1
kind: Pod
metadata: {{name: web, labels: {{app: web}}}}
spec:
  nodeName: devnode-stop-test
  terminationGracePeriodSeconds: 30
  containers:
  - name: web
    image: {SERVER_IMAGE}
    command: [python, -m, http.server, --bind, $(POD_IP), "8080"]
    env: [{{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}]
    readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
  - name: ignores-sigterm
    image: {SERVER_IMAGE}
    command:
    - python
    - -c
    - "import signal, time; signal.signal(15, signal.SIG_IGN); time.sleep(600)"
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
""")
        control_plane.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/web",
                              "--timeout=60s")
        pids = node.pod_pids(namespace, "web")
        addresses = set(node.addresses())
        assert len(pids) == 2 and listening(addresses)
    finally:
        started = time.monotonic()
        node.stop()

    # The node's stop grace (5 s) caps the pod's 30 s.
    assert time.monotonic() - started < 15
    assert [pid for pid in pids if alive(pid)] == []
    assert listening(addresses) == []
    assert get(control_plane, "default", "node", "devnode-stop-test") is None
    assert list((tmp_path / "node" / "pods").iterdir()) == []


@pytest.mark.slow
def test_the_command_line_runs_a_node_until_sigterm(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.harness.devnode", "--kubeconfig",
         str(control_plane.kubeconfig), "--root", str(tmp_path), "--node-name", "devnode-cli"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_until(lambda: get(control_plane, "default", "node", "devnode-cli"),
                   "the node to register")
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "Development node devnode-cli stopped." in output
    assert get(control_plane, "default", "node", "devnode-cli") is None
