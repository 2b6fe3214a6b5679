"""The exported metric names and labels are the ones contracts.md promises."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelship_serving.monitoring import DriftObserver, DriftSettings
from modelship_serving.monitoring.metrics import attach
from modelship_serving.monitoring.reference import Reference
from tests.unit.monitoring.conftest import FEATURES


def scrape(registry: CollectorRegistry) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = generate_latest(registry).decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def make(reference: Reference, registry: CollectorRegistry, model: str = "clf",
         version: str = "1") -> DriftObserver:
    observer = DriftObserver(reference, model=model, version=version,
                             settings=DriftSettings(min_samples=10))
    attach(observer, registry)
    return observer


def feed(observer: DriftObserver, rows: int = 64) -> None:
    x = np.random.default_rng(0).normal(size=(rows, FEATURES)).astype(np.float32)
    observer.observe(observer.model, observer.version, {"x": x},
                     {"probs": np.full((rows, 2), 0.5, np.float32)})


def test_a_fresh_observer_exports_zeroed_counters_and_no_scores(reference: Reference) -> None:
    registry = CollectorRegistry()
    make(reference, registry)
    samples = scrape(registry)
    assert "modelship_drift_score" not in samples
    assert samples["modelship_drift_window_samples"] == [({"model": "clf", "version": "1"}, 0)]
    kinds = {labels["kind"] for labels, value in samples["modelship_anomalous_outputs_total"]
             if value == 0 and labels["tensor"] == "probs"}
    assert kinds == {"nan", "inf", "out_of_range"}


def test_scores_are_exported_per_tensor_and_feature(reference: Reference) -> None:
    registry = CollectorRegistry()
    feed(make(reference, registry))
    scores = scrape(registry)["modelship_drift_score"]
    keys = {(labels["tensor"], labels["feature"]) for labels, _ in scores}
    assert keys == {("x", str(f)) for f in range(FEATURES)} | {("probs", "0"), ("probs", "1")}
    assert all(set(labels) == {"model", "version", "tensor", "feature"} for labels, _ in scores)
    assert scrape(registry)["modelship_drift_window_samples"][0][1] == 64


def test_versions_of_several_models_share_one_registry(reference: Reference) -> None:
    registry = CollectorRegistry()
    feed(make(reference, registry, "a", "1"))
    feed(make(reference, registry, "b", "3"))
    owners = {(labels["model"], labels["version"])
              for labels, _ in scrape(registry)["modelship_drift_window_samples"]}
    assert owners == {("a", "1"), ("b", "3")}


def test_closing_an_observer_removes_its_series(reference: Reference) -> None:
    registry = CollectorRegistry()
    observer = make(reference, registry)
    feed(observer)
    observer.close()
    observer.close()  # idempotent
    assert scrape(registry).get("modelship_drift_window_samples", []) == []


def test_reloading_a_version_replaces_its_series(reference: Reference) -> None:
    registry = CollectorRegistry()
    old = make(reference, registry)
    feed(old)
    make(reference, registry)
    assert scrape(registry)["modelship_drift_window_samples"] == [
        ({"model": "clf", "version": "1"}, 0)]
    old.close()  # closing the replaced one must not remove the new one
    assert len(scrape(registry)["modelship_drift_window_samples"]) == 1


def test_another_collector_with_the_same_names_is_refused(reference: Reference) -> None:
    from prometheus_client import Gauge

    registry = CollectorRegistry()
    make(reference, registry)
    with pytest.raises(ValueError, match="Duplicated"):
        Gauge("modelship_drift_score", "clash", registry=registry)
