"""Opening the drift observer of one model version from its directory."""

from __future__ import annotations

import logging
from pathlib import Path

from prometheus_client import CollectorRegistry

from modelship_serving.monitoring.drift import DriftObserver, DriftSettings
from modelship_serving.monitoring.errors import InvalidReference
from modelship_serving.monitoring.metrics import attach
from modelship_serving.monitoring.reference import REFERENCE_FILE, load_reference

logger = logging.getLogger(__name__)


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
        observer = DriftObserver(reference, model=model, version=str(version),
                                 settings=settings)
    except InvalidReference as exc:
        logger.warning("Drift detection is off for %s/%s: %s", model, version, exc)
        return None

    attach(observer, registry)
    logger.info("Drift detection is on for %s/%s: %d input and %d output tensors, "
                "window of %d rows.", model, version, len(reference.inputs),
                len(reference.outputs), observer.settings.slots * observer.settings.slot_samples)
    return observer
