"""Fixtures that run the real server in a subprocess on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving.harness import RunningServer, build_repository, start_server


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_repository(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="session")
def server(model_repository: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[RunningServer]:
    """One server for the whole session over the shared repository."""
    running = start_server(model_repository, tmp_path_factory.mktemp("log") / "server.log",
                           "--max-request-bytes", str(4 * 1024 * 1024),
                           "--request-body-timeout-seconds", "2")
    yield running
    code = running.terminate()
    assert code == 0, running.log()
