"""Reconcile one ModelDeployment: children first, then honest status.

Level-based: whatever event woke it, the reconcile reads the object as it is
now, computes every child from the spec, converges each (writing only what
differs), then derives status from what the cluster reports. Running it twice
in a row writes nothing the second time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

from modelship_operator.api.base import InvalidResourceError
from modelship_operator.api.deployment import ModelDeployment
from modelship_operator.builders import meta
from modelship_operator.builders.children import (
    DEPLOYMENT,
    desired_children,
    monitoring_children,
)
from modelship_operator.builders.modelconfig import served_version
from modelship_operator.builders.predictor import COMPONENT, urls
from modelship_operator.cluster.client import KubeClient, resource_path
from modelship_operator.cluster.converge import SeenVersions, converge_child
from modelship_operator.cluster.events import EventRecorder
from modelship_operator.reconcile.finetune import reconcile_fine_tuning
from modelship_operator.reconcile.conditions import Condition, condition_of, merge_conditions
from modelship_operator.reconcile.health import Health, assess
from modelship_operator.settings import Settings

log = logging.getLogger(__name__)

GROUP_VERSION = "modelship.io/v1alpha1"
PLURAL = "modeldeployments"


@dataclass
class Context:
    """What every reconcile shares: the client, settings, and the verified-children cache."""

    client: KubeClient
    settings: Settings
    events: EventRecorder
    seen: SeenVersions = field(default_factory=SeenVersions)
    # Told of the object the API server returns after a status write, so the
    # next reconcile starts from it even before the watch event arrives.
    remember: Callable[[dict[str, Any]], None] = lambda body: None
    # Asks for another reconcile of an object after a delay (schedules).
    later: Callable[[dict[str, Any], float], None] = lambda body, delay: None
    _discovered: dict[str, tuple[float, bool]] = field(default_factory=dict)

    async def api_available(self, group_version: str, *, ttl: float = 60.0) -> bool:
        """Whether the API server serves ``group_version`` (cached for ``ttl`` seconds)."""
        at, found = self._discovered.get(group_version, (-ttl, False))
        if time.monotonic() - at < ttl:
            return found
        found = await self.client.get(f"/apis/{group_version}") is not None
        self._discovered[group_version] = (time.monotonic(), found)
        return found


def _selector(name: str) -> str:
    labels = meta.selector_labels(name, component=COMPONENT)
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _desired_replicas(md: ModelDeployment) -> int:
    if md.spec.autoscaling is not None:
        return md.spec.autoscaling.min_replicas
    return 1 if md.spec.replicas is None else md.spec.replicas


def serving_conditions(md: ModelDeployment, health: Health) -> tuple[str, list[Condition]]:
    """Phase and the Ready, ModelLoaded and Progressing conditions for ``health``."""
    want = health.desired_replicas
    if health.failure is not None:
        loaded = health.failure
        ready = Condition("Ready", "False", health.failure.reason, health.failure.message)
        phase = "Degraded" if health.serving else "Failed"
    elif health.serving:
        loaded = Condition("ModelLoaded", "True", "ModelServed",
                           f"{health.ready_replicas} server(s) have loaded the model")
        if health.ready_replicas >= want:
            ready = Condition("Ready", "True", "ServersReady",
                              f"{health.ready_replicas} of {want} server(s) ready")
            phase = "Ready"
        else:
            ready = Condition("Ready", "False", "WaitingForServers",
                              f"{health.ready_replicas} of {want} server(s) ready")
            phase = "Progressing"
    elif want == 0:
        loaded = Condition("ModelLoaded", "Unknown", "ScaledToZero", "no server is running")
        ready = Condition("Ready", "False", "ScaledToZero", "spec.replicas is 0")
        phase = "Ready"
    else:
        loaded = Condition("ModelLoaded", "Unknown", "Loading",
                           "waiting for a server to fetch and load the model")
        ready = Condition("Ready", "False", "WaitingForServers",
                          f"0 of {want} server(s) ready")
        phase = "Pending" if health.replicas == 0 else "Progressing"

    if health.rollout_done:
        progressing = Condition("Progressing", "False", "RolloutComplete",
                                "every server runs the current spec")
    else:
        progressing = Condition(
            "Progressing", "True", "RollingOut",
            f"rolling out: {health.updated_replicas} of {want} server(s) updated to the "
            f"current spec, {health.ready_replicas} ready, {health.replicas} running",
        )
    return phase, [ready, loaded, progressing]


async def reconcile(ctx: Context, body: dict[str, Any]) -> None:
    """Converge the children of ``body`` and write its status (only when it changed)."""
    meta_ = body["metadata"]
    namespace, name = meta_["namespace"], meta_["name"]
    generation = int(meta_.get("generation") or 0)
    previous = dict(body.get("status") or {})

    try:
        md = ModelDeployment.from_k8s(body)
    except InvalidResourceError as exc:
        # The API server's schema should have refused this; an older CRD
        # might not have. Say so on the object and wait for a fix.
        await _write_status(ctx, body, previous, {
            **previous,
            "phase": "Failed",
            "observedGeneration": generation,
            "conditions": merge_conditions(previous.get("conditions"), [
                Condition("Ready", "False", "InvalidSpec", str(exc)),
            ], generation=generation),
        })
        return

    # Fine-tuning first: a promotion changes the version the children serve.
    ft_updates, ft_condition = await reconcile_fine_tuning(ctx, md, body, previous)
    if ft_updates:
        md = ModelDeployment.from_k8s({**body, "status": {**previous, **ft_updates}})

    for child in desired_children(md, body, ctx.settings):
        action = await converge_child(ctx.client, child, namespace, ctx.seen)
        if action not in ("unchanged", "absent"):
            log.info("ModelDeployment %s/%s: %s %s %s.", namespace, name, action,
                     child.kind.kind, child.name)

    monitoring = await _converge_monitoring(ctx, md, body)

    deployment = await ctx.client.get(resource_path(
        DEPLOYMENT.api_version, DEPLOYMENT.plural, namespace=namespace,
        name=meta.predictor_name(name)))
    pods = await ctx.client.list(
        resource_path("v1", "pods", namespace=namespace), label_selector=_selector(name))
    health = assess(deployment, pods, desired_replicas=_desired_replicas(md))
    phase, conditions = serving_conditions(md, health)
    url, grpc_url = urls(md, ctx.settings)

    extra = [monitoring] + ([ft_condition] if ft_condition is not None else [])
    status = {
        **previous,
        **ft_updates,
        "phase": phase,
        "observedGeneration": generation,
        "replicas": health.replicas,
        "readyReplicas": health.ready_replicas,
        "selector": _selector(name),
        "url": url,
        "grpcUrl": grpc_url,
        "conditions": merge_conditions(previous.get("conditions"), [*conditions, *extra],
                                       generation=generation),
    }
    version = served_version(md) or _discovered_version(pods)
    if version is not None:
        status["servingVersion"] = version
    await _write_status(ctx, body, previous, status)
    await _announce(ctx, body, previous, status)


async def _converge_monitoring(
    ctx: Context, md: ModelDeployment, body: dict[str, Any]
) -> Condition:
    """Apply the ServiceMonitor and PrometheusRule, or say why there are none.

    Without the Prometheus Operator's CRDs the rest of the deployment works
    as usual; the Monitoring condition tells the user what is missing.
    """
    namespace = body["metadata"]["namespace"]
    if not await ctx.api_available("monitoring.coreos.com/v1"):
        if not md.spec.monitoring.enabled:
            return Condition("Monitoring", "False", "Disabled", "spec.monitoring.enabled is false")
        return Condition(
            "Monitoring", "False", "PrometheusOperatorMissing",
            "the monitoring.coreos.com/v1 API (Prometheus Operator's CRDs) is not installed: "
            "no ServiceMonitor or PrometheusRule was created; metrics are still served on "
            "port 8002 at /metrics",
        )
    for child in monitoring_children(md, body):
        await converge_child(ctx.client, child, namespace, ctx.seen)
    if not md.spec.monitoring.enabled:
        return Condition("Monitoring", "False", "Disabled", "spec.monitoring.enabled is false")
    return Condition("Monitoring", "True", "AlertsConfigured",
                     "a ServiceMonitor and a PrometheusRule watch this model")


def _discovered_version(pods: list[dict[str, Any]]) -> int | None:
    """The newest version a storage initializer reported fetching, if any did."""
    import json

    found: list[int] = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("initContainerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated") or {}
            if term.get("exitCode") == 0 and term.get("message"):
                try:
                    found.extend(int(v) for v in json.loads(term["message"]).get("versions", []))
                except (ValueError, TypeError, AttributeError):
                    continue
    return max(found) if found else None


async def report_failure(
    ctx: Context, body: dict[str, Any], *, plural: str, reason: str, message: str
) -> None:
    """Say on the object why its reconcile cannot go on (a permanent failure).

    Used when the API server refuses what the operator computed, or a bug
    stops the reconcile: the user sees Ready=False with the reason and a
    Warning Event instead of an object with no status at all.
    """
    meta_ = body["metadata"]
    generation = int(meta_.get("generation") or 0)
    previous = dict(body.get("status") or {})
    status = {
        **previous,
        "phase": "Failed",
        "observedGeneration": generation,
        "conditions": merge_conditions(previous.get("conditions"), [
            Condition("Ready", "False", reason, message),
        ], generation=generation),
    }
    if status == previous:
        return
    path = resource_path(GROUP_VERSION, plural, namespace=meta_["namespace"],
                         name=meta_["name"], subresource="status")
    ctx.remember(await ctx.client.merge_patch(path, {"status": status}))
    await ctx.events.post(body, reason=reason, message=message, warning=True)


async def _write_status(
    ctx: Context, body: dict[str, Any], previous: dict[str, Any], status: dict[str, Any]
) -> None:
    if status == previous:
        return
    meta_ = body["metadata"]
    path = resource_path(GROUP_VERSION, PLURAL, namespace=meta_["namespace"],
                         name=meta_["name"], subresource="status")
    ctx.remember(await ctx.client.merge_patch(path, {"status": status}))


async def _announce(
    ctx: Context, body: dict[str, Any], previous: dict[str, Any], status: dict[str, Any]
) -> None:
    """Post an Event when Ready or ModelLoaded flips, so `kubectl describe` tells the story."""
    for type_ in ("Ready", "ModelLoaded"):
        old = condition_of(previous.get("conditions"), type_) or {}
        new = condition_of(status.get("conditions"), type_) or {}
        if new.get("status") == old.get("status") or new.get("status") == "Unknown":
            continue
        warning = new.get("status") == "False" and new.get("reason") not in (
            "WaitingForServers", "ScaledToZero")
        await ctx.events.post(
            body, reason=new.get("reason", type_), message=new.get("message", ""),
            warning=warning,
        )
