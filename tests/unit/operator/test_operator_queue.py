"""The keyed work queue: coalescing, one run per key at a time, retries and their backoff.

Runs are observed through events the fake ``work`` sets, never through
sleeps; retry delays are recorded, then shortened, so a backoff of seconds is
checked in milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from modelship_operator.reconcile.queue import Key, RetryLater, WorkQueue

A: Key = ("ModelDeployment", "ml", "a")
B: Key = ("ModelDeployment", "ml", "b")
WAIT = 5.0  # seconds; only reached when a test is about to fail


class Transient(Exception):
    """A failure the queue is told to retry."""


class Permanent(Exception):
    """A failure the queue is told not to retry."""


@dataclass
class Recorder:
    """A fake reconcile: counts runs per key, tracks overlap, and can be held or made to fail."""

    outcomes: list[BaseException | None] = field(default_factory=list)
    calls: dict[Key, int] = field(default_factory=dict)
    running: dict[Key, int] = field(default_factory=dict)
    most_at_once: dict[Key, int] = field(default_factory=dict)
    most_keys_at_once: int = 0
    gate: asyncio.Event | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    ran: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def __call__(self, key: Key) -> None:
        self.calls[key] = self.calls.get(key, 0) + 1
        self.running[key] = self.running.get(key, 0) + 1
        self.most_at_once[key] = max(self.most_at_once.get(key, 0), self.running[key])
        self.most_keys_at_once = max(self.most_keys_at_once,
                                     sum(1 for n in self.running.values() if n))
        self.started.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
            outcome = self.outcomes.pop(0) if self.outcomes else None
            if outcome is not None:
                raise outcome
        finally:
            self.running[key] -= 1
            async with self.ran:
                self.ran.notify_all()

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with self.ran:
            await asyncio.wait_for(self.ran.wait_for(predicate), WAIT)


def _queue(work: Callable[[Key], Awaitable[None]], **kwargs: object) -> WorkQueue:
    return WorkQueue(work=work, is_retryable=lambda exc: isinstance(exc, Transient),
                     **kwargs)  # type: ignore[arg-type]


def _recording_delays(queue: WorkQueue, *, shortened_to: float = 0.001) -> list[float]:
    """Record every delayed schedule the queue makes of itself, and make it short."""
    delays: list[float] = []
    real = queue.schedule

    def schedule(key: Key, *, delay: float = 0.0) -> None:
        if delay > 0:
            delays.append(delay)
            delay = shortened_to
        real(key, delay=delay)

    queue.schedule = schedule  # type: ignore[method-assign]
    return delays


async def test_a_scheduled_key_is_reconciled_once() -> None:
    work = Recorder()
    queue = _queue(work)

    queue.schedule(A)
    await queue.idle()

    assert work.calls == {A: 1}
    await queue.close()


async def test_a_burst_during_a_run_coalesces_into_one_more_run() -> None:
    work = Recorder(gate=asyncio.Event())
    queue = _queue(work)
    queue.schedule(A)
    await asyncio.wait_for(work.started.wait(), WAIT)

    for _ in range(10):
        queue.schedule(A)
    work.gate.set()  # type: ignore[union-attr]
    await queue.idle()

    assert work.calls == {A: 2}
    await queue.close()


async def test_a_burst_before_the_first_run_starts_is_one_run() -> None:
    work = Recorder()
    queue = _queue(work)

    for _ in range(10):
        queue.schedule(A)
    await queue.idle()

    assert work.calls == {A: 1}
    await queue.close()


async def test_one_key_never_runs_twice_at_once_but_two_keys_run_side_by_side() -> None:
    work = Recorder(gate=asyncio.Event())
    queue = _queue(work)

    queue.schedule(A)
    queue.schedule(B)
    await work.until(lambda: work.running.get(A, 0) == 1 and work.running.get(B, 0) == 1)
    for _ in range(5):
        queue.schedule(A)
        queue.schedule(B)
        await asyncio.sleep(0)  # let any (wrongly) started second run begin
    work.gate.set()  # type: ignore[union-attr]
    await queue.idle()

    assert work.most_at_once == {A: 1, B: 1}
    assert work.most_keys_at_once == 2
    assert work.calls == {A: 2, B: 2}
    await queue.close()


async def test_a_retryable_failure_is_retried_with_a_doubling_backoff() -> None:
    work = Recorder(outcomes=[Transient("409"), Transient("409"), Transient("409")])
    queue = _queue(work)
    delays = _recording_delays(queue)

    queue.schedule(A)
    await work.until(lambda: work.calls.get(A) == 4 and not work.running.get(A))
    await queue.idle()

    assert delays == [1.0, 2.0, 4.0]
    await queue.close()


async def test_the_backoff_stops_growing_at_max_backoff() -> None:
    work = Recorder(outcomes=[Transient("x")] * 6)
    queue = _queue(work, max_backoff=5.0)
    delays = _recording_delays(queue)

    queue.schedule(A)
    await work.until(lambda: work.calls.get(A) == 7 and not work.running.get(A))

    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    await queue.close()


async def test_a_success_resets_the_backoff() -> None:
    work = Recorder(outcomes=[Transient("x"), Transient("x"), None, Transient("x")])
    queue = _queue(work)
    delays = _recording_delays(queue)

    queue.schedule(A)
    await work.until(lambda: work.calls.get(A) == 3 and not work.running.get(A))
    queue.schedule(A)
    await work.until(lambda: work.calls.get(A) == 5 and not work.running.get(A))

    assert delays == [1.0, 2.0, 1.0]
    await queue.close()


async def test_a_retry_really_waits_its_delay_on_the_loop() -> None:
    work = Recorder(outcomes=[Transient("x")])
    queue = _queue(work, max_backoff=0.01)
    loop = asyncio.get_running_loop()

    started = loop.time()
    queue.schedule(A)
    await work.until(lambda: work.calls.get(A) == 2)

    assert loop.time() - started >= 0.01
    await queue.close()


async def test_a_permanent_failure_is_logged_and_not_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    work = Recorder(outcomes=[Permanent("bad spec")])
    queue = _queue(work)
    delays = _recording_delays(queue)

    with caplog.at_level(logging.ERROR, logger="modelship_operator.reconcile.queue"):
        queue.schedule(A)
        await queue.idle()

    assert work.calls == {A: 1}
    assert delays == []
    assert "Reconcile of ml/a ModelDeployment failed permanently" in caplog.text
    await queue.close()


async def test_after_a_permanent_failure_the_next_change_runs_it_again() -> None:
    work = Recorder(outcomes=[Permanent("bad spec")])
    queue = _queue(work)

    queue.schedule(A)
    await queue.idle()
    queue.schedule(A)
    await queue.idle()

    assert work.calls == {A: 2}
    await queue.close()


async def test_retry_later_reschedules_after_the_delay_it_asks_for() -> None:
    work = Recorder(outcomes=[RetryLater(30.0, "waiting for the Job")])
    queue = _queue(work)
    delays = _recording_delays(queue)

    queue.schedule(A)
    await work.until(lambda: work.calls.get(A) == 2 and not work.running.get(A))

    assert delays == [30.0]
    await queue.close()


async def test_retry_later_does_not_grow_the_backoff() -> None:
    work = Recorder(outcomes=[RetryLater(0.5, "wait"), Transient("x")])
    queue = _queue(work)
    delays = _recording_delays(queue)

    queue.schedule(A)
    await work.until(lambda: work.calls.get(A) == 3 and not work.running.get(A))

    assert delays == [0.5, 1.0]
    await queue.close()


async def test_forget_cancels_a_pending_retry() -> None:
    queue = _queue(Recorder())
    queue.schedule(A, delay=60.0)
    timer = queue._slots[A].timer
    assert timer is not None

    queue.forget(A)

    assert timer.cancelled()
    await queue.close()


async def test_a_key_forgotten_while_it_runs_still_never_runs_twice_at_once() -> None:
    work = Recorder(gate=asyncio.Event())
    queue = _queue(work)
    queue.schedule(A)
    await asyncio.wait_for(work.started.wait(), WAIT)

    queue.forget(A)  # the object was deleted
    queue.schedule(A)  # and an event for it (a child's deletion) arrives
    await asyncio.sleep(0)
    work.gate.set()  # type: ignore[union-attr]
    await queue.idle()

    assert work.most_at_once == {A: 1}
    await queue.close()


async def test_close_cancels_running_reconciles_and_pending_retries() -> None:
    work = Recorder(gate=asyncio.Event())
    queue = _queue(work)
    queue.schedule(A)
    queue.schedule(B, delay=60.0)
    await asyncio.wait_for(work.started.wait(), WAIT)
    task, timer = queue._slots[A].task, queue._slots[B].timer

    await queue.close()

    assert task is not None and task.cancelled()
    assert timer is not None and timer.cancelled()
    assert work.running == {A: 0}
