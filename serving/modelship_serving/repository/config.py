"""Model configuration: Triton's config.pbtxt, read with Triton's own schema.

The file is parsed into tritonclient's `model_config_pb2.ModelConfig`, so one
repository serves under either runtime. What the file leaves out is completed
from the ONNX graph the way Triton's auto-complete does it: inputs, outputs,
and batching when every tensor's first dimension is dynamic.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from google.protobuf import json_format, text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from tritonclient.grpc import model_config_pb2 as mc

from modelship_serving.protocol.datatypes import from_config_name, from_onnx_type
from modelship_serving.protocol.errors import InvalidArgument
from modelship_serving.repository.errors import ModelConfigError

log = logging.getLogger(__name__)

CONFIG_FILE = "config.pbtxt"
DEFAULT_MODEL_FILE = "model.onnx"
PLATFORM = "onnxruntime_onnx"
BACKEND = "onnxruntime"

# Triton's default for an auto-completed model that can batch.
DEFAULT_MAX_BATCH_SIZE = 4


def parse_config_text(text: str, *, source: str) -> mc.ModelConfig:
    """A ModelConfig from config.pbtxt text; ModelConfigError naming the line."""
    config = mc.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ModelConfigError(f"{source}: {exc}") from exc
    return config


def parse_config_json(text: str | bytes, *, source: str) -> mc.ModelConfig:
    """A ModelConfig from Triton's JSON form (as a load request may carry it)."""
    config = mc.ModelConfig()
    try:
        json_format.Parse(text, config)
    except json_format.ParseError as exc:
        raise ModelConfigError(f"{source}: {exc}") from exc
    return config


def read_config(model_dir: Path) -> mc.ModelConfig | None:
    """The model's config.pbtxt, or None when the directory has none."""
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ModelConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_config_text(text, source=str(path))


def model_file_name(config: mc.ModelConfig) -> str:
    """The file each version directory holds (default_model_filename or model.onnx);
    ModelConfigError for anything but a plain file name."""
    name = config.default_model_filename or DEFAULT_MODEL_FILE
    if "/" in name or "\\" in name or name in (".", ".."):
        raise ModelConfigError(
            f"default_model_filename must name a file in the version directory, "
            f"got {name!r:.80}")
    return name


def complete_config(config: mc.ModelConfig, *, name: str, onnx_path: Path) -> mc.ModelConfig:
    """A copy of `config` completed and checked against the ONNX graph at `onnx_path`.

    Raises ModelConfigError when the file and the graph disagree (a name the
    graph lacks, a different datatype, a rank that cannot match).
    """
    import onnx  # deferred: the codecs and the router never need it

    try:
        graph = onnx.load(str(onnx_path), load_external_data=False).graph
    except Exception as exc:  # onnx raises DecodeError, OSError, ValueError...
        raise ModelConfigError(f"{onnx_path}: not a readable ONNX model: {exc}") from exc
    initializers = {init.name for init in graph.initializer}
    graph_inputs = [_graph_tensor(v) for v in graph.input if v.name not in initializers]
    graph_outputs = [_graph_tensor(v) for v in graph.output]

    done = mc.ModelConfig()
    done.CopyFrom(config)
    if done.name and done.name != name:
        raise ModelConfigError(
            f"config.pbtxt names the model '{done.name}' but its directory is '{name}'"
        )
    done.name = name
    if done.platform and done.platform != PLATFORM:
        raise ModelConfigError(
            f"platform '{done.platform}' is not served here; only '{PLATFORM}' is"
        )
    if done.backend and done.backend != BACKEND:
        raise ModelConfigError(f"backend '{done.backend}' is not served here; only '{BACKEND}'")
    done.platform = PLATFORM
    done.backend = BACKEND

    # max_batch_size is a proto3 scalar: 0 means "not set" unless tensors are declared.
    if config.max_batch_size == 0 and not _declares_dims(config):
        if _can_batch(graph_inputs + graph_outputs):
            done.max_batch_size = DEFAULT_MAX_BATCH_SIZE
            if not done.HasField("dynamic_batching"):
                done.dynamic_batching.SetInParent()
    batching = done.max_batch_size > 0

    _check_limits(done)
    _complete_tensors(done.input, graph_inputs, batching, kind="input", onnx_path=onnx_path)
    _complete_tensors(done.output, graph_outputs, batching, kind="output", onnx_path=onnx_path)
    if not done.instance_group:
        group = done.instance_group.add()
        group.count = 1
        group.kind = mc.ModelInstanceGroup.KIND_CPU
    if not done.HasField("version_policy"):
        done.version_policy.latest.num_versions = 1
    return done


# Past these a config is a typo: each instance is a thread, and a request may
# wait that long in the batcher's queue.
MAX_INSTANCES = 64
MAX_QUEUE_DELAY_US = 10_000_000


def _check_limits(config: mc.ModelConfig) -> None:
    """ModelConfigError for values no server should act on."""
    counts = [g.count for g in config.instance_group]
    if any(c < 0 for c in counts) or sum(max(c, 1) for c in counts) > MAX_INSTANCES:
        raise ModelConfigError(
            f"instance_group counts must be from 0 to {MAX_INSTANCES} instances in all, "
            f"got {counts}")
    delay = config.dynamic_batching.max_queue_delay_microseconds
    if delay > MAX_QUEUE_DELAY_US:
        raise ModelConfigError(
            f"dynamic_batching max_queue_delay_microseconds must be at most "
            f"{MAX_QUEUE_DELAY_US} (10 s), got {delay}")
    for kind, tensors in (("input", config.input), ("output", config.output)):
        for tensor in tensors:
            dims = list(tensor.dims) + list(tensor.reshape.shape)
            if any(d < -1 for d in dims):
                raise ModelConfigError(
                    f"{kind} '{tensor.name}': dimensions are sizes, or -1 for any size; "
                    f"got {dims}")


def _declares_dims(config: mc.ModelConfig) -> bool:
    """True when config.pbtxt lists tensors, which fixes its batching choice."""
    return bool(config.input) or bool(config.output)


def _graph_tensor(value: Any) -> tuple[str, int, list[int]]:
    """(name, ONNX element type, dims with -1 for symbolic ones) of a graph value."""
    tensor_type = value.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
    return value.name, tensor_type.elem_type, dims


def _fits(tensor: Any, graph_dims: list[int], batching: bool) -> bool:
    """Whether a declared tensor's shape (its reshape when it has one, as the graph
    sees it) can match the graph's; a graph that states no shape fits anything."""
    if not graph_dims:
        return True
    dims = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
    declared = ([-1] if batching else []) + dims
    return len(declared) == len(graph_dims) and all(
        d == -1 or g == -1 or d == g for d, g in zip(declared, graph_dims))


def _can_batch(tensors: list[tuple[str, int, list[int]]]) -> bool:
    return bool(tensors) and all(dims and dims[0] == -1 for _, _, dims in tensors)


def _complete_tensors(
    declared: Any,
    graph: list[tuple[str, int, list[int]]],
    batching: bool,
    *,
    kind: str,
    onnx_path: Path,
) -> None:
    """Fill missing tensors from the graph and check declared ones against it."""
    by_name = {name: (elem, dims) for name, elem, dims in graph}
    for tensor in declared:
        if tensor.name not in by_name:
            raise ModelConfigError(
                f"config.pbtxt declares {kind} '{tensor.name}' but the ONNX graph has "
                f"{kind}s {sorted(by_name)}"
            )
        elem, dims = by_name[tensor.name]
        try:
            graph_type = from_onnx_type(elem).config_name
            from_config_name(mc.DataType.Name(tensor.data_type))
        except InvalidArgument as exc:
            raise ModelConfigError(f"{kind} '{tensor.name}': {exc.message}") from None
        if tensor.data_type != mc.DataType.Value(graph_type):
            raise ModelConfigError(
                f"{kind} '{tensor.name}' is {mc.DataType.Name(tensor.data_type)} in "
                f"config.pbtxt but {graph_type} in {onnx_path.name}"
            )
        if not tensor.dims:
            tensor.dims.extend(dims[1:] if batching else dims)
        elif not _fits(tensor, dims, batching):
            shape = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
            raise ModelConfigError(
                f"{kind} '{tensor.name}' has shape {([-1] if batching else []) + shape} in "
                f"config.pbtxt (-1: any size) but {dims} in {onnx_path.name}: no request "
                f"could fit both")

    names = {t.name for t in declared}
    if declared and kind == "input" and len(names) < len(graph):
        missing = sorted(set(by_name) - names)
        raise ModelConfigError(f"config.pbtxt leaves out graph inputs {missing}")
    for name, elem, dims in graph:
        if name in names:
            continue
        try:
            type_name = from_onnx_type(elem).config_name
        except InvalidArgument as exc:
            raise ModelConfigError(f"{kind} '{name}': {exc.message}") from None
        tensor = declared.add()
        tensor.name = name
        tensor.data_type = mc.DataType.Value(type_name)
        if batching:
            if not dims or dims[0] != -1:
                raise ModelConfigError(
                    f"max_batch_size is set but {kind} '{name}' has no dynamic first "
                    f"dimension (shape {dims})"
                )
            dims = dims[1:]
        tensor.dims.extend(dims)


def config_to_json(message: Message) -> dict[str, Any]:
    """Triton's JSON form of a protobuf message: field names as in the .proto,
    defaults printed, 64-bit integers as JSON numbers rather than strings."""
    raw = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    return _int64_as_numbers(message, raw)


def _int64_as_numbers(message: Message, raw: dict[str, Any]) -> dict[str, Any]:
    """Walk a MessageToDict result and turn int64 strings back into ints."""
    for field in message.DESCRIPTOR.fields:
        key = field.name
        if key not in raw:
            continue
        value = getattr(message, key)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if _is_map(field):
                value_field = field.message_type.fields_by_name["value"]
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    raw[key] = {k: _int64_as_numbers(value[k], raw[key][k]) for k in raw[key]}
                elif value_field.type in _INT64_TYPES:
                    raw[key] = {k: int(v) for k, v in raw[key].items()}
            elif _is_repeated(field):
                raw[key] = [_int64_as_numbers(m, r) for m, r in zip(value, raw[key])]
            else:
                raw[key] = _int64_as_numbers(value, raw[key])
        elif field.type in _INT64_TYPES:
            raw[key] = [int(v) for v in raw[key]] if _is_repeated(field) else int(raw[key])
    return raw


_INT64_TYPES = {
    FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64,
}


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _is_map(field: FieldDescriptor) -> bool:
    return (field.type == FieldDescriptor.TYPE_MESSAGE and _is_repeated(field)
            and field.message_type.GetOptions().map_entry)
