"""The router exposes the server's surface for its ensemble: health, metadata,
statistics, repository index, the same 4xx messages, and metrics with the server's
names plus per-member latency and failures."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.router import members
from tests.router.clients import infer
from tests.router.harness import RunningRouter, member, start_router
from tests.serving.harness import RunningServer

NAME = "cancer-surface"


@pytest.fixture(scope="module")
def router(server_of: dict[str, RunningServer], router_dir: Path) -> Iterator[RunningRouter]:
    config = {"name": NAME, "strategy": "voting",
              "members": [member(m, server_of[m], m) for m in ("logreg", "mlp", "weak")]}
    running = start_router(config, router_dir)
    yield running
    assert running.terminate() == 0, running.log()


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_health_and_server_metadata_answer_like_the_server(router: RunningRouter) -> None:
    client = httpclient.InferenceServerClient(router.http_url)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(NAME) and client.is_model_ready(NAME, "1")
    assert not client.is_model_ready("logreg")
    assert client.get_server_metadata()["name"] == "modelship"
    client.close()


def test_a_wrong_request_gets_the_same_400_from_the_router_as_from_a_member(
        router: RunningRouter, server_of: dict[str, RunningServer]) -> None:
    body = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 30],
                        "data": [0.0] * 30}]}
    router_status, router_error = post(f"http://{router.http_url}/v2/models/{NAME}/infer", body)
    member_status, member_error = post(
        f"http://{server_of['logreg'].http_url}/v2/models/logreg/infer", body)
    assert router_status == member_status == 400
    assert router_error == member_error == {
        "error": "input 'input': datatype FP64 does not match the model's FP32"}


def test_an_unknown_model_is_404_naming_the_ensemble_served(router: RunningRouter) -> None:
    status, error = post(f"http://{router.http_url}/v2/models/logreg/infer",
                         {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30],
                                      "data": [0.0] * 30}]})
    assert status == 404
    assert f"this router serves ensemble '{NAME}'" in error["error"]


def test_json_inputs_and_outputs_work_without_the_binary_extension(
        router: RunningRouter) -> None:
    row = members.breast_cancer()[0][0]
    status, answer = post(f"http://{router.http_url}/v2/models/{NAME}/infer", {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30],
                    "data": row.tolist()}],
        "outputs": [{"name": "label"}]})
    assert status == 200
    assert answer["model_name"] == NAME and answer["model_version"] == "1"
    assert answer["outputs"] == [{"name": "label", "datatype": "INT64", "shape": [1],
                                  "data": [0]}]


def test_repository_control_is_refused_and_the_index_lists_the_ensemble(
        router: RunningRouter) -> None:
    client = grpcclient.InferenceServerClient(router.grpc_url)
    index = client.get_model_repository_index(as_json=True)["models"]
    assert index == [{"name": NAME, "version": "1", "state": "READY"}]
    with pytest.raises(InferenceServerException, match="router serves one ensemble"):
        client.load_model(NAME)
    client.close()


def test_statistics_and_metrics_count_the_ensembles_requests_and_each_members_calls(
        router: RunningRouter) -> None:
    rows = members.breast_cancer()[0][:5]
    for protocol, url in (("http", router.http_url), ("grpc", router.grpc_url)):
        infer(protocol, url, NAME, {"input": rows}, ["label"])

    client = grpcclient.InferenceServerClient(router.grpc_url)
    stats = client.get_inference_statistics(NAME, as_json=True)["model_stats"][0]
    client.close()
    assert stats["name"] == NAME and stats["version"] == "1"
    assert int(stats["inference_stats"]["success"]["count"]) >= 2
    assert int(stats["inference_count"]) >= 10

    status, body = router.get("/metrics", port=router.metrics_port)
    text = body.decode()
    assert status == 200

    def value(pattern: str) -> float:
        match = re.search(pattern + r" (\S+)", text)
        assert match, f"{pattern} not in metrics"
        return float(match.group(1))

    assert value(rf'nv_inference_request_success\{{model="{NAME}",version="1"\}}') >= 2
    assert value(rf'nv_inference_count\{{model="{NAME}",version="1"\}}') >= 10
    assert value(rf'modelship_request_duration_seconds_count\{{model="{NAME}",'
                 rf'protocol="grpc",version="1"\}}') >= 1
    for m in ("logreg", "mlp", "weak"):
        labels = rf'\{{ensemble="{NAME}",member="{m}"\}}'
        assert value(rf"modelship_member_request_duration_seconds_count{labels}") >= 2
        assert value(rf"modelship_member_request_failures_total{labels}") == 0
    assert np.isfinite(value(r"nv_inference_request_duration_us\{[^}]*\}"))
