"""A labelled Prometheus histogram cheap enough to observe on every request.

prometheus_client's Histogram takes a Python-level lock for the sum and again
for the bucket, and walks the buckets in Python: ~3 µs an observation, which
for a 30-feature MLP is a noticeable share of a request. This one finds the
bucket with `bisect` and updates plain counters under one lock, and turns
them into the same exposition (`_bucket{le=...}` cumulative, `_sum`,
`_count`) only when Prometheus scrapes.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterator, Sequence

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString


class _Child:
    """The counters of one label set."""

    __slots__ = ("_bounds", "_lock", "counts", "total")

    def __init__(self, bounds: list[float], lock: threading.Lock) -> None:
        self._bounds = bounds
        self._lock = lock
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self._bounds, value)  # first bound >= value
        with self._lock:
            self.counts[index] += 1
            self.total += value


class FastHistogram(Collector):
    """`FastHistogram(name, doc, labels, buckets, registry).labels(*values).observe(v)`."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 buckets: Sequence[float], registry: CollectorRegistry | None) -> None:
        bounds = sorted(float(b) for b in buckets if not math.isinf(b))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError(f"histogram {name}: buckets must be distinct finite numbers")
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._bounds = bounds
        self._lock = threading.Lock()
        self._children: dict[tuple[str, ...], _Child] = {}
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> _Child:
        if len(values) != len(self.labelnames):
            raise ValueError(f"histogram {self.name} takes labels {self.labelnames}")
        key = tuple(str(v) for v in values)
        with self._lock:
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = _Child(self._bounds, self._lock)
            return child

    def remove(self, *values: str) -> None:
        with self._lock:
            self._children.pop(tuple(str(v) for v in values), None)

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            snapshot = [(key, list(c.counts), c.total) for key, c in self._children.items()]
        for key, counts, total in snapshot:
            cumulative, buckets = 0, []
            for bound, count in zip([*self._bounds, math.inf], counts, strict=True):
                cumulative += count
                buckets.append((_le(bound), cumulative))
            family.add_metric(list(key), buckets, total)
        yield family


def _le(bound: float) -> str:
    """The `le` label as prometheus_client writes it ("0.005", "1.0", "+Inf")."""
    return floatToGoString(bound)
