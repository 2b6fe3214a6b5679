"""Loading, reloading and unloading models at runtime, and models that fail to load."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from tests.serving import onnx_models
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tests.serving.harness import start_server
from tritonclient.utils import InferenceServerException


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_models.write_model(root, "mlp", onnx_models.breast_cancer_mlp())
    onnx_models.write_model(root, "diabetes", onnx_models.diabetes_regressor())
    (root / "broken" / "1").mkdir(parents=True)
    (root / "broken" / "1" / "model.onnx").write_bytes(b"this is not an onnx model")
    onnx_models.write_model(
        root, "mismatch", onnx_models.diabetes_regressor(),
        config='input [{ name: "x" data_type: TYPE_FP32 dims: [10] }]\n')
    return root


@pytest.fixture
def explicit_server(repository: Path, tmp_path: Path):
    running = start_server(repository, tmp_path / "server.log",
                           "--model-control-mode", "explicit", "--load-model", "mlp")
    yield running
    assert running.terminate() == 0, running.log()


def test_explicit_mode_loads_only_named_models_and_loads_more_on_request(explicit_server):
    with httpclient.InferenceServerClient(explicit_server.http_url) as client:
        assert client.is_model_ready("mlp")
        assert not client.is_model_ready("diabetes")
        client.load_model("diabetes")
        assert client.is_model_ready("diabetes")
        client.unload_model("diabetes")
        assert not client.is_model_ready("diabetes")
        index = {m["name"]: m for m in client.get_model_repository_index()}
    assert index["diabetes"]["state"] == "UNAVAILABLE"
    assert index["diabetes"]["reason"] == "unloaded"


def test_a_model_that_fails_to_load_is_reported_and_the_server_keeps_serving(explicit_server):
    with grpcclient.InferenceServerClient(explicit_server.grpc_url) as client:
        with pytest.raises(InferenceServerException, match="failed to load 'broken'"):
            client.load_model("broken")
        with pytest.raises(InferenceServerException, match="TYPE_FP32 in config.pbtxt but "
                                                          "TYPE_FP64"):
            client.load_model("mismatch")
        index = {m.name: m for m in client.get_model_repository_index().models}
        assert client.is_server_live() and client.is_model_ready("mlp")
    assert index["broken"].state == "UNAVAILABLE"
    assert "not a readable ONNX model" in index["broken"].reason
    assert index["mismatch"].state == "UNAVAILABLE"


def test_reload_picks_up_a_new_version_without_dropping_the_old_one_early(
        explicit_server, repository):
    x = np.zeros((1, 10), np.float64)
    with httpclient.InferenceServerClient(explicit_server.http_url) as client:
        client.load_model("diabetes")
        onnx_models.write_model(repository, "diabetes", onnx_models.diabetes_regressor(),
                                version=2)
        client.load_model("diabetes")
        tensor = httpclient.InferInput("x", [1, 10], "FP64")
        tensor.set_data_from_numpy(x)
        result = client.infer("diabetes", [tensor])
        assert result.get_response()["model_version"] == "2"
        assert not client.is_model_ready("diabetes", "1")  # latest-1 policy


def test_load_accepts_a_config_override_in_triton_json(explicit_server):
    config = json.dumps({"max_batch_size": 2, "version_policy": {"all": {}}})
    with httpclient.InferenceServerClient(explicit_server.http_url) as client:
        client.load_model("diabetes", config=config)
        assert client.get_model_config("diabetes")["max_batch_size"] == 2
        tensor = httpclient.InferInput("x", [3, 10], "FP64")
        tensor.set_data_from_numpy(np.zeros((3, 10)))
        with pytest.raises(InferenceServerException, match=r"batch size 3 is outside \[1, 2\]"):
            client.infer("diabetes", [tensor])


def test_load_and_unload_are_refused_without_explicit_mode(server):
    with httpclient.InferenceServerClient(server.http_url) as client:
        with pytest.raises(InferenceServerException, match="model-control-mode=none"):
            client.unload_model("mlp")
        assert client.is_model_ready("mlp")


def test_a_failed_model_at_startup_keeps_readiness_off_but_serves_the_rest(
        repository, tmp_path):
    running = start_server(repository, tmp_path / "none.log", wait_ready=False)
    try:
        with httpclient.InferenceServerClient(running.http_url) as client:
            import time

            deadline = time.monotonic() + 30
            while not client.is_model_ready("mlp") and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.is_model_ready("mlp")
            assert not client.is_server_ready()  # strict readiness, as Triton
            index = {m["name"]: m for m in client.get_model_repository_index()}
            assert index["broken"]["state"] == "UNAVAILABLE"
    finally:
        assert running.terminate() == 0
