"""Loading a tabular dataset into features and a target.

Every source ends as the same ``Table``: a float32 feature matrix, a target
vector and the feature names, with the optional ``?rows=start:stop`` slice
applied before anything else (so a demo can pre-train on one part of a dataset
and fine-tune on the rest). Mistakes in the data are the user's, so they come
back as ``InvalidDataset`` naming the column or key, never as a pandas or
NumPy traceback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import DatasetSpec
from .errors import DatasetNotFound, InvalidDataset
from .uris import ParsedUri, parse_uri

logger = logging.getLogger(__name__)

DEFAULT_TARGET = "target"
_EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npy": "numpy",
               ".npz": "numpy"}


@dataclass(frozen=True)
class Table:
    features: np.ndarray  # float32 [rows, n_features]
    target: np.ndarray  # float64 [rows]
    feature_names: tuple[str, ...]
    source: str

    @property
    def rows(self) -> int:
        return int(self.features.shape[0])


def load_dataset(spec: DatasetSpec) -> Table:
    """Reads the dataset the spec names, slices it and checks it is usable."""
    parsed = parse_uri(spec.uri, allow_sklearn=True)
    if parsed.scheme == "sklearn":
        table = _load_sklearn(parsed)
    else:
        table = _load_file(parsed, spec)

    if parsed.rows is not None:
        window = parsed.rows.as_slice()
        table = Table(table.features[window], table.target[window], table.feature_names,
                      table.source)
    _check(table, spec.uri)
    logger.info("Loaded %d rows of %d features from %s.", table.rows,
                table.features.shape[1], spec.uri)
    return table


def _load_sklearn(parsed: ParsedUri) -> Table:
    from sklearn import datasets

    loader = {
        "breast_cancer": datasets.load_breast_cancer,
        "diabetes": datasets.load_diabetes,
        "digits": datasets.load_digits,
    }[parsed.name or ""]
    bunch = loader()
    names = tuple(str(n) for n in bunch.feature_names)
    return Table(np.asarray(bunch.data, dtype=np.float32),
                 np.asarray(bunch.target, dtype=np.float64), names,
                 f"sklearn://{parsed.name}")


def _load_file(parsed: ParsedUri, spec: DatasetSpec) -> Table:
    path = parsed.path
    assert path is not None, "a file URI always carries a path"
    if not path.is_file():
        where = "does not exist" if not path.exists() else "is not a file"
        raise DatasetNotFound(f"dataset {spec.uri} ({path}) {where}")

    fmt = spec.format or _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidDataset(
            f"cannot tell the format of {path.name} from its extension; "
            "set dataset.format to csv, parquet or numpy"
        )
    if fmt == "numpy":
        return _load_numpy(path, spec.target_column)
    return _load_frame(path, fmt, spec.target_column or DEFAULT_TARGET)


def _load_frame(path: Path, fmt: str, target: str) -> Table:
    import pandas as pd

    try:
        frame = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    except Exception as exc:  # pandas raises many types for a malformed file
        raise InvalidDataset(f"cannot read {path.name} as {fmt}: {exc}") from exc
    if target not in frame.columns:
        columns = ", ".join(map(str, frame.columns[:20]))
        raise InvalidDataset(f"target column {target!r} is not in {path.name}; columns: {columns}")

    features = frame.drop(columns=[target])
    not_numeric = [str(c) for c in features.columns
                   if not pd.api.types.is_numeric_dtype(features[c])]
    if not_numeric:
        raise InvalidDataset(f"feature columns must be numeric; not numeric: {not_numeric[:10]}")
    y = frame[target]
    if not pd.api.types.is_numeric_dtype(y):
        raise InvalidDataset(f"target column {target!r} must be numeric, got {y.dtype}")
    return Table(features.to_numpy(dtype=np.float32), y.to_numpy(dtype=np.float64),
                 tuple(str(c) for c in features.columns), str(path))


def _load_numpy(path: Path, target: str | None) -> Table:
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InvalidDataset(f"cannot read {path.name} as NumPy data: {exc}") from exc

    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            return _from_npz(path, dict(loaded.items()), target)
    return _from_array(path, loaded, target)


def _from_npz(path: Path, arrays: dict[str, np.ndarray], target: str | None) -> Table:
    """An .npz holds the features as ``X`` and the target as ``y`` (or ``target``)."""
    y_key = target or next((k for k in ("y", DEFAULT_TARGET) if k in arrays), None)
    if y_key is None or y_key not in arrays:
        raise InvalidDataset(f"{path.name} has no target array {target or 'y'!r}; "
                             f"arrays: {sorted(arrays)}")
    x_key = next((k for k in ("X", "x", "features") if k in arrays and k != y_key), None)
    if x_key is None:
        raise InvalidDataset(f"{path.name} has no feature array 'X'; arrays: {sorted(arrays)}")
    x = np.asarray(arrays[x_key])
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise InvalidDataset(f"{path.name}:{x_key} must be 2-D, got shape {x.shape}")
    names = tuple(f"f{i}" for i in range(x.shape[1]))
    return Table(_as_float(x, path), _as_target(arrays[y_key], path), names, str(path))


def _from_array(path: Path, array: np.ndarray, target: str | None) -> Table:
    """A .npy is a structured array (named fields) or a 2-D array."""
    if array.dtype.names:
        field = target or DEFAULT_TARGET
        if field not in array.dtype.names:
            raise InvalidDataset(f"{path.name} has no field {field!r}; "
                                 f"fields: {list(array.dtype.names)[:20]}")
        names = tuple(n for n in array.dtype.names if n != field)
        x = np.stack([array[n] for n in names], axis=1) if names else np.empty((len(array), 0))
        return Table(_as_float(x, path), _as_target(array[field], path), names, str(path))

    if array.ndim != 2 or array.shape[1] < 2:
        raise InvalidDataset(f"{path.name} must be 2-D with features and a target column, "
                             f"got shape {array.shape}")
    try:
        column = int(target) if target is not None else array.shape[1] - 1
        y = array[:, column]
    except (ValueError, IndexError):
        raise InvalidDataset(f"target column {target!r} must be a column index below "
                             f"{array.shape[1]} for the plain array in {path.name}") from None
    x = np.delete(array, column % array.shape[1], axis=1)
    names = tuple(f"f{i}" for i in range(x.shape[1]))
    return Table(_as_float(x, path), _as_target(y, path), names, str(path))


def _as_float(x: np.ndarray, path: Path) -> np.ndarray:
    try:
        return np.ascontiguousarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidDataset(f"features in {path.name} are not numeric: {exc}") from exc


def _as_target(y: np.ndarray, path: Path) -> np.ndarray:
    try:
        return np.asarray(y, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InvalidDataset(f"the target in {path.name} is not numeric: {exc}") from exc


def _check(table: Table, uri: str) -> None:
    if table.rows == 0:
        raise InvalidDataset(f"{uri} selects no rows")
    if table.features.shape[1] == 0:
        raise InvalidDataset(f"{uri} has no feature columns besides the target")
    if table.target.shape[0] != table.rows:
        raise InvalidDataset(f"{uri} has {table.rows} feature rows but "
                             f"{table.target.shape[0]} targets")
    bad_x = ~np.isfinite(table.features).all(axis=1)
    bad_y = ~np.isfinite(table.target)
    if bad_x.any() or bad_y.any():
        first = int(np.flatnonzero(bad_x | bad_y)[0])
        raise InvalidDataset(
            f"{uri} has {int((bad_x | bad_y).sum())} rows with missing or infinite values "
            f"(first at row {first}); clean them before training"
        )
