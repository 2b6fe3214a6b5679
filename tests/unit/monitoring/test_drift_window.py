"""The rolling window keeps recent rows only, in memory fixed at construction."""

from __future__ import annotations

import numpy as np
import pytest

from modelship_serving.monitoring.window import RollingHistograms


def one_hot_counts(rows: int, bin_: int, features: int = 3, bins: int = 10) -> np.ndarray:
    counts = np.zeros((features, bins), dtype=np.int64)
    counts[:, bin_] = rows
    return counts


def test_memory_does_not_grow_with_traffic() -> None:
    window = RollingHistograms({"x": (30, 10)}, slots=4, slot_samples=100)
    before = window.nbytes
    for _ in range(5_000):
        window.add({"x": np.ones((30, 10), dtype=np.int64)}, 32)
    assert window.nbytes == before == 4 * 30 * 10 * 8 + 4 * 8


def test_the_window_holds_between_slots_minus_one_and_capacity_plus_a_batch_per_slot() -> None:
    window = RollingHistograms({"x": (3, 10)}, slots=5, slot_samples=100)
    batch = 7
    for step in range(1, 2_000):
        window.add({"x": one_hot_counts(batch, 0)}, batch)
        held = window.samples()
        assert held <= window.capacity + window.slots * (batch - 1)
        if step * batch >= window.capacity:
            assert held >= (window.slots - 1) * window.slot_samples


def test_old_rows_are_forgotten_once_the_ring_wraps() -> None:
    window = RollingHistograms({"x": (3, 10)}, slots=4, slot_samples=50)
    for _ in range(40):
        window.add({"x": one_hot_counts(10, bin_=0)}, 10)
    assert window.totals()["x"][:, 0].sum() > 0

    for _ in range(window.capacity // 10 + 5):
        window.add({"x": one_hot_counts(10, bin_=9)}, 10)
    totals = window.totals()["x"]
    assert totals[:, 0].sum() == 0
    assert (totals[:, 9] == window.samples()).all()


def test_totals_are_the_sum_of_every_batch_while_nothing_is_forgotten() -> None:
    rng = np.random.default_rng(0)
    window = RollingHistograms({"a": (2, 5), "b": (1, 5)}, slots=3, slot_samples=1_000)
    expected_a = np.zeros((2, 5), dtype=np.int64)
    for _ in range(50):
        batch = rng.integers(0, 4, size=(2, 5))
        expected_a += batch
        window.add({"a": batch, "b": np.zeros((1, 5), dtype=np.int64)}, 10)
    assert (window.totals()["a"] == expected_a).all()
    assert window.samples() == 500


def test_totals_are_copies_the_caller_may_modify() -> None:
    window = RollingHistograms({"x": (1, 2)}, slots=2, slot_samples=10)
    window.add({"x": np.array([[1, 2]])}, 3)
    window.totals()["x"][0, 0] = 99
    assert window.totals()["x"].tolist() == [[1, 2]]


@pytest.mark.parametrize(("slots", "slot_samples"), [(1, 10), (4, 0)])
def test_a_degenerate_ring_is_refused(slots: int, slot_samples: int) -> None:
    with pytest.raises(ValueError):
        RollingHistograms({"x": (1, 2)}, slots=slots, slot_samples=slot_samples)
