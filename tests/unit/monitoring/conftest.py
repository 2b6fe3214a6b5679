"""A reference built from a tiny synthetic "validation split" shared by these tests."""

from __future__ import annotations

import numpy as np
import pytest

from modelship_serving.monitoring import DriftObserver, DriftSettings, parse_reference
from modelship_serving.monitoring.reference import Reference, build_reference

FEATURES = 4


@pytest.fixture(scope="session")
def reference() -> Reference:
    rng = np.random.default_rng(42)
    inputs = rng.normal(size=(5_000, FEATURES)).astype(np.float32)
    # Probabilities of two classes: outputs live in [0, 1].
    p = rng.random(5_000).astype(np.float32)
    return parse_reference(build_reference({"x": inputs}, {"probs": np.stack([p, 1 - p], 1)}))


@pytest.fixture
def observer(reference: Reference) -> DriftObserver:
    settings = DriftSettings(slots=10, slot_samples=500, min_samples=200)
    return DriftObserver(reference, model="clf", version="1", settings=settings)
