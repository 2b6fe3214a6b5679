"""Fixtures for running the trainer's real commands as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    termination: dict[str, Any] | None

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


def trainer_command() -> list[str]:
    """The console script pip installed, as the Job's container runs it."""
    script = BIN / "modelship-trainer"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "modelship_serving.training.main"]


def start_trainer(config: dict[str, Any], workdir: Path, *, name: str = "trainer",
                  env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], Path]:
    config_path = workdir / f"{name}.json"
    config_path.write_text(json.dumps(config))
    termination = workdir / f"{name}.termination"
    process = subprocess.Popen(
        [*trainer_command(), "--config", str(config_path), "--termination-log",
         str(termination), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    return process, termination


def finish(process: subprocess.Popen[str], termination: Path, timeout: float = 120) -> Finished:
    """Waits for the trainer; one that outlives ``timeout`` is killed, never left behind."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    summary = json.loads(termination.read_text()) if termination.exists() else None
    return Finished(process.returncode, stdout, stderr, summary)


@pytest.fixture
def run_trainer(tmp_path: Path) -> Callable[..., Finished]:
    def run(config: dict[str, Any], **kwargs: Any) -> Finished:
        return finish(*start_trainer(config, tmp_path, **kwargs))
    return run


def pretrain(out: Path, dataset: str, task: str, extra: Sequence[str] = ()) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "modelship_serving.training.pretrain", "--dataset", dataset,
         "--task", task, "--out", str(out), *extra],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
