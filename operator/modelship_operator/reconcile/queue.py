"""A keyed work queue: one reconcile per object at a time, bursts coalesced.

Watch events arrive in bursts (a Deployment's status changes several times
while pods start). Each burst for one object becomes at most one running
reconcile plus one queued behind it; retryable failures come back with an
exponential backoff, permanent ones wait for the next change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name)


class RetryLater(Exception):
    """A reconcile asks to run again after ``delay`` seconds (a condition it waits for)."""

    def __init__(self, delay: float, why: str):
        super().__init__(why)
        self.delay = delay


@dataclass
class _Slot:
    dirty: bool = False
    task: asyncio.Task[None] | None = None
    failures: int = 0
    timer: asyncio.TimerHandle | None = None
    forgotten: bool = False


@dataclass
class WorkQueue:
    """Runs ``work(key)`` for scheduled keys, never twice at once for one key."""

    work: Callable[[Key], Awaitable[None]]
    is_retryable: Callable[[BaseException], bool]
    max_backoff: float = 60.0
    _slots: dict[Key, _Slot] = field(default_factory=dict)

    def schedule(self, key: Key, *, delay: float = 0.0) -> None:
        """Ask for a reconcile of ``key`` (now, or after ``delay`` seconds)."""
        slot = self._slots.setdefault(key, _Slot())
        slot.forgotten = False
        if delay > 0:
            if slot.timer is None:
                loop = asyncio.get_running_loop()
                slot.timer = loop.call_later(delay, self._fire, key)
            return
        slot.dirty = True
        if slot.task is None or slot.task.done():
            slot.task = asyncio.create_task(self._drain(key, slot), name=f"reconcile {key}")

    def forget(self, key: Key) -> None:
        """Drop ``key`` (its object is gone); a reconcile already running finishes first."""
        slot = self._slots.get(key)
        if slot is None:
            return
        if slot.timer:
            slot.timer.cancel()
            slot.timer = None
        slot.dirty, slot.failures, slot.forgotten = False, 0, True
        if slot.task is None or slot.task.done():
            del self._slots[key]

    def _fire(self, key: Key) -> None:
        slot = self._slots.get(key)
        if slot is not None:
            slot.timer = None
            self.schedule(key)

    async def _drain(self, key: Key, slot: _Slot) -> None:
        while slot.dirty:
            slot.dirty = False
            try:
                await self.work(key)
                slot.failures = 0
            except asyncio.CancelledError:
                raise
            except RetryLater as again:
                if not slot.forgotten:
                    self.schedule(key, delay=again.delay)
            except Exception as exc:  # noqa: BLE001 - the queue must survive any handler bug
                if self.is_retryable(exc) and not slot.forgotten:
                    slot.failures += 1
                    delay = min(self.max_backoff, 0.5 * 2 ** min(slot.failures, 8))
                    log.warning("Reconcile of %s/%s %s failed (%s); retrying in %.1fs.",
                                key[1], key[2], key[0], exc, delay)
                    self.schedule(key, delay=delay)
                else:
                    log.exception("Reconcile of %s/%s %s failed permanently; waiting for a "
                                  "change to the object.", key[1], key[2], key[0])

    async def idle(self) -> None:
        """Wait until no reconcile is running (for tests and benchmarks)."""
        while any(s.task and not s.task.done() for s in self._slots.values()):
            await asyncio.gather(
                *(s.task for s in self._slots.values() if s.task and not s.task.done()),
                return_exceptions=True,
            )

    async def close(self) -> None:
        for slot in self._slots.values():
            if slot.timer:
                slot.timer.cancel()
            if slot.task and not slot.task.done():
                slot.task.cancel()
        await asyncio.gather(
            *(s.task for s in self._slots.values() if s.task), return_exceptions=True
        )
        self._slots.clear()
