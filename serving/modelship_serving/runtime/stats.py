"""Per-version inference statistics, kept the way Triton keeps them.

One set of cumulative counters feeds both the statistics endpoint
(`/v2/models/stats`, gRPC ModelStatistics) and the Triton-named Prometheus
counters, so the two can never disagree. Counters are updated from the event
loop and read at scrape time; a lock keeps a reader from seeing half an update.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class Duration:
    """A count and the total nanoseconds spent, as in Triton's StatisticDuration."""

    count: int = 0
    ns: int = 0

    def add(self, ns: int, count: int = 1) -> None:
        self.count += count
        self.ns += ns


@dataclass(slots=True)
class BatchStats:
    """Compute time of every execution of one batch size."""

    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


@dataclass(slots=True)
class StatsSnapshot:
    """A consistent copy of a version's counters (what a scrape reads)."""

    last_inference_ms: int
    inference_count: int
    execution_count: int
    success: Duration
    fail: Duration
    queue: Duration
    compute_input: Duration
    compute_infer: Duration
    compute_output: Duration
    pending: int
    batches: dict[int, BatchStats]


class ModelStats:
    """Cumulative counters of one model version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last_inference_ms = 0
        self.inference_count = 0
        self.execution_count = 0
        self.success = Duration()
        self.fail = Duration()
        self.queue = Duration()
        self.compute_input = Duration()
        self.compute_infer = Duration()
        self.compute_output = Duration()
        self.pending = 0
        self.batches: dict[int, BatchStats] = {}

    def request_queued(self) -> None:
        with self._lock:
            self.pending += 1

    def request_dequeued(self) -> None:
        with self._lock:
            self.pending -= 1

    def request_done(self, *, ok: bool, duration_ns: int, queue_ns: int = 0,
                     input_ns: int = 0, infer_ns: int = 0, output_ns: int = 0) -> None:
        """Record one finished request (compute times are its batch's, as Triton does)."""
        with self._lock:
            if ok:
                self._succeeded(duration_ns, queue_ns, input_ns, infer_ns, output_ns)
            else:
                self.fail.add(duration_ns)
                self.last_inference_ms = int(time.time() * 1000)

    def batch_done(self, *, batch_size: int, input_ns: int, infer_ns: int,
                   output_ns: int) -> None:
        """Record one execution of the model on `batch_size` inferences."""
        with self._lock:
            self._executed(batch_size, input_ns, infer_ns, output_ns)

    def alone_done(self, *, duration_ns: int, batch_size: int, input_ns: int, infer_ns: int,
                   output_ns: int) -> None:
        """Record a request that succeeded as an execution of its own, never queued:
        `request_done` and `batch_done` under one lock."""
        with self._lock:
            self._succeeded(duration_ns, 0, input_ns, infer_ns, output_ns)
            self._executed(batch_size, input_ns, infer_ns, output_ns)

    def _succeeded(self, duration_ns: int, queue_ns: int, input_ns: int, infer_ns: int,
                   output_ns: int) -> None:
        self.success.add(duration_ns)
        self.queue.add(queue_ns)
        self.compute_input.add(input_ns)
        self.compute_infer.add(infer_ns)
        self.compute_output.add(output_ns)
        self.last_inference_ms = int(time.time() * 1000)

    def _executed(self, batch_size: int, input_ns: int, infer_ns: int, output_ns: int) -> None:
        self.execution_count += 1
        self.inference_count += batch_size
        per_size = self.batches.get(batch_size)
        if per_size is None:
            per_size = self.batches[batch_size] = BatchStats()
        per_size.compute_input.add(input_ns)
        per_size.compute_infer.add(infer_ns)
        per_size.compute_output.add(output_ns)

    def snapshot(self) -> StatsSnapshot:
        def copy(d: Duration) -> Duration:
            return Duration(d.count, d.ns)

        with self._lock:
            return StatsSnapshot(
                last_inference_ms=self.last_inference_ms,
                inference_count=self.inference_count,
                execution_count=self.execution_count,
                success=copy(self.success),
                fail=copy(self.fail),
                queue=copy(self.queue),
                compute_input=copy(self.compute_input),
                compute_infer=copy(self.compute_infer),
                compute_output=copy(self.compute_output),
                pending=self.pending,
                batches={
                    size: BatchStats(copy(b.compute_input), copy(b.compute_infer),
                                     copy(b.compute_output))
                    for size, b in sorted(self.batches.items())
                },
            )
