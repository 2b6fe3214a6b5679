"""The chart's crds/ folder holds the same CRDs as crds/, byte for byte.

`kubectl apply -f crds/` and `helm install` must create the same API. The chart
adds Kopf's two peering CRDs, which are the framework's, not Modelship's;
scripts/sync-chart-crds.sh copies the rest.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.unit.install.paths import CHART, CRDS, REPO

SYNC = REPO / "scripts" / "sync-chart-crds.sh"
PEERING_CRDS = {"clusterkopfpeerings.kopf.dev.yaml", "kopfpeerings.kopf.dev.yaml"}


def test_every_crd_in_crds_is_in_the_chart_unchanged():
    repo_crds = {p.name: p.read_bytes() for p in CRDS.glob("*.yaml")}
    chart_crds = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}

    assert "modeldeployments.modelship.io.yaml" in repo_crds
    assert "modelensembles.modelship.io.yaml" in repo_crds
    drifted = sorted(n for n, body in repo_crds.items() if chart_crds.get(n) != body)
    assert not drifted, f"chart CRDs differ from crds/: {drifted}; run {SYNC.relative_to(REPO)}"


def test_the_chart_has_no_crd_beyond_crds_and_kopfs_peerings():
    extra = {p.name for p in (CHART / "crds").glob("*")} - {p.name for p in CRDS.glob("*")}

    assert extra == PEERING_CRDS


def test_the_peering_crds_define_kopfs_cluster_and_namespaced_kinds():
    found = {}
    for name in PEERING_CRDS:
        crd = yaml.safe_load((CHART / "crds" / name).read_text())
        found[crd["metadata"]["name"]] = (crd["spec"]["scope"], crd["spec"]["names"]["kind"])
        (version,) = crd["spec"]["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True

    assert found == {
        "clusterkopfpeerings.kopf.dev": ("Cluster", "ClusterKopfPeering"),
        "kopfpeerings.kopf.dev": ("Namespaced", "KopfPeering"),
    }


def test_the_sync_script_copies_changes_and_drops_stale_crds(tmp_path: Path):
    # A throwaway tree shaped like the repository, so the real one is never touched.
    (tmp_path / "scripts").mkdir()
    shutil.copy(SYNC, tmp_path / "scripts" / SYNC.name)
    shutil.copytree(CRDS, tmp_path / "crds")
    shutil.copytree(CHART / "crds", tmp_path / "charts" / "modelship" / "crds")
    chart_crds = tmp_path / "charts" / "modelship" / "crds"
    (tmp_path / "crds" / "modeldeployments.modelship.io.yaml").write_text("# changed\n")
    (chart_crds / "retired.modelship.io.yaml").write_text("# gone from crds/\n")

    done = subprocess.run(["bash", str(tmp_path / "scripts" / SYNC.name)],
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert (chart_crds / "modeldeployments.modelship.io.yaml").read_text() == "# changed\n"
    assert not (chart_crds / "retired.modelship.io.yaml").exists()
    assert PEERING_CRDS <= {p.name for p in chart_crds.iterdir()}
    assert "copied modeldeployments.modelship.io.yaml" in done.stdout
