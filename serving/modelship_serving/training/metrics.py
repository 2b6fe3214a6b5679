"""Evaluation metrics, in NumPy, with the definitions written down.

- accuracy: share of rows whose predicted label equals the true one.
- f1: for two classes the F1 of class 1; for more, the unweighted mean of the
  per-class F1 (macro). A class never predicted and never present scores 0.
- auc: for two classes, the area under the ROC curve of the class-1
  probability, computed as the Mann-Whitney statistic with ties counted as
  half; absent for more than two classes and when the split holds one class.
- rmse, mae, r2: on the original target scale; r2 is 1 - SSE/SST.

They are computed here rather than with scikit-learn so early stopping can
call the one it watches every epoch at little cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .config import LOWER_IS_BETTER

Metrics = dict[str, float]


def accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(labels == predicted))


def f1(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> float:
    classes = [1] if num_classes == 2 else list(range(num_classes))
    scores = []
    for c in classes:
        tp = float(np.sum((predicted == c) & (labels == c)))
        fp = float(np.sum((predicted == c) & (labels != c)))
        fn = float(np.sum((predicted != c) & (labels == c)))
        denominator = 2 * tp + fp + fn
        scores.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(scores))


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    positive = labels == 1
    n_pos = int(positive.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(scores)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Each run of equal values gets the mean of the ranks it spans.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]
    average = (starts + ends + 1) / 2.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def rmse(target: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((target - predicted) ** 2)))


def mae(target: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(target - predicted)))


def r2(target: np.ndarray, predicted: np.ndarray) -> float:
    sst = float(np.sum((target - target.mean()) ** 2))
    sse = float(np.sum((target - predicted) ** 2))
    return 1.0 - sse / sst if sst > 0 else 0.0


def classification_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    *,
    only: str | None = None,
) -> Metrics:
    """Metrics of class probabilities [rows, C] against integer labels."""
    labels = np.asarray(labels).astype(np.int64)
    num_classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    makers: dict[str, Callable[[], float | None]] = {
        "accuracy": lambda: accuracy(labels, predicted),
        "f1": lambda: f1(labels, predicted, num_classes),
    }
    if num_classes == 2:
        makers["auc"] = lambda: auc(labels, probabilities[:, 1].astype(np.float64))
    return _collect(makers, only)


def regression_metrics(
    target: np.ndarray,
    predicted: np.ndarray,
    *,
    only: str | None = None,
) -> Metrics:
    target = np.asarray(target, dtype=np.float64).reshape(-1)
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1)
    makers: dict[str, Callable[[], float | None]] = {
        "rmse": lambda: rmse(target, predicted),
        "mae": lambda: mae(target, predicted),
        "r2": lambda: r2(target, predicted),
    }
    return _collect(makers, only)


def _collect(makers: dict[str, Callable[[], float | None]], only: str | None) -> Metrics:
    names = [only] if only is not None else list(makers)
    out: Metrics = {}
    for name in names:
        if name in makers:
            value = makers[name]()
            if value is not None:
                out[name] = value
    return out


def is_better(metric: str, candidate: float, best: float | None) -> bool:
    """True when ``candidate`` improves on ``best`` for this metric."""
    if math.isnan(candidate):
        return False
    if best is None or math.isnan(best):
        return True
    return candidate < best if metric in LOWER_IS_BETTER else candidate > best
