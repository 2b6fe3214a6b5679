"""Binning, drift scores and anomaly counts of one observer."""

from __future__ import annotations

import logging
import math
import threading

import numpy as np
import pytest

from modelship_serving.monitoring import DriftObserver, DriftSettings, parse_reference
from modelship_serving.monitoring.reference import Reference, build_reference
from tests.unit.monitoring.conftest import FEATURES


def probs(rows: int, rng: np.random.Generator) -> np.ndarray:
    p = rng.random(rows).astype(np.float32)
    return np.stack([p, 1 - p], 1)


def feed(observer: DriftObserver, rng: np.random.Generator, *, batches: int, batch: int,
         shift: float = 0.0) -> None:
    for _ in range(batches):
        x = rng.normal(loc=shift, size=(batch, FEATURES)).astype(np.float32)
        observer.observe("clf", "1", {"x": x}, {"probs": probs(batch, rng)})


def binned(reference: Reference, values: np.ndarray, tensor: str = "x") -> np.ndarray:
    """The histogram a fresh observer keeps after one batch of ``values``."""
    observer = DriftObserver(reference, model="clf", version="1")
    observer.observe("clf", "1", {tensor: values}, {})
    return observer.histograms()[("input", tensor)]


@pytest.mark.parametrize("rows", [1, 5, 64, 1_000])
def test_binning_agrees_with_numpy_histogram_inside_the_range(rows: int,
                                                              reference: Reference) -> None:
    values = np.random.default_rng(rows).normal(size=(rows, FEATURES)).astype(np.float32)
    edges = reference.inputs["x"].edges
    # np.histogram drops what falls outside the outer edges; clip like the binner does.
    clipped = np.clip(values.astype(np.float64), edges[:, :1].T, edges[:, -1:].T)
    expected = np.stack([np.histogram(clipped[:, f], bins=edges[f])[0] for f in range(FEATURES)])
    assert (binned(reference, values) == expected).all()


@pytest.mark.parametrize("rows", [3, 200])
def test_repeated_edges_of_a_discrete_column_bin_like_numpy(rows: int) -> None:
    column = np.array([0.0] * 60 + [1.0] * 30 + [2.0] * 10)[:, None]
    ref = parse_reference(build_reference({"x": column}, {}))
    edges = ref.inputs["x"].edges[0]
    assert len(set(edges.tolist())) < len(edges), "the quantile edges should repeat"
    assert ref.inputs["x"].fractions[0].sum() == pytest.approx(1.0)

    values = np.random.default_rng(rows).integers(0, 3, size=(rows, 1)).astype(np.float64)
    assert (binned(ref, values)[0] == np.histogram(values[:, 0], bins=edges)[0]).all()


def test_values_beyond_the_reference_land_in_the_outer_bins_and_nan_nowhere(
        reference: Reference) -> None:
    values = np.array([[-1e9] * FEATURES, [1e9] * FEATURES, [np.nan] * FEATURES,
                       [np.inf] * FEATURES])
    counts = binned(reference, values)
    assert counts[:, 0].tolist() == [1] * FEATURES
    assert counts[:, -1].tolist() == [2] * FEATURES
    assert counts.sum() == 3 * FEATURES


def test_a_missing_tensor_leaves_its_histograms_untouched(observer: DriftObserver) -> None:
    observer.observe("clf", "1", {"x": np.zeros((5, FEATURES), np.float32)}, {})
    histograms = observer.histograms()
    assert histograms[("input", "x")].sum() == 5 * FEATURES
    assert histograms[("output", "probs")].sum() == 0
    assert sum(observer.snapshot().anomalies.values()) == 0


def test_traffic_like_the_reference_scores_low_and_shifted_traffic_high(
        observer: DriftObserver) -> None:
    rng = np.random.default_rng(1)
    feed(observer, rng, batches=160, batch=32)
    calm = observer.snapshot()
    assert calm.samples >= 4_500
    assert max(calm.scores[("input", "x")]) < 0.05
    assert max(calm.scores[("output", "probs")]) < 0.05

    feed(observer, rng, batches=160, batch=32, shift=1.5)
    shifted = observer.snapshot().scores[("input", "x")]
    assert min(shifted) > 0.5, "a 1.5-sigma shift fills the window and must score high"


def test_no_score_is_reported_below_the_minimum_window(observer: DriftObserver) -> None:
    rng = np.random.default_rng(2)
    feed(observer, rng, batches=6, batch=32)
    early = observer.snapshot()
    assert early.samples == 192
    assert early.scores == {}
    feed(observer, rng, batches=1, batch=32)
    assert set(observer.snapshot().scores) == {("input", "x"), ("output", "probs")}


def test_anomalous_output_rows_are_counted_per_kind(observer: DriftObserver) -> None:
    outputs = np.array([
        [0.5, 0.5],          # fine
        [np.nan, 0.5],       # nan
        [np.nan, np.nan],    # still one nan row
        [np.inf, 0.0],       # inf
        [-np.inf, np.nan],   # inf and nan
        [1.05, -0.05],       # within the 10% margin of [0, 1]: fine
        [1.2, 0.0],          # out of range
        [0.0, -7.0],         # out of range
    ], dtype=np.float32)
    x = np.zeros((len(outputs), FEATURES), dtype=np.float32)
    observer.observe("clf", "1", {"x": x}, {"probs": outputs})
    observer.observe("clf", "1", {"x": x[:1]}, {"probs": outputs[:1]})

    assert observer.snapshot().anomalies == {
        ("probs", "nan"): 3, ("probs", "inf"): 2, ("probs", "out_of_range"): 2,
    }


def test_inputs_are_never_counted_as_anomalies(observer: DriftObserver) -> None:
    x = np.full((4, FEATURES), np.nan, dtype=np.float32)
    observer.observe("clf", "1", {"x": x}, {"probs": np.full((4, 2), 0.5, np.float32)})
    assert sum(observer.snapshot().anomalies.values()) == 0


def test_a_tensor_of_the_wrong_width_is_skipped_once_with_a_warning(
        observer: DriftObserver, caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(3)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            observer.observe("clf", "1", {"x": np.zeros((2, FEATURES + 1), np.float32)},
                             {"probs": probs(2, rng)})
    warnings = [r for r in caplog.records if "Drift for input tensor 'x'" in r.getMessage()]
    assert len(warnings) == 1
    assert observer.snapshot().samples == 6, "the outputs are still observed"


def test_a_batch_for_another_model_is_ignored(observer: DriftObserver) -> None:
    observer.observe("other", "1", {"x": np.zeros((3, FEATURES))}, {})
    assert observer.snapshot().samples == 0


def test_unknown_and_bytes_tensors_are_ignored(observer: DriftObserver) -> None:
    observer.observe("clf", "1", {"text": np.array([b"a", b"b"], dtype=object)},
                     {"probs": np.array([b"a"], dtype=object)})
    assert observer.snapshot().samples == 0


def test_concurrent_batches_lose_no_count(reference: Reference) -> None:
    settings = DriftSettings(slots=4, slot_samples=100_000, min_samples=1)
    observer = DriftObserver(reference, model="clf", version="1", settings=settings)
    threads, batches, batch = 8, 200, 16
    outputs = np.tile(np.array([[np.nan, 0.5], [0.5, 0.5]], np.float32), (batch // 2, 1))
    start = threading.Barrier(threads)

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        start.wait()
        for _ in range(batches):
            x = rng.normal(size=(batch, FEATURES)).astype(np.float32)
            observer.observe("clf", "1", {"x": x}, {"probs": outputs})
            observer.snapshot()  # scrapes race the writers too

    pool = [threading.Thread(target=worker, args=(seed,)) for seed in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    snap = observer.snapshot()
    assert snap.samples == threads * batches * batch
    assert snap.anomalies[("probs", "nan")] == threads * batches * batch // 2
    totals = observer.histograms()[("input", "x")]
    assert (totals.sum(axis=1) == threads * batches * batch).all()
    assert all(math.isfinite(s) for s in snap.scores[("input", "x")])


def test_scores_are_recomputed_only_after_new_traffic(observer: DriftObserver) -> None:
    feed(observer, np.random.default_rng(4), batches=10, batch=32)
    first = observer.snapshot().scores
    assert observer.snapshot().scores is first
    feed(observer, np.random.default_rng(5), batches=1, batch=32)
    assert observer.snapshot().scores is not first


def test_window_memory_is_fixed_and_small(observer: DriftObserver) -> None:
    before = observer.window_bytes
    feed(observer, np.random.default_rng(6), batches=300, batch=64)
    assert observer.window_bytes == before < 16_384
