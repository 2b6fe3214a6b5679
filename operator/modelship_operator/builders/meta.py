"""Names, labels and owner references shared by every child Modelship builds.

Children are found again by these labels (never by listing everything), and
deleted with their owner by the garbage collector through the owner
reference.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

MANAGED_BY = "modelship"
OWNER_LABEL = "modelship.io/deployment"
ENSEMBLE_LABEL = "modelship.io/ensemble"
HASH_ANNOTATION = "modelship.io/desired-hash"
CONFIG_HASH_ANNOTATION = "modelship.io/config-hash"


def predictor_name(name: str) -> str:
    return f"{name}-predictor"


def config_map_name(name: str) -> str:
    return f"{name}-model-config"


def common_labels(owner: str, *, component: str, owner_label: str = OWNER_LABEL) -> dict[str, str]:
    """Labels on every child; the selector uses the last two only (they never change)."""
    return {
        "app.kubernetes.io/name": "modelship",
        "app.kubernetes.io/instance": owner,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        owner_label: owner,
    }


def selector_labels(
    owner: str, *, component: str, owner_label: str = OWNER_LABEL
) -> dict[str, str]:
    return {owner_label: owner, "app.kubernetes.io/component": component}


def owner_reference(body: dict[str, Any]) -> dict[str, Any]:
    """A controller owner reference to ``body`` (which must carry its uid)."""
    meta = body["metadata"]
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def digest(value: Any) -> str:
    """A short stable hash of a JSON-able value."""
    raw = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def stamp(child: dict[str, Any]) -> dict[str, Any]:
    """Record the hash of the desired object in its own annotations.

    The reconciler compares it with the live object's annotation to tell, with
    a read alone, whether the child already is what the spec asks for.
    """
    annotations = child["metadata"].setdefault("annotations", {})
    annotations.pop(HASH_ANNOTATION, None)
    annotations[HASH_ANNOTATION] = digest(child)
    return child
