"""Pod addresses, Service proxies and names, from inside pods and from the test."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.harness.controlplane import ControlPlane
from tests.harness.devnode import DevNode
from tests.integration.devnode.conftest import (
    SERVER_IMAGE,
    TRAINER_IMAGE,
    apply,
    pods,
    terminated,
    wait_until,
)

pytestmark = pytest.mark.cluster

# Each replica answers with its own pod name, so a test can tell them apart.
ECHO = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: echo
        image: {image}
        command:
        - python
        - -c
        - |
          import http.server, os
          class Echo(http.server.BaseHTTPRequestHandler):
              def do_GET(self):
                  body = os.environ["POD_NAME"].encode()
                  self.send_response(200)
                  self.send_header("Content-Length", str(len(body)))
                  self.end_headers()
                  self.wfile.write(body)
          address = os.environ["MODELSHIP_BIND_ADDRESS"]
          http.server.HTTPServer((address, 8000), Echo).serve_forever()
        env:
        - name: POD_NAME
          valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
        ports: [{{name: http, containerPort: 8000}}]
        readinessProbe:
          tcpSocket: {{port: http}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: web, port: 80, targetPort: http}}]
"""


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.read().decode()


def _answers(url: str) -> str | None:
    try:
        return fetch(url)
    except OSError:
        return None


def test_two_pods_serving_the_same_port_do_not_collide(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    apply(control_plane, namespace, ECHO.format(name="echo", replicas=2, image=SERVER_IMAGE))
    control_plane.kubectl("rollout", "status", "-n", namespace, "deployment/echo",
                          "--timeout=60s")

    answers = {fetch(f"http://{p['status']['podIP']}:8000/"): p["metadata"]["name"]
               for p in pods(control_plane, namespace, "app=echo")}
    assert len(answers) == 2
    assert all(body == name for body, name in answers.items())


def test_a_service_spreads_connections_from_the_test_over_its_ready_pods(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    apply(control_plane, namespace, ECHO.format(name="echo", replicas=2, image=SERVER_IMAGE))
    control_plane.kubectl("rollout", "status", "-n", namespace, "deployment/echo",
                          "--timeout=60s")
    address = dev_node.service_address(namespace, "echo")
    assert address.startswith("127.1.")

    names = {p["metadata"]["name"] for p in pods(control_plane, namespace, "app=echo")}
    assert {fetch(f"http://{address}:80/") for _ in range(4)} == names


def test_a_service_sends_nothing_to_pods_that_are_not_ready(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    apply(control_plane, namespace, ECHO.format(name="echo", replicas=1, image=SERVER_IMAGE))
    # A second pod the Service selects, serving too, whose readiness probe always fails.
    unready = ECHO.format(name="echo", replicas=1, image=SERVER_IMAGE).split("---")[0]
    unready = (unready.replace("name: echo}", "name: echo-unready}", 1)
               .replace("tcpSocket: {port: http}", "exec: {command: ['false']}"))
    apply(control_plane, namespace, unready)
    control_plane.kubectl("rollout", "status", "-n", namespace, "deployment/echo",
                          "--timeout=60s")
    wait_until(lambda: len(pods(control_plane, namespace, "app=echo")) == 2, "both pods")
    address = dev_node.service_address(namespace, "echo")

    by_name = {p["metadata"]["name"]: p for p in pods(control_plane, namespace, "app=echo")}
    [unready_name] = [n for n in by_name if n.startswith("echo-unready-")]
    [ready_name] = [n for n in by_name if n != unready_name]
    # The unready pod serves when asked directly, but the Service never picks it.
    ip = wait_until(lambda: by_name[unready_name]["status"].get("podIP") or
                    dev_node.pod_ip(namespace, unready_name), "the unready pod's address")
    wait_until(lambda: _answers(f"http://{ip}:8000/"), "the unready pod to serve")
    assert {fetch(f"http://{address}:80/") for _ in range(4)} == {ready_name}


def test_a_pod_reaches_a_service_by_its_cluster_dns_name(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    apply(control_plane, namespace, ECHO.format(name="members", replicas=1, image=SERVER_IMAGE))
    control_plane.kubectl("rollout", "status", "-n", namespace, "deployment/members",
                          "--timeout=60s")
    script = (
        "import sys, urllib.request; "
        "names = sys.argv[1:]; "
        "bodies = [urllib.request.urlopen(f'http://{n}:80/', timeout=5).read().decode() "
        "for n in names]; "
        "open('/dev/termination-log', 'w').write(','.join(bodies))"
    )
    apply(control_plane, namespace, f"""
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {TRAINER_IMAGE}
    command:
    - python
    - -c
    - "{script}"
    - members.$(NS).svc.cluster.local
    - members.$(NS).svc
    - members.$(NS)
    - members
    env:
    - name: NS
      valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}
""")
    state = terminated(control_plane, namespace, "client", "main")
    assert state["exitCode"] == 0, state
    server = pods(control_plane, namespace, "app=members")[0]["metadata"]["name"]
    assert state["message"] == ",".join([server] * 4)


def test_a_service_created_later_resolves_in_a_running_pod(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    # The client starts first and retries until the name resolves and answers.
    script = (
        "import time, urllib.request, sys\n"
        "for _ in range(300):\n"
        "    try:\n"
        "        body = urllib.request.urlopen(sys.argv[1], timeout=2).read().decode()\n"
        "        break\n"
        "    except OSError:\n"
        "        time.sleep(0.1)\n"
        "open('/dev/termination-log', 'w').write(body)\n"
    )
    apply(control_plane, namespace, f"""
apiVersion: v1
kind: Pod
metadata: {{name: early}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {TRAINER_IMAGE}
    command: {json.dumps(["python", "-c", script, "http://late/"])}
""")
    wait_until(lambda: dev_node.pod_pids(namespace, "early"), "the client to run")
    apply(control_plane, namespace, ECHO.format(name="late", replicas=1, image=SERVER_IMAGE))
    state = terminated(control_plane, namespace, "early", "main")
    assert state["exitCode"] == 0, state
    assert state["message"].startswith("late-")


def test_indexed_job_workers_find_worker_zero_by_its_stable_name(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    # Worker 0 listens on its pod address; worker 1 dials "<job>-0.<subdomain>" as a
    # distributed trainer dials MASTER_ADDR. Both report the hostname they run under.
    script = (
        "import os, socket, time\n"
        "index = int(os.environ['JOB_COMPLETION_INDEX'])\n"
        "name = socket.gethostname()\n"
        "own = socket.gethostbyname(name)\n"
        "if index == 0:\n"
        "    server = socket.create_server((os.environ['MODELSHIP_BIND_ADDRESS'], 29500))\n"
        "    conn, _ = server.accept()\n"
        "    peer = conn.recv(100).decode()\n"
        "else:\n"
        "    for _ in range(300):\n"
        "        try:\n"
        "            conn = socket.create_connection(('pairs-0.workers', 29500), timeout=2)\n"
        "            break\n"
        "        except OSError:\n"
        "            time.sleep(0.1)\n"
        "    conn.sendall(name.encode())\n"
        "    peer = 'pairs-0'\n"
        "open('/dev/termination-log', 'w').write(f'{name} {own} {peer}')\n"
    )
    apply(control_plane, namespace, f"""
apiVersion: v1
kind: Service
metadata: {{name: workers}}
spec:
  clusterIP: None
  selector: {{job-name: pairs}}
---
apiVersion: batch/v1
kind: Job
metadata: {{name: pairs}}
spec:
  completionMode: Indexed
  completions: 2
  parallelism: 2
  backoffLimit: 0
  template:
    spec:
      subdomain: workers
      restartPolicy: Never
      containers:
      - name: worker
        image: {TRAINER_IMAGE}
        command: {json.dumps(["python", "-c", script])}
""")
    control_plane.kubectl("wait", "-n", namespace, "--for=condition=Complete", "job/pairs",
                          "--timeout=60s")
    reports = {}
    for pod in pods(control_plane, namespace, "job-name=pairs"):
        state = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        name, address, peer = state["message"].split()
        reports[name] = (address, peer, pod["status"]["podIP"])
    assert set(reports) == {"pairs-0", "pairs-1"}
    for address, _, pod_ip in reports.values():
        assert address == pod_ip
    assert reports["pairs-0"][1] == "pairs-1"
