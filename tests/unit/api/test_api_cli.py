"""The `modelship` command line: crds, version and run."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from modelship_operator import __version__, cli
from modelship_operator.api.crd import crd_files

REPO = Path(__file__).resolve().parents[3]


def test_crds_prints_every_crd_as_one_yaml_stream(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["crds"]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["metadata"]["name"] for d in documents] == [
        "modeldeployments.modelship.io",
        "modelensembles.modelship.io",
    ]


def test_crds_write_produces_the_committed_files(tmp_path: Path) -> None:
    assert cli.main(["crds", "--write", str(tmp_path / "out")]) == 0
    written = {p.name: p.read_text() for p in (tmp_path / "out").iterdir()}
    assert written == crd_files()
    for name, text in written.items():
        assert (REPO / "crds" / name).read_text() == text


def test_version_names_the_release_and_the_api(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["version"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"modelship {__version__}",
        "api modelship.io/v1alpha1",
    ]


def test_run_hands_the_watch_scope_to_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    fake = ModuleType("modelship_operator.reconcile.main")
    fake.run = lambda **kwargs: calls.append(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "modelship_operator.reconcile.main", fake)

    assert cli.main(["run", "-n", "ml", "-n", "team-*", "--liveness", "http://0.0.0.0:8080/"]) == 0
    assert cli.main(["run"]) == 0

    scope = [{k: c[k] for k in ("namespaces", "all_namespaces", "liveness")} for c in calls]
    assert scope == [
        {"namespaces": ["ml", "team-*"], "all_namespaces": False,
         "liveness": "http://0.0.0.0:8080/"},
        {"namespaces": [], "all_namespaces": True, "liveness": None},
    ]


def test_run_without_the_operator_package_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing(name: str) -> ModuleType:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(cli.importlib, "import_module", missing)
    assert cli.main(["run"]) == 2
    assert "operator is not part of this build" in capsys.readouterr().err


def test_a_verb_is_required() -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([])
    assert exited.value.code == 2
