"""The Grafana dashboard shipped in the chart queries only metrics Modelship exports.

Every PromQL expression (panel targets and variable queries) is parsed twice,
by promql-parser and by Prometheus' own parser (promtool), after Grafana's
variables are filled in; every metric it names must be in contracts.md, and
must appear in what the real server (or, for ensemble panels, the real
router) exports after traffic. The alert rules are held to the same standard.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from modelship_operator.builders.monitoring import AlertThresholds, rule_groups
from tests.monitoring import promtool, serving_process

DASHBOARD = (Path(__file__).resolve().parents[2]
             / "charts" / "modelship" / "dashboards" / "modelship-models.json")

# Grafana's variables, filled in the way Grafana would before sending a query.
VARIABLES = {"$__rate_interval": "1m", "$namespace": "ml", "$model": "clf|iris",
             "$ensemble": ".*"}

# Sample names per contracts.md (histograms as their series, counters as exposed).
_HISTOGRAMS = ["modelship_request_duration_seconds", "modelship_batch_size"]
SERVER_SAMPLES = {
    "nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count",
    "nv_inference_exec_count", "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us", "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us", "nv_inference_compute_output_duration_us",
    "nv_inference_pending_request_count", "modelship_drift_score",
    "modelship_anomalous_outputs_total", "modelship_drift_window_samples",
    *(f"{h}{suffix}" for h in _HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")),
}
ROUTER_SAMPLES = {
    *(f"modelship_member_request_duration_seconds{s}" for s in ("_bucket", "_sum", "_count")),
    "modelship_member_request_failures_total",
}
# Alerts also read kube-state-metrics and the operator's fine-tuning counter.
OTHER_SOURCES = {"kube_deployment_status_replicas_available", "kube_deployment_spec_replicas",
                 "modelship_finetune_runs_total"}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def fill(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def panel_queries() -> list[str]:
    return [fill(t["expr"]) for p in panels(dashboard()["panels"]) for t in p.get("targets", [])]


def variable_queries() -> list[str]:
    """The selectors inside label_values(...) of the query variables."""
    selectors = []
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["query"]["query"])
        assert match, f"variable {variable['name']} is not a label_values() query"
        selectors.append(fill(match.group(1)))
    return selectors


def rule_queries() -> list[str]:
    [group] = rule_groups(name="clf", namespace="ml", thresholds=AlertThresholds())
    return [rule["expr"] for rule in group["rules"]]


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def metric_names(exprs: list[str]) -> set[str]:
    names = set()
    for expr in exprs:
        for selector in selectors(expr):
            assert selector.name, f"a selector without a metric name in {expr}"
            names.add(selector.name)
    return names


def test_the_dashboard_is_grafana_json_with_unique_panels() -> None:
    board = dashboard()
    assert board["uid"] == "modelship-models"
    ids = [p["id"] for p in panels(board["panels"])]
    assert len(ids) == len(set(ids))
    for panel in panels(board["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        assert 0 <= panel["gridPos"]["x"] and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


def test_the_dashboard_covers_what_an_operator_looks_at_first() -> None:
    titles = {p["title"] for p in panels(dashboard()["panels"])}
    assert {"Request rate", "Error rate", "Latency p50 / p99", "Queue vs compute time per request",
            "Batch size", "Drift (PSI) per feature", "Anomalous outputs",
            "Member latency p50 / p99"} <= titles


def test_prometheus_parses_every_query(tmp_path: Path) -> None:
    queries = panel_queries() + variable_queries()
    rules = tmp_path / "dashboard.rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": q} for i, q in enumerate(queries)]}]}))
    result = promtool.check_rules(rules)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_the_dashboard_reads_is_in_the_contract() -> None:
    used = metric_names(panel_queries() + variable_queries())
    assert used - (SERVER_SAMPLES | ROUTER_SAMPLES) == set()
    assert used & ROUTER_SAMPLES, "the ensemble panels read the router's metrics"


def test_every_query_is_scoped_to_the_chosen_namespace() -> None:
    for expr in panel_queries() + variable_queries()[1:]:
        for selector in selectors(expr):
            matchers = {(m.name, m.value) for m in selector.matchers.matchers}
            assert ("namespace", "ml") in matchers, f"{selector.name} unscoped in {expr}"


def test_every_metric_an_alert_reads_is_in_the_contract() -> None:
    assert metric_names(rule_queries()) - (SERVER_SAMPLES | OTHER_SOURCES) == set()


def exported_names(exposition: str) -> set[str]:
    # Names as they are on the wire, which is what Prometheus stores (prometheus_client's
    # own parser would add _total to Triton's counters).
    return {match.group(0) for line in exposition.splitlines()
            if (match := re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line))}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[serving_process.Server]:
    """The real server, after enough traffic that every series exists."""
    tmp_path = tmp_path_factory.mktemp("dashboard")
    repository = serving_process.write_repository(tmp_path / "repo")
    rows = serving_process.breast_cancer()[:256]
    with serving_process.running_server(repository, tmp_path / "server.log") as running:
        for start in range(0, len(rows), 32):
            running.infer(rows[start:start + 32])
        yield running


@pytest.mark.slow
def test_the_real_server_exports_every_server_metric_used(
        server: serving_process.Server) -> None:
    exposition = server.scrape()
    exported = exported_names(exposition)
    wanted = metric_names(panel_queries() + variable_queries() + rule_queries())
    server_side = wanted - ROUTER_SAMPLES - OTHER_SOURCES
    assert server_side - exported == set(), f"not exported:\n{exposition[:4000]}"
    assert SERVER_SAMPLES - exported == set(), "the server exports every name of the contract"


@pytest.mark.slow
def test_the_real_router_exports_every_router_metric_used(
        server: serving_process.Server, tmp_path: Path) -> None:
    from tests.router.harness import start_router

    members = [{"name": name, "url": server.http, "grpcUrl": server.grpc,
                "model": serving_process.MODEL} for name in ("first", "second")]
    router = start_router({"name": "pair", "strategy": "voting", "members": members}, tmp_path)
    try:
        rows = serving_process.breast_cancer()[:4]
        body = json.dumps({"inputs": [{"name": "input", "shape": list(rows.shape),
                                       "datatype": "FP32", "data": rows.ravel().tolist()}],
                           "outputs": [{"name": "label"}]}).encode()
        request = urllib.request.Request(f"http://{router.http_url}/v2/models/pair/infer",
                                         data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        status, exposition = router.get("/metrics", port=router.metrics_port)
        assert status == 200
    finally:
        router.terminate()

    exported = exported_names(exposition.decode())
    used = metric_names(panel_queries() + variable_queries()) & ROUTER_SAMPLES
    assert used and used - exported == set()
    assert ROUTER_SAMPLES - exported == set(), "the router exports every name of the contract"
