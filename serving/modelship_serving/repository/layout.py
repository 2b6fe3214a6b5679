"""Reading Triton's repository layout: <repo>/<model>/<version>/model.onnx.

This module only looks at files: which models exist, which numeric version
directories each holds, and which of them the version policy says to serve.
Loading them is the runtime's business.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from modelship_serving.repository.config import model_file_name, read_config
from modelship_serving.repository.errors import ModelConfigError, RepositoryError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    """A model directory: its declared config (if any) and its version files."""

    name: str
    path: Path
    config: mc.ModelConfig
    has_config_file: bool
    versions: dict[int, Path]

    def version_file(self, version: int) -> Path:
        return self.versions[version]


class ModelRepository:
    """A directory of models in Triton's layout."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise RepositoryError(f"model repository {self.root} is not a directory")

    def model_names(self) -> list[str]:
        """Every model directory in the repository, sorted."""
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def read(self, name: str, *, config: mc.ModelConfig | None = None) -> ModelSource:
        """The model called `name`; `config` overrides config.pbtxt when given.

        Raises RepositoryError when the directory is missing and ModelConfigError
        when config.pbtxt cannot be parsed.
        """
        path = self.root / name
        if "/" in name or name in ("", ".", "..") or not path.is_dir():
            raise RepositoryError(f"model '{name}' is not in repository {self.root}")
        from_file = read_config(path)
        declared = config if config is not None else from_file
        has_file = from_file is not None or config is not None
        declared = declared if declared is not None else mc.ModelConfig()
        file_name = model_file_name(declared)
        versions: dict[int, Path] = {}
        for child in path.iterdir():
            if is_version_name(child.name) and child.is_dir() and (child / file_name).is_file():
                versions[int(child.name)] = child / file_name
        return ModelSource(name, path, declared, has_file, versions)


def is_version_name(name: str) -> bool:
    """Whether a directory name is a version: a positive int64 written in ASCII digits
    without leading zeros ("²", "01" and "١" are not, so no two names are one version)."""
    return (name.isascii() and name.isdigit() and not name.startswith("0")
            and len(name) <= 19 and int(name) < 2**63)


def select_versions(policy: mc.ModelVersionPolicy, available: list[int]) -> list[int]:
    """The versions a version policy serves out of `available`, ascending.

    Raises ModelConfigError when a specific version named by the policy is absent,
    as Triton does.
    """
    ordered = sorted(available)
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return ordered
    if which == "specific":
        wanted = sorted(set(int(v) for v in policy.specific.versions))
        missing = [v for v in wanted if v not in ordered]
        if missing:
            raise ModelConfigError(
                f"version policy names versions {missing} that have no model file"
            )
        return wanted
    count = policy.latest.num_versions if which == "latest" else 1
    return ordered[-max(count, 1):] if ordered else []
