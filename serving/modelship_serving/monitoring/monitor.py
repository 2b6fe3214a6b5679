"""The server-wide batch observer: one drift observer per served model version.

The server registers observers once, for every model, and hands each executed
batch to all of them. ``DriftMonitor`` routes a batch to the drift observer of
its model and version, creating it on that version's first batch from
``<repository>/<model>/<version>/reference.json`` (Triton's layout). Versions
without a reference are remembered as such, so they cost one dict lookup.

Versions come and go at runtime; at each scrape the monitor asks the server
which versions are still loaded and closes the observers of the others, so an
unloaded version's drift score cannot keep an alert firing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from modelship_serving.monitoring.drift import DriftObserver, DriftSettings
from modelship_serving.monitoring.metrics import collector_for
from modelship_serving.monitoring.loading import load_observer

logger = logging.getLogger(__name__)

Key = tuple[str, str]
_UNKNOWN = object()  # a version whose reference has not been looked for yet


class DriftMonitor:
    """Drift and anomaly detection for every model of one repository. Thread-safe."""

    def __init__(
        self,
        repository: Path | str,
        registry: CollectorRegistry | None = None,
        *,
        loaded: Callable[[], Iterable[Key]] | None = None,
        settings: DriftSettings | None = None,
    ) -> None:
        """``loaded`` lists the (model, version) pairs being served; it is called at
        scrape time (the metrics endpoint's thread) to drop unloaded versions."""
        self.repository = Path(repository)
        self.registry = registry
        self.settings = settings
        self._loaded = loaded
        self._lock = threading.Lock()
        self._observers: dict[Key, DriftObserver | None] = {}
        if loaded is not None:
            collector_for(registry).before_collect(self.prune)

    def observe(
        self,
        model: str,
        version: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
    ) -> None:
        """Route one executed batch to its version's observer (see BatchObserver)."""
        key = (model, version)
        try:
            observer = self._observers[key]
        except KeyError:
            observer = self._open(key)
        if observer is not None:
            observer.observe(model, version, inputs, outputs)

    def interested(self, model: str, version: str) -> bool:
        """False once a version is known to have no reference (nothing to observe)."""
        return self._observers.get((model, version), _UNKNOWN) is not None

    def _open(self, key: Key) -> DriftObserver | None:
        with self._lock:
            if key in self._observers:  # another worker thread got here first
                return self._observers[key]
            model, version = key
            observer = load_observer(self.repository / model / version, model, version,
                                     self.registry, settings=self.settings)
            self._observers[key] = observer
            return observer

    def observers(self) -> dict[Key, DriftObserver]:
        """The versions with drift detection on, and their observers."""
        with self._lock:
            return {k: o for k, o in self._observers.items() if o is not None}

    def prune(self) -> None:
        """Forget versions the server no longer serves (their series disappear)."""
        if self._loaded is None:
            return
        live = set(self._loaded())
        with self._lock:
            gone = [key for key in self._observers if key not in live]
            closing = [self._observers.pop(key) for key in gone]
        for key, observer in zip(gone, closing, strict=True):
            if observer is not None:
                observer.close()
                logger.info("Drift detection of %s/%s stopped: the version is unloaded.", *key)

    def close(self) -> None:
        """Stop exporting every observer (server shutdown)."""
        if self._loaded is not None:
            collector_for(self.registry).discard_hook(self.prune)
        with self._lock:
            closing = [o for o in self._observers.values() if o is not None]
            self._observers.clear()
        for observer in closing:
            observer.close()
