"""config.pbtxt: what the operator writes for each runtime, read back with Triton's schema."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from modelship_operator.builders.modelconfig import (
    build_model_config,
    model_name,
    render_model_config,
    served_version,
)
from tests.unit.operator.bodies import FINE_TUNING, deployment_of, example, triton_spec


def _config_text(spec: dict[str, Any] | None = None, **kwargs: Any) -> str:
    md, _ = deployment_of(spec=spec, **kwargs)
    return render_model_config(build_model_config(md, version=served_version(md)))


def _parsed(spec: dict[str, Any] | None = None, **kwargs: Any) -> mc.ModelConfig:
    """The generated text, parsed the way Triton parses it."""
    return text_format.Parse(_config_text(spec, **kwargs), mc.ModelConfig())


def test_the_generated_text_parses_as_a_triton_model_config() -> None:
    config = _parsed()

    assert config.name == "clf"
    assert config.platform == "onnxruntime_onnx"


@pytest.mark.parametrize(
    ("fmt", "platform"),
    [
        ("onnx", "onnxruntime_onnx"),
        ("torchscript", "pytorch_libtorch"),
        ("savedmodel", "tensorflow_savedmodel"),
    ],
)
def test_the_platform_follows_the_model_format(fmt: str, platform: str) -> None:
    model = {"format": fmt, "storageUri": "s3://bucket/m",
             "inputs": [{"name": "x", "datatype": "FP32", "shape": [4]}],
             "outputs": [{"name": "y", "datatype": "FP32", "shape": [1]}]}

    config = _parsed({"model": model, **triton_spec()})

    assert config.platform == platform


def test_spec_model_name_overrides_the_object_name() -> None:
    md, _ = deployment_of(spec={"model": {"format": "onnx", "storageUri": "pvc://m/a",
                                          "name": "breast_cancer"}})

    assert model_name(md) == "breast_cancer"
    assert _parsed({"model": {"format": "onnx", "storageUri": "pvc://m/a",
                              "name": "breast_cancer"}}).name == "breast_cancer"


def test_without_batching_the_config_has_no_batch_size_and_no_dynamic_batching() -> None:
    config = _parsed()

    assert config.max_batch_size == 0
    assert not config.HasField("dynamic_batching")


def test_batching_sets_max_batch_size_preferred_sizes_and_queue_delay() -> None:
    batching = {"maxBatchSize": 32, "preferredBatchSizes": [8, 16, 32],
                "maxQueueDelayMicroseconds": 250}

    config = _parsed({"runtime": {"batching": batching}})

    assert config.max_batch_size == 32
    assert list(config.dynamic_batching.preferred_batch_size) == [8, 16, 32]
    assert config.dynamic_batching.max_queue_delay_microseconds == 250


def test_batching_with_defaults_only_uses_eight_and_a_hundred_microseconds() -> None:
    config = _parsed({"runtime": {"batching": {}}})

    assert config.max_batch_size == 8
    assert list(config.dynamic_batching.preferred_batch_size) == []
    assert config.dynamic_batching.max_queue_delay_microseconds == 100


def test_runtime_parameters_become_config_parameters_the_server_reads() -> None:
    config = _parsed({"runtime": {"parameters": {"execution_thread": "worker",
                                                 "intra_op_thread_count": "2"}}})

    assert {k: v.string_value for k, v in config.parameters.items()} == {
        "execution_thread": "worker", "intra_op_thread_count": "2"}
    assert not _parsed().parameters


def test_the_server_reads_the_parameters_the_operator_writes() -> None:
    from modelship_serving.runtime.placement import execution_mode
    from modelship_serving.runtime.session import session_options

    config = _parsed({"runtime": {"parameters": {"execution_thread": "worker",
                                                 "intra_op_thread_count": "3"}}})
    params = {k: v.string_value for k, v in config.parameters.items()}

    assert execution_mode(params, "clf") == "worker"
    assert session_options(config, threads=1).intra_op_num_threads == 3


def test_the_instance_group_count_is_runtime_instances_on_cpu_for_onnxruntime() -> None:
    config = _parsed({"runtime": {"instances": 3}})

    assert len(config.instance_group) == 1
    assert config.instance_group[0].count == 3
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU


def test_triton_with_a_gpu_limit_runs_its_instances_on_the_gpu() -> None:
    spec = triton_spec(instances=2, resources={"limits": {"nvidia.com/gpu": 1}})

    group = _parsed(spec).instance_group[0]

    assert group.count == 2
    assert group.kind == mc.ModelInstanceGroup.KIND_GPU


def test_triton_with_a_gpu_request_runs_its_instances_on_the_gpu() -> None:
    spec = triton_spec(resources={"requests": {"nvidia.com/gpu": "1", "cpu": "1"}})

    assert _parsed(spec).instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU


def test_triton_without_a_gpu_runs_its_instances_on_the_cpu() -> None:
    spec = triton_spec(resources={"limits": {"cpu": "2", "memory": "1Gi"}})

    assert _parsed(spec).instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU


def test_triton_without_resources_runs_its_instances_on_the_cpu() -> None:
    assert _parsed(triton_spec()).instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU


def test_inputs_and_outputs_carry_names_shapes_and_mapped_datatypes() -> None:
    model = {
        "format": "onnx", "storageUri": "pvc://models/clf",
        "inputs": [
            {"name": "features", "datatype": "FP32", "shape": [30]},
            {"name": "text", "datatype": "BYTES", "shape": [1]},
            {"name": "ids", "datatype": "INT64", "shape": [-1, 4]},
        ],
        "outputs": [
            {"name": "probabilities", "datatype": "FP64", "shape": [2]},
            {"name": "label", "datatype": "BOOL", "shape": [1]},
        ],
    }

    config = _parsed({"model": model})

    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [
        ("features", mc.TYPE_FP32, [30]),
        ("text", mc.TYPE_STRING, [1]),
        ("ids", mc.TYPE_INT64, [-1, 4]),
    ]
    assert [(t.name, t.data_type, list(t.dims)) for t in config.output] == [
        ("probabilities", mc.TYPE_FP64, [2]),
        ("label", mc.TYPE_BOOL, [1]),
    ]


@pytest.mark.parametrize(
    ("datatype", "expected"),
    [("UINT8", mc.TYPE_UINT8), ("UINT16", mc.TYPE_UINT16), ("UINT32", mc.TYPE_UINT32),
     ("UINT64", mc.TYPE_UINT64), ("INT8", mc.TYPE_INT8), ("INT16", mc.TYPE_INT16),
     ("INT32", mc.TYPE_INT32), ("FP16", mc.TYPE_FP16), ("BYTES", mc.TYPE_STRING)],
)
def test_every_protocol_datatype_maps_to_its_triton_type(datatype: str, expected: int) -> None:
    model = {"format": "onnx", "storageUri": "pvc://models/clf",
             "inputs": [{"name": "x", "datatype": datatype, "shape": [1]}]}

    assert _parsed({"model": model}).input[0].data_type == expected


def test_without_a_pinned_version_the_policy_serves_the_latest_one() -> None:
    config = _parsed()

    assert config.version_policy.WhichOneof("policy_choice") == "latest"
    assert config.version_policy.latest.num_versions == 1


def test_a_pinned_version_becomes_a_specific_version_policy() -> None:
    model = {"format": "onnx", "storageUri": "pvc://models/clf", "version": "3"}

    config = _parsed({"model": model})

    assert config.version_policy.WhichOneof("policy_choice") == "specific"
    assert list(config.version_policy.specific.versions) == [3]


def test_the_triton_example_renders_every_setting_it_asks_for() -> None:
    md, _ = example("triton-gpu-batching.yaml")

    config = text_format.Parse(
        render_model_config(build_model_config(md, version=served_version(md))),
        mc.ModelConfig(),
    )

    assert (config.name, config.platform, config.max_batch_size) == (
        "breast_cancer", "pytorch_libtorch", 128)
    assert list(config.dynamic_batching.preferred_batch_size) == [32, 64, 128]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert (config.instance_group[0].count, config.instance_group[0].kind) == (
        2, mc.ModelInstanceGroup.KIND_GPU)
    assert list(config.version_policy.specific.versions) == [2]


# served_version: which version the config pins.

def _versions(*records: tuple[int, bool]) -> list[dict[str, Any]]:
    return [{"version": v, "promoted": p} for v, p in records]


def test_a_pinned_number_wins_over_promoted_versions() -> None:
    md, _ = deployment_of(
        spec={"model": {"format": "onnx", "storageUri": "pvc://models/clf", "version": "2"},
              "fineTuning": FINE_TUNING},
        status={"servingVersion": 5, "versions": _versions((4, True), (5, True))},
    )

    assert served_version(md) == 2


def test_the_newest_promoted_version_is_served_when_none_is_pinned() -> None:
    md, _ = deployment_of(
        spec={"fineTuning": FINE_TUNING},
        status={"servingVersion": 1,
                "versions": _versions((3, True), (5, False), (4, True), (2, False))},
    )

    assert served_version(md) == 4


def test_promoted_versions_are_pinned_even_without_fine_tuning_in_the_spec() -> None:
    md, _ = deployment_of(status={"versions": _versions((2, True), (3, False))})

    assert served_version(md) == 2


def test_fine_tuning_with_no_promoted_version_pins_the_version_now_serving() -> None:
    md, _ = deployment_of(
        spec={"fineTuning": FINE_TUNING},
        status={"servingVersion": 1, "versions": _versions((2, False))},
    )

    assert served_version(md) == 1


def test_without_fine_tuning_the_serving_version_is_not_pinned() -> None:
    md, _ = deployment_of(status={"servingVersion": 1})

    assert served_version(md) is None


def test_fine_tuning_before_any_version_is_known_pins_nothing() -> None:
    md, _ = deployment_of(spec={"fineTuning": FINE_TUNING}, status={"phase": "Pending"})

    assert served_version(md) is None


def test_no_status_and_no_pinned_number_pins_nothing() -> None:
    md, _ = deployment_of()

    assert served_version(md) is None
