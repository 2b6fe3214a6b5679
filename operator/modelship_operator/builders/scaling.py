"""How many servers run, and how many may go at once.

The HorizontalPodAutoscaler aims at the server Deployment rather than at the
ModelDeployment's scale subresource: spec.replicas and spec.autoscaling are
mutually exclusive by the API's own rule, so an HPA writing spec.replicas
would be refused by that rule.
"""

from __future__ import annotations

from typing import Any

from modelship_operator.api.deployment import ModelDeployment
from modelship_operator.builders import meta
from modelship_operator.builders.predictor import COMPONENT


def _metadata(md: ModelDeployment, body: dict[str, Any]) -> dict[str, Any]:
    name = md.metadata.name or ""
    return {
        "name": meta.predictor_name(name),
        "namespace": md.metadata.namespace,
        "labels": meta.common_labels(name, component=COMPONENT),
        "ownerReferences": [meta.owner_reference(body)],
    }


def horizontal_pod_autoscaler(md: ModelDeployment, body: dict[str, Any]) -> dict[str, Any] | None:
    """An autoscaling/v2 HPA on CPU, or None when autoscaling is not asked for."""
    scaling = md.spec.autoscaling
    if scaling is None:
        return None
    return meta.stamp({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(md, body),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "name": meta.predictor_name(md.metadata.name or ""),
            },
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [{
                "type": "Resource",
                "resource": {"name": "cpu", "target": {
                    "type": "Utilization",
                    "averageUtilization": scaling.target_cpu_utilization_percentage,
                }},
            }],
        },
    })


def pod_disruption_budget(md: ModelDeployment, body: dict[str, Any]) -> dict[str, Any] | None:
    """A PDB letting one server go at a time, when more than one can run."""
    scaling = md.spec.autoscaling
    most = scaling.max_replicas if scaling is not None else (md.spec.replicas or 1)
    if most <= 1:
        return None
    name = md.metadata.name or ""
    return meta.stamp({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(md, body),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": meta.selector_labels(name, component=COMPONENT)},
        },
    })
