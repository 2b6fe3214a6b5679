"""A rolling window of histogram counts, in fixed memory.

Drift is judged on recent traffic only, but keeping recent samples would cost
memory in proportion to traffic and make every score a pass over them. Instead
the window is a ring of *slots*, each holding the bin counts of up to
``slot_samples`` rows; when the current slot fills, the oldest slot is zeroed
and reused. The window's histogram is the sum of the slots. Memory is
``slots * features * bins`` integers whatever the traffic, and forgetting old
traffic is one array fill.

Slots fill by sample count, not by time: the window always describes the last
few thousand rows a model saw, so a quiet model keeps its last verdict instead
of drifting back to "no data". A batch is never split across slots, so each
slot may overshoot ``slot_samples`` by less than one batch.

Not thread-safe on its own: the drift observer serialises access.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np

DEFAULT_SLOTS = 10
DEFAULT_SLOT_SAMPLES = 500


class RollingHistograms:
    """Per-key (features, bins) count histograms over the last N rows."""

    def __init__(
        self,
        shapes: Mapping[Hashable, tuple[int, int]],
        *,
        slots: int = DEFAULT_SLOTS,
        slot_samples: int = DEFAULT_SLOT_SAMPLES,
    ) -> None:
        if slots < 2:
            raise ValueError(f"slots must be at least 2, got {slots}")
        if slot_samples < 1:
            raise ValueError(f"slot_samples must be positive, got {slot_samples}")
        self.slots = slots
        self.slot_samples = slot_samples
        self._counts = {
            key: np.zeros((slots, features, bins), dtype=np.int64)
            for key, (features, bins) in shapes.items()
        }
        self._samples = np.zeros(slots, dtype=np.int64)
        self._current = 0

    @property
    def capacity(self) -> int:
        """Rows the window holds once warm (each slot may overshoot by a batch)."""
        return self.slots * self.slot_samples

    @property
    def nbytes(self) -> int:
        """Memory the counts take, fixed at construction."""
        return sum(c.nbytes for c in self._counts.values()) + self._samples.nbytes

    def add(self, counts: Mapping[Hashable, np.ndarray], samples: int) -> None:
        """Add one batch: ``counts[key]`` is that batch's (features, bins) histogram."""
        slot = self._current
        for key, batch_counts in counts.items():
            self._counts[key][slot] += batch_counts
        self._samples[slot] += samples

        if self._samples[slot] >= self.slot_samples:
            # The oldest slot becomes the new current one: forget its rows.
            self._current = (slot + 1) % self.slots
            for ring in self._counts.values():
                ring[self._current].fill(0)
            self._samples[self._current] = 0

    def samples(self) -> int:
        """Rows now in the window."""
        return int(self._samples.sum())

    def totals(self) -> dict[Hashable, np.ndarray]:
        """The window's (features, bins) histogram per key (fresh arrays)."""
        return {key: ring.sum(axis=0) for key, ring in self._counts.items()}
