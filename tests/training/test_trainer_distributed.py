"""Two workers train data-parallel over gloo on 127.0.0.1; rank 0 publishes.

With a global batch split evenly between the ranks and a train split the
ranks share without padding, each step averages the same rows' gradients as
a single worker would, so the two runs must agree up to float rounding.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelship_serving.training.config import parse_config
from modelship_serving.training.pipeline import run

from .conftest import Finished, finish, start_trainer

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def config(repo: Path, workers: int) -> dict[str, Any]:
    return {
        "modelName": "diabetes", "version": 1, "outputRepository": str(repo),
        "fineTuning": {
            "baseModel": {"hiddenSizes": [16, 8]},
            # 292 rows: 204 train rows, an even share for each of two ranks.
            "dataset": {"uri": "sklearn://diabetes?rows=150:"},
            "task": "regression",
            "workers": workers,
            "hyperParameters": {"learningRate": 3e-3, "batchSize": 32, "epochs": 8,
                                "earlyStoppingPatience": 0, "seed": 5},
        },
    }


def test_two_workers_train_like_one_and_only_rank_0_writes(tmp_path: Path) -> None:
    port = free_port()
    repo = tmp_path / "parallel"
    workers = []
    for rank in (0, 1):
        env = {"WORLD_SIZE": "2", "JOB_COMPLETION_INDEX": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        workers.append(start_trainer(config(repo, 2), tmp_path, name=f"rank{rank}", env=env))
    # The single-worker baseline runs in this process while the pair starts up.
    single = run(parse_config(config(tmp_path / "single", 1)), show_progress=False)
    rank0, rank1 = (finish(*worker) for worker in workers)

    assert rank0.returncode == 0, rank0.stderr[-2000:] + rank0.stdout[-2000:]
    assert rank1.returncode == 0, rank1.stderr[-2000:] + rank1.stdout[-2000:]
    assert rank0.termination is not None and rank1.termination is not None
    assert rank0.termination["reason"] == "VersionPublished"
    assert rank1.termination["reason"] == "WorkerFinished"
    assert sorted(p.name for p in (repo / "diabetes").iterdir()) == ["1", "config.pbtxt"]

    metrics = json.loads((repo / "diabetes/1/metrics.json").read_text())
    assert metrics["epochs"] == 8
    expected = single["metrics"]["test"]
    assert metrics["test"] == pytest.approx(expected, rel=1e-4)
    assert rank1.termination["metrics"]["test"] == pytest.approx(metrics["test"], rel=1e-9)

    losses = [line["trainLoss"] for line in rank0.json_lines() if line.get("event") == "epoch"]
    assert len(losses) == 8 and losses[-1] < losses[0]


def test_several_workers_without_a_rank_0_address_fail_clearly(
        tmp_path: Path, run_trainer: Callable[..., Finished]) -> None:
    result = run_trainer(config(tmp_path, 2), env={"WORLD_SIZE": "2"})
    assert result.returncode == 2
    assert result.termination is not None
    assert result.termination["reason"] == "InvalidConfig"
    assert "MASTER_ADDR and MASTER_PORT" in result.termination["message"]
