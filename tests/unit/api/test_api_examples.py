"""Every sample under examples/ parses through the API models and comes back unchanged."""

from __future__ import annotations

import pytest

from modelship_operator.api import ModelDeployment, ModelEnsemble
from modelship_operator.api.base import GPU_RESOURCE
from tests.invalid.corpus import Example, example_files, examples

KINDS = {"ModelDeployment": ModelDeployment, "ModelEnsemble": ModelEnsemble}


def _parse(example: Example) -> ModelDeployment | ModelEnsemble:
    return KINDS[example.kind].from_k8s(example.document)


def test_every_example_file_holds_only_modelship_kinds() -> None:
    assert len(example_files()) >= 10
    for example in examples():
        assert example.document["apiVersion"] == "modelship.io/v1alpha1", example.id
        assert example.kind in KINDS, example.id


@pytest.mark.parametrize("example", examples(), ids=lambda e: e.id)
def test_every_example_round_trips_through_the_models_without_loss(example: Example) -> None:
    assert _parse(example).to_k8s() == example.document


def _by_name() -> dict[str, ModelDeployment | ModelEnsemble]:
    return {e.document["metadata"]["name"]: _parse(e) for e in examples()}


def test_the_examples_cover_every_strategy_runtime_and_format() -> None:
    parsed = _by_name().values()
    ensembles = [p for p in parsed if isinstance(p, ModelEnsemble)]
    deployments = [p for p in parsed if isinstance(p, ModelDeployment)]

    assert {e.spec.strategy for e in ensembles} == {"voting", "weighted", "serial", "parallel"}
    assert {e.spec.runtime for e in ensembles} == {"router", "triton"}
    assert {d.spec.runtime.kind for d in deployments} == {"onnxruntime", "triton"}
    assert {d.spec.model.format for d in deployments} >= {"onnx", "torchscript"}
    schemes = {d.spec.model.storage_uri.split("://")[0] for d in deployments}
    assert schemes >= {"pvc", "s3"}
    tasks = {d.spec.fine_tuning.task for d in deployments if d.spec.fine_tuning}
    assert tasks == {"classification", "regression"}


def test_parsed_examples_expose_typed_values_with_defaults_filled_in() -> None:
    parsed = _by_name()

    triton = parsed["breast-cancer-triton"]
    assert isinstance(triton, ModelDeployment)
    assert triton.spec.runtime.resources is not None and triton.spec.runtime.resources.gpus()
    assert triton.spec.runtime.resources.limits == {"memory": "8Gi", GPU_RESOURCE: 1}
    assert triton.spec.runtime.batching is not None
    assert triton.spec.runtime.batching.preferred_batch_sizes == [32, 64, 128]
    assert triton.model_name() == "breast_cancer"

    tuned = parsed["breast-cancer-tuned"]
    assert isinstance(tuned, ModelDeployment) and tuned.spec.fine_tuning is not None
    assert tuned.spec.fine_tuning.promotion.must_beat_serving is True
    assert tuned.spec.fine_tuning.dataset.uri == "sklearn://breast_cancer?rows=200:569"
    assert tuned.spec.monitoring.for_ == "10m"
    assert tuned.spec.monitoring.error_rate_threshold == 0.05  # the default
    assert tuned.model_name() == "breast-cancer-tuned"
    assert tuned.desired_replicas() == 2

    digits = parsed["digits"]
    assert isinstance(digits, ModelDeployment) and digits.spec.autoscaling is not None
    assert digits.spec.autoscaling.target_cpu_utilization_percentage == 70
    assert digits.spec.model.version == "latest"

    pipeline = parsed["digits-pipeline"]
    assert isinstance(pipeline, ModelEnsemble) and pipeline.spec.steps is not None
    assert [s.member for s in pipeline.spec.steps] == ["pca", "head"]
    assert pipeline.spec.steps[1].input_mapping == {"input": "pca.components"}
