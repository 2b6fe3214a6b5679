"""When members fail or do not fit: errors that name the member, and a router that says
why it is not ready (over HTTP, in its metadata, and from --check-config)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.router import members
from tests.router.clients import infer
from tests.router.harness import check_config, member, poll_until, start_router
from tests.serving.harness import RunningServer, start_server

MISMATCH = ("output 'probabilities': member 'logreg' gives FP32 [-1, 2] but member 'wide' "
            "gives FP32 [-1, 3]")


def mismatched_voting(server_of: dict[str, RunningServer]) -> dict:
    return {"name": "mismatched", "strategy": "voting",
            "members": [member("logreg", server_of["logreg"], "logreg"),
                        member("mlp", server_of["mlp"], "mlp"),
                        member("wide", server_of["three_class"], "three_class")]}


@pytest.mark.parametrize("member_protocol", ["grpc", "http"])
def test_a_member_that_goes_down_fails_requests_with_an_error_naming_it(
        member_protocol: str, server_of: dict[str, RunningServer],
        member_repositories: dict[str, Path], router_dir: Path) -> None:
    doomed = start_server(member_repositories["b"], router_dir / "doomed.log")
    address = doomed.grpc_url if member_protocol == "grpc" else f"http://{doomed.http_url}"
    config = {"name": "losing-a-member", "strategy": "voting", "timeoutSeconds": 2,
              "retries": 1, "memberProtocol": member_protocol,
              "members": [member("logreg", server_of["logreg"], "logreg"),
                          member("mlp", doomed, "mlp"),
                          member("weak", server_of["weak"], "weak")]}
    router = start_router(config, router_dir)
    try:
        rows = members.breast_cancer()[0][:4]
        assert infer("http", router.http_url, "losing-a-member", {"input": rows})["label"].size
        assert doomed.terminate() == 0

        with pytest.raises(InferenceServerException) as http_error:
            infer("http", router.http_url, "losing-a-member", {"input": rows}, ["label"])
        assert http_error.value.status() == "502"
        assert f"member 'mlp' ({address}) failed after 2 attempts" in \
            http_error.value.message()

        with pytest.raises(InferenceServerException) as grpc_error:
            infer("grpc", router.grpc_url, "losing-a-member", {"input": rows}, ["label"])
        assert grpc_error.value.status() == "StatusCode.UNAVAILABLE"
        assert f"member 'mlp' ({address}) failed" in grpc_error.value.message()

        # An outage is reported per request; the ensemble's config still holds.
        assert router.get("/v2/health/ready")[0] == 200
        status, body = router.get("/metrics", port=router.metrics_port)
        failures = re.search(r'modelship_member_request_failures_total\{ensemble="losing-a-'
                             r'member",member="mlp"\} (\S+)', body.decode())
        assert failures and float(failures.group(1)) == 2.0
    finally:
        doomed.terminate()
        assert router.terminate() == 0, router.log()


def test_members_whose_shapes_disagree_keep_the_router_not_ready_with_the_reason(
        server_of: dict[str, RunningServer], router_dir: Path) -> None:
    router = start_router(mismatched_voting(server_of), router_dir, wait_ready=False)
    try:
        status, body = poll_until(
            lambda: b"do not fit" in (r := router.get("/v2/models/mismatched/ready"))[1] and r,
            what="the router to report why it is not ready")
        assert status == 400
        assert MISMATCH in json.loads(body)["error"]
        assert router.get("/v2/health/ready")[0] == 503

        status, body = router.get("/v2/models/mismatched")
        assert status == 503 and MISMATCH in json.loads(body)["error"]
        grpc = grpcclient.InferenceServerClient(router.grpc_url)
        assert not grpc.is_model_ready("mismatched")
        with pytest.raises(InferenceServerException, match=re.escape(MISMATCH)):
            grpc.get_model_metadata("mismatched")
        grpc.close()

        with pytest.raises(InferenceServerException) as refused:
            infer("http", router.http_url, "mismatched",
                  {"input": np.zeros((1, 30), np.float32)}, ["label"])
        assert refused.value.status() == "503"
    finally:
        assert router.terminate() == 0, router.log()
    assert MISMATCH in router.log()


def test_check_config_prints_why_members_do_not_fit_and_exits_1(
        server_of: dict[str, RunningServer], router_dir: Path) -> None:
    result = check_config(mismatched_voting(server_of), router_dir)
    assert result.returncode == 1, result.stdout + result.stderr
    assert MISMATCH in result.stderr


def test_check_config_refuses_a_pipeline_that_feeds_labels_into_features(
        server_of: dict[str, RunningServer], router_dir: Path) -> None:
    config = {"name": "bad-pipeline", "strategy": "serial",
              "members": [member("weak", server_of["weak"], "weak"),
                          member("logreg", server_of["logreg"], "logreg")],
              "steps": [{"member": "weak", "inputMapping": {"input": "$input.x"}},
                        {"member": "logreg", "inputMapping": {"input": "weak.label"}}]}
    result = check_config(config, router_dir)
    assert result.returncode == 1
    assert ("step 'logreg': input 'input' takes FP32 [-1, 30] but 'weak.label' gives "
            "INT64 [-1]") in result.stderr


def test_check_config_describes_an_ensemble_that_fits_and_exits_0(
        server_of: dict[str, RunningServer], router_dir: Path) -> None:
    config = {"name": "fits", "strategy": "voting",
              "members": [member(m, server_of[m], m) for m in ("logreg", "mlp", "weak")]}
    result = check_config(config, router_dir)
    assert result.returncode == 0, result.stderr
    assert "input  input: FP32 [-1, 30]" in result.stdout
    assert "output label: INT64 [-1]" in result.stdout


def test_check_config_names_an_unreachable_member(router_dir: Path) -> None:
    from tests.serving.harness import free_port

    port = free_port()
    config = {"name": "nobody-home", "strategy": "voting", "timeoutSeconds": 1,
              "retries": 0,
              "members": [{"name": n, "url": f"http://127.0.0.1:{port}",
                           "grpcUrl": f"127.0.0.1:{port}", "model": n} for n in ("a", "b")]}
    result = check_config(config, router_dir)
    assert result.returncode == 1
    assert f"member 'a' (http://127.0.0.1:{port}) failed" in result.stderr


def test_an_invalid_config_file_exits_1_naming_the_field(router_dir: Path) -> None:
    config = {"name": "no-weights", "strategy": "weighted",
              "members": [{"name": n, "url": "http://127.0.0.1:1", "grpcUrl": "127.0.0.1:1",
                           "model": n} for n in ("a", "b")]}
    result = check_config(config, router_dir)
    assert result.returncode == 1
    assert "strategy weighted needs a weight on every member" in result.stderr
