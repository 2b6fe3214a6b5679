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
from modelship_operator.builders.monitoring import (
    AlertThresholds,
    build_prometheus_rule,
    build_service_monitor,
)
from modelship_operator.builders.modelconfig import model_name
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
SERVICE_MONITOR = ChildKind("monitoring.coreos.com/v1", "servicemonitors", "ServiceMonitor")
PROMETHEUS_RULE = ChildKind("monitoring.coreos.com/v1", "prometheusrules", "PrometheusRule")


@dataclass(frozen=True)
class Child:
    """One child: its kind and name, and the manifest (None: must be absent)."""

    kind: ChildKind
    name: str
    manifest: dict[str, Any] | None


def thresholds(md: ModelDeployment) -> AlertThresholds:
    """spec.monitoring mapped onto the alert builder's thresholds."""
    m = md.spec.monitoring
    return AlertThresholds(
        error_rate=m.error_rate_threshold,
        latency_p99_seconds=m.latency_p99_seconds,
        drift_psi=m.drift_threshold,
        anomaly_rate=m.anomaly_rate_threshold,
        for_duration=m.for_,
    )


def monitoring_children(md: ModelDeployment, body: dict[str, Any]) -> list[Child]:
    """ServiceMonitor and PrometheusRule (None each when monitoring is off)."""
    name = md.metadata.name or ""
    namespace = md.metadata.namespace or ""
    if not md.spec.monitoring.enabled:
        return [Child(SERVICE_MONITOR, name, None), Child(PROMETHEUS_RULE, name, None)]
    labels = meta.common_labels(name, component="monitoring")
    owner = meta.owner_reference(body)
    monitor = build_service_monitor(
        name=name, namespace=namespace, labels=labels, owner=owner,
        selector=meta.selector_labels(name, component=predictor.COMPONENT),
    )
    rule = build_prometheus_rule(
        name=name, namespace=namespace, labels=labels, owner=owner,
        thresholds=thresholds(md), model=model_name(md),
    )
    return [
        Child(SERVICE_MONITOR, name, meta.stamp(monitor)),
        Child(PROMETHEUS_RULE, name, meta.stamp(rule)),
    ]


def desired_children(
    md: ModelDeployment, body: dict[str, Any], settings: Settings
) -> list[Child]:
    """The serving children in the order they are applied (config before the pods)."""
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
