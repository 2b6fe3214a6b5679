"""Health, metadata, config, statistics and /metrics answer as Triton's do."""

from __future__ import annotations

import urllib.request

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2 as mc

TRITON_METRICS = [
    "nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count",
    "nv_inference_exec_count", "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us", "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us", "nv_inference_compute_output_duration_us",
    "nv_inference_pending_request_count",
]


def test_server_is_live_and_ready_over_both_protocols(server):
    with httpclient.InferenceServerClient(server.http_url) as client:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("mlp")
        assert client.is_model_ready("diabetes", "1")
        assert not client.is_model_ready("diabetes", "7")
        assert not client.is_model_ready("no_such_model")
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("mlp")
        assert not client.is_model_ready("no_such_model")


def test_model_metadata_lists_tensors_with_the_batch_dimension(server):
    with httpclient.InferenceServerClient(server.http_url) as client:
        meta = client.get_model_metadata("mlp")
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}]
    assert {o["name"]: o["shape"] for o in meta["outputs"]} == {
        "probabilities": [-1, 2], "label": [-1]}
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        grpc_meta = client.get_model_metadata("diabetes", as_json=True)
    assert grpc_meta["versions"] == ["1", "2"]
    assert grpc_meta["inputs"][0]["datatype"] == "FP64"


def test_config_over_http_is_the_json_form_of_the_grpc_protobuf(server):
    with httpclient.InferenceServerClient(server.http_url) as client:
        as_json = client.get_model_config("mlp")
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        proto = client.get_model_config("mlp").config
    assert as_json["max_batch_size"] == 32
    assert as_json["input"][0]["dims"] == [30]  # int64 as JSON numbers, as Triton writes
    assert json_format.ParseDict(as_json, mc.ModelConfig()) == proto
    assert proto.HasField("dynamic_batching")


def test_autocompleted_config_batches_like_triton(server):
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        config = client.get_model_config("identity_fp32").config
    assert config.max_batch_size == 4 and config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [4]
    assert config.input[0].data_type == mc.TYPE_FP32


def test_statistics_count_inferences_and_executions(server):
    x = np.zeros((3, 10), np.float64)
    with httpclient.InferenceServerClient(server.http_url) as client:
        before = client.get_inference_statistics("diabetes", "1")["model_stats"][0]
        tensor = httpclient.InferInput("x", [3, 10], "FP64")
        tensor.set_data_from_numpy(x)
        client.infer("diabetes", [tensor], model_version="1")
        after = client.get_inference_statistics("diabetes", "1")["model_stats"][0]
        everything = client.get_inference_statistics()
    assert after["inference_count"] - before["inference_count"] == 3
    assert after["execution_count"] - before["execution_count"] == 1
    assert after["inference_stats"]["success"]["count"] == \
        before["inference_stats"]["success"]["count"] + 1
    assert {"mlp", "diabetes"} <= {m["name"] for m in everything["model_stats"]}
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        grpc_stats = client.get_inference_statistics("diabetes", "1", as_json=True)
    assert int(grpc_stats["model_stats"][0]["inference_count"]) >= 3


def test_metrics_use_triton_names_and_modelship_histograms(server):
    x = np.zeros((1, 30), np.float32)
    with httpclient.InferenceServerClient(server.http_url) as client:
        tensor = httpclient.InferInput("input", [1, 30], "FP32")
        tensor.set_data_from_numpy(x)
        client.infer("mlp", [tensor])
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as r:
        text = r.read().decode()
    for name in TRITON_METRICS:
        assert f'{name}{{model="mlp",version="1"}}' in text, name
        assert f"# TYPE {name} " in text
    assert 'modelship_request_duration_seconds_bucket{le="0.0001",model="mlp",protocol="http"' \
        in text
    assert 'modelship_batch_size_count{model="mlp",version="1"}' in text
    success = [line for line in text.splitlines()
               if line.startswith('nv_inference_request_success{model="mlp"')]
    assert float(success[0].split()[-1]) >= 1


def test_repository_index_reports_every_model(server):
    with httpclient.InferenceServerClient(server.http_url) as client:
        index = client.get_model_repository_index()
    ready = {(m["name"], m["version"]) for m in index if m["state"] == "READY"}
    assert {("mlp", "1"), ("diabetes", "1"), ("diabetes", "2")} <= ready


def test_server_metadata_names_the_extensions(server):
    with httpclient.InferenceServerClient(server.http_url) as client:
        meta = client.get_server_metadata()
    assert meta["name"] == "modelship"
    assert "binary_tensor_data" in meta["extensions"]
