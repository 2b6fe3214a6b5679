"""The trainer's metrics agree with scikit-learn's definitions."""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as skm

from modelship_serving.training.metrics import (
    classification_metrics,
    is_better,
    regression_metrics,
)


def test_binary_metrics_match_scikit_learn_including_tied_scores() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    # Rounded scores make ties, which the AUC must count as half.
    p1 = np.round(np.clip(labels * 0.3 + rng.random(200) * 0.7, 0, 1), 1)
    probabilities = np.stack([1 - p1, p1], axis=1)
    got = classification_metrics(labels, probabilities)
    predicted = probabilities.argmax(axis=1)
    assert math.isclose(got["accuracy"], skm.accuracy_score(labels, predicted))
    assert math.isclose(got["f1"], skm.f1_score(labels, predicted))
    assert math.isclose(got["auc"], skm.roc_auc_score(labels, p1))


def test_multiclass_f1_is_the_macro_average_and_auc_is_left_out() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 300)
    probabilities = rng.dirichlet(np.ones(4), 300)
    got = classification_metrics(labels, probabilities)
    expected = skm.f1_score(labels, probabilities.argmax(1), average="macro")
    assert math.isclose(got["f1"], expected)
    assert "auc" not in got


def test_regression_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    target = rng.normal(150, 70, 100)
    predicted = target + rng.normal(0, 30, 100)
    got = regression_metrics(target, predicted)
    assert math.isclose(got["rmse"], math.sqrt(skm.mean_squared_error(target, predicted)))
    assert math.isclose(got["mae"], skm.mean_absolute_error(target, predicted))
    assert math.isclose(got["r2"], skm.r2_score(target, predicted))


def test_asking_for_one_metric_computes_only_that_one() -> None:
    assert list(regression_metrics(np.ones(3), np.ones(3), only="mae")) == ["mae"]


def test_better_means_lower_for_errors_and_higher_for_scores() -> None:
    assert is_better("rmse", 1.0, 2.0) and not is_better("rmse", 3.0, 2.0)
    assert is_better("accuracy", 0.9, 0.8) and not is_better("f1", 0.7, 0.8)
    assert is_better("r2", 0.1, None)
    assert not is_better("auc", float("nan"), 0.5)
    assert is_better("auc", 0.5, float("nan"))
