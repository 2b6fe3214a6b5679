"""Conditions as the Kubernetes API conventions describe them.

A condition's lastTransitionTime moves only when its status does; reason and
message may change in place. Keeping the old time when nothing flipped is what
makes a second reconcile produce byte-identical status, and so no write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]
MAX_MESSAGE = 1024


@dataclass(frozen=True)
class Condition:
    type: str
    status: Status
    reason: str
    message: str


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_conditions(
    previous: list[dict[str, Any]] | None,
    updates: list[Condition],
    *,
    generation: int,
    timestamp: str | None = None,
) -> list[dict[str, Any]]:
    """The new conditions list: ``updates`` applied over ``previous``, in a stable order."""
    by_type = {c.get("type"): c for c in previous or []}
    merged: list[dict[str, Any]] = []
    for update in updates:
        old = by_type.pop(update.type, None)
        moved = old is None or old.get("status") != update.status
        merged.append({
            "type": update.type,
            "status": update.status,
            "reason": update.reason,
            "message": update.message[:MAX_MESSAGE],
            "observedGeneration": generation,
            "lastTransitionTime": (timestamp or now()) if moved else old["lastTransitionTime"],
        })
    # Conditions this reconcile did not speak about (set by another part of
    # the operator, e.g. fine-tuning) are kept as they were.
    merged.extend(c for c in by_type.values() if c is not None)
    return merged


def condition_of(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)
