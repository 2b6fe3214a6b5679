"""Tiny ONNX graphs for the serving unit tests, written with onnx.helper."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper


def identity(elem: int = TensorProto.FLOAT, dims: list[int | None] | None = None
             ) -> onnx.ModelProto:
    dims = [None, 4] if dims is None else dims
    graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])], "identity",
        [helper.make_tensor_value_info("INPUT0", elem, dims)],
        [helper.make_tensor_value_info("OUTPUT0", elem, dims)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def save(repo: Path, name: str, model: onnx.ModelProto, version: int = 1,
         config: str | None = None) -> Path:
    directory = repo / name / str(version)
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(directory / "model.onnx"))
    if config is not None:
        (repo / name / "config.pbtxt").write_text(config)
    return directory / "model.onnx"
