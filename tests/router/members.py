"""Member models for the router tests, trained on scikit-learn's breast cancer data.

Each is a plain onnx.helper graph holding weights scikit-learn fitted, so the
whole set builds in well under a second. Three classifiers of different
strength share one signature (input [rows, 30] FP32; probabilities
[rows, 2] FP32, label [rows] INT64), so they vote and average; `weak` sees
only two features, so it disagrees with the others on some rows and the vote
is not simply any one member's answer. `scaler` and `scaled_logreg` are the
two stages of a pipeline; `three_class` has a probabilities output one class
wider, the shape mismatch the router must refuse.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
FEATURES = 30


@cache
def breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    return x.astype(np.float32), y


def _model(nodes: list, inits: list, inputs: list, outputs: list, name: str
           ) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def _scaling(x: np.ndarray, source: str, target: str) -> tuple[list, list]:
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    inits = [numpy_helper.from_array(mean.astype(np.float32), f"{target}_mean"),
             numpy_helper.from_array(scale.astype(np.float32), f"{target}_scale")]
    nodes = [helper.make_node("Sub", [source, f"{target}_mean"], [f"{target}_centred"]),
             helper.make_node("Div", [f"{target}_centred", f"{target}_scale"], [target])]
    return nodes, inits


def _head(logit: str, classes: int = 2) -> list:
    """Probabilities and label from one logit [rows, 1] (binary) or logits [rows, k]."""
    if classes == 2:
        return [helper.make_node("Sigmoid", [logit], ["p1"]),
                helper.make_node("Sub", ["one", "p1"], ["p0"]),
                helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
                helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0)]
    return [helper.make_node("Softmax", [logit], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0)]


def _classifier_io(input_name: str = "input", classes: int = 2) -> tuple[list, list]:
    return ([helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [None, FEATURES])],
            [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, classes]),
             helper.make_tensor_value_info("label", TensorProto.INT64, [None])])


def logistic(*, columns: list[int] | None = None, scaled_input: bool = False,
             c: float = 1.0, name: str = "logreg") -> onnx.ModelProto:
    """Logistic regression; `columns` limits what it learns from (others weigh 0)."""
    from sklearn.linear_model import LogisticRegression

    x, y = breast_cancer()
    mean, std = x.mean(axis=0), x.std(axis=0)
    z = (x - mean) / std
    used = columns if columns is not None else list(range(FEATURES))
    clf = LogisticRegression(C=c, max_iter=1000).fit(z[:, used], y)
    weights = np.zeros((FEATURES, 1), np.float32)
    weights[used, 0] = clf.coef_[0]

    nodes, inits = ([], []) if scaled_input else _scaling(x, "input", "z")
    source = "input" if scaled_input else "z"
    inits += [numpy_helper.from_array(weights, "w"),
              numpy_helper.from_array(clf.intercept_.astype(np.float32), "b"),
              numpy_helper.from_array(np.array([1.0], np.float32), "one")]
    nodes += [helper.make_node("MatMul", [source, "w"], ["m"]),
              helper.make_node("Add", ["m", "b"], ["logit"]), *_head("logit")]
    inputs, outputs = _classifier_io()
    return _model(nodes, inits, inputs, outputs, name)


def mlp(hidden: tuple[int, ...] = (16, 8), seed: int = 0, classes: int = 2
        ) -> onnx.ModelProto:
    """A small MLP; `classes` 3 adds a class nobody is labelled with (a wider output)."""
    from sklearn.neural_network import MLPClassifier

    x, y = breast_cancer()
    if classes == 3:
        y = y.copy()
        y[:3] = 2  # three rows of a third class, so the head has three logits
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    clf = MLPClassifier(hidden_layer_sizes=hidden, max_iter=400, random_state=seed).fit(z, y)

    nodes, inits = _scaling(x, "input", "h0")
    layers = list(zip(clf.coefs_, clf.intercepts_, strict=True))
    for i, (w, b) in enumerate(layers):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(b.astype(np.float32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [f"h{i}", f"w{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [f"a{i}"], [f"h{i + 1}"]))
    inits.append(numpy_helper.from_array(np.array([1.0], np.float32), "one"))
    nodes += _head(f"a{len(layers) - 1}", classes)
    inputs, outputs = _classifier_io(classes=classes)
    return _model(nodes, inits, inputs, outputs, f"mlp{classes}")


def scaler() -> onnx.ModelProto:
    """Standard scaling as a model: raw [rows, 30] FP32 -> scaled [rows, 30] FP32."""
    x, _ = breast_cancer()
    nodes, inits = _scaling(x, "raw", "scaled")
    return _model(nodes, inits,
                  [helper.make_tensor_value_info("raw", TensorProto.FLOAT, [None, FEATURES])],
                  [helper.make_tensor_value_info("scaled", TensorProto.FLOAT, [None, FEATURES])],
                  "scaler")


MODELS = {
    "logreg": lambda: logistic(),
    "mlp": lambda: mlp(),
    # Two texture features only, strongly regularised: a weak, different voter.
    "weak": lambda: logistic(columns=[1, 21], c=0.01, name="weak"),
    "scaler": scaler,
    "scaled_logreg": lambda: logistic(scaled_input=True, name="scaled_logreg"),
    "three_class": lambda: mlp(hidden=(8,), seed=1, classes=3),
}

CONFIG = "max_batch_size: 64\ndynamic_batching { }\n"


def write_repository(root: Path, names: list[str]) -> Path:
    """A model repository holding the named members, version 1 each."""
    for name in names:
        directory = root / name / "1"
        directory.mkdir(parents=True, exist_ok=True)
        onnx.save(MODELS[name](), str(directory / "model.onnx"))
        (root / name / "config.pbtxt").write_text(CONFIG)
    return root


def model_file(root: Path, name: str) -> Path:
    return root / name / "1" / "model.onnx"
