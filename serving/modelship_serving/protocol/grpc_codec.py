"""ModelInferRequest / ModelInferResponse of Triton's gRPC service, decoded.

Inputs come either all as `raw_input_contents` (one entry per input, in input
order; tritonclient's default) or as typed `contents`. Outputs always go back
as `raw_output_contents`, as Triton sends them, which every client reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tritonclient.grpc import service_pb2

from modelship_serving.protocol.datatypes import DATATYPES, Datatype
from modelship_serving.protocol.errors import InvalidArgument, Unsupported
from modelship_serving.protocol.tensors import (
    as_datatype,
    decode_raw,
    element_count,
    encode_raw,
    reshape,
)
from modelship_serving.protocol.types import (
    InferInput,
    InferRequest,
    InferResponse,
    RawTensor,
    RequestedOutput,
)

# The typed `contents` field that carries each datatype (FP16 only travels raw).
_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def parameter_value(param: service_pb2.InferParameter) -> Any:
    """The Python value held by an InferParameter's oneof."""
    which = param.WhichOneof("parameter_choice")
    return None if which is None else getattr(param, which)


def decode_request(request: service_pb2.ModelInferRequest) -> InferRequest:
    """An InferRequest from a ModelInferRequest; InvalidArgument when malformed."""
    params = ({key: parameter_value(value) for key, value in request.parameters.items()}
              if request.parameters else {})
    if "shared_memory_region" in params:
        raise Unsupported("shared-memory tensors are not supported by this server")
    if not request.model_name:
        raise InvalidArgument("inference request must name a model (model_name)")
    if not request.inputs:
        raise InvalidArgument("inference request must have at least one input")
    raw_contents = request.raw_input_contents
    if raw_contents and len(raw_contents) != len(request.inputs):
        raise InvalidArgument(
            f"raw_input_contents has {len(raw_contents)} entries for "
            f"{len(request.inputs)} inputs; send raw data for every input or for none"
        )

    inputs: list[InferInput] = []
    seen: set[str] = set()
    for index, tensor in enumerate(request.inputs):
        name = tensor.name
        if not name:
            raise InvalidArgument(f"input #{index} needs a name")
        if name in seen:
            raise InvalidArgument(f"input '{name}' appears more than once")
        seen.add(name)
        if tensor.parameters and "shared_memory_region" in tensor.parameters:
            raise Unsupported(f"input '{name}': shared-memory tensors are not supported")
        dt = as_datatype(tensor.datatype, tensor=name)
        shape = tuple(tensor.shape)  # protobuf int64s are Python ints
        if raw_contents:
            if tensor.HasField("contents"):
                raise InvalidArgument(
                    f"input '{name}' has typed contents while the request sends "
                    f"raw_input_contents; send one or the other")
            array = decode_raw(dt, shape, raw_contents[index], name=name)
        else:
            array = _decode_contents(dt, shape, tensor, name=name)
        inputs.append(InferInput(name, dt.name, shape, array))

    outputs = None
    if request.outputs:
        outputs = []
        for out in request.outputs:
            if "classification" in out.parameters:
                raise Unsupported(f"output '{out.name}': the classification extension "
                                  f"is not supported")
            if "shared_memory_region" in out.parameters:
                raise Unsupported(f"output '{out.name}': shared-memory tensors are "
                                  f"not supported")
            outputs.append(RequestedOutput(out.name, binary=True))
    return InferRequest(
        model_name=request.model_name,
        model_version=request.model_version,
        id=request.id,
        inputs=inputs,
        outputs=outputs,
        binary_outputs_by_default=True,
        parameters=params,
    )


def plain_request(request: service_pb2.ModelInferRequest
                  ) -> tuple[list[RawTensor], list[RequestedOutput] | None] | None:
    """The raw inputs and requested outputs of a request with nothing but those
    (no parameters, no typed contents), for the core's direct route; else None."""
    raw_contents = request.raw_input_contents
    if request.parameters or not raw_contents or len(raw_contents) != len(request.inputs):
        return None
    tensors: list[RawTensor] = []
    for tensor, raw in zip(request.inputs, raw_contents):
        if tensor.parameters or tensor.HasField("contents"):
            return None
        tensors.append((tensor.name, tensor.datatype, tensor.shape, raw))
    outputs = None
    if request.outputs:
        outputs = []
        for out in request.outputs:
            if out.parameters:
                return None
            outputs.append(RequestedOutput(out.name, binary=True))
    return tensors, outputs


def _decode_contents(dt: Datatype, shape: tuple[int, ...],
                     tensor: service_pb2.ModelInferRequest.InferInputTensor,
                     *, name: str) -> np.ndarray:
    """An array from the typed `contents` of an input tensor."""
    count = element_count(shape, name=name)
    field = _CONTENTS_FIELD.get(dt.name)
    if field is None:
        raise InvalidArgument(
            f"input '{name}': {dt.name} data must be sent in raw_input_contents"
        )
    others = sorted(f.name for f, _ in tensor.contents.ListFields() if f.name != field)
    if others:
        raise InvalidArgument(
            f"input '{name}': {dt.name} data goes in contents.{field}, the request also "
            f"fills contents.{', contents.'.join(others)}")
    values = getattr(tensor.contents, field)
    if len(values) != count:
        raise InvalidArgument(
            f"input '{name}': shape {list(shape)} needs {count} elements, "
            f"got {len(values)} in contents.{field}"
        )
    if dt.name == "BYTES":
        out = np.empty(count, dtype=np.object_)
        out[:] = list(values)
        return reshape(out, shape, name=name)
    array = np.array(values)
    if count and dt.dtype.kind in "iu":
        info = np.iinfo(dt.dtype)
        if int(array.min()) < info.min or int(array.max()) > info.max:
            raise InvalidArgument(
                f"input '{name}': values out of range for {dt.name} [{info.min}, {info.max}]"
            )
    return reshape(array.astype(dt.dtype), shape, name=name)


def encode_response(response: InferResponse) -> service_pb2.ModelInferResponse:
    """A ModelInferResponse carrying every output as raw contents."""
    message = _metadata(response)
    message.id = response.id
    for out in response.outputs:
        message.raw_output_contents.append(encode_raw(out.data, DATATYPES[out.datatype]))
    for key, value in response.parameters.items():
        set_parameter(message.parameters[key], value)
    return message


def _metadata(response: InferResponse) -> service_pb2.ModelInferResponse:
    """The model, version and output tensors' names, datatypes and shapes."""
    message = service_pb2.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version,
    )
    for out in response.outputs:
        tensor = message.outputs.add()
        tensor.name = out.name
        tensor.datatype = out.datatype
        tensor.shape.extend(out.shape)
    return message


# Serialised _metadata by (model, version, outputs): a model answers in few shapes.
_PREFIXES: dict[tuple[str, str, tuple[tuple[str, str, tuple[int, ...]], ...]], bytes] = {}
_PREFIXES_KEPT = 256
_ID_FIELD = 3
_RAW_OUTPUT_FIELD = 6


def serialize_response(response: InferResponse) -> bytes:
    """`encode_response(response).SerializeToString()`, cheaper.

    A serialised protobuf message followed by more fields is the message with
    those fields merged in, so the metadata, which repeats from one request to
    the next, is serialised once and kept; only the id and the raw outputs are
    written per response.
    """
    if response.parameters:
        return encode_response(response).SerializeToString()
    key = (response.model_name, response.model_version,
           tuple([(o.name, o.datatype, o.shape) for o in response.outputs]))
    prefix = _PREFIXES.get(key)
    if prefix is None:
        if len(_PREFIXES) >= _PREFIXES_KEPT:
            _PREFIXES.clear()
        prefix = _PREFIXES[key] = _metadata(response).SerializeToString()
    parts = [prefix]
    if response.id:
        _length_delimited(parts, _ID_FIELD, response.id.encode())
    for out in response.outputs:
        _length_delimited(parts, _RAW_OUTPUT_FIELD,
                          encode_raw(out.data, DATATYPES[out.datatype]))
    return b"".join(parts)


def _length_delimited(parts: list[bytes], field: int, payload: bytes) -> None:
    """Append one protobuf field of wire type 2 (bytes, strings): its tag and length,
    then the payload itself (joined once, with the rest, never copied twice)."""
    size = len(payload)
    head = bytearray(((field << 3) | 2,))
    while size > 0x7F:
        head.append((size & 0x7F) | 0x80)
        size >>= 7
    head.append(size)
    parts.append(bytes(head))
    parts.append(payload)


def set_parameter(param: service_pb2.InferParameter, value: Any) -> None:
    """Store a Python value in an InferParameter's oneof."""
    if isinstance(value, bool):
        param.bool_param = value
    elif isinstance(value, int):
        param.int64_param = value
    elif isinstance(value, float):
        param.double_param = value
    else:
        param.string_param = str(value)
