"""The promotion gate: floors for scores, ceilings for errors, and beating the serving version."""

from __future__ import annotations

from typing import Any

import pytest

from modelship_operator.reconcile.gate import Verdict, judge


def _judge(**kwargs: Any) -> Verdict:
    args: dict[str, Any] = {
        "metric": "f1", "threshold": 0.9, "must_beat_serving": False,
        "new": {"f1": 0.95}, "serving": None, "new_version": 3, "serving_version": 2,
    }
    args.update(kwargs)
    return judge(**args)


def test_a_score_above_its_floor_is_promoted_with_the_numbers_in_the_message() -> None:
    assert _judge() == Verdict(True, "Promoted",
                               "version 3 promoted: test f1 0.95 (threshold 0.9)")


def test_a_score_below_its_floor_fails_and_names_the_version_that_keeps_serving() -> None:
    assert _judge(new={"f1": 0.85}) == Verdict(
        False, "GateFailed",
        "version 3: test f1 0.85 is below the floor 0.9; version 2 keeps serving")


def test_a_score_equal_to_its_floor_passes() -> None:
    assert _judge(new={"f1": 0.9}).promoted is True


@pytest.mark.parametrize("metric", ["accuracy", "f1", "auc", "r2"])
def test_scores_are_floors(metric: str) -> None:
    assert _judge(metric=metric, threshold=0.8, new={metric: 0.79}).reason == "GateFailed"
    assert _judge(metric=metric, threshold=0.8, new={metric: 0.81}).promoted is True


@pytest.mark.parametrize("metric", ["rmse", "mae"])
def test_errors_are_ceilings(metric: str) -> None:
    assert _judge(metric=metric, threshold=50.0, new={metric: 49.0}).promoted is True
    assert _judge(metric=metric, threshold=50.0, new={metric: 50.0}).promoted is True
    assert _judge(metric=metric, threshold=50.0, new={metric: 51.0}).reason == "GateFailed"


def test_an_error_above_its_ceiling_says_so_with_both_numbers() -> None:
    verdict = _judge(metric="rmse", threshold=55.5, new={"rmse": 57.25})

    assert verdict == Verdict(
        False, "GateFailed",
        "version 3: test rmse 57.25 is above the ceiling 55.5; version 2 keeps serving")


def test_a_missing_metric_is_never_promoted() -> None:
    assert _judge(new={"accuracy": 0.99}) == Verdict(
        False, "MetricMissing", "the run reported no test f1; version 2 keeps serving")


def test_without_a_serving_version_the_message_says_the_current_one_keeps_serving() -> None:
    verdict = _judge(new={"f1": 0.5}, serving_version=None)

    assert verdict.message.endswith("; the current version keeps serving")


def test_must_beat_serving_promotes_a_strictly_better_score() -> None:
    verdict = _judge(must_beat_serving=True, new={"f1": 0.96}, serving={"f1": 0.95})

    assert verdict.promoted is True


def test_must_beat_serving_refuses_an_equal_score() -> None:
    verdict = _judge(must_beat_serving=True, new={"f1": 0.95}, serving={"f1": 0.95})

    assert verdict == Verdict(
        False, "NotBetterThanServing",
        "version 3: test f1 0.95 does not beat 0.95 of version 2; version 2 keeps serving")


def test_must_beat_serving_wants_a_lower_error() -> None:
    kwargs: dict[str, Any] = {"metric": "mae", "threshold": None, "must_beat_serving": True,
                              "serving": {"mae": 40.0}}

    assert _judge(new={"mae": 39.0}, **kwargs).promoted is True
    worse = _judge(new={"mae": 41.0}, **kwargs)
    assert worse.reason == "NotBetterThanServing"
    assert worse.message == (
        "version 3: test mae 41 does not beat 40 of version 2; version 2 keeps serving")


def test_the_threshold_is_checked_before_the_comparison_with_serving() -> None:
    verdict = _judge(must_beat_serving=True, new={"f1": 0.5}, serving={"f1": 0.4})

    assert verdict.reason == "GateFailed"


def test_must_beat_serving_passes_when_the_serving_version_has_no_metrics() -> None:
    assert _judge(must_beat_serving=True, serving=None).promoted is True
    assert _judge(must_beat_serving=True, serving={"accuracy": 0.99}).promoted is True


def test_without_a_threshold_the_message_names_no_threshold() -> None:
    verdict = _judge(threshold=None, must_beat_serving=True, new={"f1": 0.7},
                     serving={"f1": 0.6})

    assert verdict == Verdict(True, "Promoted", "version 3 promoted: test f1 0.7")


def test_numbers_are_written_with_four_significant_digits() -> None:
    verdict = _judge(new={"f1": 0.912345678}, threshold=0.95)

    assert verdict.message == (
        "version 3: test f1 0.9123 is below the floor 0.95; version 2 keeps serving")
