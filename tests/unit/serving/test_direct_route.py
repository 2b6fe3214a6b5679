"""The direct route answers plain requests exactly as the general path does.

The route takes a shortcut for requests to models that run on the event loop;
it must never accept a request the general path refuses, and must feed the
model the very arrays the general path would.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from prometheus_client import CollectorRegistry
from tests.unit.serving.graphs import save
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc._utils import _get_inference_request

from modelship_serving.protocol import InferInput, InferOutput, InferResponse, InvalidArgument
from modelship_serving.protocol import grpc_codec, http_codec
from modelship_serving.protocol.tensors import as_datatype, decode_raw
from modelship_serving.runtime.direct import DirectRoute
from modelship_serving.runtime.signature import Signature
from modelship_serving.server.core import ModelServer
from modelship_serving.server.grpc_service import InferenceService

ITEMSIZE = {"FP32": 4, "INT64": 8, "FP16": 2, "INT32": 4, "BOOL": 1}


def signature(batching: bool) -> Signature:
    config = text_format.Parse(f"""
        name: "m" max_batch_size: {4 if batching else 0}
        input [
          {{ name: "a" data_type: TYPE_FP32 dims: [3] }},
          {{ name: "b" data_type: TYPE_INT64 dims: [-1, -1] }},
          {{ name: "c" data_type: TYPE_FP16 dims: [4] reshape {{ shape: [2, 2] }} }},
          {{ name: "d" data_type: TYPE_BOOL dims: [2] }}
        ]
        output [{{ name: "y" data_type: TYPE_FP32 dims: [3] }}]""", mc.ModelConfig())
    return Signature.from_config(config)


def general(sig: Signature, tensors: list) -> tuple[dict[str, np.ndarray], int]:
    """What the decoders and the signature check make of the same tensors."""
    inputs, seen = [], set()
    for name, datatype, shape, raw in tensors:
        if name in seen:
            raise InvalidArgument(f"input '{name}' appears more than once")
        seen.add(name)
        dt = as_datatype(datatype, tensor=name)
        array = decode_raw(dt, tuple(shape), raw, name=name)
        inputs.append(InferInput(name, dt.name, tuple(shape), array))
    if not inputs:
        raise InvalidArgument("no inputs")
    return sig.check_inputs(inputs)


@st.composite
def raw_tensors(draw: st.DrawFn) -> list:
    """Mostly plausible inputs, each with a chance of one thing wrong."""
    tensors = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(["a", "b", "c", "d"]))
        datatype = draw(st.sampled_from(["FP32", "INT64", "FP16", "INT32", "fp32"]))
        dims = draw(st.lists(st.integers(-1, 5) | st.just(True), max_size=4))
        count = math.prod(max(int(d), 0) for d in dims)
        itemsize = ITEMSIZE.get(datatype, 4)
        size = max(0, count * itemsize + draw(st.sampled_from([0, 0, 0, -1, 1, itemsize])))
        tensors.append((name, datatype, dims, bytes(draw(st.binary(min_size=size,
                                                                    max_size=size)))))
    return tensors


@st.composite
def plain_requests(draw: st.DrawFn, batching: bool) -> list:
    """Requests every check passes (the route must take these)."""
    batch = draw(st.integers(1, 4)) if batching else None
    lead = [batch] if batching else []
    b_dims = draw(st.lists(st.integers(0, 5), min_size=2, max_size=2))
    shapes = {"a": lead + [3], "b": lead + b_dims, "c": lead + [4], "d": lead + [2]}
    kinds = {"a": ("FP32", 4), "b": ("INT64", 8), "c": ("FP16", 2), "d": ("BOOL", 1)}
    names = draw(st.permutations(["a", "b", "c", "d"]))
    tensors = []
    for name in names:
        datatype, itemsize = kinds[name]
        size = math.prod(shapes[name]) * itemsize
        if datatype == "BOOL":
            raw = bytes(draw(st.lists(st.integers(0, 1), min_size=size, max_size=size)))
        else:
            raw = draw(st.binary(min_size=size, max_size=size))
        tensors.append((name, datatype, shapes[name], bytes(raw)))
    return tensors


@st.composite
def mutated_requests(draw: st.DrawFn, batching: bool) -> list:
    """A plain request with one thing changed, keeping the byte count consistent
    with a changed shape so that only the check of that one thing can catch it."""
    tensors = [list(t) for t in draw(plain_requests(batching))]
    victim = draw(st.integers(0, len(tensors) - 1))
    name, datatype, shape, raw = tensors[victim]
    kinds = ["bytes", "dim", "rank", "name", "datatype", "drop", "bool"]
    kind = draw(st.sampled_from(kinds + ["batch", "batches"] if batching else kinds))
    if kind == "batches":  # every input in the same batch, which may be out of range
        size = draw(st.integers(0, 6))
        return [(n, d, [size] + list(sh[1:]),
                 bytes(math.prod([size] + list(sh[1:])) * ITEMSIZE[d]))
                for n, d, sh, _ in tensors]
    if kind == "bytes":
        raw = raw + b"\0" * draw(st.integers(1, 8)) if draw(st.booleans()) or not raw \
            else raw[:-draw(st.integers(1, len(raw)))]
    elif kind in ("dim", "rank", "batch"):
        shape = list(shape)
        if kind == "rank":
            shape = shape + [1] if draw(st.booleans()) or not shape else shape[:-1]
        else:
            index = 0 if kind == "batch" else draw(st.integers(0, len(shape) - 1))
            shape[index] = draw(st.integers(-1, 6) | st.just(True) | st.just(2**41))
        count = math.prod(max(int(d), 0) for d in shape) if max(shape, default=0) < 2**40 else 0
        raw = bytes(count * ITEMSIZE[datatype])  # zeros: valid for every datatype
    elif kind == "bool":  # a byte other than 0 or 1 in the BOOL input, if any
        name, datatype, shape, raw = next(
            (list(t) for t in tensors if t[1] == "BOOL"), [name, datatype, shape, raw])
        victim = next((i for i, t in enumerate(tensors) if t[1] == "BOOL"), victim)
        if datatype == "BOOL" and raw:
            raw = bytes([draw(st.integers(2, 255))]) + raw[1:]
    elif kind == "name":
        name = draw(st.sampled_from(["a", "b", "c", "d", ""]))
    elif kind == "datatype":
        datatype = draw(st.sampled_from(["FP32", "INT64", "FP16", "INT32", "FP64", "BOOL"]))
    tensors[victim] = [name, datatype, shape, raw]
    if kind == "drop":
        del tensors[victim]
    return [tuple(t) for t in tensors]


def same_feed(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> None:
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name].dtype == theirs[name].dtype
        assert ours[name].shape == theirs[name].shape
        assert ours[name].tobytes() == theirs[name].tobytes()


@pytest.mark.parametrize("batching", [True, False])
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_route_never_takes_a_request_the_general_path_refuses(batching, data):
    sig = signature(batching)
    route = DirectRoute.for_signature(sig)
    tensors = data.draw(st.one_of(raw_tensors(), plain_requests(batching),
                                  mutated_requests(batching), mutated_requests(batching)))

    routed = route.feed(tensors)
    try:
        expected = general(sig, tensors)
    except InvalidArgument:
        assert routed is None
        return
    if routed is not None:  # the route may leave a valid request to the general path
        feed, batch, elements = routed
        same_feed(feed, expected[0])
        assert batch == expected[1]
        assert elements == sum(a.size for a in expected[0].values())


@pytest.mark.parametrize("batching", [True, False])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_the_route_takes_every_plain_request(batching, data):
    sig = signature(batching)
    tensors = data.draw(plain_requests(batching))

    routed = DirectRoute.for_signature(sig).feed(tensors)

    assert routed is not None
    same_feed(routed[0], general(sig, tensors)[0])


def test_models_with_string_inputs_have_no_route():
    config = text_format.Parse("""
        name: "m" max_batch_size: 0
        input [{ name: "s" data_type: TYPE_STRING dims: [1] }]
        output [{ name: "y" data_type: TYPE_FP32 dims: [1] }]""", mc.ModelConfig())
    assert DirectRoute.for_signature(Signature.from_config(config)) is None


# -- the serialised gRPC response --------------------------------------------------


@pytest.mark.parametrize("request_id", ["", "req-7", "é" * 100])
def test_the_serialised_response_is_the_message_encode_response_builds(request_id):
    response = InferResponse("m", "3", request_id, [
        InferOutput("y", "FP32", (2, 3), np.arange(6, dtype=np.float64).reshape(2, 3)),
        InferOutput("big", "UINT8", (300,), np.arange(300, dtype=np.uint8) % 7),
        InferOutput("s", "BYTES", (2,), np.array([b"x", "ü"], dtype=object)),
        InferOutput("t", "INT32", (3, 2), np.arange(6, dtype=np.int32).reshape(2, 3).T)])

    for _ in range(2):  # the second time from the cached prefix
        wire = grpc_codec.serialize_response(response)
        assert pb.ModelInferResponse.FromString(wire) == grpc_codec.encode_response(response)


def test_a_response_with_parameters_is_serialised_whole():
    response = InferResponse("m", "1", "", [
        InferOutput("y", "FP32", (1,), np.ones(1, np.float32))], parameters={"k": 5})
    wire = grpc_codec.serialize_response(response)
    assert pb.ModelInferResponse.FromString(wire).parameters["k"].int64_param == 5


# -- in the server -----------------------------------------------------------------


def two_outputs() -> object:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["relu"]), helper.make_node("Neg", ["x"], ["neg"])],
        "two", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("relu", TensorProto.FLOAT, [None, 3]),
         helper.make_tensor_value_info("neg", TensorProto.FLOAT, [None, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


class _Context:
    code = None

    def set_code(self, code):
        self.code = code

    def set_details(self, details):
        self.details = details


@pytest.fixture
async def server(repo):
    save(repo, "two", two_outputs(), config="max_batch_size: 8")
    core = ModelServer(repo, cpu_limit=1, registry=CollectorRegistry())
    await core.start()
    assert core.manager.get("two").direct is not None
    yield core
    await core.close()


def grpc_request(rows: np.ndarray, **kwargs) -> pb.ModelInferRequest:
    tensor = grpcclient.InferInput("x", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    options = dict(model_name="two", inputs=[tensor], model_version="", request_id="",
                   outputs=None, sequence_id=0, sequence_start=False, sequence_end=False,
                   priority=0, timeout=None, parameters=None)
    options.update(kwargs)
    return _get_inference_request(**options)


async def answer(service: InferenceService, request: pb.ModelInferRequest
                 ) -> pb.ModelInferResponse:
    context = _Context()
    wire = await service.ModelInfer(request, context)
    assert context.code is None, context.details
    return pb.ModelInferResponse.FromString(wire)


async def test_plain_grpc_requests_skip_the_general_path_and_get_its_answer(server):
    rows = np.array([[1.5, -2.0, 0.0], [-0.5, 3.0, -1.0]], np.float32)
    general_calls = 0
    infer = server.infer

    async def counting(request, *, protocol):
        nonlocal general_calls
        general_calls += 1
        return await infer(request, protocol=protocol)

    server.infer = counting
    service = InferenceService(server)
    wanted = grpcclient.InferRequestedOutput("neg")

    plain = await answer(service, grpc_request(rows, request_id="r1"))
    chosen = await answer(service, grpc_request(rows, outputs=[wanted]))
    assert general_calls == 0
    # A priority is a parameter: the general path takes it, with the same answer.
    prioritised = await answer(service, grpc_request(rows, request_id="r1", priority=1))
    assert general_calls == 1

    assert plain == prioritised
    assert plain.id == "r1" and [o.name for o in plain.outputs] == ["relu", "neg"]
    relu = np.frombuffer(plain.raw_output_contents[0], np.float32).reshape(2, 3)
    np.testing.assert_array_equal(relu, np.maximum(rows, 0))
    assert [o.name for o in chosen.outputs] == ["neg"]
    np.testing.assert_array_equal(
        np.frombuffer(chosen.raw_output_contents[0], np.float32).reshape(2, 3), -rows)


async def test_direct_requests_count_in_the_statistics_as_general_ones_do(server):
    rows = np.ones((3, 3), np.float32)
    service = InferenceService(server)
    for _ in range(4):
        await answer(service, grpc_request(rows))
    direct = server.manager.get("two").stats.snapshot()

    server.manager.get("two").direct = None  # everything through the general path
    for _ in range(4):
        await answer(service, grpc_request(rows))
    both = server.manager.get("two").stats.snapshot()

    assert direct.success.count == 4 and both.success.count == 8
    assert direct.inference_count == 12 and both.inference_count == 24
    assert direct.execution_count == 4 and both.execution_count == 8
    assert direct.queue.count == 4 and both.queue.count == 8
    assert direct.batches[3].compute_infer.count == 4
    assert both.batches[3].compute_infer.count == 8


async def test_a_request_the_route_declines_still_gets_the_general_paths_error(server):
    service = InferenceService(server)
    request = grpc_request(np.ones((2, 4), np.float32))  # 4 columns, the model takes 3
    context = _Context()

    await service.ModelInfer(request, context)

    assert context.code is not None and context.code.name == "INVALID_ARGUMENT"
    assert "dimension 1 must be 3" in context.details


def http_body(header: dict, *chunks: bytes) -> tuple[bytes, int]:
    head = http_codec.dumps(header)
    return head + b"".join(chunks), len(head)


@pytest.mark.parametrize("change", [
    {"parameters": {"binary_data_output": True, "priority": 1}},
    {"parameters": {"binary_data_output": 1}},
    {"id": 7},
    {"outputs": [{"name": "neg", "parameters": {"classification": 2}}]},
    {"outputs": [{"name": "neg", "parameters": {"binary_data": "yes"}}]},
    {"outputs": "neg"},
    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3],
                 "parameters": {"binary_data_size": 12}}]},
    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3],
                 "parameters": {"binary_data_size": 12, "shared_memory_region": "r"}}]},
    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3],
                 "parameters": {"binary_data_size": 8}}]},
])
def test_http_requests_with_anything_more_than_binary_inputs_are_not_plain(change):
    header = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3],
                          "parameters": {"binary_data_size": 12}}],
              "parameters": {"binary_data_output": True}}
    body, length = http_body(header, bytes(12))
    assert http_codec.plain_request(header, body, length) is not None

    header = {**header, **change}
    body, length = http_body(header, bytes(12))
    assert http_codec.plain_request(header, body, length) is None
