"""The serving children of a ModelDeployment: config, server Deployment, Service.

Pure functions from a parsed ModelDeployment (plus operator settings) to
plain manifests. They never read the cluster, so every decision about what a
pod looks like is unit-testable, and the reconciler only compares and applies.

Both runtimes share one pod shape: a storage-initializer init container lays
the model out in Triton's repository layout on an emptyDir, next to the
generated config.pbtxt, and the server container (Modelship's ONNX Runtime
server or Triton) serves that folder on the same three ports.
"""

from __future__ import annotations

from typing import Any

from modelship_operator.api.deployment import ModelDeployment
from modelship_operator.builders import meta
from modelship_operator.builders.modelconfig import (
    build_model_config,
    model_name,
    render_model_config,
    served_version,
)
from modelship_operator.settings import Settings

HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002
REPOSITORY = "/mnt/models"
CONFIG_DIR = "/etc/modelship/model-config"
PVC_ROOT = "/mnt/pvc"
STORAGE_SECRET = "modelship-storage"
COMPONENT = "predictor"

DEFAULT_SERVER_RESOURCES = {"requests": {"cpu": "500m", "memory": "512Mi"}}
INITIALIZER_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "fsGroup": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
}


def _name(md: ModelDeployment) -> str:
    return md.metadata.name or ""


def _metadata(md: ModelDeployment, body: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": md.metadata.namespace,
        "labels": meta.common_labels(_name(md), component=COMPONENT),
        "ownerReferences": [meta.owner_reference(body)],
    }


def config_map(md: ModelDeployment, body: dict[str, Any]) -> dict[str, Any]:
    """The ConfigMap holding the generated config.pbtxt."""
    text = render_model_config(build_model_config(md, version=served_version(md)))
    return meta.stamp({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(md, body, meta.config_map_name(_name(md))),
        "data": {"config.pbtxt": text},
    })


def _storage_source(*uris: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Extra volumes and mounts the initializer needs to read ``uris`` (pvc:// ones)."""
    claims: list[str] = []
    for uri in uris:
        if uri and uri.startswith("pvc://"):
            claim = uri.removeprefix("pvc://").split("/", 1)[0]
            if claim not in claims:
                claims.append(claim)
    # The first claim keeps the name it always had, so existing pods do not roll.
    names = ["model-source", *(f"model-source-{i}" for i in range(1, len(claims)))]
    volumes = [{"name": n, "persistentVolumeClaim": {"claimName": c, "readOnly": True}}
               for n, c in zip(names, claims)]
    mounts = [{"name": n, "mountPath": f"{PVC_ROOT}/{c}", "readOnly": True}
              for n, c in zip(names, claims)]
    return volumes, mounts


def _initializer(md: ModelDeployment, settings: Settings, mounts: list[dict[str, Any]]):
    return {
        "name": "storage-initializer",
        "image": settings.images.server,
        "command": ["modelship-storage-initializer"],
        "args": [
            "--uri", md.spec.model.storage_uri,
            "--dest", REPOSITORY,
            "--model-name", model_name(md),
            "--config-pbtxt", f"{CONFIG_DIR}/config.pbtxt",
            *(["--reference", md.spec.monitoring.reference]
              if md.spec.monitoring.reference else []),
        ],
        "env": [{"name": "MODELSHIP_PVC_ROOT", "value": PVC_ROOT}],
        # Credentials for s3:// and private http(s) come from an optional
        # Secret, never from the spec, so they never show in `kubectl get`.
        "envFrom": [{"secretRef": {"name": STORAGE_SECRET, "optional": True}}],
        "resources": INITIALIZER_RESOURCES,
        "securityContext": CONTAINER_SECURITY,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "model-repository", "mountPath": REPOSITORY},
            {"name": "model-config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            *mounts,
        ],
    }


def _server_command(md: ModelDeployment) -> tuple[list[str], list[str]]:
    ports = [
        f"--http-port={HTTP_PORT}", f"--grpc-port={GRPC_PORT}", f"--metrics-port={METRICS_PORT}",
    ]
    if md.spec.runtime.kind == "triton":
        return ["tritonserver"], [
            f"--model-repository={REPOSITORY}", *ports, "--model-control-mode=none",
            "--exit-on-error=true", "--strict-readiness=true",
        ]
    rate = md.spec.monitoring.payload_log_sample_rate
    return ["modelship-server"], [
        f"--model-repository={REPOSITORY}", *ports, "--model-control-mode=none",
        # A model that cannot load ends the server with the reason in its
        # termination message, which the operator shows in ModelLoaded.
        "--exit-on-error=true",
        "--log-format=json", f"--payload-log-sample-rate={rate:g}",
    ]


def _server(md: ModelDeployment, settings: Settings) -> dict[str, Any]:
    runtime = md.spec.runtime
    image = runtime.image or (
        settings.images.triton if runtime.kind == "triton" else settings.images.server
    )
    command, args = _server_command(md)
    resources = (
        runtime.resources.model_dump(by_alias=True, exclude_none=True)
        if runtime.resources is not None else {}
    )
    resources = resources or dict(DEFAULT_SERVER_RESOURCES)
    # Requests are always set: the scheduler and the HPA need them. Limits
    # alone imply equal requests, as Kubernetes itself would default them.
    resources.setdefault(
        "requests", resources.get("limits") or DEFAULT_SERVER_RESOURCES["requests"])
    return {
        "name": "server",
        "image": image,
        "command": command,
        "args": args,
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "env": [
            {"name": "MODELSHIP_CPU_LIMIT", "valueFrom": {"resourceFieldRef": {
                "containerName": "server", "resource": "limits.cpu", "divisor": "1"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE",
             "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "resources": resources,
        "securityContext": CONTAINER_SECURITY,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "startupProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": "http"},
            "periodSeconds": 2, "failureThreshold": 150,
        },
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": "http"},
            "periodSeconds": 5, "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 10, "failureThreshold": 3,
        },
        "volumeMounts": [
            {"name": "model-repository", "mountPath": REPOSITORY, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
    }


def deployment(
    md: ModelDeployment, body: dict[str, Any], settings: Settings, *, config_hash: str
) -> dict[str, Any]:
    """The server Deployment. ``config_hash`` rolls the pods when config.pbtxt changes."""
    name = _name(md)
    source_volumes, source_mounts = _storage_source(md.spec.model.storage_uri,
                                                    md.spec.monitoring.reference)
    selector = meta.selector_labels(name, component=COMPONENT)
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        # A new version must be ready before an old pod goes: the old version
        # keeps serving through a rollout, and through a rollout that fails.
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "revisionHistoryLimit": 5,
        "template": {
            "metadata": {
                "labels": meta.common_labels(name, component=COMPONENT),
                "annotations": {
                    meta.CONFIG_HASH_ANNOTATION: config_hash,
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(METRICS_PORT),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": POD_SECURITY,
                "terminationGracePeriodSeconds": 30,
                "initContainers": [_initializer(md, settings, source_mounts)],
                "containers": [_server(md, settings)],
                "volumes": [
                    {"name": "model-repository", "emptyDir": {}},
                    {"name": "model-config",
                     "configMap": {"name": meta.config_map_name(name)}},
                    {"name": "tmp", "emptyDir": {}},
                    {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
                    *source_volumes,
                ],
            },
        },
    }
    if md.spec.autoscaling is None:
        # With autoscaling the HPA owns replicas; applying a number here
        # would fight it on every reconcile.
        spec["replicas"] = 1 if md.spec.replicas is None else md.spec.replicas
    return meta.stamp({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(md, body, meta.predictor_name(name)),
        "spec": spec,
    })


def service(md: ModelDeployment, body: dict[str, Any]) -> dict[str, Any]:
    """The Service in front of the servers, with ports a mesh and Prometheus can tell apart."""
    name = _name(md)
    return meta.stamp({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(md, body, meta.predictor_name(name)),
        "spec": {
            "type": "ClusterIP",
            "selector": meta.selector_labels(name, component=COMPONENT),
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http",
                 "protocol": "TCP", "appProtocol": "http"},
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc",
                 "protocol": "TCP", "appProtocol": "kubernetes.io/h2c"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics",
                 "protocol": "TCP", "appProtocol": "http"},
            ],
        },
    })


def urls(md: ModelDeployment, settings: Settings) -> tuple[str, str]:
    """The HTTP URL and the gRPC host:port clients in the cluster use."""
    host = f"{meta.predictor_name(_name(md))}.{md.metadata.namespace}.svc.{settings.cluster_domain}"
    return f"http://{host}:{HTTP_PORT}", f"{host}:{GRPC_PORT}"
