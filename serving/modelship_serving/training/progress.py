"""How the trainer tells people and machines where it is.

Two audiences, two channels. Machines (the operator, a log pipeline) read
structured JSON lines on stdout: every log record becomes one JSON object, and
a record's ``fields`` extra (epoch, train loss, validation metric, elapsed
time) is merged in as top-level keys. People get a tqdm progress bar on stderr
when stderr is a terminal or when asked (``--progress``); in a pod, where
nobody watches a terminal, the JSON lines alone are the record.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, TYPE_CHECKING, Any

from tqdm import tqdm

from modelship_serving.jsonlog import JsonFormatter

if TYPE_CHECKING:
    from .loop import EpochReport

logger = logging.getLogger(__name__)



class _Context(logging.Filter):
    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__()
        self.fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.fields.items():
            setattr(record, key, value)
        return True


def set_log_context(**fields: Any) -> None:
    """Adds ``fields`` (model, version, rank) to every JSON line from now on."""
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, _Context)]:
            fields = {**old.fields, **fields}
            handler.removeFilter(old)
        handler.addFilter(_Context(fields))


def configure_logging(*, stream: IO[str] | None = None, level: int = logging.INFO) -> None:
    """Sends every log record as a JSON line to stdout (called by the CLIs)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


class Progress:
    """Receives each epoch's report; logs it and moves the bar, if there is one."""

    def __init__(self, *, epochs: int, show_bar: bool | None = None,
                 stream: IO[str] | None = None, labels: dict[str, Any] | None = None) -> None:
        out = stream or sys.stderr
        wanted = out.isatty() if show_bar is None else show_bar
        self._bar = tqdm(total=epochs, desc="training", unit="epoch", file=out,
                         dynamic_ncols=True) if wanted else None
        self._labels = labels or {}

    def __call__(self, report: EpochReport) -> None:
        fields = {
            "event": "epoch",
            **self._labels,
            "epoch": report.epoch,
            "trainLoss": round(report.train_loss, 6),
            "validationMetric": report.metric,
            "validationValue": round(report.value, 6),
            "bestValue": round(report.best_value, 6),
            "bestEpoch": report.best_epoch,
            "elapsedSeconds": round(report.elapsed_seconds, 3),
        }
        logger.info("Epoch %d: train loss %.4f, validation %s %.4f.", report.epoch,
                    report.train_loss, report.metric, report.value, extra={"fields": fields})
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{report.train_loss:.4f}",
                                  **{report.metric: f"{report.value:.4f}"})

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
