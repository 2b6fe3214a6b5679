"""The children of a ModelEnsemble: a router, or Triton's own ensemble.

Members are resolved through their ModelDeployments' status (URLs and model
names), never through addresses in the spec, so the router follows a member
that is replaced or promoted: its Service name stays, the version it serves
changes behind it.

``runtime: triton`` builds one Triton server holding every member model and
an ensemble model (``platform: "ensemble"`` with ``ensemble_scheduling``
steps), because Triton's scheduler only wires models inside one server. Its
config is generated as a ``model_config_pb2`` message, so it is Triton's
schema that says it is well formed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from modelship_operator.api.deployment import ModelDeployment
from modelship_operator.api.ensemble import ModelEnsemble
from modelship_operator.builders import meta
from modelship_operator.builders.modelconfig import _DATA_TYPES, model_name
from modelship_operator.builders.predictor import (
    CONTAINER_SECURITY,
    GRPC_PORT,
    HTTP_PORT,
    INITIALIZER_RESOURCES,
    METRICS_PORT,
    POD_SECURITY,
    PVC_ROOT,
    REPOSITORY,
    STORAGE_SECRET,
)
from modelship_operator.settings import Settings

COMPONENT = "ensemble"
CONFIG_DIR = "/etc/modelship/ensemble"
ROUTER_RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"}}


class EnsembleUnresolvable(ValueError):
    """The members do not (yet) describe what the ensemble needs; a condition says why."""


@dataclass(frozen=True)
class ResolvedMember:
    """A member whose ModelDeployment exists and publishes its endpoints."""

    name: str
    deployment: ModelDeployment
    url: str
    grpc_url: str


def router_name(name: str) -> str:
    return f"{name}-ensemble"


def _labels(me: ModelEnsemble) -> dict[str, str]:
    return meta.common_labels(me.metadata.name or "", component=COMPONENT,
                              owner_label=meta.ENSEMBLE_LABEL)


def _selector(me: ModelEnsemble) -> dict[str, str]:
    return meta.selector_labels(me.metadata.name or "", component=COMPONENT,
                                owner_label=meta.ENSEMBLE_LABEL)


def _metadata(me: ModelEnsemble, body: dict[str, Any], name: str) -> dict[str, Any]:
    return {"name": name, "namespace": me.metadata.namespace, "labels": _labels(me),
            "ownerReferences": [meta.owner_reference(body)]}


def router_config(me: ModelEnsemble, members: list[ResolvedMember]) -> dict[str, Any]:
    """The router's ensemble.json: the spec with every member resolved to endpoints."""
    spec = me.spec
    weights = {m.name: m.weight for m in spec.members}
    config: dict[str, Any] = {
        "name": me.metadata.name,
        "strategy": spec.strategy,
        "members": [
            {"name": m.name, "url": m.url, "grpcUrl": m.grpc_url,
             "model": model_name(m.deployment),
             **({"weight": weights[m.name]} if weights.get(m.name) is not None else {})}
            for m in members
        ],
        "timeoutSeconds": 10,
        "retries": 2,
    }
    if spec.steps:
        config["steps"] = [{"member": s.member, "inputMapping": dict(s.input_mapping)}
                           for s in spec.steps]
    if spec.outputs:
        config["outputs"] = {
            name: dict(zip(("member", "output"), source.split(".", 1)))
            for name, source in spec.outputs.items()
        }
    if spec.parallel is not None:
        config["parallel"] = {"combine": spec.parallel.combine}
    return config


def router_children(
    me: ModelEnsemble, body: dict[str, Any], settings: Settings, members: list[ResolvedMember]
) -> list[dict[str, Any]]:
    """ConfigMap, Deployment and Service of the router."""
    name = me.metadata.name or ""
    config = router_config(me, members)
    config_map = meta.stamp({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": _metadata(me, body, router_name(name)),
        "data": {"ensemble.json": json.dumps(config, indent=2, sort_keys=True)},
    })
    container = {
        "name": "router",
        "image": settings.images.server,
        "command": ["modelship-router"],
        "args": [f"--config={CONFIG_DIR}/ensemble.json", f"--http-port={HTTP_PORT}",
                 f"--grpc-port={GRPC_PORT}", f"--metrics-port={METRICS_PORT}"],
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
                  {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "resources": ROUTER_RESOURCES,
        "securityContext": CONTAINER_SECURITY,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"},
                           "periodSeconds": 3},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"},
                          "periodSeconds": 10},
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    return [config_map, _deployment(me, body, container, [
        {"name": "config", "configMap": {"name": router_name(name)}},
        {"name": "tmp", "emptyDir": {}},
    ], config_hash=meta.digest(config_map["data"])), _service(me, body)]


def _deployment(
    me: ModelEnsemble, body: dict[str, Any], container: dict[str, Any],
    volumes: list[dict[str, Any]], *, config_hash: str,
    init_containers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    name = me.metadata.name or ""
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": POD_SECURITY,
        "containers": [container],
        "volumes": volumes,
    }
    if init_containers:
        pod["initContainers"] = init_containers
    return meta.stamp({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _metadata(me, body, router_name(name)),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": _selector(me)},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": _labels(me), "annotations": {
                    meta.CONFIG_HASH_ANNOTATION: config_hash,
                    "prometheus.io/scrape": "true", "prometheus.io/port": str(METRICS_PORT)}},
                "spec": pod,
            },
        },
    })


def _service(me: ModelEnsemble, body: dict[str, Any]) -> dict[str, Any]:
    name = me.metadata.name or ""
    return meta.stamp({
        "apiVersion": "v1", "kind": "Service",
        "metadata": _metadata(me, body, router_name(name)),
        "spec": {"selector": _selector(me), "ports": [
            {"name": "http", "port": HTTP_PORT, "targetPort": "http", "appProtocol": "http"},
            {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc",
             "appProtocol": "kubernetes.io/h2c"},
            {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics",
             "appProtocol": "http"},
        ]},
    })


# -- Triton's own ensemble ------------------------------------------------------

@dataclass(frozen=True)
class _Step:
    member: str
    input_mapping: dict[str, str]


def _tensor_name(source: str) -> str:
    """An ensemble-internal tensor name for "$input.x" or "<member>.<output>"."""
    if source.startswith("$input."):
        return source.removeprefix("$input.")
    return source.replace(".", "__", 1)


def _signature(md: ModelDeployment, which: str) -> dict[str, Any]:
    tensors = getattr(md.spec.model, which) or []
    if not tensors:
        raise EnsembleUnresolvable(
            f"ModelDeployment {md.metadata.name} declares no spec.model.{which}: Triton's "
            "ensemble config needs every member's tensor names, types and shapes")
    return {t.name: t for t in tensors}


def triton_ensemble_config(me: ModelEnsemble, members: list[ResolvedMember]) -> mc.ModelConfig:
    """The ensemble model's ModelConfig (serial, or parallel with separate outputs)."""
    spec = me.spec
    by_name = {m.name: m for m in members}
    config = mc.ModelConfig(name=me.metadata.name or "", platform="ensemble")
    steps = [_Step(s.member, dict(s.input_mapping)) for s in spec.steps or []] or [
        # Parallel: every member reads the ensemble's inputs under its own names.
        _Step(m.name, {k: f"$input.{k}" for k in _signature(m.deployment, "inputs")})
        for m in members
    ]

    produced: dict[str, Any] = {}
    consumed_inputs: dict[str, Any] = {}
    for step in steps:
        member = by_name[step.member]
        inputs = _signature(member.deployment, "inputs")
        outputs = _signature(member.deployment, "outputs")
        s = config.ensemble_scheduling.step.add()
        s.model_name = model_name(member.deployment)
        s.model_version = -1
        for input_name, source in step.input_mapping.items():
            if input_name not in inputs:
                raise EnsembleUnresolvable(
                    f"member {step.member} has no input {input_name!r}; it declares "
                    f"{sorted(inputs)}")
            s.input_map[input_name] = _tensor_name(source)
            if source.startswith("$input."):
                consumed_inputs[_tensor_name(source)] = inputs[input_name]
        for output_name, tensor in outputs.items():
            s.output_map[output_name] = _tensor_name(f"{step.member}.{output_name}")
            produced[f"{step.member}.{output_name}"] = tensor

    for tensor_name, tensor in consumed_inputs.items():
        declared = config.input.add(name=tensor_name, data_type=_DATA_TYPES[tensor.datatype])
        declared.dims.extend(tensor.shape)
    if spec.outputs:
        wanted = dict(spec.outputs)
    elif spec.strategy == "serial":
        last = steps[-1].member
        wanted = {k.split(".", 1)[1]: k for k in produced if k.startswith(f"{last}.")}
    else:
        wanted = {k: k for k in produced}
    for out_name, source in wanted.items():
        if source not in produced:
            raise EnsembleUnresolvable(f"ensemble output {out_name!r} reads {source!r}, "
                                       "which no step produces")
        tensor = produced[source]
        # The ensemble's output tensor is the producing step's tensor itself.
        declared = config.output.add(name=_tensor_name(source),
                                     data_type=_DATA_TYPES[tensor.datatype])
        declared.dims.extend(tensor.shape)

    text = text_format.MessageToString(config)
    text_format.Parse(text, mc.ModelConfig())  # Triton's schema, once more, on the text
    return config


def triton_children(
    me: ModelEnsemble, body: dict[str, Any], settings: Settings, members: list[ResolvedMember]
) -> list[dict[str, Any]]:
    """One Triton server with every member's model and the ensemble model."""
    name = me.metadata.name or ""
    ensemble_text = text_format.MessageToString(triton_ensemble_config(me, members))
    config_map = meta.stamp({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": _metadata(me, body, router_name(name)),
        "data": {"config.pbtxt": ensemble_text},
    })
    inits, volumes = [], [
        {"name": "model-repository", "emptyDir": {}},
        {"name": "ensemble-config", "configMap": {"name": router_name(name)}},
        {"name": "tmp", "emptyDir": {}},
    ]
    claims: set[str] = set()
    for member in members:
        md = member.deployment
        uri = md.spec.model.storage_uri
        mounts = [{"name": "model-repository", "mountPath": REPOSITORY},
                  {"name": f"config-{member.name}", "mountPath": "/etc/modelship/model-config",
                   "readOnly": True},
                  {"name": "tmp", "mountPath": "/tmp"}]
        volumes.append({"name": f"config-{member.name}", "configMap": {
            "name": meta.config_map_name(md.metadata.name or "")}})
        if uri.startswith("pvc://"):
            claim = uri.removeprefix("pvc://").split("/", 1)[0]
            mounts.append({"name": f"pvc-{claim}", "mountPath": f"{PVC_ROOT}/{claim}",
                           "readOnly": True})
            if claim not in claims:
                claims.add(claim)
                volumes.append({"name": f"pvc-{claim}", "persistentVolumeClaim": {
                    "claimName": claim, "readOnly": True}})
        inits.append({
            "name": f"fetch-{member.name}",
            "image": settings.images.server,
            "command": ["modelship-storage-initializer"],
            "args": ["--uri", uri, "--dest", REPOSITORY, "--model-name", model_name(md),
                     "--config-pbtxt", "/etc/modelship/model-config/config.pbtxt"],
            "env": [{"name": "MODELSHIP_PVC_ROOT", "value": PVC_ROOT}],
            "envFrom": [{"secretRef": {"name": STORAGE_SECRET, "optional": True}}],
            "resources": INITIALIZER_RESOURCES,
            "securityContext": CONTAINER_SECURITY,
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "volumeMounts": mounts,
        })
    inits.append({
        "name": "ensemble-model",
        "image": settings.images.server,
        "command": ["sh", "-c",
                    f'mkdir -p "{REPOSITORY}/{name}/1" && '
                    f'cp {CONFIG_DIR}/config.pbtxt "{REPOSITORY}/{name}/config.pbtxt"'],
        "resources": INITIALIZER_RESOURCES,
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [{"name": "model-repository", "mountPath": REPOSITORY},
                         {"name": "ensemble-config", "mountPath": CONFIG_DIR,
                          "readOnly": True}],
    })
    container = {
        "name": "server",
        "image": settings.images.triton,
        "command": ["tritonserver"],
        "args": [f"--model-repository={REPOSITORY}", f"--http-port={HTTP_PORT}",
                 f"--grpc-port={GRPC_PORT}", f"--metrics-port={METRICS_PORT}",
                 "--strict-readiness=true"],
        "ports": [{"name": "http", "containerPort": HTTP_PORT},
                  {"name": "grpc", "containerPort": GRPC_PORT},
                  {"name": "metrics", "containerPort": METRICS_PORT}],
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
        "securityContext": CONTAINER_SECURITY,
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"}},
        "volumeMounts": [{"name": "model-repository", "mountPath": REPOSITORY,
                          "readOnly": True}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    return [config_map, _deployment(me, body, container, volumes,
                                    config_hash=meta.digest(config_map["data"]),
                                    init_containers=inits), _service(me, body)]
