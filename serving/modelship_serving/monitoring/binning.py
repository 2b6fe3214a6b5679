"""Binning a whole batch, every tensor at once, against the reference edges.

The per-batch cost of drift detection is mostly numpy call overhead, paid per
call rather than per value. So the reference's tensors are laid side by side
once, at load time, as the columns of one (features, bins) table; a batch is
copied into one (rows, features) float64 matrix and binned with a single
comparison and a single ``bincount``, whatever the number of tensors.

A tensor that is missing from a batch, or has the wrong width, leaves its
columns NaN: NaN is never binned, so its histograms simply do not grow.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from modelship_serving.monitoring.errors import InvalidReference
from modelship_serving.monitoring.reference import Reference

logger = logging.getLogger(__name__)

INPUT, OUTPUT = "input", "output"
ANOMALY_KINDS = ("nan", "inf", "out_of_range")

# Batches up to this many values are binned with one broadcast comparison.
_BROADCAST_LIMIT = 512


@dataclass(frozen=True)
class Block:
    """The columns [start, stop) that one tensor occupies in the batch matrix."""

    direction: str
    name: str
    start: int
    stop: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.direction, self.name)


class Layout:
    """The reference's tensors side by side, and the arrays that bin a batch."""

    def __init__(self, reference: Reference, *, margin: float, label: str) -> None:
        self.label = label  # "model/version", for log lines
        tensors = [(INPUT, n, r) for n, r in reference.inputs.items()]
        tensors += [(OUTPUT, n, r) for n, r in reference.outputs.items()]
        if not tensors:
            raise InvalidReference(f"{label}: the reference describes no tensor")
        bins = {ref.bin_count for _, _, ref in tensors}
        if len(bins) != 1:
            raise InvalidReference(f"{label}: every feature needs the same number of bins, "
                                   f"got {sorted(bins)}")

        self.blocks: list[Block] = []
        start = 0
        for direction, name, ref in tensors:
            self.blocks.append(Block(direction, name, start, start + ref.feature_count))
            start += ref.feature_count
        self.features = start
        self.bins = bins.pop()
        self.output_start = next((b.start for b in self.blocks if b.direction == OUTPUT),
                                 self.features)

        edges = np.concatenate([ref.edges for _, _, ref in tensors])
        self.fractions = np.concatenate([ref.fractions for _, _, ref in tensors])
        self._inner_edges = edges[None, :, 1:-1]
        self._edges_by_bin = np.ascontiguousarray(edges[:, 1:-1].T)
        self._offsets = (np.arange(self.features) * self.bins)[None, :]
        self._index_dtype = np.uint8 if self.bins < 255 else np.int32

        minimum = np.concatenate([ref.minimum for _, _, ref in tensors])[self.output_start:]
        maximum = np.concatenate([ref.maximum for _, _, ref in tensors])[self.output_start:]
        # A constant column has no span; widen it by its magnitude instead.
        span = maximum - minimum
        span = np.where(span > 0, span, np.maximum(np.abs(maximum), 1.0))
        self._low = (minimum - margin * span)[None, :]
        self._high = (maximum + margin * span)[None, :]
        self._skipped: set[tuple[str, str]] = set()

    def matrix(
        self,
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
    ) -> tuple[np.ndarray, list[Block]] | None:
        """The batch as one (rows, features) matrix, and the blocks it really holds."""
        values: np.ndarray | None = None
        filled: list[Block] = []
        for block in self.blocks:
            array = (inputs if block.direction == INPUT else outputs).get(block.name)
            if array is None:
                continue
            columns = self._columns(block, array)
            if columns is None:
                continue
            if values is None:
                values = np.empty((columns.shape[0], self.features))
            elif columns.shape[0] != values.shape[0]:
                self._skip(block, f"{columns.shape[0]} rows where the batch has "
                                  f"{values.shape[0]}")
                continue
            values[:, block.start:block.stop] = columns
            filled.append(block)

        if values is None:
            return None
        if len(filled) != len(self.blocks):
            for block in self.blocks:
                if block not in filled:
                    values[:, block.start:block.stop] = np.nan
        return values, filled

    def _columns(self, block: Block, array: np.ndarray) -> np.ndarray | None:
        width = block.stop - block.start
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
            self._skip(block, f"dtype {getattr(array, 'dtype', type(array).__name__)} "
                              "is not numeric")
            return None
        if array.ndim == 0 or array.shape[0] == 0:
            self._skip(block, f"shape {array.shape} has no batch dimension")
            return None
        columns = array.reshape(array.shape[0], -1)
        if columns.shape[1] != width:
            self._skip(block, f"shape {array.shape} flattens to {columns.shape[1]} features, "
                              f"the reference has {width}")
            return None
        return columns

    def _skip(self, block: Block, why: str) -> None:
        # Logged once per tensor: a misfit repeats on every batch.
        if block.key not in self._skipped:
            self._skipped.add(block.key)
            logger.warning("Drift for %s tensor %r of %s is off: %s; fix reference.json or "
                           "the model signature.", block.direction, block.name, self.label, why)

    def counts(self, values: np.ndarray) -> np.ndarray:
        """The (features, bins) histogram of a batch matrix, NaN left out."""
        total = self.features * self.bins
        index = self._bin_index(values) + self._offsets
        nan = np.isnan(values)
        if nan.any():
            index[nan] = total  # one past the table, cut off below
        return np.bincount(index.ravel(), minlength=total + 1)[:total].reshape(
            self.features, self.bins)

    def _bin_index(self, values: np.ndarray) -> np.ndarray:
        """Each value's bin: how many inner edges lie at or below it.

        That matches np.histogram's half-open bins (the last one closed) and
        clips values beyond the outer edges into the first and last bin.
        """
        if values.size <= _BROADCAST_LIMIT:
            # Small batches: one broadcast comparison beats a loop's call overhead.
            return (values[:, :, None] >= self._inner_edges).sum(axis=2)

        # Larger ones: numpy reduces a short last axis slowly; one pass per edge
        # over contiguous (rows, features) arrays is several times faster.
        index = np.zeros(values.shape, dtype=self._index_dtype)
        above = np.empty(values.shape, dtype=bool)
        for edge in self._edges_by_bin:
            np.greater_equal(values, edge, out=above)
            index += above
        return index

    def anomalies(self, values: np.ndarray, filled: list[Block]) -> dict[str, dict[str, int]]:
        """Per output tensor, rows with a NaN, an infinity, or a value out of range.

        Empty when nothing is anomalous (the common case, one check).
        """
        block_values = values[:, self.output_start:]
        if block_values.shape[1] == 0:
            return {}
        finite = np.isfinite(block_values)
        outside = (block_values < self._low) | (block_values > self._high)
        all_finite = bool(finite.all())
        if all_finite and not outside.any():
            return {}

        found = {}
        for block in filled:
            if block.direction != OUTPUT:
                continue
            cols = slice(block.start - self.output_start, block.stop - self.output_start)
            part = block_values[:, cols]
            found[block.name] = {
                "nan": 0 if all_finite else int(np.isnan(part).any(axis=1).sum()),
                "inf": 0 if all_finite else int(np.isinf(part).any(axis=1).sum()),
                "out_of_range": int((outside[:, cols] & finite[:, cols]).any(axis=1).sum()),
            }
        return found

    def split(self, per_feature: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
        """A per-feature array cut back into one piece per tensor."""
        return {block.key: per_feature[block.start:block.stop] for block in self.blocks}
