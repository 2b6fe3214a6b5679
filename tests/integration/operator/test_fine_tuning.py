"""Fine-tuning: the operator runs a Job, reads its result, and gates the promotion.

The pods' statuses are written by the test, as a kubelet would write them,
so the Job controller, the operator and the API server all run for real; the
end-to-end tests run the trainer itself on the development node.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.harness.controlplane import ControlPlane
from tests.integration.operator.conftest import get, wait_until
from tests.integration.operator.test_model_deployment import condition, md_status

pytestmark = pytest.mark.cluster

FINE_TUNED = """
apiVersion: modelship.io/v1alpha1
kind: ModelDeployment
metadata: {{name: {name}}}
spec:
  model: {{format: onnx, storageUri: "pvc://models/breast-cancer"}}
  fineTuning:
    baseModel: {{uri: "pvc://models/breast-cancer/1", architecture: mlp}}
    dataset: {{uri: "sklearn://breast_cancer?rows=200:569"}}
    task: classification
    promotion: {{metric: accuracy, threshold: {threshold}}}
"""
NOW = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def pods(plane: ControlPlane, namespace: str, selector: str) -> list[dict]:
    return (get(plane, "pods", "-n", namespace, "-l", selector) or {}).get("items", [])


def report_stored_versions(plane: ControlPlane, namespace: str, name: str, versions: list[int]):
    """Play the kubelet: the storage initializer of the server pod exited 0 with its summary."""
    pod = wait_until(lambda: pods(plane, namespace, f"modelship.io/deployment={name},"
                                  "app.kubernetes.io/component=predictor"), "a server pod")[0]
    message = json.dumps({"models": {name: versions}, "versions": versions})
    status = {"status": {"phase": "Pending", "initContainerStatuses": [{
        "name": "storage-initializer", "ready": True, "restartCount": 0, "image": "x",
        "imageID": "", "state": {"terminated": {
            "exitCode": 0, "reason": "Completed", "message": message,
            "startedAt": NOW, "finishedAt": NOW}},
    }]}}
    plane.kubectl("patch", "pod", pod["metadata"]["name"], "-n", namespace,
                  "--subresource=status", "--type=merge", "-p", json.dumps(status))


def finish_trainer(plane: ControlPlane, namespace: str, job: str, *, exit_code: int,
                   report: dict) -> None:
    """Play the kubelet: the trainer container terminated with ``report`` as its message."""
    pod = wait_until(lambda: pods(plane, namespace, f"batch.kubernetes.io/job-name={job}"),
                     "the trainer pod")[0]
    phase = "Succeeded" if exit_code == 0 else "Failed"
    status = {"status": {"phase": phase, "containerStatuses": [{
        "name": "trainer", "ready": False, "restartCount": 0, "image": "x", "imageID": "",
        "state": {"terminated": {
            "exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
            "message": json.dumps(report), "startedAt": NOW, "finishedAt": NOW}},
    }]}}
    plane.kubectl("patch", "pod", pod["metadata"]["name"], "-n", namespace,
                  "--subresource=status", "--type=merge", "-p", json.dumps(status))


def start_run(plane: ControlPlane, namespace: str, name: str, threshold: float) -> dict:
    plane.kubectl("apply", "-n", namespace, "-f", "-",
                  input=FINE_TUNED.format(name=name, threshold=threshold))
    report_stored_versions(plane, namespace, name, [1])
    status = wait_until(
        lambda: (s := md_status(plane, namespace, name)).get("fineTuning", {}).get("job") and s,
        "the fine-tuning run to start")
    job = get(plane, "job", status["fineTuning"]["job"], "-n", namespace)
    assert job is not None
    return status


def served_config(plane: ControlPlane, namespace: str, name: str) -> str:
    return get(plane, "configmap", f"{name}-model-config", "-n", namespace)["data"][
        "config.pbtxt"]


def test_a_version_that_passes_the_gate_is_promoted_and_served(
    operator: ControlPlane, namespace: str
):
    status = start_run(operator, namespace, "bc", threshold=0.9)
    run = status["fineTuning"]
    assert run["producedVersion"] == 2
    assert condition(status, "FineTuned")["reason"] == "Training"
    job = get(operator, "job", run["job"], "-n", namespace)
    trainer = job["spec"]["template"]["spec"]["containers"][0]
    config = json.loads(next(e["value"] for e in trainer["env"]
                             if e["name"] == "MODELSHIP_TRAINER_CONFIG"))
    assert (config["modelName"], config["version"]) == ("breast-cancer", 2)
    assert config["outputRepository"] == "/mnt/pvc/models"
    assert job["metadata"]["ownerReferences"][0]["name"] == "bc"

    finish_trainer(operator, namespace, run["job"], exit_code=0, report={
        "phase": "Succeeded", "version": 2, "metrics": {"test": {"accuracy": 0.96, "f1": 0.97}}})

    promoted = wait_until(
        lambda: (c := condition(md_status(operator, namespace, "bc"), "FineTuned"))
        and c["status"] == "True" and c, "FineTuned=True")
    assert "version 2 promoted" in promoted["message"]
    status = md_status(operator, namespace, "bc")
    assert status["versions"][-1]["version"] == 2
    assert status["versions"][-1]["promoted"] is True
    assert status["versions"][-1]["metrics"]["accuracy"] == pytest.approx(0.96)
    wait_until(lambda: "versions: 2" in served_config(operator, namespace, "bc"),
               "config.pbtxt to pin version 2")
    wait_until(lambda: md_status(operator, namespace, "bc").get("servingVersion") == 2,
               "servingVersion 2")


def test_a_version_below_the_floor_is_recorded_and_the_old_one_keeps_serving(
    operator: ControlPlane, namespace: str
):
    status = start_run(operator, namespace, "strict", threshold=0.999)
    finish_trainer(operator, namespace, status["fineTuning"]["job"], exit_code=0, report={
        "phase": "Succeeded", "version": 2, "metrics": {"test": {"accuracy": 0.95}}})

    failed = wait_until(
        lambda: (c := condition(md_status(operator, namespace, "strict"), "FineTuned"))
        and c["status"] == "False" and c, "FineTuned=False")
    assert failed["reason"] == "GateFailed"
    assert "0.95 is below the floor 0.999" in failed["message"]
    assert "version 1 keeps serving" in failed["message"]
    status = md_status(operator, namespace, "strict")
    assert status["versions"][-1]["promoted"] is False
    assert status["servingVersion"] == 1
    assert "versions: 1" in served_config(operator, namespace, "strict")


def test_a_failed_job_shows_the_trainers_reason(operator: ControlPlane, namespace: str):
    status = start_run(operator, namespace, "broken", threshold=0.9)
    # Exit code 2 is the trainer's "permanent": the Job fails without a retry.
    finish_trainer(operator, namespace, status["fineTuning"]["job"], exit_code=2, report={
        "phase": "Failed", "reason": "DatasetNotFound",
        "message": "no such file: /mnt/pvc/models/data.csv"})

    failed = wait_until(
        lambda: (c := condition(md_status(operator, namespace, "broken"), "FineTuned"))
        and c["status"] == "False" and c, "FineTuned=False", timeout=90)
    assert failed["reason"] == "JobFailed"
    assert "DatasetNotFound" in failed["message"]
    assert "/mnt/pvc/models/data.csv" in failed["message"]
    assert md_status(operator, namespace, "broken")["fineTuning"]["phase"] == "Failed"
