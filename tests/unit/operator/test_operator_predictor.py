"""The server Deployment and its Service, built from the spec alone."""

from __future__ import annotations

from typing import Any

import pytest

from modelship_operator.builders import meta, predictor
from modelship_operator.builders.children import desired_children
from tests.unit.operator.bodies import SETTINGS, UID, deployment_of, example, triton_spec


def _deployment(spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """The Deployment as desired_children builds it (so with the real config hash)."""
    md, raw = deployment_of(spec=spec, **kwargs)
    children = {c.kind.kind: c.manifest for c in desired_children(md, raw, SETTINGS)}
    manifest = children["Deployment"]
    assert manifest is not None
    return manifest


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def _containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    pod = _pod(deployment)
    return [*pod["initContainers"], *pod["containers"]]


def _server(deployment: dict[str, Any]) -> dict[str, Any]:
    (server,) = _pod(deployment)["containers"]
    return server


def _initializer(deployment: dict[str, Any]) -> dict[str, Any]:
    (init,) = _pod(deployment)["initContainers"]
    return init


def _config_hash(deployment: dict[str, Any]) -> str:
    return deployment["spec"]["template"]["metadata"]["annotations"][meta.CONFIG_HASH_ANNOTATION]


# Security.

@pytest.mark.parametrize("spec", [None, triton_spec()], ids=["onnxruntime", "triton"])
def test_every_container_including_the_initializer_is_locked_down(
    spec: dict[str, Any] | None,
) -> None:
    containers = _containers(_deployment(spec))

    assert [c["name"] for c in containers] == ["storage-initializer", "server"]
    for container in containers:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, container["name"]
        assert security["readOnlyRootFilesystem"] is True, container["name"]
        assert security["privileged"] is False, container["name"]
        assert security["capabilities"] == {"drop": ["ALL"]}, container["name"]


def test_the_pod_runs_as_a_non_root_user_with_the_runtime_default_seccomp_profile() -> None:
    pod = _pod(_deployment())

    assert pod["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False


def test_a_read_only_root_leaves_tmp_and_shared_memory_writable_for_the_server() -> None:
    deployment = _deployment()
    volumes = {v["name"]: v for v in _pod(deployment)["volumes"]}

    mounts = {m["mountPath"]: m for m in _server(deployment)["volumeMounts"]}

    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {}}
    assert volumes["dshm"] == {"name": "dshm",
                               "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}
    assert mounts["/tmp"]["name"] == "tmp"
    assert mounts["/dev/shm"]["name"] == "dshm"
    assert mounts["/mnt/models"] == {"name": "model-repository", "mountPath": "/mnt/models",
                                     "readOnly": True}


# Resources.

def test_without_resources_the_server_requests_the_defaults() -> None:
    assert _server(_deployment())["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
    }


def test_limits_alone_give_equal_requests() -> None:
    spec = {"runtime": {"resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}}

    assert _server(_deployment(spec))["resources"] == {
        "requests": {"cpu": "2", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "1Gi"},
    }


def test_requests_and_limits_given_together_are_kept_as_written() -> None:
    resources = {"requests": {"cpu": "250m", "memory": "256Mi"},
                 "limits": {"cpu": "1", "memory": "512Mi"}}

    assert _server(_deployment({"runtime": {"resources": resources}}))["resources"] == resources


def test_requests_alone_are_kept_without_limits() -> None:
    resources = {"requests": {"cpu": "250m"}}

    assert _server(_deployment({"runtime": {"resources": resources}}))["resources"] == resources


def test_the_initializer_has_its_own_small_requests_and_limits() -> None:
    assert _initializer(_deployment())["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }


def test_the_triton_example_keeps_its_gpu_limit_and_its_cpu_request() -> None:
    md, raw = example("triton-gpu-batching.yaml")

    deployment = predictor.deployment(md, raw, SETTINGS, config_hash="h")

    assert _server(deployment)["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"memory": "8Gi", "nvidia.com/gpu": 1},
    }


# Runtimes.

def test_onnxruntime_runs_modelships_server_with_its_ports_and_json_logs() -> None:
    spec = {"monitoring": {"payloadLogSampleRate": 0.25}}

    server = _server(_deployment(spec))

    assert server["image"] == "registry.test/modelship-server:9.9.9"
    assert server["command"] == ["modelship-server"]
    assert server["args"] == [
        "--model-repository=/mnt/models", "--http-port=8000", "--grpc-port=8001",
        "--metrics-port=8002", "--model-control-mode=none", "--exit-on-error=true",
        "--log-format=json",
        "--payload-log-sample-rate=0.25",
    ]


def test_triton_runs_tritonserver_with_strict_readiness_and_the_same_ports() -> None:
    server = _server(_deployment(triton_spec()))

    assert server["image"] == "registry.test/tritonserver:1.0"
    assert server["command"] == ["tritonserver"]
    assert server["args"] == [
        "--model-repository=/mnt/models", "--http-port=8000", "--grpc-port=8001",
        "--metrics-port=8002", "--model-control-mode=none", "--exit-on-error=true",
        "--strict-readiness=true",
    ]


@pytest.mark.parametrize("spec", [None, triton_spec()], ids=["onnxruntime", "triton"])
def test_both_runtimes_expose_named_ports_and_probe_the_open_inference_endpoints(
    spec: dict[str, Any] | None,
) -> None:
    server = _server(_deployment(spec))

    assert server["ports"] == [
        {"name": "http", "containerPort": 8000, "protocol": "TCP"},
        {"name": "grpc", "containerPort": 8001, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 8002, "protocol": "TCP"},
    ]
    assert server["startupProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert server["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    # The startup probe gives a large model five minutes to load.
    assert server["startupProbe"]["periodSeconds"] * server["startupProbe"][
        "failureThreshold"] == 300


def test_runtime_image_overrides_the_operators_default() -> None:
    spec = {"runtime": {"image": "mirror.test/custom-server:1"}}

    assert _server(_deployment(spec))["image"] == "mirror.test/custom-server:1"


def test_the_initializer_always_uses_the_modelship_server_image() -> None:
    init = _initializer(_deployment(triton_spec(image="mirror.test/triton:2")))

    assert init["image"] == "registry.test/modelship-server:9.9.9"


# Storage.

def test_a_pvc_uri_mounts_the_claim_read_only_in_the_initializer_only() -> None:
    spec = {"model": {"format": "onnx", "storageUri": "pvc://team-models/clf/v1"}}
    deployment = _deployment(spec)

    volumes = {v["name"]: v for v in _pod(deployment)["volumes"]}
    init_mounts = {m["name"]: m for m in _initializer(deployment)["volumeMounts"]}

    assert volumes["model-source"] == {
        "name": "model-source",
        "persistentVolumeClaim": {"claimName": "team-models", "readOnly": True},
    }
    assert init_mounts["model-source"] == {
        "name": "model-source", "mountPath": "/mnt/pvc/team-models", "readOnly": True,
    }
    assert "model-source" not in {m["name"] for m in _server(deployment)["volumeMounts"]}


def test_an_s3_uri_mounts_no_claim_and_takes_credentials_from_an_optional_secret() -> None:
    spec = {"model": {"format": "onnx", "storageUri": "s3://bucket/clf"}}
    deployment = _deployment(spec)

    assert "model-source" not in {v["name"] for v in _pod(deployment)["volumes"]}
    assert _initializer(deployment)["envFrom"] == [
        {"secretRef": {"name": "modelship-storage", "optional": True}},
    ]


def test_the_initializer_is_told_the_uri_the_model_name_and_the_config_path() -> None:
    spec = {"model": {"format": "onnx", "storageUri": "s3://bucket/clf", "name": "cancer"}}

    init = _initializer(_deployment(spec))

    assert init["args"] == [
        "--uri", "s3://bucket/clf", "--dest", "/mnt/models", "--model-name", "cancer",
        "--config-pbtxt", "/etc/modelship/model-config/config.pbtxt",
    ]
    assert init["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_the_config_map_is_mounted_read_only_for_the_initializer() -> None:
    deployment = _deployment()

    volumes = {v["name"]: v for v in _pod(deployment)["volumes"]}
    init_mounts = {m["name"]: m for m in _initializer(deployment)["volumeMounts"]}

    assert volumes["model-config"] == {"name": "model-config",
                                       "configMap": {"name": "clf-model-config"}}
    assert init_mounts["model-config"] == {"name": "model-config",
                                           "mountPath": "/etc/modelship/model-config",
                                           "readOnly": True}


# Replicas, rollouts and identity.

def test_replicas_default_to_one() -> None:
    assert _deployment()["spec"]["replicas"] == 1


def test_replicas_follow_the_spec_including_zero() -> None:
    assert _deployment({"replicas": 4})["spec"]["replicas"] == 4
    assert _deployment({"replicas": 0})["spec"]["replicas"] == 0


def test_replicas_are_left_to_the_autoscaler_when_autoscaling_is_on() -> None:
    deployment = _deployment({"autoscaling": {"minReplicas": 2, "maxReplicas": 5}})

    assert "replicas" not in deployment["spec"]


def test_a_rollout_brings_a_new_pod_up_before_an_old_one_goes() -> None:
    assert _deployment()["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }


def test_the_config_hash_changes_when_batching_changes() -> None:
    before = _deployment({"runtime": {"batching": {"maxBatchSize": 8}}})
    after = _deployment({"runtime": {"batching": {"maxBatchSize": 16}}})

    assert _config_hash(before) != _config_hash(after)


def test_the_config_hash_changes_when_the_served_version_changes() -> None:
    before = _deployment(status={"versions": [{"version": 2, "promoted": True}]})
    after = _deployment(status={"versions": [{"version": 2, "promoted": True},
                                             {"version": 3, "promoted": True}]})

    assert _config_hash(before) != _config_hash(after)


def test_the_config_hash_does_not_change_when_replicas_change() -> None:
    one, three = _deployment({"replicas": 1}), _deployment({"replicas": 3})

    assert _config_hash(one) == _config_hash(three)
    assert one["spec"]["template"] == three["spec"]["template"]
    assert (one["metadata"]["annotations"][meta.HASH_ANNOTATION]
            != three["metadata"]["annotations"][meta.HASH_ANNOTATION])


def test_the_pod_template_asks_prometheus_to_scrape_the_metrics_port() -> None:
    annotations = _deployment()["spec"]["template"]["metadata"]["annotations"]

    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8002"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_deployment_is_named_for_its_owner_and_owned_by_it() -> None:
    deployment = _deployment(name="fraud")

    assert deployment["metadata"]["name"] == "fraud-predictor"
    assert deployment["metadata"]["namespace"] == "ml"
    assert deployment["metadata"]["ownerReferences"] == [{
        "apiVersion": "modelship.io/v1alpha1", "kind": "ModelDeployment", "name": "fraud",
        "uid": UID, "controller": True, "blockOwnerDeletion": True,
    }]


def test_the_deployment_and_its_pods_carry_the_common_labels_and_select_by_two() -> None:
    deployment = _deployment(name="fraud")
    labels = {
        "app.kubernetes.io/name": "modelship",
        "app.kubernetes.io/instance": "fraud",
        "app.kubernetes.io/component": "predictor",
        "app.kubernetes.io/managed-by": "modelship",
        "modelship.io/deployment": "fraud",
    }

    assert deployment["metadata"]["labels"] == labels
    assert deployment["spec"]["template"]["metadata"]["labels"] == labels
    assert deployment["spec"]["selector"] == {"matchLabels": {
        "modelship.io/deployment": "fraud", "app.kubernetes.io/component": "predictor",
    }}


def test_the_server_is_told_its_cpu_limit_and_its_pod_identity() -> None:
    env = {e["name"]: e for e in _server(_deployment())["env"]}

    assert env["MODELSHIP_CPU_LIMIT"]["valueFrom"]["resourceFieldRef"] == {
        "containerName": "server", "resource": "limits.cpu", "divisor": "1"}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}}


# Service and URLs.

def test_the_service_names_its_ports_http_grpc_and_metrics() -> None:
    md, raw = deployment_of(name="fraud")

    service = predictor.service(md, raw)

    assert service["metadata"]["name"] == "fraud-predictor"
    assert service["spec"]["type"] == "ClusterIP"
    assert [(p["name"], p["port"], p["targetPort"], p["appProtocol"])
            for p in service["spec"]["ports"]] == [
        ("http", 8000, "http", "http"),
        ("grpc", 8001, "grpc", "kubernetes.io/h2c"),
        ("metrics", 8002, "metrics", "http"),
    ]
    assert service["spec"]["selector"] == {
        "modelship.io/deployment": "fraud", "app.kubernetes.io/component": "predictor",
    }


def test_urls_use_the_service_name_and_the_cluster_domain() -> None:
    md, _ = deployment_of(name="fraud")

    assert predictor.urls(md, SETTINGS) == (
        "http://fraud-predictor.ml.svc.cluster.test:8000",
        "fraud-predictor.ml.svc.cluster.test:8001",
    )


def test_the_config_map_holds_the_rendered_config_and_is_stamped() -> None:
    md, raw = deployment_of()

    config_map = predictor.config_map(md, raw)

    assert config_map["metadata"]["name"] == "clf-model-config"
    assert 'name: "clf"' in config_map["data"]["config.pbtxt"]
    assert meta.HASH_ANNOTATION in config_map["metadata"]["annotations"]


def test_a_drift_reference_in_the_spec_reaches_the_initializer_with_its_claim_mounted() -> None:
    md, raw = deployment_of(spec={"monitoring": {"reference": "pvc://refs/bc/reference.json"}})

    pod = predictor.deployment(md, raw, SETTINGS, config_hash="h")["spec"]["template"]["spec"]

    init = pod["initContainers"][0]
    assert init["args"][-2:] == ["--reference", "pvc://refs/bc/reference.json"]
    assert {m["mountPath"]: m["readOnly"] for m in init["volumeMounts"]
            if m["mountPath"].startswith("/mnt/pvc/")} == {
        "/mnt/pvc/models": True, "/mnt/pvc/refs": True}
    assert {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
            if "persistentVolumeClaim" in v} == {"models", "refs"}


def test_without_a_reference_the_initializer_reads_the_one_stored_with_each_version() -> None:
    md, raw = deployment_of()

    init = predictor.deployment(md, raw, SETTINGS, config_hash="h")["spec"]["template"][
        "spec"]["initContainers"][0]

    assert "--reference" not in init["args"]
