"""Drift and anomaly detection for one model version, cheap enough to leave on.

The server calls ``observe`` after every executed batch, from a worker thread.
That call copies the batch into one matrix, bins it against the reference
edges (one comparison and one ``bincount`` for all tensors, see binning.py)
and counts anomalous output rows; under the lock it adds one small integer
array into a rolling window. The population stability index is computed
lazily, when someone asks for it (a Prometheus scrape), and cached until the
window changes, so its cost does not grow with traffic.

Two choices worth knowing:

- Values outside the reference range fall into the first or last bin (that is
  where drift shows first); NaN values are left out of the histograms and
  counted as anomalies instead (outputs only: inputs are the client's).
- Anomalies are counted per output *row* and kind (a row with any NaN column
  counts once as ``nan``), so their rate divides cleanly by
  ``nv_inference_count``, which counts rows too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from modelship_serving.monitoring.binning import ANOMALY_KINDS, Layout
from modelship_serving.monitoring.psi import DEFAULT_EPSILON, population_stability_index
from modelship_serving.monitoring.reference import Reference
from modelship_serving.monitoring.window import (
    DEFAULT_SLOT_SAMPLES,
    DEFAULT_SLOTS,
    RollingHistograms,
)

logger = logging.getLogger(__name__)

_ALL = "all"  # the window's one key: every tensor's columns side by side


@dataclass(frozen=True)
class DriftSettings:
    """Tuning of the window and the checks; the defaults suit most models.

    ``min_samples``: no score is reported until the window holds this many
    rows (a PSI over a handful of rows is noise). ``range_margin``: an output
    is out of range when it lies beyond the reference min/max by more than this
    share of the reference span.
    """

    slots: int = DEFAULT_SLOTS
    slot_samples: int = DEFAULT_SLOT_SAMPLES
    min_samples: int = 200
    epsilon: float = DEFAULT_EPSILON
    range_margin: float = 0.1

    def __post_init__(self) -> None:
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be positive, got {self.min_samples}")
        if self.range_margin < 0:
            raise ValueError(f"range_margin must be non-negative, got {self.range_margin}")


@dataclass(frozen=True)
class DriftSnapshot:
    """What the observer knows right now; what the metrics collector exports.

    ``scores`` maps (direction, tensor) to one PSI per feature (NaN where a
    feature has no data); it is empty while the window is below
    ``min_samples``.
    """

    model: str
    version: str
    samples: int
    scores: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    anomalies: dict[tuple[str, str], int] = field(default_factory=dict)


class DriftObserver:
    """Rolling drift scores and anomaly counts of one model version. Thread-safe."""

    def __init__(
        self,
        reference: Reference,
        *,
        model: str,
        version: str,
        settings: DriftSettings | None = None,
    ) -> None:
        self.model = model
        self.version = version
        self.settings = settings or DriftSettings()
        self._layout = Layout(reference, margin=self.settings.range_margin,
                              label=f"{model}/{version}")
        self._lock = threading.Lock()
        self._window = RollingHistograms(
            {_ALL: (self._layout.features, self._layout.bins)},
            slots=self.settings.slots,
            slot_samples=self.settings.slot_samples,
        )
        self._anomalies = {(name, kind): 0 for name in reference.outputs for kind in ANOMALY_KINDS}
        self._changes = 0
        self._cached: tuple[int, dict[tuple[str, str], np.ndarray]] | None = None
        self._on_close: Callable[[], None] | None = None

    @property
    def window_bytes(self) -> int:
        """Memory held by the window, fixed whatever the traffic."""
        return self._window.nbytes

    def observe(
        self,
        model: str,
        version: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
    ) -> None:
        """Account one executed batch. Never raises on odd tensors: it skips them."""
        if model != self.model or version != self.version:
            # A wiring bug in the caller; counting it here would corrupt the scores.
            logger.warning("Drift observer of %s/%s was handed a batch of %s/%s; ignoring it.",
                           self.model, self.version, model, version)
            return

        batch = self._layout.matrix(inputs, outputs)
        if batch is None:
            return
        values, filled = batch
        counts = self._layout.counts(values)
        anomalies = self._layout.anomalies(values, filled)

        with self._lock:
            self._window.add({_ALL: counts}, values.shape[0])
            for name, by_kind in anomalies.items():
                for kind, n in by_kind.items():
                    self._anomalies[(name, kind)] += n
            self._changes += 1

    def snapshot(self) -> DriftSnapshot:
        """Current scores and counts; scores are recomputed only if traffic came in."""
        with self._lock:
            samples = self._window.samples()
            anomalies = dict(self._anomalies)
            changes = self._changes
            cached = self._cached
            totals = self._window.totals() if cached is None or cached[0] != changes else None

        if totals is None and cached is not None:
            scores = cached[1]
        else:
            assert totals is not None, "a missing cache must come with fresh totals"
            scores = self._layout.split(population_stability_index(
                self._layout.fractions, totals[_ALL], epsilon=self.settings.epsilon))
            with self._lock:
                # Another scrape may have raced us here; either result is current.
                self._cached = (changes, scores)

        if samples < self.settings.min_samples:
            scores = {}
        return DriftSnapshot(
            model=self.model, version=self.version, samples=samples,
            scores=scores, anomalies=anomalies,
        )

    def histograms(self) -> dict[tuple[str, str], np.ndarray]:
        """The window's (features, bins) counts per tensor (fresh arrays)."""
        with self._lock:
            totals = self._window.totals()[_ALL]
        return self._layout.split(totals)

    def call_on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once at ``close()`` (how the exporter unregisters it)."""
        self._on_close = callback

    def close(self) -> None:
        """Stop exporting this observer's metrics (call when the version unloads)."""
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()
