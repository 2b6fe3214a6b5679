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
    message = service_pb2.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version,
        id=response.id,
    )
    for out in response.outputs:
        tensor = message.outputs.add()
        tensor.name = out.name
        tensor.datatype = out.datatype
        tensor.shape.extend(out.shape)
        message.raw_output_contents.append(encode_raw(out.data, DATATYPES[out.datatype]))
    for key, value in response.parameters.items():
        set_parameter(message.parameters[key], value)
    return message


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
