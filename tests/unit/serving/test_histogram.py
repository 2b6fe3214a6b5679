"""The request histogram exposes what prometheus_client's Histogram would."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from modelship_serving.server.histogram import FastHistogram

BUCKETS = (0.0001, 0.001, 0.01, 1, 5)
VALUES = [0.00005, 0.0001, 0.0002, 0.001, 0.5, 1.0, 4.9, 5.0, 7.5, 0.0]


def test_the_exposition_matches_prometheus_clients_histogram_sample_for_sample():
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    fast = FastHistogram("req_seconds", "doc", ["model", "protocol"], BUCKETS, ours)
    reference = Histogram("req_seconds", "doc", ["model", "protocol"], buckets=BUCKETS,
                          registry=theirs)
    for i, value in enumerate(VALUES):
        labels = ("m", "http" if i % 3 else "grpc")
        fast.labels(*labels).observe(value)
        reference.labels(*labels).observe(value)

    def samples(registry: CollectorRegistry) -> list[str]:
        return sorted(line for line in generate_latest(registry).decode().splitlines()
                      if line.startswith("req_seconds_") and "_created" not in line)

    assert samples(ours) == samples(theirs)
    assert ours.get_sample_value("req_seconds_count", {"model": "m", "protocol": "http"}) == 6


def test_observations_from_many_threads_are_all_counted():
    registry = CollectorRegistry()
    histogram = FastHistogram("batch", "doc", ["model"], (1, 2, 4, 8), registry)
    child = histogram.labels("m")

    def observe() -> None:
        for _ in range(20_000):
            child.observe(3)

    threads = [threading.Thread(target=observe) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert registry.get_sample_value("batch_count", {"model": "m"}) == 80_000
    assert registry.get_sample_value("batch_bucket", {"model": "m", "le": "4.0"}) == 80_000
    assert registry.get_sample_value("batch_bucket", {"model": "m", "le": "2.0"}) == 0


def test_wrong_labels_and_buckets_are_refused():
    histogram = FastHistogram("h", "doc", ["a", "b"], (1, 2), None)
    with pytest.raises(ValueError, match="takes labels"):
        histogram.labels("only-one")
    with pytest.raises(ValueError, match="distinct finite"):
        FastHistogram("h", "doc", [], (1, 1), None)
