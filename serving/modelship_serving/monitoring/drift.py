"""Drift and anomaly detection for one model version, cheap enough to leave on.

The server calls ``observe`` after every executed batch, from a worker thread.
That call only bins the batch against the reference edges (one broadcast
comparison and one ``bincount`` per tensor) and counts anomalous output rows;
under the lock it adds a few small integer arrays into a rolling window. The
population stability index is computed lazily, when someone asks for it (a
Prometheus scrape), and cached until the window changes, so its cost does not
grow with traffic.

Two choices worth knowing:

- Values outside the reference range fall into the first or last bin (that is
  where drift shows first); NaN values are left out of the histograms and
  counted as anomalies instead.
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

from modelship_serving.monitoring.psi import DEFAULT_EPSILON, population_stability_index
from modelship_serving.monitoring.reference import Reference, TensorReference
from modelship_serving.monitoring.window import (
    DEFAULT_SLOT_SAMPLES,
    DEFAULT_SLOTS,
    RollingHistograms,
)

logger = logging.getLogger(__name__)

ANOMALY_KINDS = ("nan", "inf", "out_of_range")

# Batches up to this many values are binned with one broadcast comparison.
_BROADCAST_LIMIT = 256
INPUT, OUTPUT = "input", "output"


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


@dataclass(frozen=True)
class _Binner:
    """Precomputed arrays that bin a (rows, features) batch in one pass."""

    reference: TensorReference
    inner_edges: np.ndarray   # (1, features, bins - 1): the edges between bins
    edges_by_bin: np.ndarray  # (bins - 1, features): the same, one row per edge
    offsets: np.ndarray       # (1, features): feature * bins, for one flat bincount
    low: np.ndarray           # (1, features): below this an output is out of range
    high: np.ndarray          # (1, features)

    @classmethod
    def for_reference(cls, ref: TensorReference, margin: float) -> _Binner:
        span = ref.maximum - ref.minimum
        # A constant column has no span; widen by its magnitude instead.
        span = np.where(span > 0, span, np.maximum(np.abs(ref.maximum), 1.0))
        return cls(
            reference=ref,
            inner_edges=ref.edges[None, :, 1:-1],
            edges_by_bin=np.ascontiguousarray(ref.edges[:, 1:-1].T),
            offsets=(np.arange(ref.feature_count) * ref.bin_count)[None, :],
            low=(ref.minimum - margin * span)[None, :],
            high=(ref.maximum + margin * span)[None, :],
        )

    def counts(self, values: np.ndarray) -> np.ndarray:
        """The (features, bins) histogram of a (rows, features) batch, NaN left out."""
        features, bins = self.reference.feature_count, self.reference.bin_count

        index = self.bin_index(values) + self.offsets
        nan = np.isnan(values)
        if nan.any():
            index[nan] = features * bins
        flat = np.bincount(index.ravel(), minlength=features * bins + 1)
        return flat[: features * bins].reshape(features, bins)

    def bin_index(self, values: np.ndarray) -> np.ndarray:
        """Each value's bin: how many inner edges lie at or below it.

        That matches np.histogram's half-open bins (the last one closed) and
        clips values beyond the outer edges into the first and last bin.
        """
        if values.size <= _BROADCAST_LIMIT:
            # Small batches: one broadcast comparison beats a loop's call overhead.
            return (values[:, :, None] >= self.inner_edges).sum(axis=2)

        # Larger ones: a reduction over a short last axis is slow in numpy; one
        # pass per edge over contiguous (rows, features) arrays is ~5x faster.
        values = values.astype(np.float64, copy=False)
        small = np.uint8 if len(self.edges_by_bin) < 255 else np.int32
        index = np.zeros(values.shape, dtype=small)
        above = np.empty(values.shape, dtype=bool)
        for edge in self.edges_by_bin:
            np.greater_equal(values, edge, out=above)
            index += above
        return index

    def anomalous_rows(self, values: np.ndarray) -> dict[str, int]:
        """Rows with a NaN, an infinity, or a finite value outside the widened range."""
        outside = (values < self.low) | (values > self.high)
        if np.isfinite(values).all():
            # The common case: one pass fewer, nothing to tell apart.
            return {"nan": 0, "inf": 0, "out_of_range": int(outside.any(axis=1).sum())}
        inf = np.isinf(values)
        return {
            "nan": int(np.isnan(values).any(axis=1).sum()),
            "inf": int(inf.any(axis=1).sum()),
            "out_of_range": int((outside & ~inf).any(axis=1).sum()),
        }


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
        margin = self.settings.range_margin
        self._binners = {
            **{(INPUT, name): _Binner.for_reference(ref, margin)
               for name, ref in reference.inputs.items()},
            **{(OUTPUT, name): _Binner.for_reference(ref, margin)
               for name, ref in reference.outputs.items()},
        }
        self._lock = threading.Lock()
        self._window = RollingHistograms(
            {key: (b.reference.feature_count, b.reference.bin_count)
             for key, b in self._binners.items()},
            slots=self.settings.slots,
            slot_samples=self.settings.slot_samples,
        )
        self._anomalies = {(name, kind): 0 for name in reference.outputs for kind in ANOMALY_KINDS}
        self._changes = 0
        self._cached: tuple[int, dict[tuple[str, str], np.ndarray]] | None = None
        self._skipped: set[tuple[str, str]] = set()
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

        counts: dict[tuple[str, str], np.ndarray] = {}
        anomalies: dict[str, dict[str, int]] = {}
        rows = 0
        for direction, tensors in ((INPUT, inputs), (OUTPUT, outputs)):
            for name, array in tensors.items():
                key = (direction, name)
                binner = self._binners.get(key)
                values = self._columns(key, binner, array) if binner else None
                if values is None:
                    continue
                rows = max(rows, values.shape[0])
                counts[key] = binner.counts(values)
                if direction == OUTPUT:
                    anomalies[name] = binner.anomalous_rows(values)

        if not counts:
            return
        with self._lock:
            self._window.add(counts, rows)
            for name, by_kind in anomalies.items():
                for kind, n in by_kind.items():
                    self._anomalies[(name, kind)] += n
            self._changes += 1

    def _columns(
        self,
        key: tuple[str, str],
        binner: _Binner,
        array: np.ndarray,
    ) -> np.ndarray | None:
        """The batch as (rows, features), or None (logged once) when it cannot be."""
        array = np.asarray(array)
        features = binner.reference.feature_count
        if array.ndim >= 1 and array.dtype.kind in "biuf" and array.shape[0] > 0:
            columns = array.reshape(array.shape[0], -1)
            if columns.shape[1] == features:
                return columns
        if key not in self._skipped:
            self._skipped.add(key)
            logger.warning(
                "Drift for %s tensor %r of %s/%s is off: got shape %s dtype %s, the "
                "reference has %d features; fix reference.json or the model signature.",
                key[0], key[1], self.model, self.version, array.shape, array.dtype, features)
        return None

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
            scores = {
                key: population_stability_index(
                    self._binners[key].reference.fractions, counts,
                    epsilon=self.settings.epsilon)
                for key, counts in totals.items()
            }
            with self._lock:
                # Another scrape may have raced us here; either result is current.
                self._cached = (changes, scores)

        if samples < self.settings.min_samples:
            scores = {}
        return DriftSnapshot(
            model=self.model, version=self.version, samples=samples,
            scores=scores, anomalies=anomalies,
        )

    def call_on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once at ``close()`` (how the exporter unregisters it)."""
        self._on_close = callback

    def close(self) -> None:
        """Stop exporting this observer's metrics (call when the version unloads)."""
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()
