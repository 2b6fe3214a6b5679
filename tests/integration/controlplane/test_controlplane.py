"""The local control plane is the real thing: API server, controllers, GC."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.harness.controlplane import ControlPlane, port_is_listening
from tests.harness.controlplane import _alive as process_is_alive

pytestmark = pytest.mark.cluster

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.harness.modelship.io}
spec:
  group: harness.modelship.io
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1}
"""

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.invalid/web:1
"""


def wait_until(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def get_json(plane: ControlPlane, *args: str) -> dict:
    return json.loads(plane.kubectl("get", *args, "-o", "json").stdout)


def test_a_custom_resource_definition_is_accepted_and_enforced(control_plane: ControlPlane):
    control_plane.kubectl("apply", "-f", "-", input=WIDGET_CRD)
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/widgets.harness.modelship.io",
        "--timeout=60s",
    )

    good = ("apiVersion: harness.modelship.io/v1\nkind: Widget\n"
            "metadata: {name: ok}\nspec: {size: 2}")
    control_plane.kubectl("apply", "-n", "default", "-f", "-", input=good)
    bad = good.replace("name: ok", "name: bad").replace("size: 2", "size: 0")
    refused = control_plane.kubectl("apply", "-n", "default", "-f", "-", input=bad, check=False)

    assert refused.returncode != 0
    assert "spec.size" in refused.stderr
    control_plane.kubectl("delete", "crd", "widgets.harness.modelship.io")


def test_a_deployment_becomes_pending_pods_and_is_garbage_collected(
    control_plane: ControlPlane, namespace: str
):
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOYMENT)

    replicasets = wait_until(
        lambda: get_json(control_plane, "replicasets", "-n", namespace)["items"],
        "the deployment controller to create a ReplicaSet",
    )
    owner = replicasets[0]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("Deployment", "web")

    pods = wait_until(
        lambda: (items := get_json(control_plane, "pods", "-n", namespace)["items"])
        and len(items) == 2 and items,
        "the replicaset controller to create two Pods",
    )
    # No node exists yet, so nothing schedules them.
    assert {p["status"].get("phase") for p in pods} == {"Pending"}

    control_plane.kubectl("delete", "deployment", "web", "-n", namespace, "--wait=false")
    wait_until(
        lambda: not get_json(control_plane, "replicasets,pods", "-n", namespace)["items"],
        "the garbage collector to delete the ReplicaSet and its Pods",
    )


def test_kubectl_and_helm_report_the_release_the_api_server_runs(control_plane: ControlPlane):
    versions = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    server = versions["serverVersion"]["gitVersion"]
    client = versions["clientVersion"]["gitVersion"]
    helm = control_plane.helm("version", "--template", "{{.KubeClientVersion}}").stdout

    major_minor = re.match(r"v(\d+)\.(\d+)\.", server)
    assert major_minor, server
    assert client == server
    assert helm.strip() == f"v{major_minor[1]}.{major_minor[2]}"


def test_starting_and_stopping_twice_leaves_nothing_behind():
    for _ in range(2):
        plane = ControlPlane.start()
        pids = [p.pid for p in plane.processes]
        ports = [p.port for p in plane.processes]
        data_dir = plane.data_dir
        assert plane.kubectl("get", "namespaces").returncode == 0

        plane.stop()

        assert not [pid for pid in pids if process_is_alive(pid)]
        assert not [port for port in ports if port_is_listening(port)]
        assert not data_dir.exists()
