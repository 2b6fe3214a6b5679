"""End to end on real data: apply, fine-tune, serve, predict, and survive bad input.

The same flow as the demo (tests/harness/scenario.py), asserted: the promoted
version's accuracy on the held-out split equals the value computed in-process
from the very model file it serves; the ensemble's answer equals a majority
vote computed by hand from its members' own models; and bad input ends in
clear conditions while everything else keeps serving.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests.harness import scenario as s

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CORRUPT = """
apiVersion: modelship.io/v1alpha1
kind: ModelDeployment
metadata: {name: corrupt}
spec:
  model: {format: onnx, storageUri: pvc://models/corrupt}
"""
BROKEN_TUNING = """
apiVersion: modelship.io/v1alpha1
kind: ModelDeployment
metadata: {name: bc-broken-tuning}
spec:
  model: {format: onnx, storageUri: pvc://models/bc-small}
  fineTuning:
    baseModel: {architecture: mlp, uri: pvc://models/bc-small/1}
    dataset: {uri: pvc://models/datasets/missing.csv, targetColumn: target}
    task: classification
    promotion: {metric: accuracy, threshold: 0.5}
"""


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[s.Environment, dict]]:
    with s.environment() as env:
        s.prepare_models(env)
        s.apply_examples(env)
        for name in ("breast-cancer", *s.MEMBERS):
            s.wait_ready(env, "md", name)
        s.wait_ready(env, "me", "bc-vote")
        md = s.wait_for_promotion(env, "breast-cancer")
        yield env, md


def test_the_promoted_version_serves_the_accuracy_computed_in_process(demo):
    env, md = demo
    assert s.condition(md, "FineTuned")["status"] == "True", md["status"]
    version = md["status"]["servingVersion"]
    assert version == 2
    split = s.held_out_split(md)
    model_file = env.node.pvc_path(s.NAMESPACE, "models") / "breast-cancer" / "2" / "model.onnx"
    expected = s.in_process(model_file, split.features)["label"]
    address = env.node.service_address(s.NAMESPACE, "breast-cancer-predictor")

    http = s.infer_http(address, "breast-cancer", split.features)
    grpc = s.infer_grpc(address, "breast-cancer", split.features)

    np.testing.assert_array_equal(http["label"], expected)
    np.testing.assert_array_equal(grpc["label"], expected)
    np.testing.assert_allclose(http["probabilities"],
                               s.in_process(model_file, split.features)["probabilities"],
                               rtol=1e-6, atol=1e-6)
    served_accuracy = float((http["label"] == split.labels).mean())
    assert served_accuracy == pytest.approx(float((expected == split.labels).mean()))
    recorded = md["status"]["versions"][-1]["metrics"]["accuracy"]
    assert served_accuracy == pytest.approx(recorded, abs=1e-9)
    assert served_accuracy >= 0.9


def test_the_ensemble_answers_the_majority_vote_of_its_members(demo):
    env, md = demo
    split = s.held_out_split(md)
    repository = env.node.pvc_path(s.NAMESPACE, "models")
    members = [s.in_process(repository / name / "1" / "model.onnx", split.features)["label"]
               for name in s.MEMBERS]
    router = env.node.service_address(s.NAMESPACE, "bc-vote-ensemble")

    answer = s.infer_http(router, "bc-vote", split.features)
    label = next(k for k in answer if "label" in k)

    np.testing.assert_array_equal(answer[label].reshape(-1), s.majority_vote(members))
    over_grpc = s.infer_grpc(router, "bc-vote", split.features)
    np.testing.assert_array_equal(over_grpc[label], answer[label])


def test_every_resource_is_ready_for_kubectl_wait(demo):
    env, _ = demo
    for kind, name in [("md", "breast-cancer"), *(("md", m) for m in s.MEMBERS),
                       ("me", "bc-vote")]:
        done = env.kubectl("wait", "--for=condition=Ready", f"{kind}/{name}",
                           "-n", s.NAMESPACE, "--timeout=60s")
        assert "condition met" in done.stdout


def test_a_corrupt_model_ends_in_a_clear_condition_while_the_rest_keeps_serving(demo):
    env, md = demo
    folder = env.node.pvc_path(s.NAMESPACE, "models") / "corrupt" / "1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(b"\x08\x07this is not a protobuf model" * 10)

    env.kubectl("apply", "-n", s.NAMESPACE, "-f", "-", input=CORRUPT)

    def loaded_false():
        c = s.condition(env.get("md", "corrupt", "-n", s.NAMESPACE), "ModelLoaded")
        return c if c.get("status") == "False" else None
    cond = s.wait_for(loaded_false, "ModelLoaded=False on the corrupt model", timeout=240)
    assert cond["reason"] in ("StorageInitializerFailed", "ServerFailing")
    assert "model.onnx" in cond["message"] or "onnx" in cond["message"].lower()
    corrupt = env.get("md", "corrupt", "-n", s.NAMESPACE)
    assert s.condition(corrupt, "Ready")["status"] == "False"

    split = s.held_out_split(md)
    address = env.node.service_address(s.NAMESPACE, "breast-cancer-predictor")
    answer = s.infer_http(address, "breast-cancer", split.features[:8])
    assert answer["label"].shape == (8,)
    for name in ("breast-cancer", *s.MEMBERS):
        assert s.condition(env.get("md", name, "-n", s.NAMESPACE), "Ready")["status"] == "True"


def test_a_failing_fine_tuning_job_shows_its_reason_and_loses_nothing(demo):
    env, _ = demo
    env.kubectl("apply", "-n", s.NAMESPACE, "-f", "-", input=BROKEN_TUNING)

    def verdict():
        c = s.condition(env.get("md", "bc-broken-tuning", "-n", s.NAMESPACE), "FineTuned")
        return c if c.get("status") == "False" else None
    cond = s.wait_for(verdict, "FineTuned=False on the broken run", timeout=400)
    assert cond["reason"] == "JobFailed"
    assert "missing.csv" in cond["message"]

    broken = env.get("md", "bc-broken-tuning", "-n", s.NAMESPACE)
    assert broken["status"]["fineTuning"]["phase"] == "Failed"
    # The version it serves and the files on the volume are untouched.
    assert broken["status"].get("servingVersion") == 1
    assert (env.node.pvc_path(s.NAMESPACE, "models") / "bc-small" / "1" / "model.onnx").is_file()
    assert not (env.node.pvc_path(s.NAMESPACE, "models") / "bc-small" / "2").exists()
    assert s.condition(env.get("md", "bc-small", "-n", s.NAMESPACE), "Ready")["status"] == "True"


DIABETES = """
apiVersion: modelship.io/v1alpha1
kind: ModelDeployment
metadata: {name: diabetes}
spec:
  model: {format: onnx, storageUri: pvc://models/diabetes}
  runtime:
    batching: {maxBatchSize: 64}
  fineTuning:
    baseModel: {architecture: mlp, uri: pvc://models/diabetes/1}
    dataset: {uri: "sklearn://diabetes?rows=150:442"}
    task: regression
    hyperParameters: {learningRate: 0.005, epochs: 40, seed: 3}
    promotion: {metric: rmse, threshold: 100}
"""


def test_a_regression_model_is_fine_tuned_served_and_answers_as_pytorch_does(demo):
    import subprocess
    import sys

    import torch

    env, _ = demo
    repository = env.node.pvc_path(s.NAMESPACE, "models")
    subprocess.run(
        [sys.executable, "-m", "modelship_serving.training.pretrain",
         "--dataset", "sklearn://diabetes?rows=0:150", "--task", "regression",
         "--out", str(repository), "--model-name", "diabetes", "--epochs", "30"],
        check=True, capture_output=True, timeout=600)
    env.kubectl("apply", "-n", s.NAMESPACE, "-f", "-", input=DIABETES)
    s.wait_ready(env, "md", "diabetes")

    md = s.wait_for_promotion(env, "diabetes")

    assert s.condition(md, "FineTuned")["status"] == "True", md["status"]
    assert md["status"]["servingVersion"] == 2
    split = s.held_out_split(md)
    address = env.node.service_address(s.NAMESPACE, "diabetes-predictor")
    served = s.infer_grpc(address, "diabetes", split.features)["prediction"]
    scripted = torch.jit.load(str(repository / "diabetes" / "2" / "model.pt"))
    with torch.no_grad():
        expected = scripted(torch.from_numpy(split.features)).numpy()
    np.testing.assert_allclose(served.reshape(-1), expected.reshape(-1), rtol=1e-4, atol=1e-3)
    rmse = float(np.sqrt(np.mean((served.reshape(-1) - split.labels) ** 2)))
    recorded = md["status"]["versions"][-1]["metrics"]["rmse"]
    assert rmse == pytest.approx(recorded, rel=1e-3)
