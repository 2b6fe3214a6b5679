"""Triton's own ensemble config, generated from a serial ModelEnsemble."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from modelship_operator.api.deployment import ModelDeployment
from modelship_operator.api.ensemble import ModelEnsemble
from modelship_operator.builders import ensemble
from modelship_operator.settings import Settings

REPO = Path(__file__).resolve().parents[3]


def objects(*files: str) -> dict[str, dict]:
    found = {}
    for name in files:
        for doc in yaml.safe_load_all((REPO / "examples" / name).read_text()):
            if doc:
                doc["metadata"].update(namespace="ml", uid=f"uid-{doc['metadata']['name']}")
                found[doc["metadata"]["name"]] = doc
    return found


def resolved(docs: dict[str, dict], me: ModelEnsemble) -> list[ensemble.ResolvedMember]:
    return [
        ensemble.ResolvedMember(
            m.name, ModelDeployment.from_k8s(docs[m.deployment]),
            f"http://{m.deployment}-predictor.ml.svc:8000", f"{m.deployment}-predictor.ml.svc:8001")
        for m in me.spec.members
    ]


@pytest.fixture
def pipeline():
    docs = objects("ensemble-triton-serial.yaml", "triton-gpu-batching.yaml")
    me = ModelEnsemble.from_k8s(docs["bc-triton-pipeline"])
    return docs, me, resolved(docs, me)


def test_a_serial_pipeline_becomes_triton_ensemble_steps_wired_by_tensor_names(pipeline):
    docs, me, members = pipeline
    classifier = ModelDeployment.from_k8s(docs["breast-cancer-triton"])
    if not classifier.spec.model.outputs:
        pytest.skip("the classifier example declares no outputs")

    config = ensemble.triton_ensemble_config(me, members)

    assert config.platform == "ensemble"
    first, second = config.ensemble_scheduling.step
    assert (first.model_name, dict(first.input_map)) == ("bc-scaler", {"raw": "features"})
    assert dict(first.output_map) == {"scaled": "scaler__scaled"}
    assert dict(second.input_map) == {"input": "scaler__scaled"}
    assert [i.name for i in config.input] == ["features"]
    assert config.input[0].data_type == mc.TYPE_FP32
    assert list(config.input[0].dims) == [30]
    assert {o.name for o in config.output} == {
        f"classifier__{t.name}" for t in classifier.spec.model.outputs}
    # The text Triton reads parses back into the same message.
    assert text_format.Parse(text_format.MessageToString(config), mc.ModelConfig()) == config


def test_a_member_without_a_declared_signature_is_a_clear_error(pipeline):
    docs, me, members = pipeline
    bare = dict(docs["bc-scaler"])
    bare["spec"] = {**bare["spec"], "model": {
        k: v for k, v in bare["spec"]["model"].items() if k not in ("inputs", "outputs")}}
    bare["spec"]["model"]["format"] = "onnx"
    bare["spec"]["model"]["storageUri"] = "s3://modelship-models/bc-scaler"
    members[0] = ensemble.ResolvedMember("scaler", ModelDeployment.from_k8s(bare), "u", "g")

    with pytest.raises(ensemble.EnsembleUnresolvable, match="declares no spec.model.inputs"):
        ensemble.triton_ensemble_config(me, members)


def test_the_triton_ensemble_server_fetches_every_member_and_the_ensemble_model(pipeline):
    docs, me, members = pipeline
    body = docs["bc-triton-pipeline"]

    config_map, deployment, service = ensemble.triton_children(me, body, Settings.from_env(),
                                                               members)

    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == [
        "fetch-scaler", "fetch-classifier", "ensemble-model"]
    assert pod["containers"][0]["command"] == ["tritonserver"]
    text_format.Parse(config_map["data"]["config.pbtxt"], mc.ModelConfig())
    assert {p["name"] for p in service["spec"]["ports"]} == {"http", "grpc", "metrics"}


@pytest.mark.parametrize("example", ["ensemble-voting.yaml", "ensemble-weighted.yaml",
                                     "ensemble-serial.yaml", "ensemble-parallel.yaml"])
def test_the_router_accepts_the_config_the_operator_writes(example):
    from modelship_serving.router.config import parse_config

    docs = objects(example)
    ensembles = [d for d in docs.values() if d["kind"] == "ModelEnsemble"]
    for body in ensembles:
        me = ModelEnsemble.from_k8s(body)
        members = []
        for m in me.spec.members:
            md_body = docs.get(m.deployment) or {
                "apiVersion": "modelship.io/v1alpha1", "kind": "ModelDeployment",
                "metadata": {"name": m.deployment, "namespace": "ml", "uid": "u"},
                "spec": {"model": {"format": "onnx", "storageUri": f"pvc://models/{m.deployment}"}},
            }
            members.append(ensemble.ResolvedMember(
                m.name, ModelDeployment.from_k8s(md_body),
                f"http://{m.deployment}-predictor.ml.svc:8000",
                f"{m.deployment}-predictor.ml.svc:8001"))

        config = parse_config(ensemble.router_config(me, members))

        assert config.name == me.metadata.name
        assert [m.name for m in config.members] == [m.name for m in me.spec.members]
