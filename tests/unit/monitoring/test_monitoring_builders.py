"""The ServiceMonitor and PrometheusRule the operator builds for a ModelDeployment."""

from __future__ import annotations

import pytest
import yaml

from modelship_operator.builders.monitoring import (
    AlertThresholds,
    build_prometheus_rule,
    build_service_monitor,
    duration_seconds,
    format_duration,
    rule_groups,
    rules_file,
)

OWNER = {"apiVersion": "modelship.io/v1alpha1", "kind": "ModelDeployment", "name": "iris",
         "uid": "1234", "controller": True, "blockOwnerDeletion": True}
LABELS = {"app.kubernetes.io/managed-by": "modelship", "modelship.io/deployment": "iris"}


def test_the_service_monitor_scrapes_the_predictor_service_in_its_namespace() -> None:
    monitor = build_service_monitor(name="iris", namespace="ml", labels=LABELS,
                                    selector={"modelship.io/deployment": "iris"}, owner=OWNER)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor"
    assert monitor["metadata"] == {"name": "iris", "namespace": "ml", "labels": LABELS,
                                   "ownerReferences": [OWNER]}
    assert monitor["spec"] == {
        "selector": {"matchLabels": {"modelship.io/deployment": "iris"}},
        "namespaceSelector": {"matchNames": ["ml"]},
        "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "15s"}],
    }


def test_the_prometheus_rule_carries_owner_labels_and_six_alerts() -> None:
    rule = build_prometheus_rule(name="iris", namespace="ml", labels=LABELS, owner=OWNER,
                                 thresholds=AlertThresholds())
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["ownerReferences"] == [OWNER]
    [group] = rule["spec"]["groups"]
    assert [r["alert"] for r in group["rules"]] == [
        "ModelshipHighErrorRate", "ModelshipHighLatencyP99", "ModelshipDataDrift",
        "ModelshipAnomalousOutputs", "ModelshipNoReadyReplicas", "ModelshipFineTuningFailed"]


def test_every_alert_routes_by_namespace_and_model_and_says_what_to_check() -> None:
    [group] = rule_groups(name="iris", namespace="ml", model="iris-v",
                          thresholds=AlertThresholds())
    for rule in group["rules"]:
        assert rule["labels"]["namespace"] == "ml"
        assert rule["labels"]["model"] == "iris-v"
        assert rule["labels"]["modeldeployment"] == "iris"
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert set(rule["annotations"]) == {"summary", "description", "runbook"}
        assert rule["for"] == "5m"


def test_every_expression_is_scoped_to_its_own_model() -> None:
    [group] = rule_groups(name="iris", namespace="ml", model="iris-v",
                          thresholds=AlertThresholds())
    for rule in group["rules"]:
        expr = rule["expr"]
        assert 'namespace="ml"' in expr, rule["alert"]
        assert ('model="iris-v"' in expr or 'deployment="iris-predictor"' in expr
                or 'model="iris"' in expr), rule["alert"]
        for selector in expr.split("{")[1:]:
            assert selector.startswith('namespace="ml"'), f"unscoped selector in {expr}"


def test_thresholds_appear_in_the_expressions() -> None:
    thresholds = AlertThresholds(error_rate=0.02, latency_p99_seconds=1.5, drift_psi=0.3,
                                 anomaly_rate=0.001, for_duration="10m", rate_window="2m")
    exprs = {r["alert"]: r["expr"] for r in rule_groups(name="iris", namespace="ml",
                                                        thresholds=thresholds)[0]["rules"]}
    assert exprs["ModelshipHighErrorRate"].endswith("> 0.02")
    assert exprs["ModelshipHighLatencyP99"].endswith("> 1.5")
    assert exprs["ModelshipDataDrift"].endswith("> 0.3")
    assert exprs["ModelshipAnomalousOutputs"].endswith("> 0.001")
    assert "[2m]" in exprs["ModelshipHighErrorRate"]
    assert "[1h]" in exprs["ModelshipFineTuningFailed"]


def test_a_long_for_stretches_the_fine_tuning_lookback_so_the_alert_can_fire() -> None:
    assert AlertThresholds(for_duration="45m").effective_finetune_lookback == "1h30m"
    assert AlertThresholds(for_duration="5m").effective_finetune_lookback == "1h"


def test_label_values_are_escaped_inside_selectors() -> None:
    [group] = rule_groups(name="iris", namespace="ml", model='we"ird',
                          thresholds=AlertThresholds())
    assert 'model="we\\"ird"' in group["rules"][0]["expr"]


def test_the_rules_file_is_yaml_with_the_same_groups() -> None:
    text = rules_file(name="iris", namespace="ml", thresholds=AlertThresholds())
    assert yaml.safe_load(text) == {"groups": rule_groups(name="iris", namespace="ml",
                                                          thresholds=AlertThresholds())}


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400),
                                               ("500ms", 0.5), ("1d", 86400)])
def test_prometheus_durations_are_parsed(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


def test_durations_format_back_to_the_shortest_form() -> None:
    assert [format_duration(s) for s in (1, 90, 3600, 5400, 0.2)] == [
        "1s", "1m30s", "1h", "1h30m", "1s"]


@pytest.mark.parametrize("change", [{"for_duration": "5 minutes"}, {"error_rate": 2.0},
                                    {"drift_psi": 0.0}, {"rate_window": ""}])
def test_bad_thresholds_are_refused_with_the_field_named(change: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(change))):
        AlertThresholds(**change)  # type: ignore[arg-type]
