"""tritonclient's own clients run inference against the server, for every datatype,
and get exactly what in-process onnxruntime computes on the same model file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
import tritonclient.http.aio as httpaio
from tests.serving.onnx_models import NUMPY_TYPES
from sklearn.datasets import load_breast_cancer, load_diabetes
from tritonclient.utils import InferenceServerException

DATATYPES = list(NUMPY_TYPES)


def sample(datatype: str, rows: int = 3, width: int = 4, seed: int = 0) -> np.ndarray:
    """Values that exercise a datatype's range (extremes included)."""
    rng = np.random.default_rng(seed)
    if datatype == "BYTES":
        words = [b"", b"a", b"modelship", "\u00e9t\u00e9".encode(), b"x" * 300]
        flat = [words[i % len(words)] for i in range(rows * width)]
        return np.array(flat, dtype=np.object_).reshape(rows, width)
    dtype = np.dtype(NUMPY_TYPES[datatype])
    if datatype == "BOOL":
        return rng.integers(0, 2, (rows, width)).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, (rows, width), dtype=dtype, endpoint=True)
        values.flat[0], values.flat[1] = info.min, info.max
        return values
    return (rng.standard_normal((rows, width)) * 100).astype(dtype)


def in_process(repository: Path, model: str, feed: dict[str, np.ndarray],
               version: int = 1) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(repository / model / str(version) / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    if any(a.dtype == np.object_ for a in feed.values()):
        feed = {k: np.vectorize(lambda b: b.decode())(v).astype(object) if v.dtype == object
                else v for k, v in feed.items()}
    names = [o.name for o in session.get_outputs()]
    out = dict(zip(names, session.run(names, feed)))
    return {k: (np.vectorize(lambda s: s.encode())(v).astype(object) if v.dtype == object
                else v) for k, v in out.items()}


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    if want.dtype == np.object_:
        assert [bytes(g) for g in got.reshape(-1)] == list(want.reshape(-1))
    else:
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


# -- every datatype, every client --------------------------------------------


@pytest.mark.parametrize("datatype", DATATYPES)
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_http_client_round_trips_every_datatype(server, datatype, binary):
    data = sample(datatype)
    if not binary and datatype == "BYTES":
        data = np.vectorize(lambda b: b.decode())(data).astype(object)
    model = f"identity_{datatype.lower()}"
    with httpclient.InferenceServerClient(server.http_url) as client:
        tensor = httpclient.InferInput("INPUT0", list(data.shape), datatype)
        tensor.set_data_from_numpy(data, binary_data=binary)
        out = httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)
        result = client.infer(model, [tensor], outputs=[out])
    expected = in_process(server.repository, model, {"INPUT0": sample(datatype)})["OUTPUT0"]
    got = result.as_numpy("OUTPUT0")
    if datatype == "BYTES" and not binary:
        got = np.array([g.encode() if isinstance(g, str) else g for g in got.reshape(-1)],
                       dtype=object).reshape(got.shape)
    assert_same(got, expected)


@pytest.mark.parametrize("datatype", DATATYPES)
def test_grpc_client_round_trips_every_datatype(server, datatype):
    data = sample(datatype)
    model = f"identity_{datatype.lower()}"
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        tensor = grpcclient.InferInput("INPUT0", list(data.shape), datatype)
        tensor.set_data_from_numpy(data)
        result = client.infer(model, [tensor])
    assert_same(result.as_numpy("OUTPUT0"), in_process(server.repository, model,
                                                         {"INPUT0": data})["OUTPUT0"])


@pytest.mark.parametrize("datatype", DATATYPES)
async def test_http_aio_client_round_trips_every_datatype(server, datatype):
    data = sample(datatype, seed=1)
    model = f"identity_{datatype.lower()}"
    async with httpaio.InferenceServerClient(server.http_url) as client:
        tensor = httpaio.InferInput("INPUT0", list(data.shape), datatype)
        tensor.set_data_from_numpy(data)
        result = await client.infer(model, [tensor])
    assert_same(result.as_numpy("OUTPUT0"), in_process(server.repository, model,
                                                         {"INPUT0": data})["OUTPUT0"])


@pytest.mark.parametrize("datatype", DATATYPES)
async def test_grpc_aio_client_round_trips_every_datatype(server, datatype):
    data = sample(datatype, seed=2)
    model = f"identity_{datatype.lower()}"
    async with grpcaio.InferenceServerClient(server.grpc_url) as client:
        tensor = grpcaio.InferInput("INPUT0", list(data.shape), datatype)
        tensor.set_data_from_numpy(data)
        result = await client.infer(model, [tensor])
    assert_same(result.as_numpy("OUTPUT0"), in_process(server.repository, model,
                                                         {"INPUT0": data})["OUTPUT0"])


# -- real models ----------------------------------------------------------------


def test_breast_cancer_mlp_answers_like_onnxruntime_over_every_client(server):
    x = load_breast_cancer().data[:25].astype(np.float32)
    want = in_process(server.repository, "mlp", {"input": x})

    with httpclient.InferenceServerClient(server.http_url) as client:
        tensor = httpclient.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        binary = client.infer("mlp", [tensor])
        tensor.set_data_from_numpy(x, binary_data=False)
        as_json = client.infer("mlp", [tensor], outputs=[
            httpclient.InferRequestedOutput("probabilities", binary_data=False),
            httpclient.InferRequestedOutput("label", binary_data=False)])
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        tensor = grpcclient.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        over_grpc = client.infer("mlp", [tensor])

    for result in (binary, as_json, over_grpc):
        assert_same(result.as_numpy("label"), want["label"])
        np.testing.assert_array_equal(result.as_numpy("probabilities"), want["probabilities"])
    assert (want["label"] == load_breast_cancer().target[:25]).mean() > 0.8


def test_only_the_requested_output_comes_back(server):
    x = load_breast_cancer().data[:2].astype(np.float32)
    with httpclient.InferenceServerClient(server.http_url) as client:
        tensor = httpclient.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer("mlp", [tensor],
                              outputs=[httpclient.InferRequestedOutput("label")])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["label"]
    assert result.as_numpy("probabilities") is None


def test_versions_in_the_path_pick_the_version(server):
    x = load_diabetes().data[:4]
    want = in_process(server.repository, "diabetes", {"x": x}, version=2)["target"]
    with httpclient.InferenceServerClient(server.http_url) as client:
        tensor = httpclient.InferInput("x", list(x.shape), "FP64")
        tensor.set_data_from_numpy(x)
        for version in ("1", "2", ""):
            result = client.infer("diabetes", [tensor], model_version=version)
            assert result.get_response()["model_version"] == (version or "2")
            np.testing.assert_allclose(result.as_numpy("target"), want)
        with pytest.raises(InferenceServerException, match="no ready version 3"):
            client.infer("diabetes", [tensor], model_version="3")


def test_request_id_is_echoed(server):
    x = np.zeros((1, 30), np.float32)
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        tensor = grpcclient.InferInput("input", [1, 30], "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer("mlp", [tensor], request_id="req-42")
    assert result.get_response().id == "req-42"


def test_streaming_grpc_inference_answers_each_request(server):
    import queue

    answers: queue.Queue = queue.Queue()
    x = np.zeros((1, 30), np.float32)
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        client.start_stream(callback=lambda result, error: answers.put((result, error)))
        for i in range(3):
            tensor = grpcclient.InferInput("input", [1, 30], "FP32")
            tensor.set_data_from_numpy(x)
            client.async_stream_infer("mlp", [tensor], request_id=str(i))
        got = [answers.get(timeout=10) for _ in range(3)]
        client.stop_stream()
    assert sorted(r.get_response().id for r, e in got if e is None) == ["0", "1", "2"]
