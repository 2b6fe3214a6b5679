"""Voting and weighted ensembles of three breast-cancer classifiers answer what a
person computes by hand from the members' own outputs, over HTTP and gRPC."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.router import members
from tests.router.clients import infer
from tests.router.harness import RunningRouter, member, start_router
from tests.serving.harness import RunningServer

VOTERS = ["logreg", "mlp", "weak"]
WEIGHTS = {"logreg": 3.0, "mlp": 1.5, "weak": 0.5}


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    """64 rows, half of them where the weak member disagrees with logistic regression."""
    x, _ = members.breast_cancer()
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    weak_guess = (z[:, 1] + z[:, 21]) < 0  # roughly what `weak` learned
    disagreeing = np.flatnonzero(weak_guess != (members.breast_cancer()[1] == 1))[:32]
    others = np.setdiff1d(np.arange(len(x)), disagreeing)[:32]
    return x[np.concatenate([disagreeing, others])]


@pytest.fixture(scope="module")
def own_outputs(rows: np.ndarray, server_of: dict[str, RunningServer]
                ) -> dict[str, dict[str, np.ndarray]]:
    """Each member's answer, asked of its own server directly."""
    return {m: infer("http", server_of[m].http_url, m, {"input": rows}) for m in VOTERS}


def _router(name: str, strategy: str, server_of: dict[str, RunningServer], directory: Path,
            **weights: float) -> Iterator[RunningRouter]:
    config = {"name": name, "strategy": strategy, "timeoutSeconds": 5, "retries": 1,
              "members": [member(m, server_of[m], m,
                                 **({"weight": weights[m]} if weights else {}))
                          for m in VOTERS]}
    router = start_router(config, directory)
    yield router
    assert router.terminate() == 0, router.log()


@pytest.fixture(scope="module")
def voting_router(server_of: dict[str, RunningServer], router_dir: Path
                  ) -> Iterator[RunningRouter]:
    yield from _router("cancer-vote", "voting", server_of, router_dir)


@pytest.fixture(scope="module")
def weighted_router(server_of: dict[str, RunningServer], router_dir: Path
                    ) -> Iterator[RunningRouter]:
    yield from _router("cancer-weighted", "weighted", server_of, router_dir, **WEIGHTS)


def vote_by_hand(labels: list[np.ndarray], probabilities: np.ndarray) -> np.ndarray:
    """Majority per row; a tie goes to the higher averaged probability, then the lower class."""
    voted = []
    for row in range(len(labels[0])):
        counts = Counter(int(member_labels[row]) for member_labels in labels)
        best = max(counts.values())
        tied = sorted(c for c, n in counts.items() if n == best)
        voted.append(max(tied, key=lambda c: (probabilities[row, c], -c)))
    return np.array(voted, dtype=np.int64)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_voting_answers_the_majority_of_the_members_own_labels(
        protocol: str, voting_router: RunningRouter, rows: np.ndarray,
        own_outputs: dict[str, dict[str, np.ndarray]]) -> None:
    url = voting_router.http_url if protocol == "http" else voting_router.grpc_url
    got = infer(protocol, url, "cancer-vote", {"input": rows})

    probabilities = np.mean([own_outputs[m]["probabilities"].astype(np.float64)
                             for m in VOTERS], axis=0)
    expected = vote_by_hand([own_outputs[m]["label"] for m in VOTERS], probabilities)
    np.testing.assert_array_equal(got["label"], expected)
    assert got["label"].dtype == np.int64 and got["label"].shape == (len(rows),)
    np.testing.assert_allclose(got["probabilities"], probabilities, rtol=1e-6)
    # The members disagree on some rows, so the vote is a real choice.
    assert (own_outputs["weak"]["label"] != own_outputs["logreg"]["label"]).any()

@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_weighted_averages_the_members_probabilities_with_normalised_weights(
        protocol: str, weighted_router: RunningRouter, rows: np.ndarray,
        own_outputs: dict[str, dict[str, np.ndarray]]) -> None:
    url = weighted_router.http_url if protocol == "http" else weighted_router.grpc_url
    got = infer(protocol, url, "cancer-weighted", {"input": rows})

    total = sum(WEIGHTS.values())
    expected = sum(WEIGHTS[m] / total * own_outputs[m]["probabilities"].astype(np.float64)
                   for m in VOTERS)
    np.testing.assert_allclose(got["probabilities"], expected, rtol=1e-6)
    assert got["probabilities"].dtype == np.float32
    # The label follows the averaged probabilities.
    np.testing.assert_array_equal(got["label"], np.argmax(expected, axis=1))
