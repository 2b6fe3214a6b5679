"""Datasets load from every supported format into features and a target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelship_serving.training.config import DatasetSpec
from modelship_serving.training.datasets import load_dataset
from modelship_serving.training.errors import DatasetNotFound, InvalidDataset

FRAME = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0, 1, 0, 1], "label": [1, 0, 1, 0]})


def spec(uri: str, **extra: object) -> DatasetSpec:
    return DatasetSpec(uri=uri, **extra)


def test_a_csv_file_loads_with_its_target_column(tmp_path: Path) -> None:
    FRAME.to_csv(tmp_path / "d.csv", index=False)
    table = load_dataset(spec((tmp_path / "d.csv").as_uri(), targetColumn="label"))
    assert table.feature_names == ("a", "b")
    assert table.features.dtype == np.float32
    assert table.target.tolist() == [1, 0, 1, 0]


def test_a_parquet_file_on_a_claim_loads_from_the_pvc_root(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIP_PVC_ROOT", str(tmp_path))
    (tmp_path / "data").mkdir()
    FRAME.rename(columns={"label": "target"}).to_parquet(tmp_path / "data" / "d.parquet")
    table = load_dataset(spec("pvc://data/d.parquet"))
    assert table.rows == 4 and table.features.shape == (4, 2)


def test_numpy_files_load_as_arrays_structured_arrays_and_archives(tmp_path: Path) -> None:
    plain = np.array([[1.0, 2.0, 0.0], [3.0, 4.0, 1.0]])
    np.save(tmp_path / "plain.npy", plain)
    assert load_dataset(spec((tmp_path / "plain.npy").as_uri())).target.tolist() == [0, 1]

    structured = np.array([(1.0, 7.0), (2.0, 8.0)], dtype=[("x", "f4"), ("target", "f8")])
    np.save(tmp_path / "s.npy", structured)
    table = load_dataset(spec((tmp_path / "s.npy").as_uri()))
    assert table.feature_names == ("x",) and table.target.tolist() == [7.0, 8.0]

    np.savez(tmp_path / "a.npz", X=plain[:, :2], y=plain[:, 2])
    table = load_dataset(spec((tmp_path / "a.npz").as_uri()))
    assert table.features.shape == (2, 2) and table.target.tolist() == [0, 1]


def test_a_rows_slice_selects_part_of_a_bundled_dataset() -> None:
    table = load_dataset(spec("sklearn://breast_cancer?rows=100:150"))
    assert table.rows == 50 and table.features.shape[1] == 30
    assert load_dataset(spec("sklearn://diabetes?rows=400:")).rows == 42


def test_a_missing_target_column_lists_the_columns_there_are(tmp_path: Path) -> None:
    FRAME.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(InvalidDataset, match=r"'target' is not in d\.csv; columns: a, b, label"):
        load_dataset(spec((tmp_path / "d.csv").as_uri()))


def test_a_missing_file_is_dataset_not_found(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFound, match="does not exist"):
        load_dataset(spec((tmp_path / "nope.csv").as_uri()))


def test_rows_with_missing_values_are_refused_with_the_first_row(tmp_path: Path) -> None:
    broken = FRAME.astype({"a": float})
    broken.loc[2, "a"] = np.nan
    broken.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(InvalidDataset, match="first at row 2"):
        load_dataset(spec((tmp_path / "d.csv").as_uri(), targetColumn="label"))


def test_text_features_are_refused_by_name(tmp_path: Path) -> None:
    FRAME.assign(city=["x", "y", "z", "w"]).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(InvalidDataset, match="city"):
        load_dataset(spec((tmp_path / "d.csv").as_uri(), targetColumn="label"))
