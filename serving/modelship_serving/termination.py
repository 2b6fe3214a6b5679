"""The container's termination message: how a pod tells Kubernetes why it ended.

The kubelet copies at most 4096 bytes of the file into the container's status,
where the operator reads it (the storage initializer's failure reason, the
server's load failure, the trainer's result) without reading logs or storage.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_PATH = "/dev/termination-log"
PATH_ENV = "MODELSHIP_TERMINATION_LOG"
LIMIT_BYTES = 4096


def resolve_path(flag: str | None = None) -> Path:
    """The flag's path, else $MODELSHIP_TERMINATION_LOG, else Kubernetes' default."""
    return Path(flag or os.environ.get(PATH_ENV) or DEFAULT_PATH)


def write_message(text: str, flag: str | None = None) -> None:
    """Write ``text`` (trimmed to the kubelet's limit); a failure to write is only logged."""
    target = resolve_path(flag)
    try:
        target.write_bytes(text.encode("utf-8")[:LIMIT_BYTES])
    except OSError as exc:
        log.warning("Cannot write the termination message to %s (%s).", target, exc.strerror)
