"""Reading reference.json, and what happens when it is missing or broken."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from modelship_serving.monitoring import (
    InvalidReference,
    build_reference,
    load_observer,
    load_reference,
    parse_reference,
)


def small_reference() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return build_reference({"x": rng.normal(size=(300, 2, 3))}, {"y": rng.random(300)})


def test_a_built_reference_has_the_contract_shape() -> None:
    raw = small_reference()
    assert raw["split"] == "validation"
    assert raw["samples"] == 300
    features = raw["inputs"]["x"]["features"]
    assert len(features) == 6, "non-batch dimensions are flattened into columns"
    assert len(raw["outputs"]["y"]["features"]) == 1
    for feature in features:
        assert set(feature) == {"mean", "std", "min", "max", "edges", "fractions"}
        assert len(feature["edges"]) == 11 and len(feature["fractions"]) == 10
        assert sum(feature["fractions"]) == pytest.approx(1.0)
        assert feature["edges"][0] == feature["min"] and feature["edges"][-1] == feature["max"]
    json.dumps(raw, allow_nan=False)


def test_a_written_reference_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "reference.json"
    path.write_text(json.dumps(small_reference()))
    ref = load_reference(path)
    assert ref.inputs["x"].edges.shape == (6, 11)
    assert ref.outputs["y"].fractions.shape == (1, 10)


def broken(change: str) -> dict[str, Any]:
    raw = small_reference()
    feature = raw["inputs"]["x"]["features"][0]
    if change == "no features":
        raw["inputs"]["x"] = {"features": []}
    elif change == "missing edges":
        del feature["edges"]
    elif change == "ragged":
        feature["edges"] = feature["edges"][:-1]
    elif change == "decreasing edges":
        feature["edges"] = feature["edges"][::-1]
    elif change == "fractions off":
        feature["fractions"] = [0.5] * 10
    elif change == "negative fraction":
        feature["fractions"][0], feature["fractions"][1] = -0.1, feature["fractions"][1] + 0.2
    return raw


@pytest.mark.parametrize("change", ["no features", "missing edges", "ragged",
                                    "decreasing edges", "fractions off", "negative fraction"])
def test_a_malformed_reference_is_refused_with_a_reason(change: str) -> None:
    with pytest.raises(InvalidReference, match=r"inputs\.x"):
        parse_reference(broken(change))


def test_without_a_reference_the_server_gets_no_observer(tmp_path: Path) -> None:
    assert load_observer(tmp_path, "clf", "1", CollectorRegistry()) is None


def test_a_broken_reference_turns_drift_off_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "reference.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert load_observer(tmp_path, "clf", "1", CollectorRegistry()) is None
    assert "Drift detection is off for clf/1" in caplog.text


def test_a_reference_turns_drift_on(tmp_path: Path) -> None:
    (tmp_path / "reference.json").write_text(json.dumps(small_reference()))
    observer = load_observer(tmp_path, "clf", "1", CollectorRegistry())
    assert observer is not None and observer.model == "clf" and observer.version == "1"


def test_tensors_with_different_bin_counts_turn_drift_off(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ten = build_reference({"x": rng.normal(size=(100, 2))}, {})
    five = build_reference({"y": rng.normal(size=(100, 1))}, {}, bins=5)
    (tmp_path / "reference.json").write_text(json.dumps({**ten, "outputs": five["inputs"]}))
    assert load_observer(tmp_path, "clf", "1", CollectorRegistry()) is None
