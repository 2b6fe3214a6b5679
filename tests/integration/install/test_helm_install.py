"""`helm install` into the real local control plane, then RBAC checked by the API server.

Each install shape gets the whole table of what the operator needs (every verb
must be allowed) and of what it must not do (secrets, cluster-wide writes,
other namespaces in namespaced mode: every one must be refused). Needs and the
forbidden list are asked with `kubectl auth can-i --as=<the chart's account>`;
the exhaustive sweeps (every other verb on every granted resource, every need
in an unwatched namespace) go as SubjectAccessReviews in one request each.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from tests.harness.controlplane import ControlPlane
from tests.integration.install.release import (
    NEVER_SCHEDULED,
    Check,
    Release,
    install,
    mismatches,
)
from tests.unit.install import rbac
from tests.unit.install.paths import CHART

# Each test asks the API server a hundred or more questions, one kubectl each.
pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ALL_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
CRDS = ("modeldeployments.modelship.io", "modelensembles.modelship.io",
        "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev")


def needed(namespace: str, *, peering: dict | None = None) -> list[Check]:
    rules = {**rbac.NAMESPACED, **(peering or {})}
    return [(verb, group, resource, namespace)
            for (group, resource), verbs in rules.items() for verb in sorted(verbs)]


def cluster_reads() -> list[Check]:
    return [(verb, group, resource, None)
            for (group, resource), verbs in rbac.CLUSTER_READS.items() for verb in sorted(verbs)]


def beyond_the_grant(namespace: str) -> list[Check]:
    """Every verb the rules leave out on a resource they do name."""
    return [(verb, group, resource, namespace)
            for (group, resource), verbs in rbac.NAMESPACED.items()
            for verb in ALL_VERBS if verb not in verbs]


def forbidden(namespace: str) -> list[Check]:
    return [(v, g, r, namespace) for v, g, r in rbac.FORBIDDEN_EVERYWHERE]


def cluster_scoped_forbidden() -> list[Check]:
    return [(v, g, r, None) for v, g, r in rbac.FORBIDDEN_CLUSTER_SCOPED]


@pytest.fixture
def releases(control_plane: ControlPlane) -> Iterator[list[Release]]:
    made: list[Release] = []
    yield made
    for release in made:
        release.uninstall()


@pytest.fixture
def other_namespaces(control_plane: ControlPlane) -> Iterator[list[str]]:
    """Two more namespaces for this test, deleted afterwards."""
    names = [f"t-install-{os.urandom(3).hex()}" for _ in range(2)]
    for name in names:
        control_plane.kubectl("create", "namespace", name)
    yield names
    for name in names:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_the_default_install_grants_exactly_the_operators_work_in_every_namespace(
    control_plane: ControlPlane, namespace: str, releases: list[Release],
    other_namespaces: list[str],
):
    release = install(control_plane, namespace, {})
    releases.append(release)

    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                          *(f"crd/{name}" for name in CRDS))
    assert "helm test" in release.notes and "watches every namespace" in release.notes
    args = release.deployment()["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" in args

    elsewhere = other_namespaces[0]
    allowed = release.answers(needed(elsewhere) + cluster_reads())
    refused = release.answers(forbidden(elsewhere) + cluster_scoped_forbidden()
                              + [("patch", "kopf.dev", "clusterkopfpeerings", None)])
    refused |= release.reviews(beyond_the_grant(elsewhere))

    assert not mismatches(allowed, True), "the chart does not grant what the operator needs"
    assert not mismatches(refused, False), "the chart grants more than the operator needs"


def test_namespaced_mode_confines_the_account_to_the_watched_namespaces(
    control_plane: ControlPlane, namespace: str, releases: list[Release],
    other_namespaces: list[str],
):
    watched, unwatched = other_namespaces
    release = install(control_plane, namespace, {"watchNamespaces": [watched]})
    releases.append(release)

    allowed = release.answers(needed(watched) + cluster_reads())
    refused = release.answers(
        forbidden(watched) + cluster_scoped_forbidden()
        + [c for c in needed(unwatched) if c[0] in ("create", "patch", "list")]
    )
    refused |= release.reviews(needed(unwatched) + needed(namespace) + beyond_the_grant(watched))
    list_everywhere = control_plane.kubectl(
        "auth", "can-i", "list", "modeldeployments.modelship.io", "--all-namespaces",
        f"--as={release.user}", check=False,
    )

    assert not mismatches(allowed, True)
    assert not mismatches(refused, False)
    assert list_everywhere.stdout.strip() == "no"
    assert f"watches the namespaces {watched}" in release.notes


def test_two_replicas_get_a_peering_object_they_may_patch_but_not_create(
    control_plane: ControlPlane, namespace: str, releases: list[Release],
):
    peering = f"t-peering-{os.urandom(3).hex()}"
    release = install(control_plane, namespace, {"replicas": 2, "peering": {"name": peering}})
    releases.append(release)

    found = json.loads(control_plane.kubectl(
        "get", "clusterkopfpeering", peering, "-o", "json").stdout)
    deployment = release.deployment()
    answers = release.answers([
        ("patch", "kopf.dev", "clusterkopfpeerings", None),
        ("watch", "kopf.dev", "clusterkopfpeerings", None),
        ("create", "kopf.dev", "clusterkopfpeerings", None),
        ("delete", "kopf.dev", "clusterkopfpeerings", None),
    ])

    assert found["metadata"]["labels"]["app.kubernetes.io/instance"] == release.name
    assert deployment["spec"]["replicas"] == 2
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--peering={peering}" in args
    control_plane.kubectl("get", "poddisruptionbudget", release.service_account, "-n", namespace)
    assert [allowed for allowed in answers.values()] == [True, True, False, False]

    release.uninstall()
    releases.remove(release)
    gone = control_plane.kubectl("get", "clusterkopfpeering", peering, check=False)
    assert gone.returncode != 0 or "deletionTimestamp" in gone.stdout


def test_the_rendered_chart_applies_with_kubectl_alone(
    control_plane: ControlPlane, namespace: str,
):
    name = f"ms-{os.urandom(3).hex()}"
    rendered = control_plane.helm("template", name, str(CHART), "-n", namespace,
                                  "--include-crds", "--skip-tests", "--set-json",
                                  f"nodeSelector={json.dumps(NEVER_SCHEDULED['nodeSelector'])}",
                                  ).stdout
    try:
        control_plane.kubectl("apply", "--server-side", "-f", "-", input=rendered)

        deployment = json.loads(control_plane.kubectl(
            "get", "deployment", f"{name}-modelship", "-n", namespace, "-o", "json").stdout)
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == f"{name}-modelship"
        assert "helm.sh/hook" not in rendered, "the helm test Pod is for Helm only"
    finally:
        control_plane.kubectl("delete", "clusterrole,clusterrolebinding", f"{name}-modelship",
                              check=False)
