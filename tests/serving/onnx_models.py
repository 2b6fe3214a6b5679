"""Tiny real models for the server tests, written as ONNX graphs with onnx.helper.

The classifier and the regressor are trained with scikit-learn on datasets it
ships (breast cancer, diabetes) and their weights written into plain
MatMul/Add/Relu graphs, so building them takes milliseconds and needs no
exporter. Identity models cover every protocol datatype.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17

# Protocol datatype -> ONNX element type, for the identity models.
ONNX_TYPES = {
    "BOOL": TensorProto.BOOL, "INT8": TensorProto.INT8, "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32, "INT64": TensorProto.INT64, "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16, "UINT32": TensorProto.UINT32, "UINT64": TensorProto.UINT64,
    "FP16": TensorProto.FLOAT16, "FP32": TensorProto.FLOAT, "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}
NUMPY_TYPES = {
    "BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
    "BYTES": np.object_,
}


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def identity_model(datatype: str, width: int = 4) -> onnx.ModelProto:
    """INPUT0 [batch, width] -> OUTPUT0 (same values) for one datatype."""
    elem = ONNX_TYPES[datatype]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])],
        f"identity_{datatype.lower()}",
        [helper.make_tensor_value_info("INPUT0", elem, [None, width])],
        [helper.make_tensor_value_info("OUTPUT0", elem, [None, width])],
    )
    return _model(graph)


def breast_cancer_mlp(hidden: tuple[int, ...] = (16, 8), seed: int = 0) -> onnx.ModelProto:
    """A classifier trained on breast cancer: input [batch, 30] FP32,
    outputs probabilities [batch, 2] FP32 and label [batch] INT64."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    scaler = StandardScaler().fit(x)
    clf = MLPClassifier(hidden_layer_sizes=hidden, max_iter=300, random_state=seed)
    clf.fit(scaler.transform(x), y)

    inits = [
        numpy_helper.from_array(scaler.mean_.astype(np.float32), "mean"),
        numpy_helper.from_array(scaler.scale_.astype(np.float32), "scale"),
    ]
    nodes = [helper.make_node("Sub", ["input", "mean"], ["centred"]),
             helper.make_node("Div", ["centred", "scale"], ["h0"])]
    layers = list(zip(clf.coefs_, clf.intercepts_))
    for i, (w, b) in enumerate(layers):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(b.astype(np.float32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [f"h{i}", f"w{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [f"a{i}"], [f"h{i + 1}"]))
    last = f"a{len(layers) - 1}"
    # sklearn's binary head has one logit: p1 = sigmoid(z), p0 = 1 - p1.
    inits.append(numpy_helper.from_array(np.array([1.0], np.float32), "one"))
    nodes += [
        helper.make_node("Sigmoid", [last], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "breast_cancer_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 30])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
         helper.make_tensor_value_info("label", TensorProto.INT64, [None])],
        initializer=inits,
    )
    return _model(graph)


def diabetes_regressor() -> onnx.ModelProto:
    """Linear regression on diabetes: input [batch, 10] FP64 -> target [batch, 1] FP64."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    x, y = load_diabetes(return_X_y=True)
    reg = LinearRegression().fit(x, y)
    inits = [numpy_helper.from_array(reg.coef_.reshape(-1, 1).astype(np.float64), "w"),
             numpy_helper.from_array(np.array([reg.intercept_], np.float64), "b")]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]),
         helper.make_node("Add", ["m", "b"], ["target"])],
        "diabetes_regressor",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, 10])],
        [helper.make_tensor_value_info("target", TensorProto.DOUBLE, [None, 1])],
        initializer=inits,
    )
    return _model(graph)


def write_model(repo: Path, name: str, model: onnx.ModelProto, *, version: int = 1,
                config: str | None = None) -> Path:
    """Save `model` as <repo>/<name>/<version>/model.onnx (and config.pbtxt if given)."""
    directory = repo / name / str(version)
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(directory / "model.onnx"))
    if config is not None:
        (repo / name / "config.pbtxt").write_text(config)
    return directory / "model.onnx"
