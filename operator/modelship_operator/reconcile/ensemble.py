"""Reconcile one ModelEnsemble: resolve members, run the router, aggregate status.

The ensemble is Ready only when every member is Ready and its own server
(router or Triton) serves. A member that is missing or not ready is named in
the MembersReady condition; the router keeps its last good configuration
meanwhile, and picks the member up again when it returns.
"""

from __future__ import annotations

import logging
from typing import Any

from modelship_operator.api.base import InvalidResourceError
from modelship_operator.api.deployment import ModelDeployment
from modelship_operator.api.ensemble import ModelEnsemble
from modelship_operator.builders import ensemble as builders
from modelship_operator.builders import meta
from modelship_operator.builders.children import CONFIG_MAP, DEPLOYMENT, SERVICE, Child
from modelship_operator.builders.predictor import GRPC_PORT, HTTP_PORT
from modelship_operator.cluster.client import resource_path
from modelship_operator.cluster.converge import converge_child
from modelship_operator.reconcile.conditions import Condition, condition_of, merge_conditions
from modelship_operator.reconcile.deployment import Context
from modelship_operator.reconcile.health import assess

log = logging.getLogger(__name__)

GROUP_VERSION = "modelship.io/v1alpha1"
PLURAL = "modelensembles"
_KINDS = {"ConfigMap": CONFIG_MAP, "Deployment": DEPLOYMENT, "Service": SERVICE}


def incompatible_members(
    strategy: str, members: list[builders.ResolvedMember]
) -> str | None:
    """Why the members' declared outputs cannot be combined, or None.

    Voting and weighted combine the same outputs of every member, so where
    members declare their outputs they must agree on names, types and shapes.
    (Members that declare nothing are checked by the router against their
    live metadata before it goes ready.)
    """
    if strategy not in ("voting", "weighted"):
        return None
    declared = {
        m.name: {t.name: (t.datatype, tuple(t.shape)) for t in m.deployment.spec.model.outputs}
        for m in members if m.deployment.spec.model.outputs
    }
    if len(declared) < 2:
        return None
    (first, reference), *rest = declared.items()
    for name, outputs in rest:
        if outputs != reference:
            return (f"members {first} and {name} declare different outputs "
                    f"({_describe(reference)} vs {_describe(outputs)}): {strategy} needs the "
                    "same output names, datatypes and shapes from every member")
    return None


def _describe(outputs: dict[str, tuple[str, tuple[int, ...]]]) -> str:
    return ", ".join(f"{n} {d}{list(s)}" for n, (d, s) in sorted(outputs.items()))


async def _resolve(
    ctx: Context, me: ModelEnsemble, namespace: str
) -> tuple[list[builders.ResolvedMember], list[dict[str, Any]]]:
    resolved: list[builders.ResolvedMember] = []
    statuses: list[dict[str, Any]] = []
    for member in me.spec.members:
        body = await ctx.client.get(resource_path(
            GROUP_VERSION, "modeldeployments", namespace=namespace, name=member.deployment))
        entry: dict[str, Any] = {"name": member.name, "deployment": member.deployment,
                                 "ready": False}
        if body is None:
            entry["message"] = f"ModelDeployment {member.deployment} does not exist"
            statuses.append(entry)
            continue
        status = body.get("status") or {}
        ready = condition_of(status.get("conditions"), "Ready") or {}
        entry.update(url=status.get("url"), servingVersion=status.get("servingVersion"))
        entry = {k: v for k, v in entry.items() if v is not None}
        if ready.get("status") == "True":
            entry["ready"] = True
        else:
            entry["message"] = (f"ModelDeployment {member.deployment} is not ready: "
                                f"{ready.get('message') or 'no status yet'}")
        statuses.append(entry)
        if status.get("url") and status.get("grpcUrl"):
            try:
                md = ModelDeployment.from_k8s(body)
            except InvalidResourceError:
                continue
            resolved.append(builders.ResolvedMember(
                member.name, md, status["url"], status["grpcUrl"]))
    return resolved, statuses


async def reconcile(ctx: Context, body: dict[str, Any]) -> None:
    """Converge the ensemble's server and write its aggregated status."""
    meta_ = body["metadata"]
    namespace, name = meta_["namespace"], meta_["name"]
    generation = int(meta_.get("generation") or 0)
    previous = dict(body.get("status") or {})
    me = ModelEnsemble.from_k8s(body)

    resolved, members = await _resolve(ctx, me, namespace)
    ready_members = sum(1 for m in members if m["ready"])
    missing = [m for m in members if not m["ready"]]
    conditions: list[Condition] = []
    if missing:
        conditions.append(Condition(
            "MembersReady", "False", "MembersNotReady",
            "; ".join(f"{m['name']}: {m.get('message', 'not ready')}" for m in missing)))
    else:
        conditions.append(Condition("MembersReady", "True", "AllMembersReady",
                                    f"all {len(members)} members are ready"))

    problem = incompatible_members(me.spec.strategy, resolved)
    if problem is None and len(resolved) == len(me.spec.members):
        try:
            children = (builders.triton_children if me.spec.runtime == "triton"
                        else builders.router_children)(me, body, ctx.settings, resolved)
        except builders.EnsembleUnresolvable as exc:
            problem = str(exc)
        else:
            for manifest in children:
                child = Child(_KINDS[manifest["kind"]], manifest["metadata"]["name"], manifest)
                await converge_child(ctx.client, child, namespace, ctx.seen)

    server = builders.router_name(name)
    deployment = await ctx.client.get(resource_path(
        DEPLOYMENT.api_version, DEPLOYMENT.plural, namespace=namespace, name=server))
    selector = ",".join(f"{k}={v}" for k, v in sorted(meta.selector_labels(
        name, component=builders.COMPONENT, owner_label=meta.ENSEMBLE_LABEL).items()))
    pods = await ctx.client.list(resource_path("v1", "pods", namespace=namespace),
                                 label_selector=selector)
    health = assess(deployment, pods, desired_replicas=1, servers=("router", "server"))

    if problem is not None:
        ready = Condition("Ready", "False", "MembersIncompatible", problem)
        phase = "Failed"
    elif missing:
        ready = Condition("Ready", "False", "MembersNotReady",
                          "waiting for " + ", ".join(m["name"] for m in missing))
        phase = "Degraded" if health.serving else "Pending"
    elif health.failure is not None:
        ready = Condition("Ready", "False", health.failure.reason, health.failure.message)
        phase = "Failed"
    elif health.serving:
        ready = Condition("Ready", "True", "Serving",
                          f"all {len(members)} members and the ensemble server are ready")
        phase = "Ready"
    else:
        ready = Condition("Ready", "False", "WaitingForServer",
                          "the ensemble server is starting")
        phase = "Progressing"
    conditions.insert(0, ready)

    host = f"{server}.{namespace}.svc.{ctx.settings.cluster_domain}"
    status = {
        **previous,
        "phase": phase,
        "observedGeneration": generation,
        "memberCount": len(members),
        "readyMembers": ready_members,
        "members": members,
        "url": f"http://{host}:{HTTP_PORT}",
        "grpcUrl": f"{host}:{GRPC_PORT}",
        "conditions": merge_conditions(previous.get("conditions"), conditions,
                                       generation=generation),
    }
    if status != previous:
        path = resource_path(GROUP_VERSION, PLURAL, namespace=namespace, name=name,
                             subresource="status")
        await ctx.client.merge_patch(path, {"status": status})
        old = condition_of(previous.get("conditions"), "Ready") or {}
        if old.get("status") != ready.status:
            await ctx.events.post(body, reason=ready.reason, message=ready.message,
                                  warning=ready.status == "False" and phase != "Progressing")
