"""A failing Job still leaves its reason in the termination message."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Finished, finish, start_trainer

pytestmark = pytest.mark.slow


def config(repo: Path, **fine_tuning: object) -> dict[str, object]:
    spec = {"baseModel": {"hiddenSizes": [8]},
            "dataset": {"uri": "sklearn://breast_cancer"},
            "task": "classification", **fine_tuning}
    return {"modelName": "m", "version": 1, "outputRepository": str(repo), "fineTuning": spec}


def test_an_invalid_config_fails_with_the_field_in_the_termination_message(
        tmp_path: Path, run_trainer: Callable[..., Finished]) -> None:
    result = run_trainer(config(tmp_path, hyperParameters={"learningRate": -1}))
    assert result.returncode == 2
    assert result.termination is not None
    assert result.termination["phase"] == "Failed"
    assert result.termination["reason"] == "InvalidConfig"
    assert "fineTuning.hyperParameters.learningRate" in result.termination["message"]
    assert result.termination["version"] is None  # the config never parsed
    assert not (tmp_path / "m").exists()


def test_a_missing_dataset_fails_as_dataset_not_found_and_publishes_nothing(
        tmp_path: Path, run_trainer: Callable[..., Finished]) -> None:
    missing = (tmp_path / "absent.csv").as_uri()
    result = run_trainer(config(tmp_path, dataset={"uri": missing}))
    assert result.returncode == 2
    assert result.termination == {
        "phase": "Failed", "version": 1, "reason": "DatasetNotFound", "retryable": False,
        "message": f"dataset {missing} ({tmp_path / 'absent.csv'}) does not exist",
    }
    assert not (tmp_path / "m" / "1").exists()
    failed = [line for line in result.json_lines() if line.get("event") == "failed"]
    assert failed and failed[0]["reason"] == "DatasetNotFound"


def test_sigterm_mid_training_is_reported_as_interrupted(tmp_path: Path) -> None:
    raw = config(tmp_path, dataset={"uri": "sklearn://digits"},
                 hyperParameters={"epochs": 100000, "earlyStoppingPatience": 0})
    process, termination = start_trainer(raw, tmp_path)
    assert process.stdout is not None
    for line in process.stdout:  # wait for the first epoch, not for a fixed time
        if '"event": "epoch"' in line:
            break
    process.send_signal(signal.SIGTERM)
    result = finish(process, termination, timeout=60)
    assert result.returncode == 1
    assert result.termination is not None
    assert result.termination["reason"] == "Interrupted"
    assert result.termination["retryable"] is True
    assert not (tmp_path / "m" / "1").exists()
