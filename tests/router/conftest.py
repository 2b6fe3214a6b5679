"""Two real modelship-server processes hosting the member models, for the whole session.

The members are spread over both servers, so every fan-out crosses processes
as it would across pods.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.router import members
from tests.serving.harness import RunningServer, start_server

SERVER_A = ["logreg", "scaler", "three_class"]
SERVER_B = ["mlp", "weak", "scaled_logreg"]


@pytest.fixture(scope="session")
def member_repositories(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's convergence notes on the tiny MLPs
        return {
            "a": members.write_repository(tmp_path_factory.mktemp("members-a"), SERVER_A),
            "b": members.write_repository(tmp_path_factory.mktemp("members-b"), SERVER_B),
        }


@pytest.fixture(scope="session")
def member_servers(member_repositories: dict[str, Path],
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningServer]]:
    logs = tmp_path_factory.mktemp("member-logs")
    servers: dict[str, RunningServer] = {}
    try:
        for key, repo in member_repositories.items():
            servers[key] = start_server(repo, logs / f"{key}.log")
        yield servers
    finally:
        for server in servers.values():
            server.terminate()


@pytest.fixture(scope="session")
def model_files(member_repositories: dict[str, Path]) -> dict[str, Path]:
    """Each member model's ONNX file, by model name."""
    return {name: members.model_file(repo, name)
            for repo in member_repositories.values()
            for name in (p.name for p in repo.iterdir() if p.is_dir())}


@pytest.fixture(scope="session")
def server_of(member_servers: dict[str, RunningServer]) -> dict[str, RunningServer]:
    """The server that hosts each model."""
    return {**{m: member_servers["a"] for m in SERVER_A},
            **{m: member_servers["b"] for m in SERVER_B}}


@pytest.fixture(scope="session")
def router_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("routers")
