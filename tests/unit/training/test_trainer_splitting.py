"""Splits follow the ratios, depend on the seed alone and keep class shares."""

from __future__ import annotations

import numpy as np
import pytest

from modelship_serving.training.config import Split
from modelship_serving.training.errors import InvalidDataset
from modelship_serving.training.splitting import (
    Standardizer,
    class_count,
    split_rows,
    split_sizes,
)

RATIOS = Split(train=0.6, validation=0.2, test=0.2)


def test_the_split_sizes_follow_the_ratios_and_add_up() -> None:
    assert split_sizes(569, RATIOS) == (341, 114, 114)
    assert sum(split_sizes(101, Split(train=0.7, validation=0.15, test=0.15))) == 101


def test_the_splits_are_disjoint_and_cover_every_row() -> None:
    parts = split_rows(500, RATIOS, seed=3)
    together = np.concatenate([parts.train, parts.validation, parts.test])
    assert np.array_equal(np.sort(together), np.arange(500))


def test_the_same_seed_gives_the_same_split_and_another_seed_another() -> None:
    labels = np.arange(300) % 3
    first = split_rows(300, RATIOS, seed=11, labels=labels)
    again = split_rows(300, RATIOS, seed=11, labels=labels)
    other = split_rows(300, RATIOS, seed=12, labels=labels)
    assert np.array_equal(first.test, again.test)
    assert np.array_equal(first.train, again.train)
    assert not np.array_equal(first.test, other.test)


def test_a_stratified_split_keeps_each_class_share_in_every_part() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(1000) < 0.1).astype(np.int64)  # a rare positive class
    parts = split_rows(1000, RATIOS, seed=5, labels=labels)
    overall = labels.mean()
    for rows in (parts.train, parts.validation, parts.test):
        assert abs(labels[rows].mean() - overall) <= 1.0 / rows.size + 1e-9


def test_too_few_rows_for_the_ratios_is_the_datasets_fault() -> None:
    with pytest.raises(InvalidDataset, match="too few"):
        split_rows(2, RATIOS, seed=0)


def test_standardisation_statistics_come_from_the_rows_they_are_fitted_on() -> None:
    x = np.array([[1.0, 5.0], [3.0, 5.0], [100.0, 5.0]], dtype=np.float32)
    scaler = Standardizer.fit(x[:2])
    assert scaler.mean.tolist() == [2.0, 5.0]
    assert scaler.std.tolist() == [1.0, 1.0]  # the constant column keeps scale 1
    assert scaler.apply(x[:2])[:, 0].tolist() == [-1.0, 1.0]


def test_class_count_is_inferred_or_checked_against_the_declared_one() -> None:
    assert class_count(np.array([0.0, 2.0, 1.0]), None) == 3
    assert class_count(np.array([0.0, 1.0]), 4) == 4
    with pytest.raises(InvalidDataset, match="numClasses=2"):
        class_count(np.array([0.0, 2.0]), 2)
    with pytest.raises(InvalidDataset, match="integers"):
        class_count(np.array([0.5, 1.0]), None)
