"""One JSON log formatter for every Modelship program that runs in a pod.

A record becomes one JSON object: time, level, logger, message, then every
field the caller attached (``extra={...}``, or a ``fields`` dict for many at
once) and whatever context filters set (request id, model, rank). Values are
serialised by ``json``, never pasted into a string template, so a message
with quotes or newlines stays one valid line.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message", "asctime", "taskName", "fields"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record; empty context values are left out."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        for key, value in vars(record).items():
            if key not in _STANDARD and value not in ("", None):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
