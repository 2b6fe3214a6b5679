"""Triton's ``config.pbtxt`` for a ModelDeployment, checked with Triton's schema.

One file serves both runtimes: the storage initializer writes it next to the
model, Modelship's ONNX Runtime server and Triton read it alike. The text is
generated from a ``ModelConfig`` protobuf message (the ``model_config_pb2``
that tritonclient ships), so a field name or an enum value that Triton does
not know cannot reach a pod: building the message would fail first.
"""

from __future__ import annotations

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from modelship_operator.api.deployment import ModelDeployment
from modelship_operator.api.serving import TensorSpec

PLATFORMS = {
    "onnx": "onnxruntime_onnx",
    "torchscript": "pytorch_libtorch",
    "savedmodel": "tensorflow_savedmodel",
}
_DATA_TYPES = {
    "BOOL": mc.TYPE_BOOL, "UINT8": mc.TYPE_UINT8, "UINT16": mc.TYPE_UINT16,
    "UINT32": mc.TYPE_UINT32, "UINT64": mc.TYPE_UINT64, "INT8": mc.TYPE_INT8,
    "INT16": mc.TYPE_INT16, "INT32": mc.TYPE_INT32, "INT64": mc.TYPE_INT64,
    "FP16": mc.TYPE_FP16, "FP32": mc.TYPE_FP32, "FP64": mc.TYPE_FP64,
    "BYTES": mc.TYPE_STRING,
}


class ModelConfigError(ValueError):
    """The generated config.pbtxt is not one Triton would accept."""


def model_name(md: ModelDeployment) -> str:
    return md.spec.model.name or md.metadata.name or ""


def served_version(md: ModelDeployment) -> int | None:
    """The version to pin, or None to serve the newest stored one.

    A number in spec.model.version wins. Otherwise, once fine-tuning has
    recorded versions, the newest promoted one is pinned: a version that
    failed the gate lies in the same repository and "latest" would serve it.
    """
    version = md.spec.model.version
    if version != "latest":
        return int(version)
    status = md.status
    if status is None:
        return None
    promoted = [v.version for v in status.versions or [] if v.promoted]
    if promoted:
        return max(promoted)
    if md.spec.fine_tuning is not None and status.serving_version:
        return status.serving_version
    return None


def _tensor(spec: TensorSpec, message: mc.ModelInput | mc.ModelOutput) -> None:
    message.name = spec.name
    message.data_type = _DATA_TYPES[spec.datatype]
    message.dims.extend(spec.shape)


def build_model_config(md: ModelDeployment, *, version: int | None = None) -> mc.ModelConfig:
    """The ModelConfig message for ``md``; ``version`` pins one version when given."""
    spec = md.spec
    config = mc.ModelConfig(name=model_name(md), platform=PLATFORMS[spec.model.format])

    batching = spec.runtime.batching
    if batching is not None:
        config.max_batch_size = batching.max_batch_size
        config.dynamic_batching.max_queue_delay_microseconds = (
            batching.max_queue_delay_microseconds
        )
        config.dynamic_batching.preferred_batch_size.extend(batching.preferred_batch_sizes or [])

    gpus = spec.runtime.kind == "triton" and spec.runtime.resources is not None and (
        spec.runtime.resources.gpus()
    )
    group = config.instance_group.add()
    group.count = spec.runtime.instances
    group.kind = mc.ModelInstanceGroup.KIND_GPU if gpus else mc.ModelInstanceGroup.KIND_CPU

    for key, value in sorted((spec.runtime.parameters or {}).items()):
        config.parameters[key].string_value = value

    for tensor in spec.model.inputs or []:
        _tensor(tensor, config.input.add())
    for tensor in spec.model.outputs or []:
        _tensor(tensor, config.output.add())

    if version is None:
        config.version_policy.latest.num_versions = 1
    else:
        config.version_policy.specific.versions.append(version)
    return config


def render_model_config(config: mc.ModelConfig) -> str:
    """config.pbtxt text, re-parsed with Triton's schema before it is returned."""
    text = text_format.MessageToString(config)
    try:
        text_format.Parse(text, mc.ModelConfig())
    except text_format.ParseError as exc:  # pragma: no cover - a bug in the builder
        raise ModelConfigError(f"generated config.pbtxt does not parse: {exc}") from exc
    return text
