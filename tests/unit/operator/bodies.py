"""Small ModelDeployment bodies for the operator's builder and reconcile tests.

The builders take both the parsed model and the raw body (for the owner
reference and the fine-tuning run's identity), so each helper returns the
pair. Bodies are written out in full here rather than read from examples/,
so a test states every value it checks; the examples are parsed too, by the
tests that need a realistic object.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from modelship_operator.api.deployment import ModelDeployment
from modelship_operator.settings import Images, Settings

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
UID = "0b7f3c1e-5d2a-4f43-9a51-6c2d8e1f0a99"

SETTINGS = Settings(
    images=Images(
        server="registry.test/modelship-server:9.9.9",
        trainer="registry.test/modelship-trainer:9.9.9",
        triton="registry.test/tritonserver:1.0",
    ),
    cluster_domain="cluster.test",
)

FINE_TUNING: dict[str, Any] = {
    "baseModel": {"architecture": "mlp", "hiddenSizes": [8]},
    "dataset": {"uri": "sklearn://breast_cancer"},
    "task": "classification",
    "promotion": {"metric": "f1", "threshold": 0.9},
}


def body(
    *,
    name: str = "clf",
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A ModelDeployment body; ``spec`` is merged over a minimal onnx-on-pvc spec."""
    full_spec: dict[str, Any] = {
        "model": {"format": "onnx", "storageUri": "pvc://models/clf"},
    }
    full_spec.update(copy.deepcopy(spec or {}))
    out: dict[str, Any] = {
        "apiVersion": "modelship.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "ml", "uid": UID, "generation": 1},
        "spec": full_spec,
    }
    if annotations is not None:
        out["metadata"]["annotations"] = dict(annotations)
    if status is not None:
        out["status"] = copy.deepcopy(status)
    return out


def parsed(raw: dict[str, Any]) -> tuple[ModelDeployment, dict[str, Any]]:
    """The (model, body) pair every builder takes."""
    return ModelDeployment.from_k8s(raw), raw


def deployment_of(**kwargs: Any) -> tuple[ModelDeployment, dict[str, Any]]:
    return parsed(body(**kwargs))


def example(file_name: str) -> tuple[ModelDeployment, dict[str, Any]]:
    """An example from examples/, given the uid and namespace a live object would carry."""
    raw = yaml.safe_load((EXAMPLES / file_name).read_text(encoding="utf-8"))
    raw["metadata"].update(uid=UID, namespace="ml")
    return parsed(raw)


def triton_spec(**runtime: Any) -> dict[str, Any]:
    """A spec served by Triton, with ``runtime`` fields merged in."""
    return {"runtime": {"kind": "triton", **runtime}}
