"""What the operator may do, written out once: the chart must grant exactly this.

The chart's templates and these tables are two statements of the same
least-privilege rules; the unit tests compare rendered RBAC with them and the
integration tests ask the API server (`kubectl auth can-i`) about each line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

READ = frozenset({"get", "list", "watch"})
MANAGE = READ | {"create", "patch", "delete"}

# (API group, resource) -> verbs, in every namespace the operator watches.
NAMESPACED: dict[tuple[str, str], frozenset[str]] = {
    ("modelship.io", "modeldeployments"): READ | {"patch"},
    ("modelship.io", "modelensembles"): READ | {"patch"},
    ("modelship.io", "modeldeployments/status"): frozenset({"get", "patch", "update"}),
    ("modelship.io", "modelensembles/status"): frozenset({"get", "patch", "update"}),
    ("modelship.io", "modeldeployments/scale"): frozenset({"get", "patch", "update"}),
    ("modelship.io", "modeldeployments/finalizers"): frozenset({"update"}),
    ("modelship.io", "modelensembles/finalizers"): frozenset({"update"}),
    ("apps", "deployments"): MANAGE,
    ("", "services"): MANAGE,
    ("", "configmaps"): MANAGE,
    ("", "pods"): READ,
    ("", "events"): frozenset({"create", "patch"}),
    ("events.k8s.io", "events"): frozenset({"create", "patch"}),
    ("autoscaling", "horizontalpodautoscalers"): MANAGE,
    ("policy", "poddisruptionbudgets"): MANAGE,
    ("batch", "jobs"): MANAGE,
    ("batch", "cronjobs"): MANAGE,
    ("monitoring.coreos.com", "servicemonitors"): MANAGE,
    ("monitoring.coreos.com", "prometheusrules"): MANAGE,
}

# Cluster-scoped reads Kopf makes in either mode.
CLUSTER_READS: dict[tuple[str, str], frozenset[str]] = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): READ,
    ("", "namespaces"): READ,
}

PEERING_VERBS = READ | {"patch"}
CLUSTER_PEERING = {("kopf.dev", "clusterkopfpeerings"): PEERING_VERBS}
NAMESPACED_PEERING = {("kopf.dev", "kopfpeerings"): PEERING_VERBS}

# What the operator must never be able to do: (verb, group, resource[/subresource]).
FORBIDDEN_EVERYWHERE: tuple[tuple[str, str, str], ...] = (
    ("get", "", "secrets"),
    ("list", "", "secrets"),
    ("watch", "", "secrets"),
    ("create", "", "pods"),
    ("delete", "", "pods"),
    ("create", "", "pods/exec"),
    ("create", "", "serviceaccounts/token"),
    ("create", "modelship.io", "modeldeployments"),
    ("update", "modelship.io", "modeldeployments"),
    ("delete", "modelship.io", "modeldeployments"),
    ("delete", "modelship.io", "modelensembles"),
    ("update", "apps", "deployments"),
    ("create", "apps", "daemonsets"),
    ("delete", "", "persistentvolumeclaims"),
    ("create", "rbac.authorization.k8s.io", "roles"),
    ("create", "rbac.authorization.k8s.io", "rolebindings"),
    ("impersonate", "", "serviceaccounts"),
)
# Cluster-scoped things it must never change (or, for nodes, even read).
FORBIDDEN_CLUSTER_SCOPED: tuple[tuple[str, str, str], ...] = (
    ("create", "", "namespaces"),
    ("delete", "", "namespaces"),
    ("patch", "", "namespaces"),
    ("create", "apiextensions.k8s.io", "customresourcedefinitions"),
    ("patch", "apiextensions.k8s.io", "customresourcedefinitions"),
    ("delete", "apiextensions.k8s.io", "customresourcedefinitions"),
    ("create", "rbac.authorization.k8s.io", "clusterroles"),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
    ("get", "", "nodes"),
    ("create", "admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    ("create", "kopf.dev", "clusterkopfpeerings"),
)


def flatten(rules: Iterable[dict[str, Any]]) -> dict[tuple[str, str], frozenset[str]]:
    """RBAC rules as (group, resource) -> verbs; names and URLs are not used by the chart."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return {key: frozenset(verbs) for key, verbs in out.items()}


def wildcards(rules: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Every `*` in the rules, described."""
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            if "*" in rule.get(field, []) or any("*" in v for v in rule.get(field, [])):
                yield f"{field} of {rule}"


def can_i_args(verb: str, group: str, resource: str) -> list[str]:
    """Arguments of `kubectl auth can-i` for a verb on a (group, resource[/sub]) pair."""
    name, _, sub = resource.partition("/")
    args = [verb, f"{name}.{group}" if group else name]
    return [*args, f"--subresource={sub}"] if sub else args
