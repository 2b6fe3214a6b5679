"""A version appears whole or not at all, and is never overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelship_serving.training.errors import ExportMismatch, VersionExists
from modelship_serving.training.versiondir import staged_version


def test_a_version_is_published_with_all_its_files_at_once(tmp_path: Path) -> None:
    with staged_version(tmp_path, "m", 1) as stage:
        (stage / "model.onnx").write_bytes(b"x")
        assert not (tmp_path / "m" / "1").exists()
    assert (tmp_path / "m" / "1" / "model.onnx").read_bytes() == b"x"
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["1"]


def test_a_failure_while_writing_leaves_no_version_and_no_staging(tmp_path: Path) -> None:
    with pytest.raises(ExportMismatch), staged_version(tmp_path, "m", 2) as stage:
        (stage / "model.onnx").write_bytes(b"half")
        raise ExportMismatch("differs")
    assert list((tmp_path / "m").iterdir()) == []


def test_an_existing_version_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "m" / "3").mkdir(parents=True)
    (tmp_path / "m" / "3" / "model.onnx").write_bytes(b"old")
    with pytest.raises(VersionExists, match="never overwritten"), \
            staged_version(tmp_path, "m", 3):
        pass
    assert (tmp_path / "m" / "3" / "model.onnx").read_bytes() == b"old"
