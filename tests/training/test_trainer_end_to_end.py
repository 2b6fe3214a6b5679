"""Pre-train on part of a dataset, fine-tune on the rest with the Job's command.

The exported ONNX must answer like PyTorch (the TorchScript copy) on the test
split, and metrics.json must agree with scikit-learn computing the metrics
from onnxruntime's answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from sklearn import datasets
from sklearn import metrics as skm

from modelship_serving.training.config import Split, parse_config
from modelship_serving.training.splitting import split_rows

from modelship_serving.training.pipeline import run

from .conftest import Finished, pretrain

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")]

SPLIT = {"train": 0.7, "validation": 0.15, "test": 0.15}
VERSION_FILES = {"model.onnx", "model.pt", "checkpoint.pt", "architecture.json",
                 "metrics.json", "reference.json"}


@pytest.fixture(scope="module")
def cancer_base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A classifier pre-trained on the first 200 rows, shared by this module."""
    out = tmp_path_factory.mktemp("cancer-base")
    return pretrain(out, "sklearn://breast_cancer?rows=0:200", "classification")


def fine_tune_config(repo: Path, base_uri: str, dataset: str, task: str,
                     **hyper: Any) -> dict[str, Any]:
    return {
        "modelName": "tuned", "version": 2, "outputRepository": str(repo),
        "fineTuning": {
            "baseModel": {"uri": base_uri, "architecture": "mlp"},
            "dataset": {"uri": dataset, "split": SPLIT},
            "task": task,
            "hyperParameters": {"optimizer": "adamw", "learningRate": 3e-3, "batchSize": 32,
                                "epochs": 40, "earlyStoppingPatience": 6, "seed": 7, **hyper},
        },
    }


def held_out(x: np.ndarray, y: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    labels = y.astype(np.int64) if task == "classification" else None
    parts = split_rows(len(y), Split(**SPLIT), seed=7, labels=labels)
    return x[parts.test].astype(np.float32), y[parts.test], parts.validation


def answers(version: Path, x: np.ndarray) -> tuple[dict[str, np.ndarray], Any]:
    session = ort.InferenceSession(str(version / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    onnx_out = dict(zip(names, session.run(names, {"input": x}), strict=True))
    scripted = torch.jit.load(str(version / "model.pt"))
    with torch.no_grad():
        torch_out = scripted(torch.from_numpy(x))
    return onnx_out, torch_out


def check_published(result: Finished, repo: Path) -> tuple[Path, dict[str, Any]]:
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    assert result.termination is not None
    assert result.termination["phase"] == "Succeeded" and result.termination["version"] == 2
    version = repo / "tuned" / "2"
    assert {p.name for p in version.iterdir()} >= VERSION_FILES
    assert sorted(p.name for p in (repo / "tuned").iterdir()) == ["2", "config.pbtxt"]
    metrics = json.loads((version / "metrics.json").read_text())
    assert result.termination["metrics"]["test"] == metrics["test"]
    epochs = [line for line in result.json_lines() if line.get("event") == "epoch"]
    assert len(epochs) == metrics["epochs"] and "trainLoss" in epochs[0]
    return version, metrics


def check_reference(version: Path, validation_rows: int, outputs: dict[str, int],
                    features: int) -> None:
    reference = json.loads((version / "reference.json").read_text())
    assert reference["split"] == "validation" and reference["samples"] == validation_rows
    assert len(reference["inputs"]["input"]["features"]) == features
    assert {k: len(v["features"]) for k, v in reference["outputs"].items()} == outputs
    for tensor in (*reference["inputs"].values(), *reference["outputs"].values()):
        for column in tensor["features"]:
            assert len(column["edges"]) == 11 and len(column["fractions"]) == 10
            assert abs(sum(column["fractions"]) - 1.0) < 1e-9


def test_a_breast_cancer_classifier_is_fine_tuned_exported_and_scored(
        tmp_path: Path, run_trainer: Callable[..., Finished],
        cancer_base: dict[str, Any]) -> None:
    base = cancer_base
    repo = tmp_path / "repo"
    result = run_trainer(fine_tune_config(repo, base["baseModelUri"],
                                          "sklearn://breast_cancer?rows=200:", "classification",
                                          ) | {"servingMetrics": {"test": {"accuracy": 0.5}}})
    version, metrics = check_published(result, repo)
    assert metrics["task"] == "classification" and metrics["metric"] == "accuracy"

    x_all, y_all = datasets.load_breast_cancer(return_X_y=True)
    x, y, validation = held_out(x_all[200:], y_all[200:], "classification")
    assert metrics["samples"]["test"] == len(y)
    onnx_out, (probabilities, label) = answers(version, x)
    assert np.abs(onnx_out["probabilities"] - probabilities.numpy()).max() <= 1e-4
    assert np.array_equal(onnx_out["label"], label.numpy())
    assert onnx_out["label"].dtype == np.int64

    p1 = onnx_out["probabilities"][:, 1]
    predicted = onnx_out["label"]
    assert metrics["test"]["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert metrics["test"]["f1"] == pytest.approx(skm.f1_score(y, predicted))
    assert metrics["test"]["auc"] == pytest.approx(skm.roc_auc_score(y, p1), abs=1e-6)
    assert metrics["test"]["accuracy"] > 0.9
    assert result.termination is not None
    assert result.termination["gate"]["beatsServing"] is True

    check_reference(version, len(validation), {"probabilities": 2, "label": 1}, 30)


def test_a_diabetes_regressor_is_fine_tuned_exported_and_scored(
        tmp_path: Path, run_trainer: Callable[..., Finished]) -> None:
    base = pretrain(tmp_path / "base", "sklearn://diabetes?rows=0:150", "regression")
    repo = tmp_path / "repo"
    config = fine_tune_config(repo, base["baseModelUri"], "sklearn://diabetes?rows=150:",
                              "regression", optimizer="adam")
    config["fineTuning"]["promotion"] = {"metric": "rmse", "threshold": 80}
    result = run_trainer(config)
    version, metrics = check_published(result, repo)
    assert metrics["metric"] == "rmse"

    x_all, y_all = datasets.load_diabetes(return_X_y=True)
    x, y, validation = held_out(x_all[150:], y_all[150:], "regression")
    onnx_out, prediction = answers(version, x)
    assert onnx_out["prediction"].shape == (len(y), 1)
    # Predictions are in the hundreds: 1e-4 is a few float32 steps there.
    assert np.abs(onnx_out["prediction"] - prediction.numpy()).max() <= 1e-4

    predicted = onnx_out["prediction"][:, 0].astype(np.float64)
    rmse = float(np.sqrt(skm.mean_squared_error(y, predicted)))
    assert metrics["test"]["rmse"] == pytest.approx(rmse, rel=1e-5)
    assert metrics["test"]["mae"] == pytest.approx(skm.mean_absolute_error(y, predicted),
                                                   rel=1e-5)
    assert metrics["test"]["r2"] == pytest.approx(skm.r2_score(y, predicted), abs=1e-5)
    # This seed's 44 test rows are a hard draw (validation r2 is about 0.66).
    assert metrics["test"]["r2"] > 0.2
    assert result.termination is not None
    assert result.termination["gate"]["passesThreshold"] is True

    check_reference(version, len(validation), {"prediction": 1}, 10)


def test_a_version_fine_tuned_from_model_pt_starts_where_the_checkpoint_does(
        tmp_path: Path, cancer_base: dict[str, Any]) -> None:
    # In-process: the command line is covered above, this is about the base.
    results = {}
    for architecture in ("mlp", "torchscript"):
        repo = tmp_path / architecture
        config = fine_tune_config(repo, cancer_base["baseModelUri"],
                                  "sklearn://breast_cancer?rows=200:", "classification",
                                  epochs=3)
        config["fineTuning"]["baseModel"]["architecture"] = architecture
        summary = run(parse_config(config), show_progress=False)
        assert summary["phase"] == "Succeeded"
        results[architecture] = json.loads((repo / "tuned/2/metrics.json").read_text())
    assert results["mlp"]["test"] == pytest.approx(results["torchscript"]["test"], abs=1e-6)
