"""Install the chart into the local control plane and ask what its account may do.

`kubectl auth can-i --as=system:serviceaccount:NS:SA` is the question a
cluster administrator asks; the API server answers it with the same RBAC
authorizer that judges the operator's requests, so a table of answers is
proof of what the chart grants.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tests.harness.controlplane import ControlPlane
from tests.unit.install.paths import CHART
from tests.unit.install.rbac import can_i_args

# (verb, group, resource[/sub], namespace or None for cluster scope)
Check = tuple[str, str, str, str | None]


@dataclass
class Release:
    """One `helm install` of the chart, in its own namespace."""

    plane: ControlPlane
    name: str
    namespace: str
    notes: str
    _served: frozenset[str] | None = field(default=None, repr=False)

    @property
    def service_account(self) -> str:
        return f"{self.name}-modelship"

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def can_i(self, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        """The API server's answer for the account; `kubectl auth can-i` where it can ask."""
        name = resource.partition("/")[0]
        if (f"{name}.{group}" if group else name) not in self.served():
            # kubectl cannot name a resource the server does not serve (the
            # Prometheus Operator's, here), so ask the authorizer directly.
            return self.review(verb, group, resource, namespace)
        scope = ["-n", namespace] if namespace else []
        done = self.plane.kubectl(
            "auth", "can-i", *can_i_args(verb, group, resource), *scope, f"--as={self.user}",
            check=False,
        )
        answer = done.stdout.strip()
        if answer not in ("yes", "no"):
            raise AssertionError(f"kubectl auth can-i said {answer!r}: {done.stderr}")
        return answer == "yes"

    def served(self) -> frozenset[str]:
        if self._served is None:
            done = self.plane.kubectl("api-resources", "--no-headers", "-o", "name")
            self._served = frozenset(done.stdout.split())
        return self._served

    def review(self, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        """One SubjectAccessReview for the account (see :meth:`reviews`)."""
        return self.reviews([(verb, group, resource, namespace)])[(verb, group, resource,
                                                                   namespace)]

    def reviews(self, checks: Iterable[Check]) -> dict[Check, bool]:
        """Many checks in one kubectl call: SubjectAccessReviews, as `can-i` sends them.

        The account's groups are the ones its tokens carry, so the authorizer
        judges exactly what it judges for the operator's own requests.
        """
        checks = list(checks)
        items = []
        for verb, group, resource, namespace in checks:
            name, _, sub = resource.partition("/")
            attributes = {"verb": verb, "group": group, "resource": name, "subresource": sub}
            if namespace:
                attributes["namespace"] = namespace
            items.append({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": self.user,
                    "groups": ["system:serviceaccounts",
                               f"system:serviceaccounts:{self.namespace}",
                               "system:authenticated"],
                    "resourceAttributes": attributes,
                },
            })
        done = self.plane.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": items}))
        results = {}
        for answer in _json_stream(done.stdout):
            attrs = answer["spec"]["resourceAttributes"]
            resource = attrs["resource"] + (f"/{attrs['subresource']}"
                                            if attrs.get("subresource") else "")
            key = (attrs["verb"], attrs.get("group", ""), resource, attrs.get("namespace"))
            results[key] = bool(answer["status"].get("allowed"))
        missing = [c for c in checks if c not in results]
        assert not missing, f"no answer for {missing}"
        return {c: results[c] for c in checks}

    def answers(self, checks: Iterable[Check]) -> dict[Check, bool]:
        """Every check answered by the API server; four kubectl processes at a time."""
        checks = list(checks)
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = pool.map(lambda c: self.can_i(*c), checks)
            return dict(zip(checks, results, strict=True))

    def deployment(self) -> dict[str, Any]:
        done = self.plane.kubectl("get", "deployment", self.service_account, "-n",
                                  self.namespace, "-o", "json")
        return json.loads(done.stdout)

    def uninstall(self) -> None:
        self.plane.helm("uninstall", self.name, "-n", self.namespace, "--wait=false",
                        check=False)


# Where a development node runs pods in the same session, an operator pod of these
# installs would start handling other tests' objects; no node carries this label.
NEVER_SCHEDULED = {"nodeSelector": {"modelship.io/test-never-scheduled": "true"}}


def install(plane: ControlPlane, namespace: str, values: dict[str, Any]) -> Release:
    """`helm install` with these values, its pods never scheduled (see NEVER_SCHEDULED).

    The CRDs come from the chart's crds/ on the first install in a session.
    """
    name = f"ms-{os.urandom(3).hex()}"
    values = {**NEVER_SCHEDULED, **values}
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(values, file)
        file.flush()
        done = plane.helm("install", name, str(CHART), "-n", namespace, "-f", file.name)
    return Release(plane=plane, name=name, namespace=namespace, notes=done.stdout)


def _json_stream(text: str) -> Iterator[dict[str, Any]]:
    """The objects of a stream of concatenated JSON documents (kubectl's -o json of a List)."""
    decoder, index = json.JSONDecoder(), 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            return
        obj, index = decoder.raw_decode(text, index)
        if obj.get("kind") == "List":
            yield from obj["items"]
        else:
            yield obj


def mismatches(answers: dict[Check, bool], expected: bool) -> list[str]:
    return [f"{verb} {group or 'core'}/{resource} in {ns or 'the cluster'}"
            for (verb, group, resource, ns), allowed in answers.items() if allowed != expected]
