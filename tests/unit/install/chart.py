"""Render the chart with the Helm binary the control plane ships with.

`helm template` needs no cluster, so these checks run as unit tests; the
same binary installs the chart in the integration tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.harness.controlplane import ensure_binaries
from tests.unit.install.paths import CHART

Manifest = dict[str, Any]


class HelmFailed(AssertionError):
    """Helm exited non-zero; the message carries its stderr."""

    def __init__(self, args: Sequence[str], stderr: str):
        super().__init__(f"helm {' '.join(args)}:\n{stderr}")
        self.stderr = stderr


def helm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run helm with its caches in a throwaway folder; raise HelmFailed on failure."""
    binary = ensure_binaries() / "helm"
    with tempfile.TemporaryDirectory(prefix="modelship-helm-") as home:
        env = dict(os.environ)
        for kind in ("CACHE", "CONFIG", "DATA"):
            env[f"HELM_{kind}_HOME"] = str(Path(home) / kind.lower())
        # Rendering must never reach for a cluster.
        env["KUBECONFIG"] = str(Path(home) / "no-kubeconfig")
        done = subprocess.run(
            [str(binary), *args], capture_output=True, text=True, env=env, timeout=timeout
        )
    if done.returncode != 0:
        raise HelmFailed(args, done.stderr)
    return done


@dataclass(frozen=True)
class Rendered:
    """The manifests one `helm template` produced, looked up by kind and name."""

    manifests: list[Manifest]

    def kinds(self) -> set[str]:
        return {m["kind"] for m in self.manifests}

    def of_kind(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m["kind"] == kind]

    def one(self, kind: str) -> Manifest:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, found {len(found)}"
        return found[0]

    def operator_container(self) -> Manifest:
        containers = self.one("Deployment")["spec"]["template"]["spec"]["containers"]
        return next(c for c in containers if c["name"] == "operator")


def template(
    values: dict[str, Any] | None = None,
    *,
    namespace: str = "modelship-system",
    api_versions: Sequence[str] = (),
    chart: Path = CHART,
) -> Rendered:
    """`helm template` of the chart with these values (JSON is YAML, so no quoting issues)."""
    args = ["template", "modelship", str(chart), "--namespace", namespace]
    for version in api_versions:
        args += ["--api-versions", version]
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(values or {}, file)
        file.flush()
        done = helm(*args, "--values", file.name)
    return Rendered([m for m in yaml.safe_load_all(done.stdout) if m])
