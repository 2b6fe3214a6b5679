"""The argocd-cm snippet carries the current scripts, and the Application example fits.

Argo CD reads health checks only from its ConfigMap, so a snippet that lags
behind the Lua files would ship a check nobody tested.
"""

from __future__ import annotations

import subprocess
import sys

import yaml

from tests.unit.install.lua import health_script
from tests.unit.install.paths import ARGOCD, CHART, EXAMPLES, REPO

KEYS = {
    "resource.customizations.health.modelship.io_ModelDeployment": "modeldeployment-health.lua",
    "resource.customizations.health.modelship.io_ModelEnsemble": "modelensemble-health.lua",
}


def test_the_argocd_cm_snippet_embeds_each_health_script_verbatim():
    snippet = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())

    assert (snippet["kind"], snippet["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert set(snippet["data"]) == set(KEYS)
    for key, script in KEYS.items():
        assert snippet["data"][key] == health_script(script).read_text(), f"{key} is stale"


def test_the_snippet_builder_reports_it_is_current():
    done = subprocess.run(
        [sys.executable, str(ARGOCD / "build-argocd-cm.py"), "--check"],
        capture_output=True, text=True, timeout=60,
    )

    assert done.returncode == 0, done.stderr


def test_the_application_example_installs_this_chart_with_server_side_apply():
    docs = [d for d in yaml.safe_load_all((EXAMPLES / "application.yaml").read_text()) if d]
    apps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Application"}

    operator = apps["modelship"]
    source = operator["spec"]["source"]
    assert (REPO / source["path"]) == CHART
    # The CRDs are too large for client-side apply's last-applied annotation.
    assert "ServerSideApply=true" in operator["spec"]["syncPolicy"]["syncOptions"]
    for app in apps.values():
        assert app["apiVersion"] == "argoproj.io/v1alpha1"
        path = REPO / app["spec"]["source"]["path"]
        assert path.is_dir(), f"{app['metadata']['name']} points at a missing {path}"
