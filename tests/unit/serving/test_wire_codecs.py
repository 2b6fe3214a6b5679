"""The HTTP body framing and the gRPC messages decode to the same neutral request."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb

from modelship_serving.protocol import InferOutput, InferResponse, InvalidArgument, Unsupported
from modelship_serving.protocol import grpc_codec, http_codec


def binary_body(array: np.ndarray, **extra) -> tuple[bytes, int]:
    header = json.dumps({"inputs": [{"name": "x", "datatype": "FP32",
                                     "shape": list(array.shape),
                                     "parameters": {"binary_data_size": array.nbytes}}],
                         **extra}).encode()
    return header + array.tobytes(), len(header)


def test_http_binary_and_grpc_raw_requests_decode_alike():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    body, length = binary_body(array, id="r1")
    from_http = http_codec.decode_request(body, length, model_name="m", model_version="")
    message = pb.ModelInferRequest(model_name="m", id="r1")
    message.inputs.add(name="x", datatype="FP32", shape=[2, 3])
    message.raw_input_contents.append(array.tobytes())
    from_grpc = grpc_codec.decode_request(message)
    for request in (from_http, from_grpc):
        assert request.id == "r1"
        np.testing.assert_array_equal(request.inputs[0].data, array)


def test_http_binary_outputs_follow_the_request_default_and_per_output_flags():
    body, length = binary_body(np.zeros((1, 1), np.float32),
                               parameters={"binary_data_output": True},
                               outputs=[{"name": "a"},
                                        {"name": "b", "parameters": {"binary_data": False}}])
    request = http_codec.decode_request(body, length, model_name="m", model_version="1")
    assert [(o.name, o.binary) for o in request.outputs] == [("a", True), ("b", False)]


def test_http_response_puts_binary_outputs_after_the_json_header():
    response = InferResponse("m", "1", "id", [
        InferOutput("a", "INT32", (2,), np.array([1, 2], np.int32), binary=True),
        InferOutput("b", "BYTES", (1,), np.array([b"hi"], dtype=object), binary=False),
    ])
    body, length = http_codec.encode_response(response)
    header = json.loads(body[:length])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 8}
    assert header["outputs"][1]["data"] == ["hi"]
    assert np.frombuffer(body[length:], np.int32).tolist() == [1, 2]


@pytest.mark.parametrize("length, message", [
    (10_000, "but the request body has"),
    (-1, "must be an integer"),
    ("+9", "must be an integer"),
    ("9_4", "must be an integer"),
    ("\u0669", "must be an integer"),
    ("1e2", "must be an integer"),
])
def test_lying_header_lengths_are_refused(length, message):
    with pytest.raises(InvalidArgument, match=message):
        http_codec.parse_header_length(str(length), 100)


def test_binary_data_past_the_end_is_refused():
    body, length = binary_body(np.zeros((2, 2), np.float32))
    with pytest.raises(InvalidArgument, match="runs past the end of the body"):
        http_codec.decode_request(body[:-3], length, model_name="m", model_version="")
    with pytest.raises(InvalidArgument, match="bytes of binary data that no input declares"):
        http_codec.decode_request(body + b"xx", length, model_name="m", model_version="")


def test_grpc_typed_contents_decode_and_fp16_needs_raw():
    message = pb.ModelInferRequest(model_name="m")
    tensor = message.inputs.add(name="x", datatype="INT16", shape=[3])
    tensor.contents.int_contents.extend([1, -2, 3])
    assert grpc_codec.decode_request(message).inputs[0].data.dtype == np.int16
    tensor.datatype = "FP16"
    with pytest.raises(InvalidArgument, match="must be sent in raw_input_contents"):
        grpc_codec.decode_request(message)


def test_grpc_raw_contents_must_cover_every_input():
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="a", datatype="FP32", shape=[1])
    message.inputs.add(name="b", datatype="FP32", shape=[1])
    message.raw_input_contents.append(b"\0" * 4)
    with pytest.raises(InvalidArgument, match="1 entries for 2 inputs"):
        grpc_codec.decode_request(message)


def test_grpc_inputs_with_typed_contents_and_raw_contents_at_once_are_refused():
    message = pb.ModelInferRequest(model_name="m")
    tensor = message.inputs.add(name="a", datatype="FP32", shape=[1])
    tensor.contents.fp32_contents.append(2.0)
    message.raw_input_contents.append(np.float32(1.0).tobytes())

    with pytest.raises(InvalidArgument, match="input 'a' has typed contents while the "
                                              "request sends raw_input_contents"):
        grpc_codec.decode_request(message)


def test_a_zero_or_absurd_header_length_is_named_in_the_refusal():
    body, _ = binary_body(np.ones((1, 2), np.float32))

    with pytest.raises(InvalidArgument, match="Inference-Header-Content-Length is 0: "):
        http_codec.decode_request(body, http_codec.parse_header_length("0", len(body)),
                                  model_name="m", model_version="")
    with pytest.raises(InvalidArgument) as refused:
        http_codec.parse_header_length("9" * 400, len(body))
    assert len(str(refused.value)) < 120


def test_shared_memory_is_reported_as_unsupported():
    header = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1],
                                     "parameters": {"shared_memory_region": "r"}}]}).encode()
    with pytest.raises(Unsupported):
        http_codec.decode_request(header, None, model_name="m", model_version="")
    request = pb.ModelInferRequest(model_name="m")
    request.parameters["shared_memory_region"].string_param = "r"
    request.inputs.add(name="x", datatype="FP32", shape=[1])
    request.raw_input_contents.append(b"\0" * 4)
    with pytest.raises(Unsupported):  # the same over gRPC, where it was ignored
        grpc_codec.decode_request(request)


def test_raw_bools_other_than_zero_and_one_are_refused():
    body, length = binary_body(np.array([[1, 0]], np.uint8))
    body = body.replace(b'"FP32"', b'"BOOL"')  # the same length
    assert http_codec.decode_request(body, length, model_name="m", model_version="")
    with pytest.raises(InvalidArgument, match="BOOL raw data holds bytes other than 0 and 1"):
        http_codec.decode_request(body[:-1] + b"\x02", length, model_name="m",
                                  model_version="")


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_json_without_finite_numbers_is_refused_with_a_reason(token):
    body = ('{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], '
            f'"data": [1.0, {token}]}}]}}').encode()

    with pytest.raises(InvalidArgument) as refused:
        http_codec.decode_request(body, None, model_name="m", model_version="")

    assert "JSON" in str(refused.value)


@pytest.mark.parametrize("bad", [
    b'{"inputs": [{"name": "\\ud800", "datatype": "FP32", "shape": [1], "data": [1]}]}',
    b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]',
    b'{"inputs": [{"name": "\xff", "datatype": "FP32", "shape": [1], "data": [1]}]}',
    b"[" * 5000,
])
def test_malformed_json_headers_are_refused_as_invalid_arguments(bad):
    with pytest.raises(InvalidArgument) as refused:
        http_codec.decode_request(bad, None, model_name="m", model_version="")

    assert "not valid JSON" in str(refused.value)


def test_integers_beyond_64_bits_are_refused_as_out_of_range():
    body = (b'{"inputs": [{"name": "x", "datatype": "INT64", "shape": [1], '
            b'"data": [123456789012345678901234567890]}]}')

    with pytest.raises(InvalidArgument, match="out of range for INT64"):
        http_codec.decode_request(body, None, model_name="m", model_version="")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_json_outputs_with_non_finite_numbers_are_refused_with_the_way_out(bad):
    values = np.array([[1.5, bad]], np.float32)
    response = InferResponse("m", "1", "", [InferOutput("y", "FP32", (1, 2), values)])

    with pytest.raises(InvalidArgument, match="output 'y' holds NaN or infinite values.*"
                                              "binary_data=true"):
        http_codec.encode_response(response)

    binary = InferResponse("m", "1", "", [InferOutput("y", "FP32", (1, 2), values, True)])
    body, json_length = http_codec.encode_response(binary)
    assert np.array_equal(np.frombuffer(body[json_length:], np.float32), values.reshape(-1),
                          equal_nan=True)


@pytest.mark.parametrize("datatype, number", [("FP32", "1e300"), ("FP16", "70000"),
                                              ("FP32", "-3.5e38")])
def test_json_numbers_beyond_the_datatype_are_refused_not_made_infinite(datatype, number,
                                                                        recwarn):
    body = (f'{{"inputs": [{{"name": "x", "datatype": "{datatype}", "shape": [1, 2], '
            f'"data": [1.0, {number}]}}]}}').encode()

    with pytest.raises(InvalidArgument, match=f"out of range for {datatype}"):
        http_codec.decode_request(body, None, model_name="m", model_version="")
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_json_outputs_round_trip_every_finite_float_exactly():
    values = np.array([[0.1, 1e-5, -3.4028235e38, 5e-324, 2.0**53 + 1]], np.float64)
    response = InferResponse("m", "1", "req-1", [InferOutput("y", "FP64", (1, 5), values)])

    body, _ = http_codec.encode_response(response)

    decoded = json.loads(body)
    assert decoded["id"] == "req-1"
    assert np.array_equal(np.array(decoded["outputs"][0]["data"]), values.reshape(-1))


def test_grpc_typed_contents_in_another_datatypes_field_are_refused():
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[2])
    tensor.contents.fp32_contents.extend([1.0, 2.0])
    assert grpc_codec.decode_request(request).inputs[0].data.tolist() == [1.0, 2.0]

    tensor.contents.int_contents.extend([7])
    with pytest.raises(InvalidArgument, match="the request also fills contents.int_contents"):
        grpc_codec.decode_request(request)


def test_a_grpc_request_without_a_model_name_says_so():
    request = pb.ModelInferRequest()
    request.inputs.add(name="x", datatype="FP32", shape=[1])
    request.raw_input_contents.append(b"\0" * 4)
    with pytest.raises(InvalidArgument, match="must name a model"):
        grpc_codec.decode_request(request)
