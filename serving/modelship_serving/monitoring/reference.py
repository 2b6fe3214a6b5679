"""Reference statistics: what "no drift" looks like for one model version.

The trainer records, on the validation split, per-column quantile histograms of
every input and output tensor (``reference.json`` beside ``model.onnx``). Drift
detection compares a rolling window of live traffic with these bins, so the
file is parsed once at load time into dense numpy arrays: one row per feature,
which lets the hot path bin a whole batch with a few vectorised calls.

``build_reference`` computes the same statistics from arrays; the trainer and
the tests use it so the bins the server reads are made by the code that reads
them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelship_serving.monitoring.errors import InvalidReference

REFERENCE_FILE = "reference.json"
DEFAULT_BINS = 10

# Fractions are written rounded; a sum this far from one means a broken file.
_FRACTION_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class TensorReference:
    """The reference of one tensor, one row per flattened column ("feature").

    ``edges`` has shape (features, bins + 1) and is non-decreasing along each
    row; ``fractions`` has shape (features, bins) and each row sums to one.
    """

    name: str
    edges: np.ndarray
    fractions: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray

    @property
    def feature_count(self) -> int:
        return int(self.edges.shape[0])

    @property
    def bin_count(self) -> int:
        return int(self.fractions.shape[1])


@dataclass(frozen=True)
class Reference:
    """The parsed reference.json of one model version."""

    split: str
    samples: int
    inputs: Mapping[str, TensorReference]
    outputs: Mapping[str, TensorReference]


def load_reference(path: Path) -> Reference:
    """Read and validate a reference.json file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidReference(f"cannot read {path}: {exc}") from exc
    return parse_reference(raw, source=str(path))


def parse_reference(raw: Any, *, source: str = "reference") -> Reference:
    """Validate the JSON shape of contracts.md and turn it into arrays."""
    if not isinstance(raw, dict):
        raise InvalidReference(f"{source}: expected a JSON object, got {type(raw).__name__}")
    samples = raw.get("samples", 0)
    if not isinstance(samples, int) or samples < 0:
        raise InvalidReference(f"{source}: 'samples' must be a non-negative integer")
    return Reference(
        split=str(raw.get("split", "validation")),
        samples=samples,
        inputs=_parse_tensors(raw.get("inputs", {}), f"{source}: inputs"),
        outputs=_parse_tensors(raw.get("outputs", {}), f"{source}: outputs"),
    )


def _parse_tensors(raw: Any, where: str) -> dict[str, TensorReference]:
    if not isinstance(raw, dict):
        raise InvalidReference(f"{where}: expected an object keyed by tensor name")
    return {name: _parse_tensor(name, body, f"{where}.{name}") for name, body in raw.items()}


def _parse_tensor(name: str, body: Any, where: str) -> TensorReference:
    features = body.get("features") if isinstance(body, dict) else None
    if not isinstance(features, list) or not features:
        raise InvalidReference(f"{where}: 'features' must be a non-empty list")

    try:
        edges = np.array([f["edges"] for f in features], dtype=np.float64)
        fractions = np.array([f["fractions"] for f in features], dtype=np.float64)
        minimum = np.array([f["min"] for f in features], dtype=np.float64)
        maximum = np.array([f["max"] for f in features], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        # Ragged rows or a missing key: numpy raises ValueError, dict access KeyError.
        raise InvalidReference(f"{where}: every feature needs edges, fractions, min, max "
                               f"of one common length ({exc})") from exc

    if edges.ndim != 2 or fractions.ndim != 2 or edges.shape[1] != fractions.shape[1] + 1:
        raise InvalidReference(f"{where}: need bins + 1 edges per feature, got edges "
                               f"{edges.shape} and fractions {fractions.shape}")
    if fractions.shape[1] < 2:
        raise InvalidReference(f"{where}: need at least two bins per feature")
    if not (np.isfinite(edges).all() and np.isfinite(fractions).all()):
        raise InvalidReference(f"{where}: edges and fractions must be finite")
    if (np.diff(edges, axis=1) < 0).any():
        raise InvalidReference(f"{where}: edges must be non-decreasing")
    if (fractions < 0).any():
        raise InvalidReference(f"{where}: fractions must be non-negative")
    sums = fractions.sum(axis=1)
    if (np.abs(sums - 1.0) > _FRACTION_SUM_TOLERANCE).any():
        raise InvalidReference(f"{where}: fractions must sum to 1 per feature, got {sums}")

    return TensorReference(
        name=name,
        edges=edges,
        fractions=fractions / sums[:, None],
        minimum=minimum,
        maximum=maximum,
    )


def build_reference(
    inputs: Mapping[str, np.ndarray],
    outputs: Mapping[str, np.ndarray],
    *,
    split: str = "validation",
    bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """Compute reference statistics (the JSON shape of reference.json) from arrays.

    Every array's first dimension is the sample; the rest are flattened into
    columns. Edges are the column's quantiles, so each bin holds about the same
    share of the split; ``fractions`` are the exact shares, which differ from
    ``1 / bins`` where a column has repeated values (a one-hot or an integer).
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    sample_counts = {a.shape[0] for a in [*inputs.values(), *outputs.values()]}
    if len(sample_counts) > 1:
        raise ValueError(f"every array needs the same sample count, got {sample_counts}")
    return {
        "split": split,
        "samples": sample_counts.pop() if sample_counts else 0,
        "inputs": {name: _tensor_stats(array, bins) for name, array in inputs.items()},
        "outputs": {name: _tensor_stats(array, bins) for name, array in outputs.items()},
    }


def _tensor_stats(array: np.ndarray, bins: int) -> dict[str, Any]:
    columns = np.asarray(array, dtype=np.float64).reshape(array.shape[0], -1)
    if columns.shape[0] == 0:
        raise ValueError("cannot build a reference from zero samples")
    features = []
    quantiles = np.linspace(0.0, 1.0, bins + 1)
    for column in columns.T:
        finite = column[np.isfinite(column)]
        if finite.size == 0:
            raise ValueError("cannot build a reference for a column with no finite value")
        edges = np.quantile(finite, quantiles)
        counts, _ = np.histogram(finite, bins=edges)
        features.append({
            "mean": _json_float(finite.mean()),
            "std": _json_float(finite.std()),
            "min": _json_float(finite.min()),
            "max": _json_float(finite.max()),
            "edges": [_json_float(e) for e in edges],
            "fractions": [_json_float(c / finite.size) for c in counts],
        })
    return {"features": features}


def _json_float(value: float) -> float:
    as_float = float(value)
    if not math.isfinite(as_float):
        raise ValueError(f"non-finite statistic {as_float}")
    return as_float
