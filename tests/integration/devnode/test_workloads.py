"""Deployments and Jobs see a real pod lifecycle on the development node."""

from __future__ import annotations

import ipaddress
import urllib.request

import pytest

from tests.harness.controlplane import ControlPlane
from tests.harness.devnode import DevNode
from tests.integration.devnode.conftest import (
    OPERATOR_IMAGE,
    SERVER_IMAGE,
    TRAINER_IMAGE,
    apply,
    container_status,
    get,
    job_pod,
    pods,
    terminated,
)

pytestmark = pytest.mark.cluster

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: {image}
        command: [python, -m, http.server, --bind, $(POD_IP), "8080"]
        env:
        - name: POD_IP
          valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /, port: http}}
          periodSeconds: 1
"""


def test_a_deployment_of_a_modelship_image_becomes_available_with_loopback_pod_ips(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    apply(control_plane, namespace, WEB.format(replicas=2, image=SERVER_IMAGE))
    control_plane.kubectl("rollout", "status", "-n", namespace, "deployment/web",
                          "--timeout=60s")

    items = pods(control_plane, namespace, "app=web")
    ips = sorted(p["status"]["podIP"] for p in items)
    assert len(ips) == 2 and ips[0] != ips[1]
    for pod in items:
        ip = ipaddress.ip_address(pod["status"]["podIP"])
        assert ip in ipaddress.ip_network("127.0.0.0/16") and pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"] == dev_node.node_name
        assert container_status(pod, "web")["ready"] is True
        # Both replicas serve port 8080, each on its own address.
        with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as answer:
            assert answer.status == 200
    deployment = get(control_plane, namespace, "deployment", "web")
    assert deployment["status"]["availableReplicas"] == 2


def test_a_job_running_a_console_script_succeeds(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    apply(control_plane, namespace, f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: version}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: version
        image: {OPERATOR_IMAGE}
        command: [modelship, version]
""")
    control_plane.kubectl("wait", "-n", namespace, "--for=condition=Complete", "job/version",
                          "--timeout=60s")
    pod = job_pod(control_plane, namespace, "version")
    assert pod["status"]["phase"] == "Succeeded"
    state = container_status(pod, "version")["state"]["terminated"]
    assert state["exitCode"] == 0 and state["reason"] == "Completed"
    log = dev_node.log_path(namespace, pod["metadata"]["name"], "version")
    assert log is not None and "0.1.0" in log.read_text()


def test_a_failing_job_shows_its_exit_code_and_termination_message(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    script = (
        "import os; "
        "open(os.environ['MODELSHIP_TERMINATION_LOG'], 'w').write('dataset not found'); "
        "raise SystemExit(3)"
    )
    apply(control_plane, namespace, f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: train}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: trainer
        image: {TRAINER_IMAGE}
        command: [python, -c, "{script}"]
""")
    control_plane.kubectl("wait", "-n", namespace, "--for=condition=Failed", "job/train",
                          "--timeout=60s")
    pod = job_pod(control_plane, namespace, "train")
    assert pod["status"]["phase"] == "Failed"
    state = container_status(pod, "trainer")["state"]["terminated"]
    assert state["exitCode"] == 3
    assert state["reason"] == "Error"
    assert state["message"] == "dataset not found"


def test_fallback_to_logs_reports_the_end_of_the_log_when_no_message_was_written(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    apply(control_plane, namespace, f"""
apiVersion: v1
kind: Pod
metadata: {{name: crash}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {TRAINER_IMAGE}
    command: [python, -c, "raise RuntimeError('the model file is corrupt')"]
    terminationMessagePolicy: FallbackToLogsOnError
""")
    state = terminated(control_plane, namespace, "crash", "main")
    assert state["exitCode"] == 1
    assert "RuntimeError: the model file is corrupt" in state["message"]
