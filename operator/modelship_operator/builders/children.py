"""Everything a ModelDeployment owns, computed from its spec alone.

``desired_children`` answers, for each kind of child the operator manages,
either the manifest to apply or None, meaning "this child must not exist"
(autoscaling switched off removes the HPA; one replica removes the PDB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelship_operator.api.deployment import ModelDeployment
from modelship_operator.builders import meta, predictor, scaling
from modelship_operator.settings import Settings


@dataclass(frozen=True)
class ChildKind:
    api_version: str
    plural: str
    kind: str


CONFIG_MAP = ChildKind("v1", "configmaps", "ConfigMap")
DEPLOYMENT = ChildKind("apps/v1", "deployments", "Deployment")
SERVICE = ChildKind("v1", "services", "Service")
HPA = ChildKind("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
PDB = ChildKind("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget")


@dataclass(frozen=True)
class Child:
    """One child: its kind and name, and the manifest (None: must be absent)."""

    kind: ChildKind
    name: str
    manifest: dict[str, Any] | None


def desired_children(
    md: ModelDeployment, body: dict[str, Any], settings: Settings
) -> list[Child]:
    """The children in the order they are applied (config before the pods that mount it)."""
    name = md.metadata.name or ""
    config = predictor.config_map(md, body)
    config_hash = meta.digest(config["data"])
    return [
        Child(CONFIG_MAP, meta.config_map_name(name), config),
        Child(DEPLOYMENT, meta.predictor_name(name),
              predictor.deployment(md, body, settings, config_hash=config_hash)),
        Child(SERVICE, meta.predictor_name(name), predictor.service(md, body)),
        Child(HPA, meta.predictor_name(name), scaling.horizontal_pod_autoscaler(md, body)),
        Child(PDB, meta.predictor_name(name), scaling.pod_disruption_budget(md, body)),
    ]
