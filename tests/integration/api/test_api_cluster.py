"""The CRDs on a real API server: what it accepts, refuses, defaults, prints and scales.

Runs against the session's local control plane (etcd + kube-apiserver +
kube-controller-manager), so the CEL rules, structural pruning, defaulting and
subresources are Kubernetes' own, not an imitation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelship_operator.api import (
    Condition,
    ModelDeployment,
    ModelDeploymentStatus,
    ModelEnsemble,
)
from modelship_operator.api.crd import KINDS
from tests.invalid.corpus import InvalidCase, example_files, invalid_cases

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[3]
MODELS = {"ModelDeployment": ModelDeployment, "ModelEnsemble": ModelEnsemble}
NOT_CHECKED = "some validation rules were not checked"


@pytest.fixture(scope="module")
def kubectl(control_plane: Any) -> Iterator[Any]:
    """kubectl against the control plane, with Modelship's CRDs installed and established."""
    control_plane.kubectl(
        "apply", "--server-side", "--force-conflicts", "--field-manager=modelship-tests",
        "-f", str(REPO / "crds"),
    )
    names = [f"crd/{kind.plural}.modelship.io" for kind in KINDS]
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    yield control_plane.kubectl


@pytest.fixture(scope="module")
def ns(kubectl: Any) -> Iterator[str]:
    """One namespace for this module's objects (each test cleans up its own)."""
    name = f"api-{os.urandom(3).hex()}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def _get(kubectl: Any, ns: str, kind: str, name: str) -> dict[str, Any]:
    done = kubectl("get", "-n", ns, kind, name, "-o", "json")
    return json.loads(done.stdout)


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.stem)
def test_every_example_is_accepted_and_defaulted_as_the_models_default(
    kubectl: Any, ns: str, path: Path
) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    kubectl("create", "-n", ns, "-f", str(path))
    try:
        for sent in documents:
            stored = _get(kubectl, ns, sent["kind"], sent["metadata"]["name"])
            model = MODELS[sent["kind"]]

            # What the server stored (defaults filled in) reads back through the
            # models unchanged, and means what the manifest as written means.
            assert model.from_k8s(stored).to_k8s() == stored
            assert (
                model.from_k8s(stored).spec.model_dump() == model.from_k8s(sent).spec.model_dump()
            )
    finally:
        kubectl("delete", "-n", ns, "-f", str(path), "--wait=true")


def _errors(stderr: str) -> list[str]:
    """The individual errors in kubectl's report, without the 'not checked' notice."""
    lines = [line[2:] for line in stderr.splitlines() if line.startswith("* ")]
    return [line for line in lines if NOT_CHECKED not in line] or [stderr.strip()]


@pytest.mark.parametrize("case", invalid_cases(), ids=lambda c: c.id)
def test_every_invalid_object_is_refused_with_its_message_and_nothing_is_stored(
    kubectl: Any, ns: str, case: InvalidCase
) -> None:
    *setup, refused = case.documents
    created = [
        json.loads(
            kubectl("create", "-n", ns, "-o", "json", "-f", "-", input=yaml.safe_dump(d)).stdout
        )
        for d in setup
    ]
    try:
        verb = "replace" if setup else "create"
        done = kubectl(verb, "-n", ns, "-f", "-", input=yaml.safe_dump(refused), check=False)

        assert done.returncode != 0, f"{case.id} was accepted"
        assert case.expect in done.stderr
        assert len(_errors(done.stderr)) == 1, f"{case.id} broke more than one rule"

        stored = kubectl("get", "-n", ns, case.kind, case.name, "-o", "json", check=False)
        if created:
            assert json.loads(stored.stdout)["spec"] == created[0]["spec"]
        else:
            assert stored.returncode != 0 and "NotFound" in stored.stderr
    finally:
        if setup:
            kubectl("delete", "-n", ns, case.kind, case.name, "--wait=true")


def _create(kubectl: Any, ns: str, body: dict[str, Any]) -> None:
    kubectl("create", "-n", ns, "-f", "-", input=yaml.safe_dump(body))


def _deployment(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelship.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": {"format": "onnx", "storageUri": f"pvc://models/{name}"}, **spec},
    }


def test_kubectl_get_modelship_lists_both_kinds(kubectl: Any, ns: str) -> None:
    _create(kubectl, ns, _deployment("listed"))
    _create(
        kubectl,
        ns,
        {
            "apiVersion": "modelship.io/v1alpha1",
            "kind": "ModelEnsemble",
            "metadata": {"name": "listed-vote"},
            "spec": {
                "strategy": "voting",
                "members": [
                    {"name": "a", "deployment": "listed"},
                    {"name": "b", "deployment": "listed"},
                ],
            },
        },
    )
    try:
        listed = kubectl("get", "modelship", "-n", ns, "-o", "name").stdout.split()
        assert "modeldeployment.modelship.io/listed" in listed
        assert "modelensemble.modelship.io/listed-vote" in listed

        table = kubectl("get", "me", "-n", ns).stdout.splitlines()[0].split()
        assert table == ["NAME", "STRATEGY", "MEMBERS", "READY", "PHASE", "AGE"]
    finally:
        kubectl("delete", "-n", ns, "md/listed", "me/listed-vote")


def test_kubectl_explain_reads_like_documentation(kubectl: Any) -> None:
    explained = kubectl("explain", "modeldeployment.spec.fineTuning").stdout
    assert "Train new versions of the model in a Job" in explained
    assert "promotion\t<Object> -required-" in explained
    assert "The gate a new version must pass to be served." in explained

    gate = kubectl("explain", "md.spec.fineTuning.promotion.threshold").stdout
    assert "For rmse and mae a ceiling" in gate

    strategy = kubectl("explain", "modelensemble.spec.strategy").stdout
    assert "voting" in strategy and "serial" in strategy


def test_kubectl_scale_changes_spec_replicas(kubectl: Any, ns: str) -> None:
    _create(kubectl, ns, _deployment("scaled", replicas=1))
    try:
        kubectl("scale", "-n", ns, "md/scaled", "--replicas=3")
        assert _get(kubectl, ns, "md", "scaled")["spec"]["replicas"] == 3

        scale = json.loads(
            kubectl("get", "-n", ns, "md/scaled", "--subresource=scale", "-o", "json").stdout
        )
        assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3
    finally:
        kubectl("delete", "-n", ns, "md/scaled")


def test_a_null_field_is_dropped_and_reads_as_absent(kubectl: Any, ns: str) -> None:
    _create(kubectl, ns, _deployment("nulled", replicas=2, autoscaling=None, fineTuning=None))
    try:
        stored = _get(kubectl, ns, "md", "nulled")
        assert "autoscaling" not in stored["spec"] and "fineTuning" not in stored["spec"]
        parsed = ModelDeployment.from_k8s(stored)
        assert parsed.spec.autoscaling is None and parsed.spec.replicas == 2
    finally:
        kubectl("delete", "-n", ns, "md/nulled")


def test_scaling_an_autoscaled_deployment_is_refused(kubectl: Any, ns: str) -> None:
    _create(kubectl, ns, _deployment("autoscaled", autoscaling={"maxReplicas": 4}))
    try:
        done = kubectl("scale", "-n", ns, "md/autoscaled", "--replicas=3", check=False)
        assert done.returncode != 0
        assert "set spec.replicas or spec.autoscaling, not both" in done.stderr
    finally:
        kubectl("delete", "-n", ns, "md/autoscaled")


def test_a_status_written_through_the_models_is_stored_printed_and_awaitable(
    kubectl: Any, ns: str
) -> None:
    _create(kubectl, ns, _deployment("observed", replicas=2))
    try:
        status = ModelDeploymentStatus(
            phase="Ready",
            observed_generation=1,
            serving_version=3,
            replicas=2,
            ready_replicas=2,
            selector="modelship.io/deployment=observed",
            url="http://observed.default.svc:8000",
            conditions=[
                Condition(
                    type="Ready",
                    status="True",
                    reason="MinimumReplicasAvailable",
                    message="2 of 2 servers ready",
                    observed_generation=1,
                    last_transition_time=datetime(2025, 1, 1, tzinfo=UTC),
                )
            ],
        )
        kubectl(
            "patch", "-n", ns, "md/observed", "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": status.to_k8s()}),
        )

        stored = ModelDeployment.from_k8s(_get(kubectl, ns, "md", "observed"))
        assert stored.status == status

        row = kubectl("get", "-n", ns, "md/observed", "--no-headers").stdout.split()
        assert row[:5] == ["observed", "2", "3", "onnxruntime", "Ready"]

        kubectl("wait", "-n", ns, "md/observed", "--for=condition=Ready", "--timeout=10s")

        scale = json.loads(
            kubectl("get", "-n", ns, "md/observed", "--subresource=scale", "-o", "json").stdout
        )
        assert scale["status"] == {"replicas": 2, "selector": "modelship.io/deployment=observed"}
    finally:
        kubectl("delete", "-n", ns, "md/observed")
