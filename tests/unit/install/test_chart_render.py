"""`helm lint` and `helm template` of the chart, for the default and the other shapes.

Each shape a user picks by values (all namespaces or a listed few, monitoring on
or off, one replica or peers) is rendered and checked for what it must and must
not contain; the RBAC is compared with the tables in rbac.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.unit.install import rbac
from tests.unit.install.chart import Rendered, helm, template
from tests.unit.install.paths import CHART, EXAMPLES

SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"
NAMESPACED = {"watchNamespaces": ["ml-team-a", "ml-team-b"]}
HA = {"replicas": 2}


def args_of(rendered: Rendered) -> list[str]:
    return rendered.operator_container()["args"]


def env_of(rendered: Rendered) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in rendered.operator_container()["env"]}


def all_rules(rendered: Rendered) -> list[dict]:
    return [r for kind in ("ClusterRole", "Role") for m in rendered.of_kind(kind)
            for r in m["rules"]]


# -- lint -----------------------------------------------------------------

@pytest.mark.parametrize("values", [
    [],
    ["--set", "watchNamespaces={ml-team-a,ml-team-b}"],
    ["--set", "replicas=3", "--set", "monitoring.enabled=false"],
], ids=["default", "namespaced", "ha-without-monitoring"])
def test_helm_lint_passes_strictly(values: list[str]):
    done = helm("lint", "--strict", str(CHART), *values)

    assert "0 chart(s) failed" in done.stdout


# -- default --------------------------------------------------------------

def test_the_default_install_watches_every_namespace_with_one_standalone_replica():
    rendered = template()

    dashboards = {"ConfigMap"} if list((CHART / "dashboards").glob("*.json")) else set()
    assert rendered.kinds() == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                                "Service", "Deployment", "Pod"} | dashboards
    deployment = rendered.one("Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert args_of(rendered) == ["run", "--all-namespaces",
                                 "--liveness=http://0.0.0.0:8080/healthz",
                                 "--log-format=json"]


def test_the_probes_call_kopfs_health_endpoint_on_its_named_port():
    container = template().operator_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    assert ports == {"http-health": 8080, "http-metrics": 9090}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http-health"}


def test_the_operator_pod_runs_unprivileged_on_a_read_only_root():
    rendered = template()
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    container = rendered.operator_container()

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_the_metrics_service_selects_only_the_operator_pods():
    rendered = template()
    service = rendered.one("Service")
    pod_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    test_pod_labels = rendered.one("Pod")["metadata"]["labels"]

    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
        "http-metrics": 9090, "http-health": 8080}
    selector = service["spec"]["selector"].items()
    assert selector <= pod_labels.items()
    assert not selector <= test_pod_labels.items()


def test_one_setting_names_every_modelship_image():
    rendered = template({"image": {"registry": "registry.example.com/ml", "tag": "1.4.2"},
                         "tritonImage": "registry.example.com/nvidia/tritonserver:25.10-py3"})

    assert rendered.operator_container()["image"] == (
        "registry.example.com/ml/modelship-operator:1.4.2")
    assert rendered.one("Pod")["spec"]["containers"][0]["image"] == (
        "registry.example.com/ml/modelship-operator:1.4.2")
    env = env_of(rendered)
    assert env["MODELSHIP_IMAGE_REGISTRY"] == "registry.example.com/ml"
    assert env["MODELSHIP_IMAGE_TAG"] == "1.4.2"
    assert env["MODELSHIP_TRITON_IMAGE"] == "registry.example.com/nvidia/tritonserver:25.10-py3"
    assert env["MODELSHIP_METRICS_PORT"] == "9090"


def test_the_image_tag_defaults_to_the_charts_app_version():
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    env = env_of(template())

    assert env["MODELSHIP_IMAGE_TAG"] == app_version
    assert "MODELSHIP_TRITON_IMAGE" not in env


def test_the_helm_test_hook_checks_health_and_metrics_through_the_service():
    pod = template(namespace="ops").one("Pod")

    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["automountServiceAccountToken"] is False
    script = pod["spec"]["containers"][0]["args"][0]
    assert "http://modelship.ops.svc:8080/healthz" in script
    assert "http://modelship.ops.svc:9090/metrics" in script
    compile(script, "helm-test", "exec")


# -- RBAC -----------------------------------------------------------------

def test_cluster_wide_rbac_grants_exactly_the_operators_rules():
    rendered = template()
    (role,) = rendered.of_kind("ClusterRole")
    binding = rendered.one("ClusterRoleBinding")

    assert rbac.flatten(role["rules"]) == {**rbac.CLUSTER_READS, **rbac.NAMESPACED}
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "modelship",
                                    "namespace": "modelship-system"}]
    assert not rendered.of_kind("Role")


@pytest.mark.parametrize("values", [{}, NAMESPACED, HA, {**NAMESPACED, **HA}],
                         ids=["default", "namespaced", "ha", "namespaced-ha"])
def test_no_rule_uses_a_wildcard_or_touches_secrets(values: dict):
    rules = all_rules(template(values))

    assert not list(rbac.wildcards(rules))
    assert not [key for key in rbac.flatten(rules) if key[1].startswith("secrets")]


def test_namespaced_mode_grants_a_role_per_namespace_and_only_reads_cluster_wide():
    rendered = template(NAMESPACED)

    (cluster_role,) = rendered.of_kind("ClusterRole")
    assert rbac.flatten(cluster_role["rules"]) == rbac.CLUSTER_READS
    roles = {r["metadata"]["namespace"]: r for r in rendered.of_kind("Role")}
    assert set(roles) == {"ml-team-a", "ml-team-b"}
    for role in roles.values():
        assert rbac.flatten(role["rules"]) == rbac.NAMESPACED
    bindings = {b["metadata"]["namespace"]: b for b in rendered.of_kind("RoleBinding")}
    assert set(bindings) == set(roles)
    for binding in bindings.values():
        assert binding["subjects"][0]["namespace"] == "modelship-system"
    assert args_of(rendered)[:3] == ["run", "--namespace=ml-team-a", "--namespace=ml-team-b"]
    assert "--all-namespaces" not in args_of(rendered)


def test_rbac_can_be_left_to_the_cluster_administrator():
    rendered = template({"rbac": {"create": False}, "serviceAccount": {"create": False,
                                                                       "name": "ops-granted"}})

    assert not rendered.kinds() & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                                   "ServiceAccount"}
    spec = rendered.one("Deployment")["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "ops-granted"


# -- high availability ----------------------------------------------------

def test_two_replicas_run_as_kopf_peers_in_a_cluster_peering():
    rendered = template(HA)

    assert rendered.one("Deployment")["spec"]["replicas"] == 2
    assert rendered.one("Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "--peering=modelship" in args_of(rendered)
    peering = rendered.one("ClusterKopfPeering")
    assert (peering["apiVersion"], peering["metadata"]["name"]) == ("kopf.dev/v1", "modelship")
    assert rendered.one("PodDisruptionBudget")["spec"]["minAvailable"] == 1
    env = rendered.operator_container()["env"]
    assert {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in env
    (role,) = rendered.of_kind("ClusterRole")
    assert rbac.flatten(role["rules"]) == {**rbac.CLUSTER_READS, **rbac.NAMESPACED,
                                           **rbac.CLUSTER_PEERING}


def test_namespaced_peers_meet_in_a_peering_object_in_each_namespace():
    rendered = template({**NAMESPACED, **HA, "peering": {"name": "ops"}})

    peerings = rendered.of_kind("KopfPeering")
    assert {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings} == {
        ("ml-team-a", "ops"), ("ml-team-b", "ops")}
    assert not rendered.of_kind("ClusterKopfPeering")
    for role in rendered.of_kind("Role"):
        assert rbac.flatten(role["rules"]) == {**rbac.NAMESPACED, **rbac.NAMESPACED_PEERING}
    (cluster_role,) = rendered.of_kind("ClusterRole")
    assert rbac.flatten(cluster_role["rules"]) == rbac.CLUSTER_READS


def test_a_single_replica_has_no_peering_and_no_disruption_budget():
    rendered = template()

    assert not rendered.kinds() & {"ClusterKopfPeering", "KopfPeering", "PodDisruptionBudget"}


# -- monitoring -----------------------------------------------------------

def test_the_service_monitor_appears_only_where_prometheus_operator_is_served():
    without = template()
    with_api = template(api_versions=[SERVICE_MONITOR_API])

    assert "ServiceMonitor" not in without.kinds()
    monitor = with_api.one("ServiceMonitor")
    assert monitor["spec"]["endpoints"] == [{"port": "http-metrics", "path": "/metrics",
                                             "interval": "30s", "scrapeTimeout": "10s",
                                             "honorLabels": True}]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["modelship-system"]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        with_api.one("Service")["metadata"]["labels"].items())


def test_monitoring_off_drops_the_service_monitor_and_dashboards(tmp_path: Path):
    chart = chart_with_dashboard(tmp_path)
    rendered = template({"monitoring": {"enabled": False}}, chart=chart,
                        api_versions=[SERVICE_MONITOR_API])

    assert not rendered.kinds() & {"ServiceMonitor", "ConfigMap"}
    # The operator still exports metrics; only their consumers go.
    assert rendered.one("Service")


def test_every_dashboard_file_lands_in_the_labelled_configmap(tmp_path: Path):
    chart = chart_with_dashboard(tmp_path)
    expected = {p.name: p.read_text() for p in (chart / "dashboards").glob("*.json")}

    configmap = template(chart=chart).one("ConfigMap")

    assert configmap["metadata"]["name"] == "modelship-dashboards"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert {k: v.rstrip("\n") for k, v in configmap["data"].items()} == {
        k: v.rstrip("\n") for k, v in expected.items()}


def chart_with_dashboard(tmp_path: Path) -> Path:
    """A copy of the chart with one more dashboard, so the template has input either way."""
    chart = tmp_path / "modelship"
    shutil.copytree(CHART, chart)
    (chart / "dashboards").mkdir(exist_ok=True)
    (chart / "dashboards" / "zz-test.json").write_text('{"title": "Test", "panels": []}\n')
    return chart


# -- examples -------------------------------------------------------------

def test_the_argocd_application_values_pass_the_chart_schema():
    docs = yaml.safe_load_all((EXAMPLES / "application.yaml").read_text())
    app = next(d for d in docs if d and d["metadata"]["name"] == "modelship")
    values = app["spec"]["source"]["helm"]["valuesObject"]

    rendered = template(values, namespace=app["spec"]["destination"]["namespace"])

    assert rendered.one("Deployment")["spec"]["replicas"] == values["replicas"]


# -- the operator's command line --------------------------------------------

@pytest.mark.parametrize("values", [{}, NAMESPACED, HA, {**NAMESPACED, **HA}],
                         ids=["default", "namespaced", "ha", "namespaced-ha"])
def test_the_operators_own_parser_accepts_the_arguments_the_chart_passes(values: dict):
    from modelship_operator.cli import build_parser

    rendered = template(values)
    container = rendered.operator_container()
    assert container["command"] == ["modelship"]

    parsed = build_parser().parse_args(container["args"])

    assert parsed.verb == "run"
    assert parsed.liveness == "http://0.0.0.0:8080/healthz"
    assert parsed.namespace == (values.get("watchNamespaces") or None)
    assert parsed.all_namespaces is not bool(values.get("watchNamespaces"))
    assert parsed.peering == ("modelship" if values.get("replicas", 1) > 1 else None)


# -- NOTES ------------------------------------------------------------------

def notes(*values: str) -> str:
    done = helm("install", "modelship", str(CHART), "--dry-run=client", "-n", "ops", *values)
    return done.stdout.partition("NOTES:")[2]


def test_the_notes_tell_what_to_run_next_for_the_release_at_hand():
    text = notes()

    assert "watches every namespace" in text
    assert "kubectl -n ops rollout status deployment/modelship" in text
    assert "helm test modelship -n ops" in text
    assert "kubectl wait" in text and "condition=Ready" in text
    assert "No ServiceMonitor was created" in text
    assert "argocd-cm.yaml" in text


def test_the_notes_describe_namespaced_peers_and_stay_quiet_about_monitoring_when_off():
    text = notes("--set", "watchNamespaces={ml-a,ml-b}", "--set", "replicas=2",
                 "--set", "monitoring.enabled=false")

    assert "watches the namespaces ml-a, ml-b, as 2 Kopf peers" in text
    assert "in one of the watched namespaces" in text
    assert "ServiceMonitor" not in text and "dashboards" not in text
