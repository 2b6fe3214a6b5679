"""The population stability index against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelship_serving.monitoring.psi import population_stability_index


def psi_by_hand(expected: list[float], actual: list[float], eps: float = 1e-4) -> float:
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, eps), max(a, eps)
        total += (a - e) * math.log(a / e)
    return total


def test_identical_distributions_score_zero() -> None:
    expected = np.array([[0.1] * 10])
    assert population_stability_index(expected, np.array([[7] * 10]))[0] == pytest.approx(0.0)


def test_a_two_bin_shift_matches_the_formula() -> None:
    # (0.3 - 0.5) ln(0.3/0.5) + (0.7 - 0.5) ln(0.7/0.5) = 0.169460...
    score = population_stability_index(np.array([[0.5, 0.5]]), np.array([[30, 70]]))[0]
    assert score == pytest.approx(0.2 * math.log(5 / 3) + 0.2 * math.log(7 / 5))
    assert score == pytest.approx(0.169460, abs=1e-6)


def test_an_empty_bin_is_floored_at_epsilon_instead_of_infinite() -> None:
    score = population_stability_index(np.array([[0.5, 0.5]]), np.array([[0, 10]]))[0]
    assert math.isfinite(score)
    assert score == pytest.approx(psi_by_hand([0.5, 0.5], [0.0, 1.0]))
    assert score == pytest.approx(4.6043, abs=1e-3)


def test_a_larger_epsilon_caps_the_empty_bin_lower() -> None:
    expected, actual = np.array([[0.5, 0.5]]), np.array([[0, 10]])
    small = population_stability_index(expected, actual, epsilon=1e-6)[0]
    large = population_stability_index(expected, actual, epsilon=1e-2)[0]
    assert large < small
    assert large == pytest.approx(psi_by_hand([0.5, 0.5], [0.0, 1.0], eps=1e-2))


def test_the_index_is_symmetric_in_its_two_distributions() -> None:
    p, q = [0.2, 0.3, 0.5], [0.4, 0.4, 0.2]
    forward = population_stability_index(np.array([p]), np.array([q]) * 1000)[0]
    backward = population_stability_index(np.array([q]), np.array([p]) * 1000)[0]
    assert forward == pytest.approx(backward)


def test_rows_are_scored_independently_as_features() -> None:
    rng = np.random.default_rng(3)
    expected = rng.dirichlet(np.ones(10), size=5)
    counts = rng.integers(0, 50, size=(5, 10))
    scores = population_stability_index(expected, counts)
    for row in range(5):
        by_hand = psi_by_hand(list(expected[row]), list(counts[row] / counts[row].sum()))
        assert scores[row] == pytest.approx(by_hand)


def test_a_feature_without_live_data_scores_nan_not_zero() -> None:
    scores = population_stability_index(np.full((2, 4), 0.25), np.array([[0, 0, 0, 0],
                                                                           [1, 1, 1, 1]]))
    assert math.isnan(scores[0])
    assert scores[1] == pytest.approx(0.0)


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="shape mismatch"):
        population_stability_index(np.full((1, 4), 0.25), np.ones((1, 5)))
