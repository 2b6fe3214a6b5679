"""The set of children, the autoscaler and the disruption budget, and their hash stamps."""

from __future__ import annotations

import copy
from typing import Any

from modelship_operator.builders import meta, scaling
from modelship_operator.builders.children import (
    CONFIG_MAP,
    DEPLOYMENT,
    HPA,
    PDB,
    PROMETHEUS_RULE,
    SERVICE,
    SERVICE_MONITOR,
    desired_children,
    monitoring_children,
    thresholds,
)
from tests.unit.operator.bodies import SETTINGS, deployment_of


def _children(**kwargs: Any) -> dict[str, dict[str, Any] | None]:
    md, raw = deployment_of(**kwargs)
    return {c.kind.kind: c.manifest for c in desired_children(md, raw, SETTINGS)}


# desired_children.

def test_children_come_in_apply_order_with_config_before_the_pods() -> None:
    md, raw = deployment_of(name="fraud")

    children = desired_children(md, raw, SETTINGS)

    assert [(c.kind, c.name) for c in children] == [
        (CONFIG_MAP, "fraud-model-config"),
        (DEPLOYMENT, "fraud-predictor"),
        (SERVICE, "fraud-predictor"),
        (HPA, "fraud-predictor"),
        (PDB, "fraud-predictor"),
    ]


def test_one_replica_without_autoscaling_asks_for_no_hpa_and_no_pdb() -> None:
    children = _children()

    assert children["HorizontalPodAutoscaler"] is None
    assert children["PodDisruptionBudget"] is None
    assert all(children[k] is not None for k in ("ConfigMap", "Deployment", "Service"))


def test_every_present_child_names_itself_as_its_kind_says() -> None:
    md, raw = deployment_of(spec={"autoscaling": {"maxReplicas": 3}})

    for child in desired_children(md, raw, SETTINGS):
        assert child.manifest is not None
        assert child.manifest["apiVersion"] == child.kind.api_version
        assert child.manifest["kind"] == child.kind.kind
        assert child.manifest["metadata"]["name"] == child.name
        assert child.manifest["metadata"]["namespace"] == "ml"


def test_the_deployment_carries_the_hash_of_the_config_maps_data() -> None:
    children = _children()
    config, deployment = children["ConfigMap"], children["Deployment"]
    assert config is not None and deployment is not None

    annotations = deployment["spec"]["template"]["metadata"]["annotations"]

    assert annotations[meta.CONFIG_HASH_ANNOTATION] == meta.digest(config["data"])


# HPA.

def test_no_hpa_without_autoscaling() -> None:
    md, raw = deployment_of(spec={"replicas": 3})

    assert scaling.horizontal_pod_autoscaler(md, raw) is None


def test_autoscaling_builds_a_cpu_hpa_aimed_at_the_server_deployment() -> None:
    md, raw = deployment_of(name="fraud", spec={"autoscaling": {
        "minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercentage": 65}})

    hpa = scaling.horizontal_pod_autoscaler(md, raw)

    assert hpa is not None
    assert hpa["metadata"]["name"] == "fraud-predictor"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "fraud-predictor"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 65}}}]


def test_autoscaling_defaults_to_one_replica_and_eighty_percent_cpu() -> None:
    md, raw = deployment_of(spec={"autoscaling": {"maxReplicas": 4}})

    hpa = scaling.horizontal_pod_autoscaler(md, raw)

    assert hpa is not None
    assert hpa["spec"]["minReplicas"] == 1
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80


# PDB.

def test_no_pdb_for_one_replica_or_none() -> None:
    for spec in ({"replicas": 1}, {"replicas": 0}, {}):
        md, raw = deployment_of(spec=spec)
        assert scaling.pod_disruption_budget(md, raw) is None, spec


def test_no_pdb_when_the_autoscaler_may_run_only_one_server() -> None:
    md, raw = deployment_of(spec={"autoscaling": {"minReplicas": 1, "maxReplicas": 1}})

    assert scaling.pod_disruption_budget(md, raw) is None


def test_two_replicas_get_a_pdb_that_lets_one_server_go_at_a_time() -> None:
    md, raw = deployment_of(name="fraud", spec={"replicas": 2})

    pdb = scaling.pod_disruption_budget(md, raw)

    assert pdb is not None
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"modelship.io/deployment": "fraud",
                                     "app.kubernetes.io/component": "predictor"}},
    }


def test_an_autoscaler_that_may_grow_past_one_server_gets_a_pdb() -> None:
    md, raw = deployment_of(spec={"autoscaling": {"minReplicas": 1, "maxReplicas": 3}})

    assert scaling.pod_disruption_budget(md, raw) is not None


# Monitoring children (the manifests themselves are tested with the monitoring builders).

def test_monitoring_off_asks_for_no_service_monitor_and_no_rule() -> None:
    md, raw = deployment_of(spec={"monitoring": {"enabled": False}})

    children = monitoring_children(md, raw)

    assert [(c.kind, c.name, c.manifest) for c in children] == [
        (SERVICE_MONITOR, "clf", None), (PROMETHEUS_RULE, "clf", None)]


def test_monitoring_on_builds_a_stamped_service_monitor_and_rule() -> None:
    md, raw = deployment_of()

    children = monitoring_children(md, raw)

    assert [c.kind for c in children] == [SERVICE_MONITOR, PROMETHEUS_RULE]
    for child in children:
        assert child.manifest is not None
        assert meta.HASH_ANNOTATION in child.manifest["metadata"]["annotations"]


def test_spec_monitoring_maps_onto_the_alert_thresholds() -> None:
    md, _ = deployment_of(spec={"monitoring": {
        "errorRateThreshold": 0.02, "latencyP99Seconds": 0.05, "driftThreshold": 0.3,
        "anomalyRateThreshold": 0.001, "for": "10m"}})

    t = thresholds(md)

    assert (t.error_rate, t.latency_p99_seconds, t.drift_psi, t.anomaly_rate,
            t.for_duration) == (0.02, 0.05, 0.3, 0.001, "10m")


# digest and stamp.

def test_digest_is_the_same_whatever_the_key_order() -> None:
    a = {"b": 1, "a": {"y": [1, 2], "x": "s"}}
    b = {"a": {"x": "s", "y": [1, 2]}, "b": 1}

    assert meta.digest(a) == meta.digest(b)
    assert len(meta.digest(a)) == 16


def test_digest_differs_when_list_order_differs() -> None:
    assert meta.digest({"a": [1, 2]}) != meta.digest({"a": [2, 1]})


def _manifest(**extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "labels": {"a": "1"}}, "data": {"k": "v"}, **extra}


def test_stamp_gives_the_same_hash_whatever_the_key_order() -> None:
    a = meta.stamp(_manifest())
    b = meta.stamp({"data": {"k": "v"}, "metadata": {"labels": {"a": "1"}, "name": "x"},
                    "kind": "ConfigMap", "apiVersion": "v1"})

    assert (a["metadata"]["annotations"][meta.HASH_ANNOTATION]
            == b["metadata"]["annotations"][meta.HASH_ANNOTATION])


def test_stamp_gives_a_different_hash_when_any_field_differs() -> None:
    base = meta.stamp(_manifest())["metadata"]["annotations"][meta.HASH_ANNOTATION]
    variants = [
        _manifest(data={"k": "w"}),
        {**_manifest(), "metadata": {"name": "y", "labels": {"a": "1"}}},
        {**_manifest(), "metadata": {"name": "x", "labels": {"a": "2"}}},
        {**_manifest(), "metadata": {"name": "x", "labels": {"a": "1"},
                                     "annotations": {"note": "n"}}},
        _manifest(immutable=True),
    ]

    hashes = {meta.stamp(v)["metadata"]["annotations"][meta.HASH_ANNOTATION]
              for v in variants}

    assert base not in hashes
    assert len(hashes) == len(variants)


def test_stamping_twice_gives_the_same_hash_as_stamping_once() -> None:
    once = meta.stamp(_manifest())

    twice = meta.stamp(copy.deepcopy(once))

    assert twice == once


def test_the_same_spec_builds_byte_identical_children() -> None:
    first = _children(spec={"replicas": 2})
    second = _children(spec={"replicas": 2})

    assert first == second
