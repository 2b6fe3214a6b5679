"""Bad values stop `helm template`/`install` with a message that names the field.

values.schema.json is the chart's edge: Helm checks it before rendering, so a
user learns about a typo at install time, not from a crash-looping operator.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.install.chart import HelmFailed, template
from tests.unit.install.paths import CHART


@pytest.mark.parametrize("values,field,complaint", [
    ({"replicas": 0}, "/replicas", "minimum"),
    ({"replicas": "two"}, "/replicas", "want integer"),
    ({"image": {"registry": ""}}, "/image/registry", "minLength"),
    ({"image": {"registry": "Registry.Example.com/ML"}}, "/image/registry", "does not match"),
    ({"image": {"registry": "r.example.com", "tag": "v1 beta"}}, "/image/tag", "does not match"),
    ({"image": {"registry": "r.example.com", "pullPolicy": "Sometimes"}}, "/image/pullPolicy",
     "must be one of"),
    ({"watchNamespaces": ["ML_Team"]}, "/watchNamespaces/0", "does not match"),
    ({"watchNamespaces": ["a", "a"]}, "/watchNamespaces", "items at 0 and 1 are equal"),
    ({"watchNamespaces": "ml-team-a"}, "/watchNamespaces", "want array"),
    ({"monitoring": {"enabled": "yes"}}, "/monitoring/enabled", "want boolean"),
    ({"monitoring": {"serviceMonitor": {"interval": "soon"}}},
     "/monitoring/serviceMonitor/interval", "does not match"),
    ({"resources": {"limits": {"memory": "lots"}}}, "/resources/limits/memory", "lots"),
    ({"metrics": {"port": 70000, "path": "/metrics"}}, "/metrics/port", "maximum"),
    ({"health": {"port": 8080, "path": "healthz"}}, "/health/path", "does not match"),
    ({"peering": {"name": "Not Valid"}}, "/peering/name", "does not match"),
    ({"extraArgs": ["verbose"]}, "/extraArgs/0", "does not match"),
    ({"extraEnv": [{"value": "x"}]}, "/extraEnv/0", "missing property 'name'"),
    ({"replica": 2}, "", "additional properties 'replica' not allowed"),
    ({"monitoring": {"servicemonitor": {}}}, "/monitoring",
     "additional properties 'servicemonitor' not allowed"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_bad_value_is_refused_naming_the_field(values: dict, field: str, complaint: str):
    with pytest.raises(HelmFailed) as refused:
        template(values)

    assert "schema" in refused.value.stderr
    assert f"at '{field}'" in refused.value.stderr
    assert complaint in refused.value.stderr


def test_the_same_port_for_health_and_metrics_is_refused_with_both_named():
    with pytest.raises(HelmFailed) as refused:
        template({"metrics": {"port": 8080, "path": "/metrics"}})

    assert "health.port and metrics.port must differ" in refused.value.stderr


def test_a_missing_service_account_name_is_refused_when_the_chart_does_not_create_one():
    with pytest.raises(HelmFailed) as refused:
        template({"serviceAccount": {"create": False}})

    assert "serviceAccount.name is required" in refused.value.stderr


@pytest.mark.parametrize("values", [
    {"resources": {"requests": {"cpu": 0.5, "memory": "1.5Gi"}, "limits": {"cpu": "2"}}},
    {"image": {"registry": "localhost:5000/mirror/modelship", "tag": "0.1.0-rc.1"}},
    {"watchNamespaces": ["a", "team-b-2"], "replicas": 3},
    {"extraArgs": ["--verbose"], "extraEnv": [{"name": "LOG_LEVEL", "value": "debug"}]},
    {"global": {"imageRegistry": "ignored"}},
], ids=["quantities", "registry-with-port", "namespaces", "extras", "global"])
def test_good_unusual_values_are_accepted(values: dict):
    assert template(values).one("Deployment")


def test_every_default_value_is_described_by_the_schema():
    schema = json.loads((CHART / "values.schema.json").read_text())
    import yaml

    defaults = yaml.safe_load((CHART / "values.yaml").read_text())

    assert schema["additionalProperties"] is False
    assert set(defaults) <= set(schema["properties"])


def test_the_schema_is_valid_json_schema():
    from jsonschema import Draft7Validator

    schema = json.loads(Path(CHART / "values.schema.json").read_text())
    Draft7Validator.check_schema(schema)
