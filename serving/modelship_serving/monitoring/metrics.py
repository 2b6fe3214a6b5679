"""Prometheus export of drift scores and anomaly counts.

One custom collector per registry serves every loaded model version: the
registry refuses two collectors that export the same metric names, and one
collector also means an unloaded version's series disappear with it. Values
are read from each observer at scrape time, which is when the PSI is
computed, so serving traffic never pays for it.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelship_serving.monitoring.drift import DriftObserver

logger = logging.getLogger(__name__)

DRIFT_SCORE = "modelship_drift_score"
ANOMALOUS_OUTPUTS = "modelship_anomalous_outputs"  # exported with the _total suffix
WINDOW_SAMPLES = "modelship_drift_window_samples"

_DRIFT_HELP = ("Population stability index of a feature over the rolling window, against "
               "the version's reference statistics.")
_ANOMALY_HELP = "Output rows with NaN, infinite or out-of-reference-range values."
_SAMPLES_HELP = "Rows in the rolling drift window."


class DriftCollector(Collector):
    """Exports the metrics of every observer attached to one registry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._observers: dict[tuple[str, str], DriftObserver] = {}
        self._hooks: list[Callable[[], None]] = []

    def before_collect(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` at the start of every scrape (to drop unloaded versions)."""
        with self._lock:
            self._hooks.append(hook)

    def discard_hook(self, hook: Callable[[], None]) -> None:
        with self._lock:
            self._hooks = [h for h in self._hooks if h != hook]

    def add(self, observer: DriftObserver) -> None:
        key = (observer.model, observer.version)
        with self._lock:
            replaced = self._observers.get(key)
            self._observers[key] = observer
        if replaced is not None and replaced is not observer:
            logger.info("Drift observer of %s/%s replaced; the old window is dropped.", *key)

    def remove(self, observer: DriftObserver) -> None:
        key = (observer.model, observer.version)
        with self._lock:
            if self._observers.get(key) is observer:
                del self._observers[key]

    def describe(self) -> Iterator[Metric]:
        yield from _families()

    def collect(self) -> Iterator[Metric]:
        drift, anomalies, samples = _families()
        with self._lock:
            hooks = list(self._hooks)
        for hook in hooks:
            try:
                hook()
            except Exception:  # noqa: BLE001 - a scrape must still answer
                logger.exception("A drift metrics hook failed; exporting what is known.")
        with self._lock:
            observers = list(self._observers.values())

        for observer in observers:
            snap = observer.snapshot()
            model_version = [snap.model, snap.version]
            samples.add_metric(model_version, snap.samples)
            for (tensor, kind), count in sorted(snap.anomalies.items()):
                anomalies.add_metric([*model_version, tensor, kind], count)
            for (_direction, tensor), scores in sorted(snap.scores.items()):
                for feature, score in enumerate(scores.tolist()):
                    if math.isfinite(score):
                        drift.add_metric([*model_version, tensor, str(feature)], score)
        yield from (drift, anomalies, samples)


def _families() -> tuple[GaugeMetricFamily, CounterMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(DRIFT_SCORE, _DRIFT_HELP,
                          labels=["model", "version", "tensor", "feature"]),
        CounterMetricFamily(ANOMALOUS_OUTPUTS, _ANOMALY_HELP,
                            labels=["model", "version", "tensor", "kind"]),
        GaugeMetricFamily(WINDOW_SAMPLES, _SAMPLES_HELP, labels=["model", "version"]),
    )


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, DriftCollector] = (
    weakref.WeakKeyDictionary())
_collectors_lock = threading.Lock()


def collector_for(registry: CollectorRegistry | None = None) -> DriftCollector:
    """The registry's drift collector, registered on first use."""
    registry = REGISTRY if registry is None else registry
    with _collectors_lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = DriftCollector()
            registry.register(collector)
            _collectors[registry] = collector
        return collector


def attach(observer: DriftObserver, registry: CollectorRegistry | None = None) -> None:
    """Export ``observer``'s metrics from ``registry`` until ``observer.close()``."""
    collector = collector_for(registry)
    collector.add(observer)
    observer.call_on_close(lambda: collector.remove(observer))
