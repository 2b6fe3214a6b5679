"""Drift and anomaly detection, and sampled payload logging, for the model server.

The server's whole contract with this package::

    observer = load_observer(version_dir, model, version, registry)   # at load
    observer.observe(model, version, inputs, outputs)                 # per batch
    observer.close()                                                  # at unload

``load_observer`` returns None when the version has no reference.json (or an
unusable one, logged as a warning): drift detection is optional and never
stops a model from serving.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prometheus_client import CollectorRegistry

from modelship_serving.monitoring.drift import DriftObserver, DriftSettings, DriftSnapshot
from modelship_serving.monitoring.errors import InvalidReference, MonitoringError
from modelship_serving.monitoring.metrics import attach
from modelship_serving.monitoring.payload import PayloadLogger, scrub, scrub_headers
from modelship_serving.monitoring.reference import (
    REFERENCE_FILE,
    Reference,
    build_reference,
    load_reference,
    parse_reference,
)

logger = logging.getLogger(__name__)

__all__ = [
    "REFERENCE_FILE",
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


def load_observer(
    version_dir: Path,
    model: str,
    version: str,
    registry: CollectorRegistry | None = None,
    *,
    settings: DriftSettings | None = None,
) -> DriftObserver | None:
    """A drift observer exporting to ``registry``, or None without a usable reference.

    Loading the same model and version again replaces the earlier observer's
    series (its window starts empty).
    """
    path = Path(version_dir) / REFERENCE_FILE
    if not path.is_file():
        logger.info("No %s for %s/%s; drift detection is off for this version.",
                    REFERENCE_FILE, model, version)
        return None
    try:
        reference = load_reference(path)
    except InvalidReference as exc:
        logger.warning("Drift detection is off for %s/%s: %s", model, version, exc)
        return None

    observer = DriftObserver(reference, model=model, version=str(version), settings=settings)
    attach(observer, registry)
    logger.info("Drift detection is on for %s/%s: %d input and %d output tensors, "
                "window of %d rows.", model, version, len(reference.inputs),
                len(reference.outputs), observer.settings.slots * observer.settings.slot_samples)
    return observer
