"""Alerts are wired when Prometheus Operator is there, and missing it breaks nothing."""

from __future__ import annotations

import pytest

from tests.harness.controlplane import ControlPlane
from tests.integration.operator.conftest import REPO, get, wait_until
from tests.integration.operator.test_model_deployment import apply_md, condition, md_status

pytestmark = pytest.mark.cluster


def monitoring_condition(plane: ControlPlane, namespace: str, name: str) -> dict:
    return condition(md_status(plane, namespace, name), "Monitoring")


def test_without_prometheus_operator_a_condition_says_so_and_serving_goes_on(
    operator: ControlPlane, namespace: str
):
    if get(operator, "crd", "servicemonitors.monitoring.coreos.com"):
        pytest.skip("the Prometheus Operator CRDs are already installed in this session")
    apply_md(operator, namespace, "plain")

    cond = wait_until(lambda: monitoring_condition(operator, namespace, "plain"),
                      "a Monitoring condition")
    assert (cond["status"], cond["reason"]) == ("False", "PrometheusOperatorMissing")
    assert get(operator, "deployment", "plain-predictor", "-n", namespace)
    assert get(operator, "service", "plain-predictor", "-n", namespace)


def test_with_prometheus_operator_a_service_monitor_and_rules_are_created(
    operator: ControlPlane, namespace: str
):
    from modelship_operator.reconcile.handlers import STATE

    operator.kubectl("apply", "-f", str(REPO / "tests/fixtures/prometheus-operator-crds.yaml"))
    operator.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                     "crd/servicemonitors.monitoring.coreos.com",
                     "crd/prometheusrules.monitoring.coreos.com")
    STATE.context._discovered.clear()  # skip the discovery cache's minute

    apply_md(operator, namespace, "watched")

    monitor = wait_until(lambda: get(operator, "servicemonitor", "watched", "-n", namespace),
                         "the ServiceMonitor")
    rule = wait_until(lambda: get(operator, "prometheusrule", "watched", "-n", namespace),
                      "the PrometheusRule")
    assert monitor["spec"]["selector"]["matchLabels"]["modelship.io/deployment"] == "watched"
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert len(alerts) == 6
    cond = wait_until(
        lambda: (c := monitoring_condition(operator, namespace, "watched"))
        and c["status"] == "True" and c, "Monitoring=True")
    assert cond["reason"] == "AlertsConfigured"

    operator.kubectl("patch", "md", "watched", "-n", namespace, "--type=merge",
                     "-p", '{"spec": {"monitoring": {"enabled": false}}}')
    wait_until(lambda: get(operator, "servicemonitor", "watched", "-n", namespace) is None,
               "the ServiceMonitor to be removed when monitoring is switched off")
    assert get(operator, "prometheusrule", "watched", "-n", namespace) is None
