"""The fine-tuning Job of a ModelDeployment.

One Job per distinct ``spec.fineTuning`` (plus the retrain annotation and,
with a schedule, the cron slot): its name carries a hash of them, so
re-applying the same spec finds the same Job
and changing it starts a new one. The trainer gets its whole configuration as
one JSON document in an environment variable, writes the new version into the
model's own PersistentVolumeClaim, and reports its result through the
container's termination message, which the operator reads from the pod.

``workers > 1`` becomes an Indexed Job with a headless Service, so each worker
finds rank 0 by a stable DNS name, as torch.distributed expects.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from croniter import croniter

from modelship_operator.api.deployment import ModelDeployment
from modelship_operator.builders import meta
from modelship_operator.builders.predictor import (
    CONTAINER_SECURITY,
    PVC_ROOT,
    POD_SECURITY,
    STORAGE_SECRET,
)
from modelship_operator.settings import Settings

COMPONENT = "fine-tuning"
RETRAIN_ANNOTATION = "modelship.io/retrain"
MASTER_PORT = 29500
DEFAULT_RESOURCES = {
    "requests": {"cpu": "1", "memory": "2Gi"},
    "limits": {"cpu": "2", "memory": "4Gi"},
}


class FineTuningUnsupported(ValueError):
    """The spec asks for a run the operator cannot set up (a permanent condition)."""


@dataclass(frozen=True)
class Run:
    """What a fine-tuning run is: its Job name and the version it will write."""

    job_name: str
    spec_hash: str
    version: int


def schedule_slot(schedule: str | None, now: datetime) -> tuple[str, datetime | None]:
    """The latest time ``schedule`` fired (as text) and the next time it will.

    With no schedule there is one slot forever: a run per distinct spec.
    """
    if not schedule:
        return "", None
    slots = croniter(schedule, now)
    previous = slots.get_prev(datetime)
    following = croniter(schedule, now).get_next(datetime)
    return previous.isoformat(), following


def run_identity(md: ModelDeployment, body: dict[str, Any], *, slot: str = "") -> str:
    """A hash of what makes a run distinct: spec.fineTuning, the retrain
    annotation, and the schedule slot the run belongs to."""
    spec = (body.get("spec") or {}).get("fineTuning")
    trigger = ((body.get("metadata") or {}).get("annotations") or {}).get(RETRAIN_ANNOTATION, "")
    return meta.digest({"fineTuning": spec, "retrain": trigger, "slot": slot})[:10]


def job_name(md: ModelDeployment, spec_hash: str) -> str:
    return f"{md.metadata.name}-ft-{spec_hash}"


def _claims(*uris: str | None) -> list[str]:
    claims: list[str] = []
    for uri in uris:
        if uri and uri.startswith("pvc://"):
            claim = uri.removeprefix("pvc://").split("/", 1)[0]
            if claim not in claims:
                claims.append(claim)
    return claims


def output_location(storage_uri: str) -> tuple[str, str]:
    """(repository folder in the pod, model folder name) for the model's storage URI.

    The storage URI names the model's folder (the one holding version
    folders); the trainer writes ``<repository>/<model>/<version>/``.
    """
    if not storage_uri.startswith("pvc://"):
        raise FineTuningUnsupported(
            f"fine-tuning writes new versions next to the served ones, so spec.model.storageUri "
            f"must be a pvc:// URI (a volume the Job can write); got {storage_uri!r}"
        )
    claim, _, path = storage_uri.removeprefix("pvc://").partition("/")
    path = path.strip("/")
    if not path:
        raise FineTuningUnsupported(
            "spec.model.storageUri must name the model's folder inside the claim "
            "(pvc://<claim>/<folder>) for fine-tuning to add versions to it"
        )
    parent, name = posixpath.split(path)
    return posixpath.join(PVC_ROOT, claim, parent).rstrip("/"), name


def trainer_config(
    md: ModelDeployment, body: dict[str, Any], run: Run,
    serving_metrics: dict[str, Any] | None,
) -> dict[str, Any]:
    repository, model_folder = output_location(md.spec.model.storage_uri)
    config: dict[str, Any] = {
        "modelName": model_folder,
        "version": run.version,
        "outputRepository": repository,
        "fineTuning": (body.get("spec") or {})["fineTuning"],
    }
    if serving_metrics:
        config["servingMetrics"] = serving_metrics
    return config


def job(
    md: ModelDeployment, body: dict[str, Any], settings: Settings, run: Run,
    *, serving_metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The batch/v1 Job for ``run``."""
    ft = md.spec.fine_tuning
    if ft is None:  # pragma: no cover - the caller checks
        raise FineTuningUnsupported("spec.fineTuning is not set")
    name = md.metadata.name or ""
    config = trainer_config(md, body, run, serving_metrics)
    model_claim = _claims(md.spec.model.storage_uri)[0]
    claims = _claims(md.spec.model.storage_uri, ft.dataset.uri, ft.base_model.uri)

    labels = {**meta.common_labels(name, component=COMPONENT),
              "modelship.io/finetune-run": run.spec_hash}
    env = [
        {"name": "MODELSHIP_TRAINER_CONFIG", "value": json.dumps(config, sort_keys=True)},
        {"name": "MODELSHIP_PVC_ROOT", "value": PVC_ROOT},
        {"name": "HOME", "value": "/tmp"},
    ]
    workers = ft.workers
    if workers > 1:
        env += [
            {"name": "WORLD_SIZE", "value": str(workers)},
            {"name": "MASTER_ADDR", "value": f"{run.job_name}-0.{run.job_name}"},
            {"name": "MASTER_PORT", "value": str(MASTER_PORT)},
        ]
    resources = (
        ft.resources.model_dump(by_alias=True, exclude_none=True) if ft.resources else {}
    ) or DEFAULT_RESOURCES
    resources.setdefault("requests", resources.get("limits") or DEFAULT_RESOURCES["requests"])

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": POD_SECURITY,
        "containers": [{
            "name": "trainer",
            "image": settings.images.trainer,
            "command": ["modelship-trainer"],
            "env": env,
            "envFrom": [{"secretRef": {"name": STORAGE_SECRET, "optional": True}}],
            "resources": resources,
            "securityContext": CONTAINER_SECURITY,
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "ports": [{"name": "dist", "containerPort": MASTER_PORT}] if workers > 1 else [],
            "volumeMounts": [
                {"name": "tmp", "mountPath": "/tmp"},
                # Volumes are named by position: a claim name may hold dots or be
                # longer than a volume name may be.
                *({"name": f"pvc-{i}", "mountPath": f"{PVC_ROOT}/{c}",
                   "readOnly": c != model_claim} for i, c in enumerate(claims)),
            ],
        }],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            *({"name": f"pvc-{i}", "persistentVolumeClaim": {"claimName": c}}
              for i, c in enumerate(claims)),
        ],
    }
    spec: dict[str, Any] = {
        # The trainer is deterministic: a retry only helps against the
        # infrastructure, so one is allowed, and none when the trainer says
        # its error is permanent (exit code 2: bad config, data or model).
        "backoffLimit": 1,
        "podFailurePolicy": {"rules": [
            {"action": "FailJob", "onExitCodes": {
                "containerName": "trainer", "operator": "In", "values": [2]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        ]},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if workers > 1:
        spec.update(completionMode="Indexed", completions=workers, parallelism=workers)
        pod_spec["subdomain"] = run.job_name
    return meta.stamp({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": run.job_name,
            "namespace": md.metadata.namespace,
            "labels": labels,
            "annotations": {"modelship.io/produces-version": str(run.version)},
            "ownerReferences": [meta.owner_reference(body)],
        },
        "spec": spec,
    })


def workers_service(md: ModelDeployment, body: dict[str, Any], run: Run) -> dict[str, Any] | None:
    """The headless Service that gives each worker of a multi-worker run a DNS name."""
    ft = md.spec.fine_tuning
    if ft is None or ft.workers <= 1:
        return None
    labels = meta.common_labels(md.metadata.name or "", component=COMPONENT)
    return meta.stamp({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": run.job_name, "namespace": md.metadata.namespace, "labels": labels,
            "ownerReferences": [meta.owner_reference(body)],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {"modelship.io/finetune-run": run.spec_hash,
                         meta.OWNER_LABEL: md.metadata.name},
            "ports": [{"name": "dist", "port": MASTER_PORT, "targetPort": MASTER_PORT}],
        },
    })
