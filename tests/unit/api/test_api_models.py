"""Parsing and writing objects through the API models, as the operator does."""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pytest

from modelship_operator.api import (
    Condition,
    FineTuningStatus,
    InvalidResourceError,
    ModelDeployment,
    ModelDeploymentStatus,
    ModelEnsemble,
    VersionRecord,
)
from modelship_operator.api.crd import KINDS
from tests.unit.api.schema_walk import root_schema


def _minimal() -> dict[str, Any]:
    return {
        "apiVersion": "modelship.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris", "namespace": "ml"},
        "spec": {"model": {"format": "onnx", "storageUri": "pvc://models/iris"}},
    }


def test_from_k8s_names_every_offending_field() -> None:
    body = _minimal()
    body["spec"]["model"]["format"] = "pytorch"
    body["spec"]["replicas"] = -1

    with pytest.raises(InvalidResourceError) as caught:
        ModelDeployment.from_k8s(body)

    message = str(caught.value)
    assert "spec.model.format" in message
    assert "spec.replicas" in message


def test_unknown_spec_fields_are_refused_but_unknown_metadata_is_kept() -> None:
    body = _minimal()
    body["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    assert ModelDeployment.from_k8s(body).to_k8s() == body

    body["spec"]["replica"] = 2
    with pytest.raises(InvalidResourceError, match="spec.replica"):
        ModelDeployment.from_k8s(body)


def test_to_k8s_writes_only_what_was_given_while_attributes_carry_defaults() -> None:
    md = ModelDeployment.from_k8s(_minimal())

    assert md.to_k8s() == _minimal()
    assert md.spec.runtime.kind == "onnxruntime"
    assert md.spec.model.version == "latest"
    assert md.spec.monitoring.enabled is True
    assert md.spec.replicas is None and md.desired_replicas() == 1
    assert md.model_name() == "iris"


def test_objects_built_in_code_always_carry_api_version_and_kind() -> None:
    md = ModelDeployment.model_validate({"spec": _minimal()["spec"]})
    body = md.to_k8s()
    assert body["apiVersion"] == "modelship.io/v1alpha1"
    assert body["kind"] == "ModelDeployment"


def test_kopf_style_read_only_mappings_are_parsed() -> None:
    body = _minimal()
    frozen = MappingProxyType(
        {**body, "spec": MappingProxyType({"model": MappingProxyType(body["spec"]["model"])})}
    )
    assert ModelDeployment.from_k8s(frozen).to_k8s() == body


def test_the_spec_alone_parses_for_handlers_that_receive_only_the_spec() -> None:
    from modelship_operator.api import ModelDeploymentSpec

    spec = ModelDeploymentSpec.from_k8s(_minimal()["spec"])
    assert spec.model.storage_uri == "pvc://models/iris"


def test_a_status_written_by_the_operator_round_trips_with_times_in_rfc3339() -> None:
    when = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    status = ModelDeploymentStatus(
        phase="Ready",
        observed_generation=3,
        serving_version=2,
        replicas=2,
        ready_replicas=2,
        selector="modelship.io/deployment=iris",
        url="http://iris.ml.svc:8000",
        conditions=[
            Condition(
                type="Ready",
                status="True",
                reason="MinimumReplicasAvailable",
                last_transition_time=when,
                observed_generation=3,
            )
        ],
        fine_tuning=FineTuningStatus(
            job="iris-ft-2", phase="Succeeded", progress=1.0, produced_version=2,
            metrics={"accuracy": 0.97}, started_at=when, finished_at=when,
        ),
        versions=[VersionRecord(version=2, promoted=True, metrics={"accuracy": 0.97})],
    )

    body = status.to_k8s()

    assert body["conditions"][0]["lastTransitionTime"] == "2025-03-01T12:30:00Z"
    assert body["fineTuning"]["producedVersion"] == 2
    assert body["readyReplicas"] == 2
    assert ModelDeploymentStatus.from_k8s(body) == status


def _apply_schema_defaults(node: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it: top-down, recursing into defaults."""
    if isinstance(value, dict) and "properties" in node:
        for name, child in node["properties"].items():
            if name not in value and "default" in child:
                value[name] = child["default"]
            if name in value:
                value[name] = _apply_schema_defaults(child, value[name])
    elif isinstance(value, list) and "items" in node:
        return [_apply_schema_defaults(node["items"], v) for v in value]
    return value


def test_the_python_defaults_are_the_schema_defaults() -> None:
    body = _minimal()
    body["spec"]["fineTuning"] = {
        "dataset": {"uri": "sklearn://diabetes"},
        "baseModel": {"hiddenSizes": [8]},
        "task": "regression",
        "promotion": {"metric": "rmse", "threshold": 60},
    }
    body["spec"]["runtime"] = {"batching": {}}
    body["spec"]["autoscaling"] = {"maxReplicas": 3}
    as_given = ModelDeployment.from_k8s(body)

    defaulted = _apply_schema_defaults(root_schema(ModelDeployment), body)
    as_defaulted = ModelDeployment.from_k8s(defaulted)

    assert as_defaulted.spec.model_dump() == as_given.spec.model_dump()
    assert defaulted["spec"]["fineTuning"]["hyperParameters"]["epochs"] == 20
    assert defaulted["spec"]["monitoring"]["for"] == "5m"


def test_every_kind_parses_an_empty_status() -> None:
    for kind in KINDS:
        assert kind.model_fields["status"].default is None
    ensemble = ModelEnsemble.from_k8s(
        {
            "apiVersion": "modelship.io/v1alpha1",
            "kind": "ModelEnsemble",
            "metadata": {"name": "vote"},
            "spec": {
                "strategy": "voting",
                "members": [{"name": "a", "deployment": "a"}, {"name": "b", "deployment": "b"}],
            },
            "status": {},
        }
    )
    assert ensemble.status is not None and ensemble.status.phase is None
