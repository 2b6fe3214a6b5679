"""promtool proves the generated alerts: valid rules, and each fires only when it should.

Every alert gets synthetic series on which it fires and series on which it
stays silent, including a neighbouring model or Deployment in trouble (the
expressions must be scoped to their own model).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from modelship_operator.builders.monitoring import AlertThresholds, rule_groups, rules_file
from tests.monitoring import promtool

NAME, NAMESPACE = "iris", "ml"
SEL = f'namespace="{NAMESPACE}",model="{NAME}"'
OTHER = f'namespace="{NAMESPACE}",model="other"'
PREDICTOR = f'namespace="{NAMESPACE}",deployment="{NAME}-predictor"'


def series(name: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": values}


def latency(labels: str, in_bucket: dict[str, str]) -> list[dict[str, str]]:
    metric = "modelship_request_duration_seconds_bucket"
    return [series(metric, f'{labels},protocol="http",le="{le}"', values)
            for le, values in in_bucket.items()]


# alert -> (series on which it fires, rendered $value, series on which it stays silent)
CASES: dict[str, tuple[list[dict[str, str]], str, list[dict[str, str]]]] = {
    "ModelshipHighErrorRate": (
        [series("nv_inference_request_success", SEL, "0+540x30"),      # 9/s
         series("nv_inference_request_failure", SEL, "0+60x30")],      # 1/s: 10%
        "10%",
        [series("nv_inference_request_success", SEL, "0+540x30"),
         series("nv_inference_request_failure", SEL, "0+1x30"),        # 0.2%
         series("nv_inference_request_success", OTHER, "0+60x30"),
         series("nv_inference_request_failure", OTHER, "0+600x30")],
    ),
    "ModelshipHighLatencyP99": (
        latency(SEL, {"0.1": "0x30", "0.5": "0x30", "1": "0+10x30", "+Inf": "0+10x30"}),
        "995ms",
        latency(SEL, {"0.1": "0+10x30", "0.5": "0+10x30", "1": "0+10x30", "+Inf": "0+10x30"})
        + latency(OTHER, {"0.1": "0x30", "0.5": "0x30", "1": "0x30", "+Inf": "0+10x30"}),
    ),
    "ModelshipDataDrift": (
        [series("modelship_drift_score", f'{SEL},version="1",tensor="x",feature="0"', "0.05x30"),
         series("modelship_drift_score", f'{SEL},version="1",tensor="x",feature="1"',
                "0.05x5 0.35x25")],
        "0.35",
        [series("modelship_drift_score", f'{SEL},version="1",tensor="x",feature="0"', "0.1x30"),
         series("modelship_drift_score", f'{OTHER},version="1",tensor="x",feature="0"',
                "0.9x30")],
    ),
    "ModelshipAnomalousOutputs": (
        [series("nv_inference_count", f'{SEL},version="1"', "0+600x30"),     # 10 rows/s
         series("modelship_anomalous_outputs_total", f'{SEL},version="1",tensor="y",kind="nan"',
                "0+12x30"),                                                   # 2%
         series("modelship_anomalous_outputs_total", f'{SEL},version="1",tensor="y",kind="inf"',
                "0x30")],
        "2%",
        [series("nv_inference_count", f'{SEL},version="1"', "0+600x30"),
         series("modelship_anomalous_outputs_total", f'{SEL},version="1",tensor="y",kind="nan"',
                "0+3x30"),                                                    # 0.5%
         series("nv_inference_count", f'{OTHER},version="1"', "0+60x30"),
         series("modelship_anomalous_outputs_total", f'{OTHER},version="1",tensor="y",kind="nan"',
                "0+60x30")],
    ),
    "ModelshipNoReadyReplicas": (
        [series("kube_deployment_status_replicas_available", PREDICTOR, "0x30"),
         series("kube_deployment_spec_replicas", PREDICTOR, "2x30")],
        "0",
        [series("kube_deployment_status_replicas_available", PREDICTOR, "1x30"),
         series("kube_deployment_spec_replicas", PREDICTOR, "2x30"),
         series("kube_deployment_status_replicas_available",
                f'namespace="{NAMESPACE}",deployment="other-predictor"', "0x30"),
         series("kube_deployment_spec_replicas",
                f'namespace="{NAMESPACE}",deployment="other-predictor"', "1x30")],
    ),
    "ModelshipFineTuningFailed": (
        [series("modelship_finetune_runs_total", f'{SEL},outcome="failed"', "0x5 1x25"),
         series("modelship_finetune_runs_total", f'{SEL},outcome="succeeded"', "0x30")],
        "1",
        [series("modelship_finetune_runs_total", f'{SEL},outcome="failed"', "0x30"),
         series("modelship_finetune_runs_total", f'{SEL},outcome="succeeded"', "0+1x30"),
         series("modelship_finetune_runs_total", f'{OTHER},outcome="failed"', "0x5 1x25")],
    ),
}


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "modelship.rules.yaml"
    path.write_text(rules_file(name=NAME, namespace=NAMESPACE, thresholds=AlertThresholds()))
    return path


def annotations_of(alert: str) -> dict[str, str]:
    [group] = rule_groups(name=NAME, namespace=NAMESPACE, thresholds=AlertThresholds())
    [rule] = [r for r in group["rules"] if r["alert"] == alert]
    return rule["annotations"]


def expected_alert(alert: str, value: str) -> dict[str, Any]:
    severity = {"ModelshipHighErrorRate": "critical", "ModelshipNoReadyReplicas": "critical"}
    labels = {"severity": severity.get(alert, "warning"), "namespace": NAMESPACE,
              "model": NAME, "modeldeployment": NAME}
    if alert == "ModelshipNoReadyReplicas":
        labels["deployment"] = f"{NAME}-predictor"  # the series' own label survives `and`
    rendered = {key: re.sub(r"\{\{.*?\}\}", value, text)
                for key, text in annotations_of(alert).items()}
    return {"exp_labels": labels, "exp_annotations": rendered}


def assert_passes(result: Any) -> None:
    assert result.returncode == 0, f"promtool failed:\n{result.stdout}\n{result.stderr}"


def test_promtool_accepts_the_generated_rules(rules: Path) -> None:
    result = promtool.check_rules(rules)
    assert_passes(result)
    assert "SUCCESS: 6 rules found" in result.stdout


def test_every_alert_has_a_case() -> None:
    [group] = rule_groups(name=NAME, namespace=NAMESPACE, thresholds=AlertThresholds())
    assert {rule["alert"] for rule in group["rules"]} == set(CASES)


@pytest.mark.parametrize("alert", sorted(CASES))
def test_the_alert_fires_on_its_symptom_and_not_on_healthy_series(alert: str,
                                                                  rules: Path) -> None:
    firing, value, healthy = CASES[alert]
    result = promtool.test_rules(rules, [
        {"interval": "1m", "input_series": firing, "alert_rule_test": [
            {"eval_time": "25m", "alertname": alert,
             "exp_alerts": [expected_alert(alert, value)]}]},
        {"interval": "1m", "input_series": healthy, "alert_rule_test": [
            {"eval_time": "25m", "alertname": alert, "exp_alerts": []}]},
    ])
    assert_passes(result)


def test_an_alert_waits_for_its_for_duration(rules: Path) -> None:
    # The drift case turns bad at minute 6; with `for: 5m` it fires from minute 11.
    firing, value, _ = CASES["ModelshipDataDrift"]
    result = promtool.test_rules(rules, [
        {"interval": "1m", "input_series": firing, "alert_rule_test": [
            {"eval_time": "9m", "alertname": "ModelshipDataDrift", "exp_alerts": []},
            {"eval_time": "12m", "alertname": "ModelshipDataDrift",
             "exp_alerts": [expected_alert("ModelshipDataDrift", value)]}]},
    ])
    assert_passes(result)


def test_a_failed_fine_tuning_alert_resolves_after_its_lookback(rules: Path) -> None:
    firing, _, _ = CASES["ModelshipFineTuningFailed"]
    long_run = [dict(s, values=s["values"].replace("x25", "x90")) for s in firing]
    result = promtool.test_rules(rules, [
        {"interval": "1m", "input_series": long_run, "alert_rule_test": [
            {"eval_time": "90m", "alertname": "ModelshipFineTuningFailed", "exp_alerts": []}]},
    ])
    assert_passes(result)


def test_thresholds_and_for_come_from_the_spec(tmp_path: Path) -> None:
    # A stricter error threshold and a shorter `for`: the 0.2% case now fires.
    thresholds = AlertThresholds(error_rate=0.001, for_duration="2m")
    path = tmp_path / "strict.rules.yaml"
    path.write_text(rules_file(name=NAME, namespace=NAMESPACE, thresholds=thresholds))
    [group] = rule_groups(name=NAME, namespace=NAMESPACE, thresholds=thresholds)
    [rule] = [r for r in group["rules"] if r["alert"] == "ModelshipHighErrorRate"]
    summary = rule["annotations"]["summary"].replace(
        "{{ $value | humanizePercentage }}", "0.1848%")
    _, _, healthy = CASES["ModelshipHighErrorRate"]
    result = promtool.test_rules(path, [
        {"interval": "1m", "input_series": healthy, "alert_rule_test": [
            {"eval_time": "8m", "alertname": "ModelshipHighErrorRate", "exp_alerts": [
                {"exp_labels": {"severity": "critical", "namespace": NAMESPACE, "model": NAME,
                                "modeldeployment": NAME},
                 "exp_annotations": dict(rule["annotations"], summary=summary)}]}]},
    ])
    assert_passes(result)
    assert all(r["for"] == "2m" for r in group["rules"])
