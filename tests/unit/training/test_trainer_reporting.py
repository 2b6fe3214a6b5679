"""Progress and results are machine-readable and fit the kubelet's limits."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from modelship_serving.training import termination
from modelship_serving.training.loop import EpochReport
from modelship_serving.training.progress import (
    JsonFormatter,
    Progress,
    configure_logging,
    set_log_context,
)


def test_the_json_formatter_writes_one_object_with_the_fields_merged() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "epoch %d done", (3,), None)
    record.fields = {"epoch": 3, "trainLoss": 0.25}
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "epoch 3 done"
    assert line["epoch"] == 3 and line["trainLoss"] == 0.25
    assert line["level"] == "info"


def test_an_epoch_becomes_a_structured_line_and_no_bar_when_not_asked(
        caplog: pytest.LogCaptureFixture) -> None:
    bar_stream = io.StringIO()
    progress = Progress(epochs=3, show_bar=False, stream=bar_stream, labels={"rank": 0})
    with caplog.at_level(logging.INFO):
        progress(EpochReport(1, 0.5, "f1", 0.8, 0.8, 1, 1.25))
    fields = caplog.records[-1].fields
    assert fields["event"] == "epoch" and fields["validationValue"] == 0.8
    assert fields["rank"] == 0 and fields["elapsedSeconds"] == 1.25
    assert bar_stream.getvalue() == ""


def test_the_bar_is_drawn_when_asked() -> None:
    stream = io.StringIO()
    progress = Progress(epochs=2, show_bar=True, stream=stream)
    progress(EpochReport(1, 0.5, "rmse", 3.0, 3.0, 1, 0.1))
    progress.close()
    assert "1/2" in stream.getvalue()


def test_a_long_failure_message_is_cut_to_fit_4096_bytes() -> None:
    summary = {"phase": "Failed", "version": 3, "reason": "InvalidDataset",
               "message": "x" * 10_000}
    data = termination.encode(summary)
    assert len(data) <= 4096
    decoded = json.loads(data)
    assert decoded["reason"] == "InvalidDataset" and decoded["message"].endswith("...")


def test_optional_detail_goes_before_the_message_is_cut() -> None:
    summary = {"phase": "Succeeded", "version": 1, "reason": "VersionPublished",
               "message": "short", "gate": {"padding": "y" * 5000},
               "metrics": {"test": {"f1": 0.9}, "validation": {"f1": 0.95}}}
    decoded = json.loads(termination.encode(summary))
    assert "gate" not in decoded and decoded["message"] == "short"
    assert decoded["metrics"]["test"] == {"f1": 0.9}


def test_the_flag_wins_over_the_environment_which_wins_over_the_default(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(termination.PATH_ENV, raising=False)
    assert termination.resolve_path(None) == Path("/dev/termination-log")
    monkeypatch.setenv(termination.PATH_ENV, str(tmp_path / "env"))
    assert termination.resolve_path(None) == tmp_path / "env"
    assert termination.resolve_path(str(tmp_path / "flag")) == tmp_path / "flag"


def test_the_log_context_is_added_to_every_line() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        configure_logging(stream=stream)
        set_log_context(model="cancer", version=4)
        logging.getLogger("modelship_serving.training.test").info("Loaded.")
        line = json.loads(stream.getvalue().splitlines()[-1])
        assert (line["model"], line["version"], line["message"]) == ("cancer", 4, "Loaded.")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
