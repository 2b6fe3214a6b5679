"""A serial pipeline equals running its two ONNX models one after the other in-process;
a parallel ensemble returns every member's output, side by side or concatenated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.router import members
from tests.router.clients import infer
from tests.router.harness import RunningRouter, member, start_router
from tests.serving.harness import RunningServer

PARALLEL = ["logreg", "mlp"]


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    x, _ = members.breast_cancer()
    return x[::9][:60]


@pytest.fixture(scope="module")
def pipeline(server_of: dict[str, RunningServer], router_dir: Path
             ) -> Iterator[RunningRouter]:
    config = {
        "name": "cancer-pipeline", "strategy": "serial",
        "members": [member("scale", server_of["scaler"], "scaler"),
                    member("classify", server_of["scaled_logreg"], "scaled_logreg")],
        "steps": [{"member": "scale", "inputMapping": {"raw": "$input.features"}},
                  {"member": "classify", "inputMapping": {"input": "scale.scaled"}}],
        "outputs": {"probability": "classify.probabilities",
                    "label": {"member": "classify", "output": "label"},
                    "scaled": "scale.scaled"},
    }
    router = start_router(config, router_dir)
    yield router
    assert router.terminate() == 0, router.log()


def _parallel(name: str, combine: str, server_of: dict[str, RunningServer], directory: Path
              ) -> Iterator[RunningRouter]:
    config = {"name": name, "strategy": "parallel", "parallel": {"combine": combine},
              "memberProtocol": "grpc",
              "members": [member(m, server_of[m], m) for m in PARALLEL]}
    router = start_router(config, directory)
    yield router
    assert router.terminate() == 0, router.log()


@pytest.fixture(scope="module")
def side_by_side(server_of: dict[str, RunningServer], router_dir: Path
                 ) -> Iterator[RunningRouter]:
    yield from _parallel("cancer-side-by-side", "separate", server_of, router_dir)


@pytest.fixture(scope="module")
def concatenated(server_of: dict[str, RunningServer], router_dir: Path
                 ) -> Iterator[RunningRouter]:
    yield from _parallel("cancer-concat", "concat", server_of, router_dir)


def run_onnx(path: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed), strict=True))


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_serial_pipeline_equals_its_two_models_run_in_sequence_in_process(
        protocol: str, pipeline: RunningRouter, rows: np.ndarray,
        model_files: dict[str, Path]) -> None:
    url = pipeline.http_url if protocol == "http" else pipeline.grpc_url
    got = infer(protocol, url, "cancer-pipeline", {"features": rows})

    scaled = run_onnx(model_files["scaler"], {"raw": rows})["scaled"]
    classified = run_onnx(model_files["scaled_logreg"], {"input": scaled})
    np.testing.assert_array_equal(got["scaled"], scaled)
    np.testing.assert_array_equal(got["probability"], classified["probabilities"])
    np.testing.assert_array_equal(got["label"], classified["label"])


def test_a_serial_ensemble_declares_the_pipelines_input_and_chosen_outputs(
        pipeline: RunningRouter) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(pipeline.http_url)
    metadata = client.get_model_metadata("cancer-pipeline")
    config = client.get_model_config("cancer-pipeline")
    client.close()

    assert metadata["platform"] == "ensemble"
    assert metadata["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 30]}]
    assert {o["name"]: (o["datatype"], o["shape"]) for o in metadata["outputs"]} == {
        "probability": ("FP32", [-1, 2]), "label": ("INT64", [-1]),
        "scaled": ("FP32", [-1, 30])}
    steps = config["ensemble_scheduling"]["step"]
    assert [s["model_name"] for s in steps] == ["scaler", "scaled_logreg"]
    assert steps[1]["input_map"] == {"input": "scale.scaled"}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_parallel_separate_returns_every_members_outputs_under_its_name(
        protocol: str, side_by_side: RunningRouter, rows: np.ndarray,
        model_files: dict[str, Path]) -> None:
    url = side_by_side.http_url if protocol == "http" else side_by_side.grpc_url
    got = infer(protocol, url, "cancer-side-by-side", {"input": rows})

    assert set(got) == {f"{m}.{o}" for m in PARALLEL for o in ("probabilities", "label")}
    for m in PARALLEL:
        own = run_onnx(model_files[m], {"input": rows})
        np.testing.assert_array_equal(got[f"{m}.probabilities"], own["probabilities"])
        np.testing.assert_array_equal(got[f"{m}.label"], own["label"])


def test_parallel_concat_joins_outputs_along_the_last_axis_labels_as_columns(
        concatenated: RunningRouter, rows: np.ndarray, model_files: dict[str, Path]) -> None:
    got = infer("grpc", concatenated.grpc_url, "cancer-concat", {"input": rows})

    own = [run_onnx(model_files[m], {"input": rows}) for m in PARALLEL]
    np.testing.assert_array_equal(
        got["probabilities"], np.concatenate([o["probabilities"] for o in own], axis=1))
    assert got["probabilities"].shape == (len(rows), 4)
    np.testing.assert_array_equal(got["label"], np.stack([o["label"] for o in own], axis=1))
