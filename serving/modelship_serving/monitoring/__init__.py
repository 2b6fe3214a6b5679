"""Drift and anomaly detection, and sampled payload logging, for the model server.

The server's whole contract with this package is one observer of every
executed batch (``DriftMonitor``), registered once at startup; it opens a
``DriftObserver`` per model version on that version's first batch and drops it
when the version is unloaded. Code that manages versions itself can use the
pieces directly::

    observer = load_observer(version_dir, model, version, registry)   # at load
    observer.observe(model, version, inputs, outputs)                 # per batch
    observer.close()                                                  # at unload

``load_observer`` returns None when the version has no reference.json (or an
unusable one, logged as a warning): drift detection is optional and never
stops a model from serving.
"""

from __future__ import annotations

from modelship_serving.monitoring.drift import DriftObserver, DriftSettings, DriftSnapshot
from modelship_serving.monitoring.errors import InvalidReference, MonitoringError
from modelship_serving.monitoring.loading import load_observer
from modelship_serving.monitoring.monitor import DriftMonitor
from modelship_serving.monitoring.payload import PayloadLogger, scrub, scrub_headers
from modelship_serving.monitoring.reference import (
    REFERENCE_FILE,
    Reference,
    build_reference,
    load_reference,
    parse_reference,
)

__all__ = [
    "REFERENCE_FILE",
    "DriftMonitor",
    "DriftObserver",
    "DriftSettings",
    "DriftSnapshot",
    "InvalidReference",
    "MonitoringError",
    "PayloadLogger",
    "Reference",
    "build_reference",
    "load_observer",
    "load_reference",
    "parse_reference",
    "scrub",
    "scrub_headers",
]
