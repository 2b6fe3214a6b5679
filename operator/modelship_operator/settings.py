"""Operator-wide settings, read once from the environment.

Every image Modelship deploys comes from one registry and one tag, so a
release (or a mirror) changes one setting, not five.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from modelship_operator import __version__


@dataclass(frozen=True)
class Images:
    """The container images the operator writes into the children it builds."""

    server: str
    trainer: str
    triton: str


@dataclass(frozen=True)
class Settings:
    images: Images
    cluster_domain: str = "cluster.local"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        registry = env.get("MODELSHIP_IMAGE_REGISTRY", "ghcr.io/modelship").rstrip("/")
        tag = env.get("MODELSHIP_IMAGE_TAG", __version__)
        return cls(
            images=Images(
                server=f"{registry}/modelship-server:{tag}",
                trainer=f"{registry}/modelship-trainer:{tag}",
                triton=env.get("MODELSHIP_TRITON_IMAGE", "nvcr.io/nvidia/tritonserver:25.10-py3"),
            ),
            cluster_domain=env.get("MODELSHIP_CLUSTER_DOMAIN", "cluster.local"),
        )
