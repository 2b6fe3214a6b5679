"""config.pbtxt parsing with Triton's schema, auto-completion and version policies."""

from __future__ import annotations

import pytest
from tests.unit.serving.graphs import identity, save
from onnx import TensorProto
from tritonclient.grpc import model_config_pb2 as mc

from modelship_serving.repository import ModelConfigError, ModelRepository, select_versions
from modelship_serving.repository.config import (
    complete_config,
    config_to_json,
    parse_config_text,
)


def policy(text: str) -> mc.ModelVersionPolicy:
    return parse_config_text(f"version_policy: {{ {text} }}", source="t").version_policy


def test_version_policies_select_like_triton():
    available = [1, 2, 5, 7]
    assert select_versions(policy("latest { num_versions: 2 }"), available) == [5, 7]
    assert select_versions(policy("all { }"), available) == available
    assert select_versions(policy("specific { versions: [2, 5] }"), available) == [2, 5]
    with pytest.raises(ModelConfigError, match=r"versions \[3\] that have no model file"):
        select_versions(policy("specific { versions: [3] }"), available)


def test_a_missing_config_is_completed_from_the_graph(repo):
    path = save(repo, "m", identity(TensorProto.INT64))
    config = complete_config(mc.ModelConfig(), name="m", onnx_path=path)
    assert config.max_batch_size == 4 and config.HasField("dynamic_batching")
    assert config.input[0].data_type == mc.TYPE_INT64 and list(config.input[0].dims) == [4]
    assert config.platform == "onnxruntime_onnx"
    assert config.version_policy.latest.num_versions == 1


def test_a_graph_without_a_dynamic_first_dimension_does_not_batch(repo):
    path = save(repo, "m", identity(dims=[2, 4]))
    config = complete_config(mc.ModelConfig(), name="m", onnx_path=path)
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [2, 4]


def test_config_that_disagrees_with_the_graph_is_refused(repo):
    path = save(repo, "m", identity())
    wrong = parse_config_text('input [{ name: "INPUT0" data_type: TYPE_INT32 dims: [4] }]',
                              source="t")
    with pytest.raises(ModelConfigError, match="TYPE_INT32 in config.pbtxt but TYPE_FP32"):
        complete_config(wrong, name="m", onnx_path=path)
    with pytest.raises(ModelConfigError, match="names the model 'other'"):
        complete_config(parse_config_text('name: "other"', source="t"), name="m",
                        onnx_path=path)


def test_syntax_errors_name_the_file():
    with pytest.raises(ModelConfigError, match="config.pbtxt: 1:17"):
        parse_config_text("max_batch_size: [", source="config.pbtxt")


def test_json_form_writes_int64_as_numbers():
    config = parse_config_text('max_batch_size: 8 input [{ name: "a" dims: [-1, 3] }]',
                               source="t")
    as_json = config_to_json(config)
    assert as_json["input"][0]["dims"] == [-1, 3]
    assert as_json["max_batch_size"] == 8


def test_the_repository_lists_versions_that_hold_a_model_file(repo):
    save(repo, "m", identity(), version=1)
    save(repo, "m", identity(), version=3)
    (repo / "m" / "2").mkdir()
    (repo / ".staging-x").mkdir()
    repository = ModelRepository(repo)
    assert repository.model_names() == ["m"]
    assert sorted(repository.read("m").versions) == [1, 3]
