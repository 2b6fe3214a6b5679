"""Knowing what the members serve: fetch their metadata, check it, and keep checking.

The router is ready only once every member has answered its metadata and the
members fit together (`compat.check_members`). Until then it retries with a
growing pause, and readiness says why it is waiting. Once ready it looks
again every `recheck_seconds`, so a member replaced by a model with other
tensors turns the router not-ready with the reason, instead of failing every
request. A member that cannot be reached during a re-check keeps its last
known metadata: an outage is the member's failure to report per request,
not a reason to pull the whole ensemble out of its Service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelship_serving.protocol.errors import InferenceError
from modelship_serving.router.compat import EnsemblePlan, IncompatibleMembers, check_members
from modelship_serving.router.config import EnsembleConfig
from modelship_serving.router.members import Member

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    """The plan when the ensemble can serve; otherwise why not."""

    plan: EnsemblePlan | None
    reason: str


async def fetch_metadata(members: Sequence[Member], *, retries: int = 0
                         ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Every member's metadata that could be fetched, and why not for the others."""
    results = await asyncio.gather(*(m.metadata(retries=retries) for m in members),
                                   return_exceptions=True)
    found: dict[str, dict[str, Any]] = {}
    problems: dict[str, str] = {}
    for member, result in zip(members, results, strict=True):
        if isinstance(result, InferenceError):
            problems[member.name] = result.message
        elif isinstance(result, BaseException):
            raise result
        else:
            found[member.name] = result
    return found, problems


def assess(config: EnsembleConfig, metadata: Mapping[str, Mapping[str, Any]],
           unreachable: Sequence[str]) -> Readiness:
    """Readiness from what the members said (pure; logs nothing)."""
    if unreachable:
        return Readiness(None, "waiting for members: " + "; ".join(unreachable))
    try:
        return Readiness(check_members(config, metadata), "")
    except IncompatibleMembers as exc:
        return Readiness(None, "members do not fit together: " + "; ".join(exc.reasons))


class MemberWatch:
    """Keeps `current` up to date; `changed` is set whenever readiness changes."""

    def __init__(self, config: EnsembleConfig, members: Sequence[Member], *,
                 recheck_seconds: float = 30.0, first_retry_seconds: float = 0.1,
                 max_retry_seconds: float = 5.0) -> None:
        self.config = config
        self.members = list(members)
        self.recheck_seconds = recheck_seconds
        self.first_retry_seconds = first_retry_seconds
        self.max_retry_seconds = max_retry_seconds
        self.current = Readiness(None, "members have not been checked yet")
        self.changed = asyncio.Event()
        self._known: dict[str, dict[str, Any]] = {}

    async def check_once(self) -> Readiness:
        """Fetch every member's metadata once and update `current`."""
        found, problems = await fetch_metadata(self.members)
        self._known.update(found)
        if self.current.plan is not None and problems:
            # Ready before: members that are down keep what they last said.
            log.warning("Could not re-check %d member(s); keeping their last metadata: %s",
                        len(problems), "; ".join(problems.values()))
            problems = {m: p for m, p in problems.items() if m not in self._known}
        readiness = assess(self.config, self._known, list(problems.values()))
        self._set(readiness)
        return readiness

    def _set(self, readiness: Readiness) -> None:
        before = self.current
        self.current = readiness
        if (before.plan is None) == (readiness.plan is None) and before.reason == readiness.reason:
            return
        if readiness.plan is not None:
            log.info("Ensemble %s is ready: %d member(s), strategy %s.", self.config.name,
                     len(self.members), self.config.strategy)
        else:
            log.warning("Ensemble %s is not ready: %s", self.config.name, readiness.reason)
        self.changed.set()
        self.changed = asyncio.Event()

    async def run(self) -> None:
        """Check until ready (backing off), then every `recheck_seconds`; runs until cancelled."""
        pause = self.first_retry_seconds
        while True:
            try:
                readiness = await self.check_once()
            except Exception:
                log.exception("Checking the members failed; trying again.")
                readiness = self.current
            if readiness.plan is not None:
                pause = self.first_retry_seconds
                await asyncio.sleep(self.recheck_seconds)
            else:
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.max_retry_seconds)
