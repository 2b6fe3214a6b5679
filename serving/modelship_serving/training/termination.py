"""The trainer's final word: a JSON summary in the container's termination log.

Kubernetes copies the file at ``terminationMessagePath`` into the pod's status
when the container exits, so the operator learns the outcome (phase, version,
test metrics, or the reason for a failure) without reading the model
repository. The kubelet keeps at most 4096 bytes; the summary is shrunk to
fit, dropping optional detail before it cuts the message.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_PATH = "/dev/termination-log"
PATH_ENV = "MODELSHIP_TERMINATION_LOG"
LIMIT_BYTES = 4096


def resolve_path(flag: str | None) -> Path:
    """The flag if given, else $MODELSHIP_TERMINATION_LOG, else the kubelet's default."""
    return Path(flag or os.environ.get(PATH_ENV) or DEFAULT_PATH)


def encode(summary: dict[str, Any], limit: int = LIMIT_BYTES) -> bytes:
    """Serialises ``summary`` within ``limit`` bytes, shrinking what matters least."""
    body = dict(summary)
    data = _dump(body)
    for optional in ("gate", "validation", "exportCheck", "samples"):
        if len(data) <= limit:
            return data
        body.pop(optional, None)
        if isinstance(body.get("metrics"), dict):
            body["metrics"] = {k: v for k, v in body["metrics"].items() if k != optional}
        data = _dump(body)
    message = str(body.get("message") or "")
    while len(data) > limit and message:
        overflow = len(data) - limit
        message = message[: max(0, len(message) - overflow - 16)] + "..."
        if len(message) <= 3:
            message = ""
        body["message"] = message
        data = _dump(body)
    if len(data) > limit:
        raise ValueError(f"the summary cannot fit {limit} bytes even without its message")
    return data


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """Writes the summary; a path that cannot be written is logged, not fatal."""
    data = encode(summary)
    try:
        path.write_bytes(data)
    except OSError as exc:
        logger.warning("Cannot write the termination message to %s (%s); it is only in the "
                       "log.", path, exc.strerror)
    logger.info("Finished with phase %s (%s).", summary.get("phase"), summary.get("reason"),
                extra={"fields": {"event": "result", "result": summary}})


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
