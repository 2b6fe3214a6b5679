"""Runs Debian's promtool on rules the operator generates."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

SETUP_HINT = "install it with scripts/setup-system.sh (Debian's prometheus package)"


def binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not on PATH: {SETUP_HINT}"
    return path


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=False)


def check_rules(rules: Path) -> subprocess.CompletedProcess[str]:
    return run("check", "rules", rules.name, cwd=rules.parent)


def test_rules(rules: Path, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    """Run ``promtool test rules`` with the given unit tests against ``rules``."""
    spec = rules.parent / f"{rules.stem}.test.yaml"
    spec.write_text(yaml.safe_dump({
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "tests": tests,
    }, sort_keys=False))
    return run("test", "rules", spec.name, cwd=rules.parent)


test_rules.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
