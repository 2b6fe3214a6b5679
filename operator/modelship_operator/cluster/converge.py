"""Make one child equal to its desired manifest, writing only when it is not.

A read decides. The live child carries the hash of the manifest that made it
(see ``builders.meta.stamp``); when the hash matches and no other writer has
touched the object since we last looked, nothing is sent. When the hash
differs, the child is missing, or someone edited it by hand, the manifest is
server-side applied with ``force``, which takes the edited fields back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from modelship_operator.builders.children import Child
from modelship_operator.builders.meta import HASH_ANNOTATION
from modelship_operator.cluster.client import FIELD_MANAGER, KubeClient, resource_path

log = logging.getLogger(__name__)

# Writers whose changes to a child are expected and must not be undone:
# controllers maintain status and replicas through their subresources.
_SUBRESOURCES_OF_OTHERS = frozenset({"status", "scale"})
# The deployment controller records its revision in an annotation with a
# plain update; that is bookkeeping, not an edit of what we asked for.
_CONTROLLERS = frozenset({"kube-controller-manager"})


@dataclass
class SeenVersions:
    """resourceVersions of children already verified, so a check is done once each."""

    versions: dict[str, str] = field(default_factory=dict)

    def key(self, child: Child, namespace: str) -> str:
        return f"{child.kind.plural}/{namespace}/{child.name}"


def edited_by_someone_else(live: dict[str, Any]) -> bool:
    """Whether a writer other than the operator changed the spec after our last apply."""
    entries = live.get("metadata", {}).get("managedFields") or []
    ours = [e.get("time", "") for e in entries if e.get("manager") == FIELD_MANAGER]
    last_ours = max(ours, default="")
    for entry in entries:
        if entry.get("manager") == FIELD_MANAGER or entry.get("manager") in _CONTROLLERS:
            continue
        if entry.get("subresource") in _SUBRESOURCES_OF_OTHERS:
            continue
        # A plain update or another manager's forced apply: either way our
        # fields may have changed hands since we last applied.
        if entry.get("time", "") >= last_ours:
            return True
    return False


async def converge_child(
    client: KubeClient, child: Child, namespace: str, seen: SeenVersions
) -> str:
    """Bring one child to its desired state; return what was done (for logs and tests).

    Idempotent and safe to retry: every path ends with the child equal to the
    manifest (or absent), and repeating it with nothing changed sends no write.
    """
    path = resource_path(
        child.kind.api_version, child.kind.plural, namespace=namespace, name=child.name
    )
    key = seen.key(child, namespace)
    live = await client.get(path)

    if child.manifest is None:
        if live is None:
            return "absent"
        if not _owned_by_us(live):
            log.warning("Not deleting %s: it is not managed by Modelship.", key)
            return "foreign"
        await client.delete(path)
        seen.versions.pop(key, None)
        return "deleted"

    desired_hash = child.manifest["metadata"]["annotations"][HASH_ANNOTATION]
    if live is not None:
        live_hash = (live["metadata"].get("annotations") or {}).get(HASH_ANNOTATION)
        version = live["metadata"].get("resourceVersion", "")
        if live_hash == desired_hash and (
            seen.versions.get(key) == version or not edited_by_someone_else(live)
        ):
            seen.versions[key] = version
            return "unchanged"

    applied = await client.apply(path, child.manifest)
    seen.versions[key] = applied.get("metadata", {}).get("resourceVersion", "")
    return "created" if live is None else "updated"


def _owned_by_us(live: dict[str, Any]) -> bool:
    labels = live.get("metadata", {}).get("labels") or {}
    return labels.get("app.kubernetes.io/managed-by") == "modelship"
