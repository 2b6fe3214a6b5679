"""Malformed requests get a 4xx (gRPC: a client-error code), never a 500 or a crash.

Hypothesis generates bodies over both protocols: arbitrary bytes, arbitrary
JSON, valid requests with lying header lengths, truncated binary sections,
wrong shapes and datatypes, and sizes far beyond the request limit. After each
batch the server must still answer inference correctly.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
from urllib.parse import quote

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tritonclient.grpc import service_pb2 as pb

LIMIT = 4 * 1024 * 1024  # the shared server's --max-request-bytes
FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
CLIENT_ERRORS_HTTP = {400, 404, 413, 501, 503}
CLIENT_ERRORS_GRPC = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                      grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNIMPLEMENTED,
                      grpc.StatusCode.UNAVAILABLE}
DATATYPES = ["BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32",
             "UINT64", "FP16", "FP32", "FP64", "BYTES", "FP8", "", "fp32"]
MODELS = ["mlp", "identity_bytes", "identity_fp16", "identity_bool", "nope"]
# Version strings a parser may trip on: int() refuses over 4300 digits with a
# ValueError, a non-ASCII digit passes str.isdigit(), int64 ends at 19 digits.
VERSIONS = ["1", "01", "x", "99", "-1", "+1", "1_0", " 1", "\u0663", "9" * 19, "9" * 20,
            "1" * 5000]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=6),
    max_leaves=40,
)
shapes = st.lists(st.integers(-2, 2**45) | st.integers(0, 8), max_size=4) | json_values


@st.composite
def inference_bodies(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    """A request that is plausible on the surface and wrong somewhere."""
    model = draw(st.sampled_from(MODELS))
    name = draw(st.sampled_from(["input", "INPUT0", "x", ""]))
    datatype = draw(st.sampled_from(DATATYPES))
    shape = draw(shapes)
    binary = draw(st.binary(max_size=256))
    tensor: dict[str, object] = {"name": name, "datatype": datatype, "shape": shape}
    if draw(st.booleans()):
        tensor["parameters"] = {"binary_data_size": draw(
            st.integers(-5, 2**40) | st.just(len(binary)) | json_values)}
    else:
        tensor["data"] = draw(json_values)
    header: dict[str, object] = {"inputs": [tensor]}
    if draw(st.booleans()):
        header["outputs"] = draw(json_values | st.just([{"name": "OUTPUT0",
                                                         "parameters": {"binary_data": 1}}]))
    if draw(st.booleans()):
        header["parameters"] = draw(json_values)
    head = json.dumps(header).encode()
    headers = {"Inference-Header-Content-Length": str(draw(
        st.just(len(head)) | st.integers(-10, len(head) + 300)
        | st.text(alphabet="0123456789abc+- ", max_size=4)))}
    version = draw(st.none() | st.sampled_from(VERSIONS))
    path = f"/v2/models/{model}/infer" if version is None else \
        f"/v2/models/{model}/versions/{quote(version)}/infer"
    return path, head + binary, headers


def post(server, path: str, body: bytes, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        if response.status >= 400:
            assert "error" in json.loads(payload), payload
        return response.status
    finally:
        conn.close()


def assert_still_serves(server) -> None:
    body = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30],
                                   "data": [0.5] * 30}]}).encode()
    assert post(server, "/v2/models/mlp/infer", body, {}) == 200


@FUZZ
@given(request=inference_bodies())
def test_fuzzed_http_inference_requests_never_get_a_server_error(server, request):
    path, body, headers = request
    assert post(server, path, body, headers) in CLIENT_ERRORS_HTTP | {200}


@FUZZ
@given(body=st.binary(max_size=512), header=st.integers(-3, 600) | st.none())
def test_arbitrary_http_bytes_never_get_a_server_error(server, body, header):
    headers = {} if header is None else {"Inference-Header-Content-Length": str(header)}
    assert post(server, "/v2/models/mlp/infer", body, headers) in CLIENT_ERRORS_HTTP


@FUZZ
@given(rows=st.integers(0, 40), cut=st.integers(1, 600), lie=st.integers(-50, 50))
def test_truncated_and_lying_binary_requests_are_refused(server, rows, cut, lie):
    data = np.ones((max(rows, 1), 30), np.float32).tobytes()
    header = json.dumps({"inputs": [{"name": "input", "datatype": "FP32",
                                     "shape": [rows, 30],
                                     "parameters": {"binary_data_size": len(data)}}]}).encode()
    body = (header + data)[:-cut] if cut else header + data
    status = post(server, "/v2/models/mlp/infer", body,
                  {"Inference-Header-Content-Length": str(len(header) + lie)})
    assert status in CLIENT_ERRORS_HTTP


def test_declared_bodies_past_the_limit_are_refused_before_reading(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    conn.putrequest("POST", "/v2/models/mlp/infer")
    conn.putheader("Content-Length", str(LIMIT * 100))
    conn.endheaders()  # and never send the body: the answer must not wait for it
    response = conn.getresponse()
    assert response.status == 413
    assert "exceeds the limit" in json.loads(response.read())["error"]
    conn.close()


def test_a_client_that_lies_about_content_length_and_leaves_does_no_harm(server):
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"inputs\":")
        sock.shutdown(socket.SHUT_WR)
    assert_still_serves(server)


@pytest.mark.parametrize("sent", [b"", b"{\"inputs\":"])
def test_a_body_that_stops_arriving_gets_a_408_instead_of_holding_the_connection(
        server, sent):
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=15) as sock:
        sock.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 1000\r\n\r\n" + sent)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(4096)  # the server's 2 s body timeout answers first
            if not chunk:
                break
            answer += chunk

    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert f"did not arrive within 2 s ({len(sent)} bytes received)".encode() in answer
    assert_still_serves(server)


@pytest.mark.parametrize("version", VERSIONS[2:])
def test_versions_that_are_no_version_number_get_a_client_error_on_both_protocols(
        server, raw_infer, version):
    body = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30],
                                   "data": [0.5] * 30}]}).encode()
    path = f"/v2/models/mlp/versions/{quote(version)}/infer"
    assert post(server, path, body, {}) in {400, 404}

    request = pb.ModelInferRequest(model_name="mlp", model_version=version)
    request.inputs.add(name="input", datatype="FP32", shape=[1, 30])
    request.raw_input_contents.append(np.zeros(30, np.float32).tobytes())
    assert grpc_code(raw_infer, request.SerializeToString()) in {
        grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}


def test_an_inference_header_length_sent_twice_is_refused(server):
    row = np.zeros((1, 30), np.float32).tobytes()
    head = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30],
                                   "parameters": {"binary_data_size": len(row)}}]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    conn.putrequest("POST", "/v2/models/mlp/infer")
    conn.putheader("Content-Length", str(len(head) + len(row)))
    conn.putheader("Inference-Header-Content-Length", str(len(head)))
    conn.putheader("Inference-Header-Content-Length", "3")
    conn.endheaders(head + row)
    response = conn.getresponse()
    assert response.status == 400
    assert "appears more than once" in json.loads(response.read())["error"]
    conn.close()


def test_booleans_among_json_numbers_are_refused(server):
    data = [0.5] * 29 + [True]
    body = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30],
                                   "data": data}]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    conn.request("POST", "/v2/models/mlp/infer", body=body)
    response = conn.getresponse()
    assert response.status == 400
    assert "got true/false among them" in json.loads(response.read())["error"]
    conn.close()


def test_gzip_bodies_are_inflated_within_the_limit(server):
    import gzip

    bomb = gzip.compress(b"0" * (LIMIT + 10))
    status = post(server, "/v2/models/mlp/infer", bomb, {"Content-Encoding": "gzip"})
    assert status == 413
    body = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30],
                                   "data": [0.5] * 30}]}).encode()
    assert post(server, "/v2/models/mlp/infer", gzip.compress(body),
                {"Content-Encoding": "gzip"}) == 200


# -- gRPC ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_infer(server):
    channel = grpc.insecure_channel(server.grpc_url)
    call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    yield call
    channel.close()


def grpc_code(raw_infer, payload: bytes) -> grpc.StatusCode:
    try:
        raw_infer(payload, timeout=10)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@st.composite
def infer_requests(draw: st.DrawFn) -> bytes:
    request = pb.ModelInferRequest(model_name=draw(st.sampled_from(MODELS)),
                                   model_version=draw(st.sampled_from(["", *VERSIONS])))
    for _ in range(draw(st.integers(0, 3))):
        tensor = request.inputs.add(name=draw(st.sampled_from(["input", "INPUT0", ""])),
                                    datatype=draw(st.sampled_from(DATATYPES)))
        tensor.shape.extend(draw(st.lists(st.integers(-2, 2**45) | st.integers(0, 8),
                                          max_size=4)))
        which = draw(st.sampled_from(["fp32", "int", "bytes", "bool", "none"]))
        if which == "fp32":
            tensor.contents.fp32_contents.extend(draw(st.lists(st.floats(width=32),
                                                               max_size=40)))
        elif which == "int":
            tensor.contents.int_contents.extend(draw(st.lists(st.integers(-2**31, 2**31 - 1),
                                                              max_size=40)))
        elif which == "bytes":
            tensor.contents.bytes_contents.extend(draw(st.lists(st.binary(max_size=8),
                                                                max_size=8)))
        elif which == "bool":
            tensor.contents.bool_contents.extend(draw(st.lists(st.booleans(), max_size=8)))
    for _ in range(draw(st.integers(0, 3))):
        request.raw_input_contents.append(draw(st.binary(max_size=300)))
    if draw(st.booleans()):
        request.outputs.add(name=draw(st.sampled_from(["OUTPUT0", "label", "zzz"])))
    return request.SerializeToString()


@FUZZ
@given(payload=infer_requests())
@example(payload=b"\n\x03mlp*\x1c\n\x05input\x12\x04BOOL\x1a\x0b\x00\x97\x88\x93\xa8\x0b"
                 b"\xd1\xc4\x94\xa8\x0b*\x00")  # empty tensor, dimensions numpy cannot hold
def test_fuzzed_grpc_inference_requests_never_get_a_server_error(raw_infer, payload):
    assert grpc_code(raw_infer, payload) in CLIENT_ERRORS_GRPC | {grpc.StatusCode.OK}


@FUZZ
@given(payload=st.binary(min_size=1, max_size=300))
def test_arbitrary_grpc_bytes_never_get_a_server_error(raw_infer, payload):
    assert grpc_code(raw_infer, payload) in CLIENT_ERRORS_GRPC | {grpc.StatusCode.OK}


def test_grpc_messages_past_the_limit_are_resource_exhausted(raw_infer, server):
    big = pb.ModelInferRequest(model_name="mlp")
    big.raw_input_contents.append(b"\0" * (LIMIT + 1))
    assert grpc_code(raw_infer, big.SerializeToString()) == \
        grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serves(server)


def test_bytes_tensors_with_lying_length_prefixes_are_refused(server):
    raw = struct.pack("<I", 5) + b"ab" + struct.pack("<I", 1) + b"c"
    header = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "BYTES", "shape": [1, 4],
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    conn.request("POST", "/v2/models/identity_bytes/infer", body=header + raw,
                 headers={"Inference-Header-Content-Length": str(len(header))})
    response = conn.getresponse()
    message = json.loads(response.read())["error"]
    conn.close()
    assert response.status == 400
    assert "INPUT0" in message
    assert_still_serves(server)


def test_a_408_closes_the_connection(server):
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=15) as sock:
        sock.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 1000\r\n\r\n{")
        answer = b""
        while True:  # ends when the server closes (the socket timeout would raise)
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"connection: close" in answer.lower()
