"""The HTTP/REST inference body, with Triton's binary tensor data extension.

A request body is a JSON header, optionally followed by the raw bytes of the
inputs that declare `parameters.binary_data_size`, in input order; the
`Inference-Header-Content-Length` header says where the JSON ends. Responses
use the same framing for outputs asked for with `binary_data`. This module
knows the framing and nothing about models, so the router reuses it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from modelship_serving.protocol.datatypes import DATATYPES
from modelship_serving.protocol.errors import InvalidArgument, Unsupported
from modelship_serving.protocol.tensors import (
    as_datatype,
    decode_json,
    decode_raw,
    encode_json,
    encode_raw,
    parse_shape,
)
from modelship_serving.protocol.types import (
    InferInput,
    InferRequest,
    InferResponse,
    RawTensor,
    RequestedOutput,
)

HEADER_LENGTH = "Inference-Header-Content-Length"

_stdlib_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False,
                                 allow_nan=False).encode


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, as every response body is written.

    orjson writes it (a tenth of the stdlib's time, which counts for small
    models). Non-finite numbers never get here (`encode_json` refuses them,
    since orjson would write null); a type orjson does not know goes to the
    stdlib encoder.
    """
    try:
        return orjson.dumps(value)
    except TypeError:
        return _stdlib_dumps(value).encode("utf-8")


def parse_header_length(raw: str | bytes | None, body_size: int) -> int | None:
    """The JSON header's length from its HTTP header, checked against the body."""
    if raw is None:
        return None
    text = raw.strip() if isinstance(raw, str) else raw.decode("latin-1").strip()
    if not (text.isascii() and text.isdigit()):  # int() would take "+9", "9_4", "٩"
        raise InvalidArgument(f"{HEADER_LENGTH} must be an integer, got {raw!r:.40}")
    length = int(text)
    if length < 0 or length > body_size:
        shown = str(length) if len(str(length)) <= 20 else f"{str(length)[:20]}..."
        raise InvalidArgument(
            f"{HEADER_LENGTH} is {shown} but the request body has {body_size} bytes"
        )
    if length == 0:
        raise InvalidArgument(f"{HEADER_LENGTH} is 0: the request has no JSON header")
    return length


def load_json_object(raw: bytes | memoryview, *, what: str) -> dict[str, Any]:
    """A JSON object from UTF-8 bytes, or InvalidArgument saying why it is not one.

    Strict RFC 8259: no NaN or Infinity (send non-finite numbers as binary
    data), no lone surrogates, integers within 64 bits.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {str(exc):.200}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def read_header(body: bytes, header_length: int | None) -> dict[str, Any]:
    """The JSON header of an inference body (all of it without binary data)."""
    json_end = len(body) if header_length is None else header_length
    return load_json_object(memoryview(body)[:json_end], what="inference request")


def plain_request(header: dict[str, Any], body: bytes, header_length: int | None
                  ) -> tuple[list[RawTensor], list[RequestedOutput] | None, bool, str] | None:
    """(raw inputs, requested outputs, binary output default, id) of a request
    with nothing but binary inputs, for the core's direct route; else None."""
    params = header.get("parameters")
    binary_default = False
    if params:
        if type(params) is not dict or params.keys() != {"binary_data_output"}:
            return None
        binary_default = params["binary_data_output"]
        if type(binary_default) is not bool:
            return None
    request_id = header.get("id", "")
    raw_inputs = header.get("inputs")
    if header_length is None or type(request_id) is not str or type(raw_inputs) is not list:
        return None
    view = memoryview(body)
    offset = header_length
    tensors: list[RawTensor] = []
    for raw in raw_inputs:
        if type(raw) is not dict or "data" in raw:
            return None
        name, datatype, shape = raw.get("name"), raw.get("datatype"), raw.get("shape")
        tensor_params = raw.get("parameters")
        if (type(name) is not str or type(datatype) is not str or type(shape) is not list
                or type(tensor_params) is not dict
                or tensor_params.keys() != {"binary_data_size"}):
            return None
        size = tensor_params["binary_data_size"]
        if type(size) is not int or size < 0 or offset + size > len(body):
            return None
        tensors.append((name, datatype, shape, view[offset:offset + size]))
        offset += size
    if offset != len(body):
        return None
    outputs = None
    raw_outputs = header.get("outputs")
    if raw_outputs is not None:
        if type(raw_outputs) is not list:
            return None
        outputs = []
        for item in raw_outputs:
            if type(item) is not dict or type(item.get("name")) is not str:
                return None
            binary = binary_default
            out_params = item.get("parameters")
            if out_params is not None:
                if type(out_params) is not dict or not out_params.keys() <= {"binary_data"}:
                    return None
                binary = out_params.get("binary_data", binary_default)
                if type(binary) is not bool:
                    return None
            outputs.append(RequestedOutput(item["name"], binary))
    return tensors, outputs, binary_default, request_id


def decode_request(
    body: bytes,
    header_length: int | None,
    *,
    model_name: str,
    model_version: str,
    header: dict[str, Any] | None = None,
) -> InferRequest:
    """An InferRequest from an HTTP inference body; InvalidArgument when malformed.

    `header` is the body's JSON header when the caller has read it already.
    """
    json_end = len(body) if header_length is None else header_length
    if header is None:
        header = read_header(body, header_length)
    params = _parameters(header.get("parameters"), what="request")
    if "shared_memory_region" in params:
        raise Unsupported("shared-memory tensors are not supported by this server")

    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidArgument("inference request must have a non-empty 'inputs' list")

    view = memoryview(body)
    offset = json_end
    inputs: list[InferInput] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_inputs):
        tensor, offset = _decode_input(raw, index, view, offset)
        if tensor.name in seen:
            raise InvalidArgument(f"input '{tensor.name}' appears more than once")
        seen.add(tensor.name)
        inputs.append(tensor)
    if offset != len(body):
        raise InvalidArgument(
            f"request body has {len(body) - offset} bytes of binary data that no input declares"
        )

    binary_default = params.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise InvalidArgument("parameter 'binary_data_output' must be a boolean")
    request_id = header.get("id", "")
    if not isinstance(request_id, str):
        raise InvalidArgument("request 'id' must be a string")
    return InferRequest(
        model_name=model_name,
        model_version=model_version,
        id=request_id,
        inputs=inputs,
        outputs=_decode_outputs(header.get("outputs"), binary_default),
        binary_outputs_by_default=binary_default,
        parameters=params,
    )


def _parameters(raw: Any, *, what: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{what} 'parameters' must be a JSON object")
    return raw


def _decode_input(
    raw: Any, index: int, body: memoryview, offset: int
) -> tuple[InferInput, int]:
    """One input tensor, reading its binary section at `offset` when it has one."""
    if not isinstance(raw, dict):
        raise InvalidArgument(f"input #{index} must be a JSON object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"input #{index} needs a non-empty string 'name'")
    dt = as_datatype(raw.get("datatype"), tensor=name)
    shape = parse_shape(raw.get("shape"), name=name)
    params = _parameters(raw.get("parameters"), what=f"input '{name}'")
    if "shared_memory_region" in params:
        raise Unsupported(f"input '{name}': shared-memory tensors are not supported")

    size = params.get("binary_data_size")
    if size is None:
        if "data" not in raw:
            raise InvalidArgument(
                f"input '{name}' has neither 'data' nor parameters.binary_data_size"
            )
        return InferInput(name, dt.name, shape, decode_json(dt, shape, raw["data"], name=name)), \
            offset

    if type(size) is not int or size < 0:
        raise InvalidArgument(f"input '{name}': binary_data_size must be a non-negative integer")
    if "data" in raw:
        raise InvalidArgument(f"input '{name}' has both 'data' and binary_data_size")
    end = offset + size
    if end > len(body):
        raise InvalidArgument(
            f"input '{name}': binary_data_size {size} runs past the end of the body "
            f"({len(body) - offset} bytes left)"
        )
    array = decode_raw(dt, shape, body[offset:end], name=name)
    return InferInput(name, dt.name, shape, array), end


def _decode_outputs(raw: Any, binary_default: bool) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidArgument("'outputs' must be a list")
    outputs: list[RequestedOutput] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidArgument(f"output #{index} must be an object with a string 'name'")
        params = _parameters(item.get("parameters"), what=f"output '{item['name']}'")
        if "shared_memory_region" in params:
            raise Unsupported(f"output '{item['name']}': shared-memory tensors are not supported")
        if "classification" in params:
            raise Unsupported(f"output '{item['name']}': the classification extension "
                              f"is not supported")
        binary = params.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise InvalidArgument(f"output '{item['name']}': binary_data must be a boolean")
        outputs.append(RequestedOutput(item["name"], binary))
    return outputs


def encode_response(response: InferResponse) -> tuple[bytes, int | None]:
    """The HTTP body of a response and its JSON header length (None when all JSON)."""
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for out in response.outputs:
        dt = DATATYPES[out.datatype]
        entry: dict[str, Any] = {"name": out.name, "datatype": out.datatype,
                                 "shape": list(out.shape)}
        if out.binary:
            raw = encode_raw(out.data, dt)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = encode_json(out.data, dt, name=out.name)
        outputs.append(entry)

    header: dict[str, Any] = {"model_name": response.model_name,
                              "model_version": response.model_version}
    if response.id:
        header["id"] = response.id
    if response.parameters:
        header["parameters"] = response.parameters
    header["outputs"] = outputs
    head = dumps(header)
    if not chunks:
        return head, None
    return b"".join([head, *chunks]), len(head)
