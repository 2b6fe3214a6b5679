"""The operator keeps the cluster equal to what a ModelDeployment asks for."""

from __future__ import annotations

import json
import time

import pytest

from tests.harness.controlplane import ControlPlane
from tests.integration.operator.conftest import get, wait_until

pytestmark = pytest.mark.cluster

MD = """
apiVersion: modelship.io/v1alpha1
kind: ModelDeployment
metadata: {{name: {name}}}
spec:
  model: {{format: onnx, storageUri: "pvc://models/breast-cancer"}}
  runtime:
    batching: {{maxBatchSize: 16, maxQueueDelayMicroseconds: 200}}
  replicas: {replicas}
"""


def apply_md(plane: ControlPlane, namespace: str, name: str, *, replicas: int = 1) -> None:
    plane.kubectl("apply", "-n", namespace, "-f", "-",
                  input=MD.format(name=name, replicas=replicas))


def md_status(plane: ControlPlane, namespace: str, name: str) -> dict:
    return (get(plane, "md", name, "-n", namespace) or {}).get("status") or {}


def condition(status: dict, type_: str) -> dict:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def make_pods_ready(plane: ControlPlane, namespace: str, selector: str) -> int:
    """Play the kubelet's part: mark the pods Running and Ready."""
    pods = (get(plane, "pods", "-n", namespace, "-l", selector) or {}).get("items", [])
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for pod in pods:
        status = {"status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
            "containerStatuses": [{
                "name": "server", "ready": True, "restartCount": 0, "image": "x",
                "imageID": "", "state": {"running": {"startedAt": now}},
            }],
        }}
        plane.kubectl("patch", "pod", pod["metadata"]["name"], "-n", namespace,
                      "--subresource=status", "--type=merge", "-p", json.dumps(status))
    return len(pods)


def test_creating_a_model_deployment_creates_exactly_its_children(
    operator: ControlPlane, namespace: str
):
    apply_md(operator, namespace, "bc", replicas=2)

    deployment = wait_until(lambda: get(operator, "deployment", "bc-predictor", "-n", namespace),
                            "the server Deployment")
    service = wait_until(lambda: get(operator, "service", "bc-predictor", "-n", namespace),
                         "the Service")
    config = wait_until(lambda: get(operator, "configmap", "bc-model-config", "-n", namespace),
                        "the model config")
    pdb = wait_until(lambda: get(operator, "pdb", "bc-predictor", "-n", namespace), "the PDB")

    for child in (deployment, service, config, pdb):
        owner = child["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == (
            "ModelDeployment", "bc", True)
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "modelship"
    assert get(operator, "hpa", "bc-predictor", "-n", namespace) is None

    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["storage-initializer"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    server = pod["containers"][0]
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    assert server["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert server["resources"]["requests"]
    assert "max_batch_size: 16" in config["data"]["config.pbtxt"]
    assert {p["name"] for p in service["spec"]["ports"]} == {"http", "grpc", "metrics"}


def test_spec_changes_roll_the_children(operator: ControlPlane, namespace: str):
    apply_md(operator, namespace, "bc")
    first = wait_until(lambda: get(operator, "deployment", "bc-predictor", "-n", namespace),
                       "the server Deployment")
    first_hash = first["spec"]["template"]["metadata"]["annotations"]["modelship.io/config-hash"]

    patch = {"spec": {"replicas": 3, "runtime": {
        "image": "registry.example/modelship-server:custom",
        "batching": {"maxBatchSize": 32, "maxQueueDelayMicroseconds": 500}}}}
    operator.kubectl("patch", "md", "bc", "-n", namespace, "--type=merge",
                     "-p", json.dumps(patch))

    def rolled():
        d = get(operator, "deployment", "bc-predictor", "-n", namespace)
        c = d["spec"]["template"]["spec"]["containers"][0]
        return d if d["spec"]["replicas"] == 3 and c["image"].endswith(":custom") else None

    rolled_out = wait_until(rolled, "the Deployment to take the new image and replicas")
    new_hash = rolled_out["spec"]["template"]["metadata"]["annotations"][
        "modelship.io/config-hash"]
    config = get(operator, "configmap", "bc-model-config", "-n", namespace)
    assert "max_batch_size: 32" in config["data"]["config.pbtxt"]
    assert new_hash != first_hash
    wait_until(lambda: get(operator, "pdb", "bc-predictor", "-n", namespace),
               "a PDB once there is more than one replica")


def test_a_child_edited_by_hand_is_put_back(operator: ControlPlane, namespace: str):
    apply_md(operator, namespace, "bc")
    wait_until(lambda: get(operator, "deployment", "bc-predictor", "-n", namespace),
               "the server Deployment")

    operator.kubectl("set", "image", "deployment/bc-predictor", "-n", namespace,
                     "server=registry.example/hijacked:1")

    def restored():
        d = get(operator, "deployment", "bc-predictor", "-n", namespace)
        image = d["spec"]["template"]["spec"]["containers"][0]["image"]
        return "hijacked" not in image
    wait_until(restored, "the operator to restore the server image")


def test_deleting_a_model_deployment_garbage_collects_its_children(
    operator: ControlPlane, namespace: str
):
    apply_md(operator, namespace, "bc", replicas=2)
    wait_until(lambda: get(operator, "pdb", "bc-predictor", "-n", namespace), "the children")

    operator.kubectl("delete", "md", "bc", "-n", namespace)

    def gone():
        items = (get(operator, "deployments,services,configmaps,pdb", "-n", namespace,
                     "-l", "modelship.io/deployment=bc") or {}).get("items", [])
        return not items
    wait_until(gone, "the garbage collector to delete every child")


def test_status_follows_the_pods_becoming_ready(operator: ControlPlane, namespace: str):
    apply_md(operator, namespace, "bc")
    wait_until(lambda: condition(md_status(operator, namespace, "bc"), "Ready"),
               "a Ready condition")
    status = md_status(operator, namespace, "bc")
    assert condition(status, "Ready")["status"] == "False"
    assert status["phase"] in ("Pending", "Progressing")
    assert status["url"].startswith("http://bc-predictor.")

    selector = "modelship.io/deployment=bc"
    wait_until(lambda: make_pods_ready(operator, namespace, selector), "a pod to mark ready")

    def ready():
        s = md_status(operator, namespace, "bc")
        return s if condition(s, "Ready").get("status") == "True" else None
    status = wait_until(ready, "Ready=True after the pods became ready")
    assert status["readyReplicas"] == 1
    assert status["phase"] == "Ready"
    assert condition(status, "Ready")["observedGeneration"] == get(
        operator, "md", "bc", "-n", namespace)["metadata"]["generation"]
    done = operator.kubectl("wait", "--for=condition=Ready", "md/bc", "-n", namespace,
                            "--timeout=30s")
    assert "condition met" in done.stdout


def test_a_storage_initializer_failure_reaches_the_condition(
    operator: ControlPlane, namespace: str
):
    apply_md(operator, namespace, "bc")
    pod = wait_until(lambda: (get(operator, "pods", "-n", namespace, "-l",
                                  "modelship.io/deployment=bc") or {}).get("items"),
                     "a server pod")[0]
    reason = "model not found: pvc://models/breast-cancer has no version folder"
    failed = {"status": {"phase": "Pending", "initContainerStatuses": [{
        "name": "storage-initializer", "ready": False, "restartCount": 3, "image": "x",
        "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": reason}},
    }]}}
    operator.kubectl("patch", "pod", pod["metadata"]["name"], "-n", namespace,
                     "--subresource=status", "--type=merge", "-p", json.dumps(failed))

    def failed_condition():
        c = condition(md_status(operator, namespace, "bc"), "ModelLoaded")
        return c if c.get("status") == "False" else None
    loaded = wait_until(failed_condition, "ModelLoaded=False")
    assert loaded["reason"] == "StorageInitializerFailed"
    assert reason in loaded["message"]
    status = md_status(operator, namespace, "bc")
    assert condition(status, "Ready")["status"] == "False"
    assert status["phase"] == "Failed"
    events = operator.kubectl("get", "events", "-n", namespace,
                              "--field-selector", "involvedObject.name=bc").stdout
    assert "StorageInitializerFailed" in events


def test_a_reconcile_with_nothing_changed_writes_nothing(operator: ControlPlane, namespace: str):
    from modelship_operator.reconcile.handlers import STATE

    apply_md(operator, namespace, "idle", replicas=2)
    wait_until(lambda: condition(md_status(operator, namespace, "idle"), "Ready"),
               "the first status")
    key = ("ModelDeployment", namespace, "idle")

    def writes() -> int:
        return STATE.client.writes_by_namespace[namespace]

    def settled():
        before = writes()
        time.sleep(1.5)
        return writes() == before
    wait_until(settled, "the operator to settle", timeout=30, interval=0)

    before, reconciles = writes(), STATE.reconciles[key]
    for _ in range(5):
        operator.kubectl("annotate", "md", "idle", "-n", namespace, "--overwrite",
                         f"touched={time.monotonic_ns()}")
    wait_until(lambda: STATE.reconciles[key] >= reconciles + 1, "reconciles to run")
    time.sleep(2)
    assert STATE.reconciles[key] > reconciles
    assert writes() == before, list(STATE.client.recent_writes)[-12:]


def test_a_spec_the_api_server_refuses_to_build_ends_in_a_condition_and_an_event(
    operator: ControlPlane, namespace: str
):
    # Valid for the CRD, but the Deployment it makes is refused: a request
    # above its limit. The user must see why, not an object without status.
    bad = MD.format(name="greedy", replicas=1).replace(
        "  runtime:\n",
        "  runtime:\n    resources: {requests: {cpu: '2'}, limits: {cpu: '1'}}\n")
    operator.kubectl("apply", "-n", namespace, "-f", "-", input=bad)

    ready = wait_until(
        lambda: (c := condition(md_status(operator, namespace, "greedy"), "Ready"))
        and c.get("reason") == "ApplyRejected" and c, "Ready=False ApplyRejected")
    assert ready["status"] == "False"
    assert "must be less than or equal to cpu limit" in ready["message"]
    assert md_status(operator, namespace, "greedy")["phase"] == "Failed"
    events = operator.kubectl("get", "events", "-n", namespace,
                              "--field-selector", "involvedObject.name=greedy").stdout
    assert "ApplyRejected" in events
