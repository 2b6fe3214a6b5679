"""Reading a fine-tuning run back: the Job's phase, the trainer's report, known versions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelship_operator.reconcile.finetune import (
    _job_phase,
    _known_versions,
    _serving_metrics,
    _trainer_report,
)


def _job(*conditions: tuple[str, str], active: int = 0) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [{"type": t, "status": s} for t, s in conditions]}
    if active:
        status["active"] = active
    return {"metadata": {"name": "clf-ft-0123456789"}, "status": status}


# _job_phase.

def test_a_job_not_found_is_pending() -> None:
    assert _job_phase(None) == "Pending"


def test_a_job_without_status_is_pending() -> None:
    assert _job_phase({"metadata": {"name": "j"}}) == "Pending"


def test_a_job_with_active_pods_is_running() -> None:
    assert _job_phase(_job(active=2)) == "Running"


@pytest.mark.parametrize("kind", ["Complete", "SuccessCriteriaMet"])
def test_a_complete_job_has_succeeded(kind: str) -> None:
    assert _job_phase(_job((kind, "True"))) == "Succeeded"


@pytest.mark.parametrize("kind", ["Failed", "FailureTarget"])
def test_a_failed_job_has_failed_even_with_pods_still_active(kind: str) -> None:
    assert _job_phase(_job((kind, "True"), active=1)) == "Failed"


def test_conditions_that_are_not_true_are_ignored() -> None:
    job = _job(("Failed", "False"), ("Complete", "Unknown"), ("Suspended", "True"), active=1)

    assert _job_phase(job) == "Running"


# _trainer_report.

def _trainer_pod(
    finished_at: str | None,
    message: str | None,
    *,
    exit_code: int = 0,
    container: str = "trainer",
) -> dict[str, Any]:
    terminated: dict[str, Any] = {"exitCode": exit_code}
    if finished_at is not None:
        terminated["finishedAt"] = finished_at
    if message is not None:
        terminated["message"] = message
    return {"metadata": {"name": f"pod-{finished_at}"}, "status": {"containerStatuses": [
        {"name": container, "state": {"terminated": terminated}}]}}


def test_the_report_is_the_decoded_termination_message_with_the_exit_code() -> None:
    report = {"version": 2, "metrics": {"test": {"f1": 0.97}}}
    pods = [_trainer_pod("2030-01-01T00:10:00Z", json.dumps(report))]

    assert _trainer_report(pods) == {**report, "exitCode": 0}


def test_the_newest_terminated_trainer_wins() -> None:
    pods = [
        _trainer_pod("2030-01-01T00:20:00Z", json.dumps({"version": 3}), exit_code=0),
        _trainer_pod("2030-01-01T00:10:00Z", json.dumps({"reason": "OOM"}), exit_code=1),
        _trainer_pod("2030-01-01T00:15:00Z", json.dumps({"version": 9})),
    ]

    assert _trainer_report(pods) == {"version": 3, "exitCode": 0}


def test_a_trainer_still_running_is_not_read() -> None:
    running = {"status": {"containerStatuses": [
        {"name": "trainer", "state": {"running": {"startedAt": "2030-01-01T00:30:00Z"}}}]}}
    pods = [_trainer_pod("2030-01-01T00:10:00Z", json.dumps({"version": 2})), running]

    assert _trainer_report(pods) == {"version": 2, "exitCode": 0}


def test_a_plain_text_message_becomes_its_last_line() -> None:
    pods = [_trainer_pod("2030-01-01T00:10:00Z",
                         "Traceback (most recent call last):\n  ...\nValueError: no rows",
                         exit_code=1)]

    assert _trainer_report(pods) == {"message": "ValueError: no rows", "exitCode": 1}


def test_a_json_message_that_is_not_an_object_is_kept_as_text() -> None:
    pods = [_trainer_pod("2030-01-01T00:10:00Z", "[1, 2]", exit_code=1)]

    assert _trainer_report(pods) == {"message": "[1, 2]", "exitCode": 1}


def test_a_report_keeps_its_own_exit_code_field() -> None:
    pods = [_trainer_pod("2030-01-01T00:10:00Z", json.dumps({"exitCode": 2}), exit_code=1)]

    assert _trainer_report(pods) == {"exitCode": 2}


def test_an_empty_message_is_an_empty_report_with_the_exit_code() -> None:
    pods = [_trainer_pod("2030-01-01T00:10:00Z", None, exit_code=137)]

    assert _trainer_report(pods) == {"exitCode": 137}


def test_no_terminated_trainer_is_an_empty_report() -> None:
    other = _trainer_pod("2030-01-01T00:10:00Z", "{}", container="sidecar")

    assert _trainer_report([]) == {}
    assert _trainer_report([other, {"metadata": {"name": "bare"}}]) == {}


# _known_versions and _serving_metrics.

def test_known_versions_gather_history_the_serving_version_and_the_produced_one() -> None:
    status = {"versions": [{"version": 2}, {"version": 3}], "servingVersion": 1,
              "fineTuning": {"producedVersion": 4}}

    assert sorted(_known_versions(status)) == [1, 2, 3, 4]


def test_an_empty_status_knows_no_version() -> None:
    assert _known_versions({}) == []
    assert _known_versions({"fineTuning": {}, "versions": []}) == []


def test_the_serving_metrics_are_those_recorded_for_the_serving_version() -> None:
    status = {"servingVersion": 3, "versions": [
        {"version": 2, "metrics": {"f1": 0.9}}, {"version": 3, "metrics": {"f1": 0.95}}]}

    assert _serving_metrics(status) == {"f1": 0.95}
    assert _serving_metrics({"servingVersion": 1, "versions": status["versions"]}) is None
    assert _serving_metrics({}) is None
