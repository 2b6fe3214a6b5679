"""Getting requests to a model's worker threads: one at a time, or in dynamic batches.

Both schedulers keep the event loop free: the session runs in worker threads,
one per model instance, and results come back through the loop. The one
exception is a model too small to be worth the hand-off (see `placement`).
The dynamic batcher follows Triton's rules: it forms a batch when an instance
is free, sends it at once when it reaches max_batch_size or the largest
preferred size, and otherwise waits at most max_queue_delay_microseconds for
more requests. Requests whose non-batch dimensions differ never share a batch.
A failed batch fails every request in it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import numpy as np

from modelship_serving.protocol.errors import Unavailable
from modelship_serving.runtime.placement import Placement, gc_runs
from modelship_serving.runtime.session import BatchTiming, SessionRunner
from modelship_serving.runtime.stats import ModelStats
from modelship_serving.runtime.workers import WorkerThreads

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Job:
    """One request waiting for, or inside, a batch."""

    feed: dict[str, np.ndarray]
    size: int
    key: tuple[tuple[str, tuple[int, ...]], ...]
    future: asyncio.Future[JobResult] | None  # only while queued in the batcher
    enqueued_ns: int


@dataclass(slots=True)
class JobResult:
    """A request's outputs and where its time went."""

    outputs: dict[str, np.ndarray]
    queue_ns: int
    timing: BatchTiming
    batch_size: int


def _batch_key(feed: dict[str, np.ndarray]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple((name, a.shape[1:]) for name, a in sorted(feed.items()))


class Scheduler:
    """Runs each request alone on a free instance (no dynamic batching)."""

    def __init__(
        self,
        runner: SessionRunner,
        stats: ModelStats,
        *,
        instances: int,
        batch_histogram: Any = None,
        placement: Placement | None = None,
    ) -> None:
        self.runner = runner
        self.placement = placement
        self.stats = stats
        self.instances = max(1, instances)
        self.workers = WorkerThreads(self.instances,
                                     name=f"infer-{runner.model}-{runner.version}")
        self._batch_histogram = batch_histogram
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    async def submit(self, feed: dict[str, np.ndarray], size: int) -> JobResult:
        """The outputs of one request; raises what the batch raised."""
        if self._closed:
            raise Unavailable(f"model '{self.runner.model}' version {self.runner.version} "
                              f"is being unloaded")
        if self.placement is not None:
            done = self.run_inline(feed, size, sum(a.size for a in feed.values()))
            if done is not None:
                self.record_batch(size, done[1])
                return JobResult(done[0], 0, done[1], size)
        job = Job(feed, size, (), None, time.perf_counter_ns())
        self._started()
        try:
            return await self._dispatch(job)
        finally:
            self._finished()

    def run_inline(self, feed: dict[str, np.ndarray], size: int, elements: int
                   ) -> tuple[dict[str, np.ndarray], BatchTiming] | None:
        """Run a request too small to hand off on the calling (event loop) thread;
        None when its placement says a worker must. The caller records the batch.

        It never waits, so it is never pending: the queue statistics stay as
        they are (nothing else runs on the loop meanwhile to see them).
        """
        placement = self.placement
        if placement is None or self._closed or not placement.inline(elements):
            return None
        if placement.sample():
            collected = gc_runs()
            cpu = time.thread_time_ns()  # CPU time: a preempted run is not a slow one
            outputs, timing, observe = self.runner.execute((feed,), (size,))
            if gc_runs() == collected:
                placement.ran(time.thread_time_ns() - cpu)
        else:
            outputs, timing, observe = self.runner.execute((feed,), (size,))
        if observe is not None:
            self.workers.post(observe)  # observers never run on the loop
        return outputs[0], timing

    async def _dispatch(self, job: Job) -> JobResult:
        results = await self.workers.submit(self._execute, [job])
        return results[0]

    def _execute(self, jobs: list[Job]
                 ) -> tuple[list[JobResult], Callable[[], None] | None]:
        """Run a batch in a worker thread and record its statistics; the second
        value is what the worker calls after delivering (the observers)."""
        sizes = [j.size for j in jobs]
        outputs, timing, observe = self.runner.execute([j.feed for j in jobs], sizes)
        total = sum(sizes)
        self.record_batch(total, timing)
        results = [
            JobResult(out, timing.start_ns - job.enqueued_ns, timing, total)
            for job, out in zip(jobs, outputs)
        ]
        return results, observe

    def record_batch(self, size: int, timing: BatchTiming | None) -> None:
        """Count an execution of `size` inferences (None: the statistics have it,
        only the batch-size histogram needs it)."""
        if timing is not None:
            self.stats.batch_done(batch_size=size, input_ns=timing.input_ns,
                                  infer_ns=timing.infer_ns, output_ns=timing.output_ns)
        if self._batch_histogram is not None:
            self._batch_histogram.observe(size)

    def _started(self) -> None:
        self._in_flight += 1
        self._idle.clear()
        self.stats.request_queued()

    def _finished(self) -> None:
        self._in_flight -= 1
        self.stats.request_dequeued()
        if self._in_flight == 0:
            self._idle.set()

    async def close(self) -> None:
        """Refuse new requests, wait for those in flight, stop the threads."""
        self._closed = True
        await self._idle.wait()
        self.workers.shutdown()


class DynamicBatcher(Scheduler):
    """Combines concurrent requests into batches as Triton's dynamic batcher does."""

    def __init__(
        self,
        runner: SessionRunner,
        stats: ModelStats,
        *,
        instances: int,
        max_batch_size: int,
        preferred_batch_sizes: list[int],
        max_queue_delay_us: int,
        batch_histogram: Any = None,
    ) -> None:
        super().__init__(runner, stats, instances=instances, batch_histogram=batch_histogram)
        self.max_batch_size = max_batch_size
        preferred = sorted(p for p in preferred_batch_sizes if 0 < p <= max_batch_size)
        self.preferred = preferred
        self.send_at = preferred[-1] if preferred else max_batch_size
        self.delay_ns = max(0, max_queue_delay_us) * 1000
        self._queue: collections.deque[Job] = collections.deque()
        self._queued_size = 0
        self._wake: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._task: asyncio.Task[None] | None = None

    async def _dispatch(self, job: Job) -> JobResult:
        if self._task is None:
            self._wake = asyncio.Event()
            self._slots = asyncio.Semaphore(self.instances)
            self._task = asyncio.create_task(self._form_batches(),
                                             name=f"batcher-{self.runner.model}")
        job.key = _batch_key(job.feed)
        job.future = asyncio.get_running_loop().create_future()
        self._queue.append(job)
        self._queued_size += job.size
        assert self._wake is not None
        self._wake.set()
        return await job.future

    async def _form_batches(self) -> None:
        """Forever: wait for a free instance, form a batch, hand it to a thread."""
        try:
            await self._batch_forever()
        except asyncio.CancelledError:
            raise
        except BaseException:
            # A bug here would leave every queued request waiting forever.
            log.exception("The batcher of model %s version %s stopped; failing its queue.",
                          self.runner.model, self.runner.version)
            while self._queue:
                job = self._queue.popleft()
                if job.future is not None and not job.future.done():
                    job.future.set_exception(Unavailable("the model's batcher stopped"))
            self._task = None
            raise

    async def _batch_forever(self) -> None:
        assert self._wake is not None and self._slots is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._slots.acquire()
            await self._wait_for_more(loop)
            jobs = self._take_batch()
            if not jobs:
                self._slots.release()
                continue
            future = self.workers.submit(self._execute, jobs)
            future.add_done_callback(lambda f, jobs=jobs: self._deliver(f, jobs))

    async def _wait_for_more(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until the queue can fill a batch or the oldest request's delay is up."""
        assert self._wake is not None
        if self.delay_ns == 0:
            return
        deadline = self._queue[0].enqueued_ns + self.delay_ns
        while self._queued_size < self.send_at:
            remaining = deadline - time.perf_counter_ns()
            if remaining <= 0:
                return
            self._wake.clear()
            timer = loop.call_later(remaining / 1e9, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()

    def _take_batch(self) -> list[Job]:
        """Take the oldest request and compatible followers, up to max_batch_size."""
        head = self._queue.popleft()
        jobs = [head]
        total = head.size
        skipped: list[Job] = []
        limit = self.max_batch_size
        while self._queue and total < limit:
            job = self._queue[0]
            if job.key != head.key:
                skipped.append(self._queue.popleft())
                continue
            if total + job.size > limit:
                break
            jobs.append(self._queue.popleft())
            total += job.size

        # Prefer a preferred size when the queue overshoots it, as Triton does.
        if self.preferred and total not in self.preferred and total < limit:
            fitting = [p for p in self.preferred if p <= total]
            if fitting:
                target, kept = fitting[-1], 0
                for i, job in enumerate(jobs):
                    if kept + job.size > target:
                        back = jobs[i:]
                        jobs = jobs[:i]
                        self._queue.extendleft(reversed(back))
                        total = kept
                        break
                    kept += job.size
        self._queue.extendleft(reversed(skipped))
        self._queued_size -= total
        return jobs

    def _deliver(self, future: asyncio.Future[list[JobResult]], jobs: list[Job]) -> None:
        assert self._slots is not None and self._wake is not None
        self._slots.release()
        self._wake.set()
        exc = future.exception() if not future.cancelled() else Unavailable("batch cancelled")
        if exc is not None:
            for job in jobs:
                if job.future is not None and not job.future.done():
                    job.future.set_exception(exc)
            return
        for job, result in zip(jobs, future.result()):
            if job.future is not None and not job.future.done():
                job.future.set_result(result)

    async def close(self) -> None:
        await super().close()
        if self._task is not None:
            self._task.cancel()
