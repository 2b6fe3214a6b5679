"""Train/validation/test splits and the statistics learned from train alone.

Splitting is a pure function of the row count, the labels, the ratios and the
seed, so the same Job always trains and evaluates on the same rows. For
classification the split is stratified without per-class rounding drift: each
class's rows are shuffled and spread evenly along one line (row ``i`` of a
class of ``n`` sits at ``(i + u) / n``), the line is sorted, and consecutive
stretches of it become train, validation and test. Every stretch then holds
each class in about its overall proportion, and the split sizes are exact.

Standardisation statistics come from the train split only (the validation and
test splits must not leak into training); they are baked into the exported
model so a served model takes raw features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import Split
from .errors import InvalidDataset


@dataclass(frozen=True)
class SplitIndices:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class Standardizer:
    """Per-column mean and scale; a constant column gets scale 1."""

    mean: np.ndarray  # float32
    std: np.ndarray  # float32

    @classmethod
    def fit(cls, values: np.ndarray) -> Standardizer:
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        mean = values.mean(axis=0)
        std = values.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(mean.astype(np.float32), std.astype(np.float32))

    def apply(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.std).astype(np.float32)


def split_sizes(rows: int, ratios: Split) -> tuple[int, int, int]:
    """Rounds the ratios to row counts that add up to ``rows``; none may be empty."""
    n_val = round(rows * ratios.validation)
    n_test = round(rows * ratios.test)
    n_train = rows - n_val - n_test
    if min(n_train, n_val, n_test) < 1:
        raise InvalidDataset(
            f"{rows} rows are too few for the split train={ratios.train}, "
            f"validation={ratios.validation}, test={ratios.test}: "
            f"it gives {n_train}/{n_val}/{n_test} rows"
        )
    return n_train, n_val, n_test


def split_rows(
    rows: int,
    ratios: Split,
    *,
    seed: int,
    labels: np.ndarray | None = None,
) -> SplitIndices:
    """Splits row indices; stratified on ``labels`` when they are given."""
    n_train, n_val, _ = split_sizes(rows, ratios)
    rng = np.random.default_rng(seed)

    if labels is None:
        order = rng.permutation(rows)
    else:
        labels = np.asarray(labels)
        if labels.shape != (rows,):
            raise ValueError(f"labels have shape {labels.shape}, expected ({rows},)")
        position = np.empty(rows, dtype=np.float64)
        for value in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == value))
            offset = rng.random()
            position[members] = (np.arange(members.size) + offset) / members.size
        # The tie-break keeps the order a function of the seed alone.
        order = np.lexsort((rng.permutation(rows), position))

    return SplitIndices(
        train=np.sort(order[:n_train]),
        validation=np.sort(order[n_train:n_train + n_val]),
        test=np.sort(order[n_train + n_val:]),
    )


def class_count(target: np.ndarray, declared: int | None) -> int:
    """Checks labels are 0..C-1 integers and returns C (declared or inferred)."""
    if not np.all(np.equal(np.mod(target, 1), 0)) or target.min() < 0:
        bad = target[(np.mod(target, 1) != 0) | (target < 0)][:5]
        raise InvalidDataset(
            f"classification labels must be integers 0..C-1, found {bad.tolist()}"
        )
    top = int(target.max())
    if declared is not None:
        if top >= declared:
            raise InvalidDataset(f"label {top} does not fit numClasses={declared}")
        return declared
    if top < 1:
        raise InvalidDataset("classification needs at least two classes; all labels are 0")
    return top + 1
