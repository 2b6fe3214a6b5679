"""The storage initializer fetches file://, pvc://, s3:// (a local S3-compatible
server) and http:// URIs into Triton's layout, verifies them, and explains failures."""

from __future__ import annotations

import base64
import json
import hashlib
import http.server
import io
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import onnx
from tests.serving import onnx_models
import pytest
from tests.serving.harness import free_port

from modelship_serving.storage.main import main

CONFIG = "max_batch_size: 8\n"


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "model.onnx"
    path.parent.mkdir()
    onnx.save(onnx_models.diabetes_regressor(), str(path))
    return path


@pytest.fixture
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv("MODELSHIP_TERMINATION_LOG", str(path))
    return path


def test_a_single_file_uri_becomes_model_version_one(model_file, tmp_path, termination_log):
    dest = tmp_path / "repo"
    b64 = base64.b64encode(CONFIG.encode()).decode()
    assert main(["--uri", model_file.as_uri(), "--dest", str(dest), "--model-name", "diabetes",
                 "--config-pbtxt-b64", b64]) == 0
    assert (dest / "diabetes" / "1" / "model.onnx").is_file()
    assert (dest / "diabetes" / "config.pbtxt").read_text() == CONFIG
    assert [p.name for p in dest.iterdir()] == ["diabetes"]  # no staging left behind
    # Success leaves a summary the operator reads the stored versions from.
    assert json.loads(termination_log.read_text()) == {
        "models": {"diabetes": [1]}, "versions": [1]}


def test_pvc_uris_resolve_under_the_pvc_root(model_file, tmp_path, monkeypatch,
                                             termination_log):
    claim = tmp_path / "pvc" / "models" / "diabetes" / "3"
    claim.mkdir(parents=True)
    (claim / "model.onnx").write_bytes(model_file.read_bytes())
    monkeypatch.setenv("MODELSHIP_PVC_ROOT", str(tmp_path / "pvc"))
    dest = tmp_path / "repo"
    assert main(["--uri", "pvc://models/diabetes", "--dest", str(dest),
                 "--model-name", "diabetes"]) == 0
    assert (dest / "diabetes" / "3" / "model.onnx").is_file()


def test_a_file_that_is_not_onnx_fails_with_a_reason_in_the_termination_log(
        tmp_path, termination_log):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    assert main(["--uri", bad.as_uri(), "--dest", str(tmp_path / "repo")]) == 1
    line = termination_log.read_text()
    assert line.startswith("VerificationFailed: model/1/model.onnx is not a valid ONNX model")
    assert "\n" not in line
    assert not (tmp_path / "repo" / "model").exists()


def test_a_wrong_checksum_is_refused(model_file, tmp_path, termination_log):
    good = hashlib.sha256(model_file.read_bytes()).hexdigest()
    dest = str(tmp_path / "repo")
    assert main(["--uri", model_file.as_uri(), "--dest", dest, "--sha256", good]) == 0
    assert main(["--uri", model_file.as_uri(), "--dest", dest, "--sha256", "0" * 64]) == 1
    assert "has sha256" in termination_log.read_text()


def test_missing_sources_and_unknown_schemes_are_explained(tmp_path, termination_log):
    assert main(["--uri", "file:///nonexistent/model.onnx", "--dest", str(tmp_path)]) == 1
    assert termination_log.read_text() == "FetchFailed: /nonexistent/model.onnx does not exist"
    assert main(["--uri", "gs://bucket/model.onnx", "--dest", str(tmp_path)]) == 1
    assert termination_log.read_text().startswith("UnsupportedUri: URI scheme 'gs'")


# -- s3:// against a local S3-compatible server ---------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch, tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "AWS_ACCESS_KEY_ID").write_text("modelship-test-key\n")
    (secrets / "AWS_SECRET_ACCESS_KEY").write_text("modelship-test-secret-value\n")
    monkeypatch.setenv("MODELSHIP_STORAGE_SECRET_DIR", str(secrets))
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="modelship-test-key",
                          aws_secret_access_key="modelship-test-secret-value")
    return client


def test_s3_prefix_with_a_model_directory_is_fetched(s3_env, model_file, tmp_path,
                                                     termination_log, caplog):
    s3_env.create_bucket(Bucket="models")
    s3_env.put_object(Bucket="models", Key="prod/mlp/2/model.onnx",
                      Body=model_file.read_bytes())
    s3_env.put_object(Bucket="models", Key="prod/mlp/config.pbtxt", Body=CONFIG.encode())
    dest = tmp_path / "repo"
    caplog.set_level("DEBUG")
    assert main(["--uri", "s3://models/prod/mlp", "--dest", str(dest),
                 "--model-name", "mlp"]) == 0, termination_log.read_text()
    assert (dest / "mlp" / "2" / "model.onnx").read_bytes() == model_file.read_bytes()
    assert (dest / "mlp" / "config.pbtxt").read_text() == CONFIG
    assert "modelship-test-secret-value" not in caplog.text
    assert "modelship-test-key" not in caplog.text


def test_s3_single_object_and_missing_keys(s3_env, model_file, tmp_path, termination_log):
    s3_env.create_bucket(Bucket="single")
    s3_env.put_object(Bucket="single", Key="a/model.onnx", Body=model_file.read_bytes())
    dest = tmp_path / "repo"
    assert main(["--uri", "s3://single/a/model.onnx", "--dest", str(dest)]) == 0
    assert (dest / "model" / "1" / "model.onnx").is_file()
    assert main(["--uri", "s3://single/missing", "--dest", str(dest)]) == 1
    assert termination_log.read_text() == "FetchFailed: s3://single/missing holds no objects"


# -- http:// against a local server ------------------------------------------------


@pytest.fixture
def http_root(tmp_path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_archives_of_a_repository_are_unpacked(http_root, model_file, tmp_path,
                                                    termination_log):
    root, url = http_root
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(model_file, arcname="repo/diabetes/5/model.onnx")
        info = tarfile.TarInfo("repo/diabetes/config.pbtxt")
        info.size = len(CONFIG)
        archive.addfile(info, io.BytesIO(CONFIG.encode()))
    (root / "models.tar.gz").write_bytes(buffer.getvalue())
    dest = tmp_path / "repo"
    assert main(["--uri", f"{url}/models.tar.gz", "--dest", str(dest)]) == 0
    assert (dest / "diabetes" / "5" / "model.onnx").is_file()
    assert main(["--uri", f"{url}/absent.onnx", "--dest", str(dest)]) == 1
    assert termination_log.read_text().startswith("FetchFailed: GET http://127.0.0.1")
    assert "404" in termination_log.read_text()


def test_the_entry_point_runs_as_a_command(model_file, tmp_path):
    log = tmp_path / "term"
    result = subprocess.run(
        [sys.executable, "-m", "modelship_serving.storage.main", "--uri",
         model_file.as_uri(), "--dest", str(tmp_path / "repo"), "--termination-log", str(log)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "repo" / "model" / "1" / "model.onnx").is_file()


def test_a_reference_named_in_the_spec_is_installed_beside_every_version(
        model_file, tmp_path, termination_log):
    reference = {"split": "validation", "samples": 3,
                 "inputs": {"input": {"features": []}}, "outputs": {}}
    source = tmp_path / "reference.json"
    source.write_text(json.dumps(reference))
    dest = tmp_path / "repo"

    assert main(["--uri", model_file.as_uri(), "--dest", str(dest), "--model-name", "diabetes",
                 "--reference", source.as_uri()]) == 0

    assert json.loads((dest / "diabetes" / "1" / "reference.json").read_text()) == reference


def test_a_reference_that_is_not_statistics_fails_with_a_reason(
        model_file, tmp_path, termination_log):
    source = tmp_path / "reference.json"
    source.write_text("[1, 2, 3]")

    assert main(["--uri", model_file.as_uri(), "--dest", str(tmp_path / "repo"),
                 "--reference", source.as_uri()]) == 1

    assert termination_log.read_text().startswith("LayoutInvalid: reference ")
