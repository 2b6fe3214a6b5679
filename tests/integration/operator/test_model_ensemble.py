"""A ModelEnsemble follows its members: not ready without one, back when it returns."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.harness.controlplane import ControlPlane
from tests.integration.operator.conftest import get, wait_until
from tests.integration.operator.test_model_deployment import (
    apply_md,
    condition,
    make_pods_ready,
)

pytestmark = pytest.mark.cluster

ENSEMBLE = """
apiVersion: modelship.io/v1alpha1
kind: ModelEnsemble
metadata: {name: vote}
spec:
  strategy: voting
  members:
  - {name: first, deployment: alpha}
  - {name: second, deployment: beta}
"""


def capture(plane: ControlPlane, namespace: str, name: str, expect: str, description: str):
    """Save the object as the operator wrote it, for the Argo CD health-check tests."""
    folder = os.environ.get("MODELSHIP_CAPTURE_FIXTURES")
    if not folder:
        return
    obj = get(plane, "me", "vote", "-n", namespace)
    for noisy in ("managedFields", "uid", "resourceVersion", "creationTimestamp"):
        obj["metadata"].pop(noisy, None)
    obj["metadata"]["namespace"] = "demo"
    Path(folder, f"operator-me-{name}.json").write_text(json.dumps(
        {"description": description, "expect": {"status": expect}, "object": obj},
        indent=2, sort_keys=True) + "\n")


def ensemble_status(plane: ControlPlane, namespace: str) -> dict:
    return (get(plane, "me", "vote", "-n", namespace) or {}).get("status") or {}


def ready_member(plane: ControlPlane, namespace: str, name: str) -> None:
    apply_md(plane, namespace, name)
    wait_until(lambda: make_pods_ready(plane, namespace, f"modelship.io/deployment={name}"),
               f"a pod of {name}")
    wait_until(lambda: condition((get(plane, "md", name, "-n", namespace) or {}).get(
        "status") or {}, "Ready").get("status") == "True", f"{name} to be Ready")


def test_an_ensemble_names_a_deleted_member_and_recovers_when_it_returns(
    operator: ControlPlane, namespace: str
):
    ready_member(operator, namespace, "alpha")
    ready_member(operator, namespace, "beta")
    operator.kubectl("apply", "-n", namespace, "-f", "-", input=ENSEMBLE)

    config = wait_until(lambda: get(operator, "configmap", "vote-ensemble", "-n", namespace),
                        "the router's config")
    routed = json.loads(config["data"]["ensemble.json"])
    assert [m["url"] for m in routed["members"]] == [
        f"http://alpha-predictor.{namespace}.svc.cluster.local:8000",
        f"http://beta-predictor.{namespace}.svc.cluster.local:8000",
    ]
    router = get(operator, "deployment", "vote-ensemble", "-n", namespace)
    assert router["spec"]["template"]["spec"]["containers"][0]["command"] == ["modelship-router"]
    wait_until(lambda: make_pods_ready(operator, namespace, "modelship.io/ensemble=vote"),
               "the router pod")

    def ready():
        s = ensemble_status(operator, namespace)
        return s if condition(s, "Ready").get("status") == "True" else None
    status = wait_until(ready, "the ensemble to be Ready")
    assert (status["memberCount"], status["readyMembers"]) == (2, 2)
    capture(operator, namespace, "ready", "Healthy", "every member and the router ready")

    operator.kubectl("delete", "md", "beta", "-n", namespace)

    def not_ready():
        s = ensemble_status(operator, namespace)
        return s if condition(s, "Ready").get("status") == "False" else None
    status = wait_until(not_ready, "the ensemble to go not-ready")
    members = condition(status, "MembersReady")
    assert members["status"] == "False"
    assert "second: ModelDeployment beta does not exist" in members["message"]
    assert status["readyMembers"] == 1
    assert status["phase"] in ("Degraded", "Pending")
    capture(operator, namespace, "member-deleted", "Degraded" if status["phase"] == "Degraded"
            else "Progressing", "a member's ModelDeployment was deleted")

    ready_member(operator, namespace, "beta")
    status = wait_until(ready, "the ensemble to recover")
    assert status["readyMembers"] == 2
    assert condition(status, "MembersReady")["status"] == "True"
