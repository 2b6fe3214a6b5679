"""Run fine-tuning Jobs, read their results, and promote what passes the gate.

Status is the only memory: ``status.fineTuning.job`` names the run for the
current spec (its name carries the spec's hash), ``status.versions`` keeps the
history with each version's metrics and verdict. A restarted operator reads
both and carries on; a reconcile that finds the run already recorded does
nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from modelship_operator.api.deployment import ModelDeployment
from modelship_operator.builders import finetune
from modelship_operator.builders.children import Child, ChildKind
from modelship_operator.cluster.client import resource_path
from modelship_operator.cluster.converge import converge_child
from modelship_operator.metrics import FINETUNE_RUNS
from modelship_operator.reconcile.conditions import Condition, now
from modelship_operator.reconcile.gate import judge

log = logging.getLogger(__name__)

JOB = ChildKind("batch/v1", "jobs", "Job")
SERVICE = ChildKind("v1", "services", "Service")
MAX_HISTORY = 20
TERMINAL = frozenset({"Succeeded", "Failed"})


def _job_phase(job: dict[str, Any] | None) -> str:
    if job is None:
        return "Pending"
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "Succeeded"
        if cond.get("type") in ("Failed", "FailureTarget"):
            return "Failed"
    return "Running" if status.get("active") else "Pending"


def _trainer_report(pods: list[dict[str, Any]]) -> dict[str, Any]:
    """The newest terminated trainer's termination message, decoded (or its raw text)."""
    reports: list[tuple[str, dict[str, Any]]] = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("name") != "trainer":
                continue
            term = (cs.get("state") or {}).get("terminated") or {}
            if not term:
                continue
            text = (term.get("message") or "").strip()
            try:
                report = json.loads(text) if text else {}
            except ValueError:
                report = {"message": text.splitlines()[-1] if text else ""}
            if not isinstance(report, dict):
                report = {"message": str(report)}
            report.setdefault("exitCode", term.get("exitCode"))
            reports.append((term.get("finishedAt") or "", report))
    reports.sort(key=lambda r: r[0])
    return reports[-1][1] if reports else {}


def _known_versions(status: dict[str, Any]) -> list[int]:
    versions = [int(v["version"]) for v in status.get("versions") or [] if v.get("version")]
    if status.get("servingVersion"):
        versions.append(int(status["servingVersion"]))
    produced = (status.get("fineTuning") or {}).get("producedVersion")
    if produced:
        versions.append(int(produced))
    return versions


def _serving_metrics(status: dict[str, Any]) -> dict[str, float] | None:
    serving = status.get("servingVersion")
    for record in status.get("versions") or []:
        if record.get("version") == serving:
            return record.get("metrics")
    return None


async def reconcile_fine_tuning(
    ctx: Any, md: ModelDeployment, body: dict[str, Any], status: dict[str, Any]
) -> tuple[dict[str, Any], Condition | None]:
    """Advance the fine-tuning run; return status fields to update and the FineTuned condition."""
    ft = md.spec.fine_tuning
    if ft is None:
        return {}, None
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        slot, next_slot = finetune.schedule_slot(ft.schedule, datetime.now(timezone.utc))
    except (ValueError, KeyError) as exc:  # croniter's errors are ValueErrors
        return {}, Condition("FineTuned", "False", "InvalidSchedule",
                             f"spec.fineTuning.schedule {ft.schedule!r} is not a cron "
                             f"schedule: {exc}")
    if next_slot is not None:
        # Wake up when the schedule fires next, even if nothing else happens.
        delay = (next_slot - datetime.now(timezone.utc)).total_seconds()
        ctx.later(body, max(1.0, delay))
    spec_hash = finetune.run_identity(md, body, slot=slot)
    job_name = finetune.job_name(md, spec_hash)
    current = dict(status.get("fineTuning") or {})

    try:
        finetune.output_location(md.spec.model.storage_uri)
    except finetune.FineTuningUnsupported as exc:
        return {}, Condition("FineTuned", "False", "StorageNotWritable", str(exc))

    if current.get("job") != job_name:
        known = _known_versions(status)
        if not known:
            return {}, Condition(
                "FineTuned", "Unknown", "WaitingForServingVersion",
                "waiting for a server to report which versions are stored, to number the "
                "new one")
        current = {"job": job_name, "phase": "Pending", "producedVersion": max(known) + 1,
                   "startedAt": now()}
        FINETUNE_RUNS.labels(namespace, name, "failed").inc(0)
        log.info("ModelDeployment %s/%s: starting fine-tuning run %s for version %d.",
                 namespace, name, job_name, current["producedVersion"])

    run = finetune.Run(job_name=job_name, spec_hash=spec_hash,
                       version=int(current["producedVersion"]))
    if current.get("phase") not in TERMINAL:
        manifest = finetune.job(md, body, ctx.settings, run,
                                serving_metrics=_serving_metrics(status))
        await converge_child(ctx.client, Child(JOB, job_name, manifest), namespace, ctx.seen)
        service = finetune.workers_service(md, body, run)
        if service is not None:
            await converge_child(ctx.client, Child(SERVICE, job_name, service), namespace,
                                 ctx.seen)

    updates: dict[str, Any] = {}
    if current.get("phase") not in TERMINAL:
        job = await ctx.client.get(resource_path(
            JOB.api_version, JOB.plural, namespace=namespace, name=job_name))
        phase = _job_phase(job)
        current["phase"] = phase
        if phase in TERMINAL:
            pods = await ctx.client.list(resource_path("v1", "pods", namespace=namespace),
                                         label_selector=f"batch.kubernetes.io/job-name={job_name}")
            report = _trainer_report(pods)
            current["finishedAt"] = now()
            if phase == "Succeeded":
                updates.update(_record_success(md, status, current, report))
            else:
                _record_failure(current, report, job)
                FINETUNE_RUNS.labels(namespace, name, "failed").inc()
    updates["fineTuning"] = current
    return updates, _condition(current, status, updates)


def _record_success(
    md: ModelDeployment, status: dict[str, Any], current: dict[str, Any], report: dict[str, Any]
) -> dict[str, Any]:
    ft = md.spec.fine_tuning
    assert ft is not None
    metrics = ((report.get("metrics") or {}).get("test")) or {}
    metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    version = int(report.get("version") or current["producedVersion"])
    verdict = judge(
        metric=ft.promotion.metric, threshold=ft.promotion.threshold,
        must_beat_serving=ft.promotion.must_beat_serving, new=metrics,
        serving=_serving_metrics(status), new_version=version,
        serving_version=status.get("servingVersion"),
    )
    # A pinned spec.model.version is the user's word: record, never promote.
    promoted = verdict.promoted and md.spec.model.version == "latest"
    message = verdict.message if promoted or not verdict.promoted else (
        f"version {version} passed the gate but spec.model.version pins "
        f"{md.spec.model.version}; it is recorded, not served")
    current.update(metrics=metrics, producedVersion=version, reason=verdict.reason,
                   message=message)
    FINETUNE_RUNS.labels(md.metadata.namespace, md.metadata.name,
                         "promoted" if promoted else "rejected").inc()
    record = {"version": version, "metrics": metrics, "promoted": promoted,
              "reason": message, "job": current["job"], "createdAt": now()}
    history = [v for v in status.get("versions") or [] if v.get("version") != version]
    return {"versions": (history + [record])[-MAX_HISTORY:]}


def _record_failure(current: dict[str, Any], report: dict[str, Any], job: dict[str, Any] | None):
    reason = report.get("reason") or "JobFailed"
    message = report.get("message") or ""
    if not message and job is not None:
        for cond in (job.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Failed":
                message = cond.get("message") or cond.get("reason") or ""
    current.update(reason=str(reason), message=str(message)[:1000] or "the Job failed")


def _condition(
    current: dict[str, Any], status: dict[str, Any], updates: dict[str, Any]
) -> Condition:
    phase = current.get("phase")
    job = current.get("job")
    if phase in ("Pending", "Running"):
        return Condition("FineTuned", "Unknown", "Training",
                         f"Job {job} is {phase.lower()}, producing version "
                         f"{current.get('producedVersion')}")
    if phase == "Failed":
        return Condition("FineTuned", "False", "JobFailed",
                         f"Job {job} failed: {current.get('reason')}: {current.get('message')}")
    versions = updates.get("versions") or status.get("versions") or []
    record = next((v for v in versions if v.get("version") == current.get("producedVersion")),
                  None)
    if record and record.get("promoted"):
        return Condition("FineTuned", "True", "Promoted", current.get("message") or "")
    return Condition("FineTuned", "False", current.get("reason") or "GateFailed",
                     current.get("message") or "")
