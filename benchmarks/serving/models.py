"""The benchmark models, built here so the benchmark needs nothing downloaded.

- mlp: breast cancer (30 features), a 3-layer MLP trained by scikit-learn,
  its weights written into a MatMul/Add/Relu ONNX graph. In-process
  onnxruntime answers it in about ten microseconds: the protocol is the cost.
- cnn: a small convolutional network on 3x32x32 images (four 3x3 conv
  layers, 32 to 256 channels, ~0.4M parameters, ~115 MFLOPs a sample) with
  seeded random weights: compute dominates, but a request's protocol work is
  still a fifth of its inference.
- resnet18: the ResNet-18 layout (11.7M parameters) on 3x112x112 images, the
  usual face-crop size (~0.45 GFLOPs a sample), seeded random weights and
  inference-mode batch norm folded into the convolutions: the mid-size model.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _finish(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def mlp() -> tuple[onnx.ModelProto, np.ndarray]:
    """The breast-cancer MLP and a sample of real rows (FP32)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    scaler = StandardScaler().fit(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=300, random_state=0)
        clf.fit(scaler.transform(x), y)
    inits = [numpy_helper.from_array(scaler.mean_.astype(np.float32), "mean"),
             numpy_helper.from_array(scaler.scale_.astype(np.float32), "scale")]
    nodes = [helper.make_node("Sub", ["input", "mean"], ["c"]),
             helper.make_node("Div", ["c", "scale"], ["h0"])]
    layers = list(zip(clf.coefs_, clf.intercepts_))
    for i, (w, b) in enumerate(layers):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(b.astype(np.float32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [f"h{i}", f"w{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [f"a{i}"], [f"h{i + 1}"]))
    nodes.append(helper.make_node("Sigmoid", [f"a{len(layers) - 1}"], ["probability"]))
    graph = helper.make_graph(
        nodes, "breast_cancer_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 30])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None, 1])],
        initializer=inits)
    return _finish(graph), x.astype(np.float32)


def cnn(seed: int = 0) -> tuple[onnx.ModelProto, np.ndarray]:
    """The mid-size CNN and a sample of random images (FP32, NCHW)."""
    rng = np.random.default_rng(seed)
    channels = [3, 32, 64, 128, 256]
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    current = "image"
    for i, (cin, cout) in enumerate(zip(channels, channels[1:])):
        scale = np.sqrt(2.0 / (cin * 9))
        inits += [numpy_helper.from_array(
                      (rng.standard_normal((cout, cin, 3, 3)) * scale).astype(np.float32),
                      f"k{i}"),
                  numpy_helper.from_array(np.zeros(cout, np.float32), f"kb{i}")]
        nodes += [helper.make_node("Conv", [current, f"k{i}", f"kb{i}"], [f"conv{i}"],
                                   pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"])]
        current = f"relu{i}"
        if i in (1, 2):
            nodes.append(helper.make_node("MaxPool", [current], [f"pool{i}"],
                                          kernel_shape=[2, 2], strides=[2, 2]))
            current = f"pool{i}"
    graph = _classifier(nodes, inits, rng, current, "cnn", channels=256, classes=10,
                        scale=0.05, size=32)
    images = rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
    return _finish(graph), images


def _classifier(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto],
                rng: np.random.Generator, features: str, name: str, *, channels: int,
                classes: int, scale: float, size: int) -> onnx.GraphProto:
    """Global average pooling, a dense layer and softmax on top of `features`,
    and the graph of an image model taking 3 x size x size images."""
    inits += [numpy_helper.from_array(
                  (rng.standard_normal((channels, classes)) * scale).astype(np.float32), "fc"),
              numpy_helper.from_array(np.zeros(classes, np.float32), "fcb")]
    nodes += [helper.make_node("GlobalAveragePool", [features], ["gap"]),
              helper.make_node("Flatten", ["gap"], ["flat"]),
              helper.make_node("MatMul", ["flat", "fc"], ["logits_raw"]),
              helper.make_node("Add", ["logits_raw", "fcb"], ["logits"]),
              helper.make_node("Softmax", ["logits"], ["scores"], axis=1)]
    return helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 3, size, size])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, classes])],
        initializer=inits)


def _conv(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], rng: np.random.Generator,
          name: str, x: str, cin: int, cout: int, kernel: int, stride: int, relu: bool) -> str:
    """A convolution (batch norm folded in, He-initialised) and an optional ReLU."""
    scale = np.sqrt(2.0 / (cin * kernel * kernel))
    inits += [numpy_helper.from_array(
                  (rng.standard_normal((cout, cin, kernel, kernel)) * scale).astype(np.float32),
                  f"{name}_w"),
              numpy_helper.from_array(np.zeros(cout, np.float32), f"{name}_b")]
    pad = kernel // 2
    nodes.append(helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [name],
                                  pads=[pad] * 4, strides=[stride, stride]))
    if not relu:
        return name
    nodes.append(helper.make_node("Relu", [name], [f"{name}_relu"]))
    return f"{name}_relu"


def resnet18(seed: int = 0, size: int = 112) -> tuple[onnx.ModelProto, np.ndarray]:
    """ResNet-18 (basic blocks 2-2-2-2, 64 to 512 channels) and random images."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    x = _conv(nodes, inits, rng, "stem", "image", 3, 64, 7, 2, relu=True)
    nodes.append(helper.make_node("MaxPool", [x], ["stem_pool"], kernel_shape=[3, 3],
                                  strides=[2, 2], pads=[1, 1, 1, 1]))
    x, cin = "stem_pool", 64
    for stage, cout in enumerate([64, 128, 256, 512]):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            name = f"s{stage}b{block}"
            h = _conv(nodes, inits, rng, f"{name}_c1", x, cin, cout, 3, stride, relu=True)
            h = _conv(nodes, inits, rng, f"{name}_c2", h, cout, cout, 3, 1, relu=False)
            shortcut = x
            if stride != 1 or cin != cout:
                shortcut = _conv(nodes, inits, rng, f"{name}_down", x, cin, cout, 1, stride,
                                 relu=False)
            nodes += [helper.make_node("Add", [h, shortcut], [f"{name}_sum"]),
                      helper.make_node("Relu", [f"{name}_sum"], [f"{name}_out"])]
            x, cin = f"{name}_out", cout
    graph = _classifier(nodes, inits, rng, x, "resnet18", channels=512, classes=1000,
                        scale=0.02, size=size)
    images = rng.standard_normal((16, 3, size, size)).astype(np.float32)
    return _finish(graph), images


def write(repo: Path, name: str, model: onnx.ModelProto, config: str) -> Path:
    directory = repo / name / "1"
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(directory / "model.onnx"))
    (repo / name / "config.pbtxt").write_text(config)
    return directory / "model.onnx"
