"""The ONNX export has the agreed signature and is checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from modelship_serving.training.architectures import (
    Architecture,
    ClassifierExport,
    RegressorExport,
    build_network,
)
from modelship_serving.training.errors import ExportMismatch
from modelship_serving.training.export import export_onnx, verify_onnx

FEATURES = 5


def network(outputs: int):
    torch.manual_seed(0)
    task = "classification" if outputs > 1 else "regression"
    return build_network(Architecture("mlp", FEATURES, outputs, task, hidden_sizes=[6]))


def raw_rows(rows: int = 20) -> np.ndarray:
    return np.random.default_rng(0).normal(10, 3, (rows, FEATURES)).astype(np.float32)


def signature(path: Path) -> tuple[list[tuple[str, str, list]], list[tuple[str, str, list]]]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    def describe(args):
        return [(a.name, a.type, a.shape) for a in args]
    return describe(session.get_inputs()), describe(session.get_outputs())


def test_a_classifier_exports_probabilities_and_int64_labels(tmp_path: Path) -> None:
    model = ClassifierExport(network(3), torch.full((FEATURES,), 10.0),
                             torch.full((FEATURES,), 3.0))
    export_onnx(model, tmp_path / "m.onnx", features=FEATURES, task="classification")
    inputs, outputs = signature(tmp_path / "m.onnx")
    assert inputs == [("input", "tensor(float)", ["batch", FEATURES])]
    assert outputs == [("probabilities", "tensor(float)", ["batch", 3]),
                       ("label", "tensor(int64)", ["batch"])]
    check = verify_onnx(tmp_path / "m.onnx", model, raw_rows(), "classification")
    assert check.rows == 20 and check.max_abs_diff["probabilities"] <= 1e-6


def test_a_regressor_exports_one_prediction_on_the_targets_scale(tmp_path: Path) -> None:
    model = RegressorExport(network(1), torch.zeros(FEATURES), torch.ones(FEATURES),
                            target_mean=150.0, target_std=70.0)
    export_onnx(model, tmp_path / "m.onnx", features=FEATURES, task="regression")
    _, outputs = signature(tmp_path / "m.onnx")
    assert outputs == [("prediction", "tensor(float)", ["batch", 1])]
    verify_onnx(tmp_path / "m.onnx", model, raw_rows(), "regression")


def test_an_export_that_answers_differently_from_pytorch_is_refused(tmp_path: Path) -> None:
    model = ClassifierExport(network(2), torch.zeros(FEATURES), torch.ones(FEATURES))
    export_onnx(model, tmp_path / "m.onnx", features=FEATURES, task="classification")
    with torch.no_grad():
        model.head.bias[0] += 0.05  # the file no longer matches the model
    with pytest.raises(ExportMismatch, match="'probabilities' differs"):
        verify_onnx(tmp_path / "m.onnx", model, raw_rows(), "classification")
