"""Kopf registrations: watches in, reconciles out.

Only event handlers are used, on purpose. Kopf's change-detecting handlers
(on.create, on.update) keep their progress in annotations on the user's
object; event handlers keep nothing there, so the operator writes nothing but
status to a ModelDeployment and GitOps tools see no drift. Each watch event
(of the object or of a child) just schedules a level-based reconcile of the
owner; a periodic resync catches anything a watch may have missed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import kopf

from modelship_operator.cluster.client import (
    ApiError,
    KubeClient,
    NotFound,
    TemporaryApiError,
    namespace_is_terminating,
)
from modelship_operator.cluster.events import EventRecorder
from modelship_operator.metrics import OBJECTS_BY_PHASE, RECONCILE_SECONDS, RECONCILES
from modelship_operator.reconcile import deployment as md_reconcile
from modelship_operator.reconcile import ensemble as me_reconcile
from modelship_operator.reconcile.queue import Key, WorkQueue
from modelship_operator.settings import Settings

log = logging.getLogger(__name__)

GROUP, VERSION = "modelship.io", "v1alpha1"
MANAGED = {"app.kubernetes.io/managed-by": "modelship"}
RESYNC_SECONDS = 300.0


@dataclass
class OperatorState:
    """The live operator's pieces, reachable from tests and benchmarks."""

    client: KubeClient | None = None
    queue: WorkQueue | None = None
    context: md_reconcile.Context | None = None
    bodies: dict[Key, dict[str, Any]] = field(default_factory=dict)
    resync: asyncio.Task[None] | None = None
    reconciles: Counter[Key] = field(default_factory=Counter)


STATE = OperatorState()


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (TemporaryApiError, asyncio.TimeoutError, ConnectionError))


async def _work(key: Key) -> None:
    body = STATE.bodies.get(key)
    if body is None or STATE.context is None:
        return
    if body["metadata"].get("deletionTimestamp"):
        return  # the garbage collector removes the children
    STATE.reconciles[key] += 1
    started = time.monotonic()
    result = "error"
    try:
        if key[0] == "ModelEnsemble":
            await me_reconcile.reconcile(STATE.context, body)
        else:
            await md_reconcile.reconcile(STATE.context, body)
        result = "ok"
    except ApiError as exc:
        if _retryable(exc):
            raise
        if isinstance(exc, NotFound):
            log.debug("%s %s/%s is gone; nothing to do.", key[0], key[1], key[2])
            return
        if namespace_is_terminating(exc):
            log.debug("ModelDeployment %s/%s: its namespace is being deleted; nothing to do.",
                      key[1], key[2])
            return
        log.error("%s %s/%s: the API server refused a request: %s",
                  key[0], key[1], key[2], exc)
        await _report(key, body, "ApplyRejected",
                      f"the API server refused what the spec asks for: {exc.message}")
    except Exception as exc:
        if _retryable(exc):
            raise
        log.exception("%s %s/%s: the reconcile failed; waiting for a change to the object.",
                      key[0], key[1], key[2])
        await _report(key, body, "ReconcileFailed", f"{type(exc).__name__}: {exc}")
    finally:
        RECONCILES.labels(key[0], result).inc()
        RECONCILE_SECONDS.labels(key[0]).observe(time.monotonic() - started)
        _count_phases()


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is None:
        raise kopf.LoginError("no service account token and no kubeconfig to log in with")
    STATE.client = KubeClient(info)
    context = md_reconcile.Context(
        client=STATE.client, settings=Settings.from_env(),
        events=EventRecorder(STATE.client),
    )
    context.remember = _remember
    context.later = _later
    STATE.context = context
    return info


async def _report(key: Key, body: dict[str, Any], reason: str, message: str) -> None:
    if STATE.context is None:
        return
    plural = "modelensembles" if key[0] == "ModelEnsemble" else "modeldeployments"
    try:
        await md_reconcile.report_failure(STATE.context, body, plural=plural,
                                          reason=reason, message=message[:1000])
    except ApiError as exc:
        log.warning("%s %s/%s: could not report the failure in status: %s",
                    key[0], key[1], key[2], exc)


def _count_phases() -> None:
    """Refresh the objects-by-phase gauge from the bodies the watches keep."""
    counts: Counter[tuple[str, str]] = Counter(
        (kind, ((body.get("status") or {}).get("phase") or "Pending"))
        for (kind, _, _), body in STATE.bodies.items()
    )
    for kind in ("ModelDeployment", "ModelEnsemble"):
        for phase in ("Pending", "Progressing", "Ready", "Degraded", "Failed"):
            OBJECTS_BY_PHASE.labels(kind, phase).set(counts[(kind, phase)])


def _later(body: dict[str, Any], delay: float) -> None:
    meta = body.get("metadata") or {}
    if STATE.queue is not None:
        STATE.queue.schedule(("ModelDeployment", meta.get("namespace", ""), meta.get("name", "")),
                             delay=delay)


def _remember(body: dict[str, Any]) -> None:
    """Keep the newest copy of an object we just wrote (the watch may lag behind)."""
    meta = body.get("metadata") or {}
    key: Key = ("ModelDeployment", meta.get("namespace", ""), meta.get("name", ""))
    known = STATE.bodies.get(key)
    if known is None:
        return
    # NB: resourceVersions are opaque by contract; etcd's are integers, and
    # when one is not, the freshly written copy is simply taken.
    try:
        newer = int(meta.get("resourceVersion") or 0) > int(
            known["metadata"].get("resourceVersion") or 0)
    except ValueError:
        newer = True
    if newer:
        STATE.bodies[key] = body


@kopf.on.startup()
async def start_queue(**_: Any) -> None:
    STATE.queue = WorkQueue(work=_work, is_retryable=_retryable)
    STATE.resync = asyncio.create_task(_resync_forever(), name="resync")


@kopf.on.cleanup()
async def stop_queue(**_: Any) -> None:
    if STATE.resync:
        STATE.resync.cancel()
    if STATE.queue:
        await STATE.queue.close()
    if STATE.client:
        await STATE.client.close()


async def _resync_forever() -> None:
    while True:
        await asyncio.sleep(RESYNC_SECONDS)
        if STATE.queue is not None:
            for key in list(STATE.bodies):
                STATE.queue.schedule(key)


def _schedule(key: Key) -> None:
    if STATE.queue is not None:
        STATE.queue.schedule(key)


def _track(kind: str, event: dict[str, Any], body: kopf.Body, namespace: str, name: str) -> None:
    key: Key = (kind, namespace, name)
    if event.get("type") == "DELETED":
        STATE.bodies.pop(key, None)
        if STATE.queue:
            STATE.queue.forget(key)
        return
    STATE.bodies[key] = dict(body)
    _schedule(key)


def _schedule_ensembles_using(namespace: str, deployment: str) -> None:
    """Ensembles follow their members: any change to a member re-checks them."""
    for (kind, ns, name), body in list(STATE.bodies.items()):
        if kind != "ModelEnsemble" or ns != namespace:
            continue
        members = (body.get("spec") or {}).get("members") or []
        if any(m.get("deployment") == deployment for m in members):
            _schedule((kind, ns, name))


@kopf.on.event(GROUP, VERSION, "modeldeployments")
async def model_deployment_event(
    event: dict[str, Any], body: kopf.Body, namespace: str, name: str, **_: Any
) -> None:
    _track("ModelDeployment", event, body, namespace, name)
    _schedule_ensembles_using(namespace, name)


@kopf.on.event(GROUP, VERSION, "modelensembles")
async def model_ensemble_event(
    event: dict[str, Any], body: kopf.Body, namespace: str, name: str, **_: Any
) -> None:
    _track("ModelEnsemble", event, body, namespace, name)


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
@kopf.on.event("", "v1", "pods", labels=MANAGED)
@kopf.on.event("", "v1", "services", labels=MANAGED)
@kopf.on.event("", "v1", "configmaps", labels=MANAGED)
async def child_event(labels: kopf.Labels, namespace: str, **_: Any) -> None:
    owner = labels.get("modelship.io/deployment")
    if owner:
        _schedule(("ModelDeployment", namespace, owner))
    ensemble = labels.get("modelship.io/ensemble")
    if ensemble:
        _schedule(("ModelEnsemble", namespace, ensemble))
