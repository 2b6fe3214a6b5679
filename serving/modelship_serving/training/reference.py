"""Reference statistics of a model's inputs and outputs, for drift detection.

The trainer describes the validation split as the model saw it (raw inputs)
and answered it (its outputs), column by column: mean, standard deviation,
minimum, maximum and a 10-bin histogram on the split's own deciles.

Binning rule (the drift detector must bin live values the same way): the 11
``edges`` are the 0%, 10%, ..., 100% quantiles (linear interpolation); a value
``v`` falls in bin ``searchsorted(edges[1:-1], v, side="right")``, so bin ``i``
holds ``edges[i] <= v < edges[i+1]``, values below the first edge count in bin
0 and values at or above the last inner edge in bin 9. With repeated edges
(discrete columns such as a label) the empty bins simply stay at zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BINS = 10


def bin_edges(column: np.ndarray) -> np.ndarray:
    return np.quantile(column, np.linspace(0.0, 1.0, BINS + 1))


def bin_fractions(column: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``column`` in each bin, by the rule in this module's docstring."""
    index = np.searchsorted(edges[1:-1], column, side="right")
    counts = np.bincount(index, minlength=BINS)
    return counts / max(1, column.size)


def feature_stats(column: np.ndarray) -> dict[str, Any]:
    column = np.asarray(column, dtype=np.float64).reshape(-1)
    edges = bin_edges(column)
    return {
        "mean": float(column.mean()),
        "std": float(column.std()),
        "min": float(column.min()),
        "max": float(column.max()),
        "edges": [float(e) for e in edges],
        "fractions": [float(f) for f in bin_fractions(column, edges)],
    }


def tensor_stats(values: np.ndarray) -> dict[str, Any]:
    """Per-column statistics after flattening every non-batch dimension."""
    flat = np.asarray(values).reshape(values.shape[0], -1)
    return {"features": [feature_stats(flat[:, j]) for j in range(flat.shape[1])]}


def build_reference(inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray], *,
                    split: str = "validation") -> dict[str, Any]:
    samples = {int(v.shape[0]) for v in (*inputs.values(), *outputs.values())}
    if len(samples) != 1:
        raise ValueError(f"every tensor must hold the same rows, got {sorted(samples)}")
    return {
        "split": split,
        "samples": samples.pop(),
        "inputs": {name: tensor_stats(v) for name, v in inputs.items()},
        "outputs": {name: tensor_stats(v) for name, v in outputs.items()},
    }
