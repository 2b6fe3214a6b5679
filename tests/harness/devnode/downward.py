"""The downward API and references to ConfigMaps and Secrets, as the kubelet resolves them.

Shared by environment variables and by ``downwardAPI``/``projected`` volumes,
so both read a field the same way. Values the kubelet would refuse to start
a container over (a missing ConfigMap that is not optional, an unknown field
path) raise :class:`ContainerConfigError`, which becomes the container's
``CreateContainerConfigError`` waiting reason until it is fixed.
"""

from __future__ import annotations

import base64
import math
import re
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from tests.harness.devnode.kubeapi import JSON, KubeApi, KubeApiError

_INDEXED = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ContainerConfigError(RuntimeError):
    """A container's configuration cannot be resolved (yet)."""


class ObjectSource:
    """Reads ConfigMaps and Secrets of one namespace, each at most once per pod start."""

    def __init__(self, api: KubeApi, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self._cache: dict[tuple[str, str], JSON | None] = {}

    async def _read(self, kind: str, name: str) -> JSON | None:
        key = (kind, name)
        if key not in self._cache:
            path = f"/api/v1/namespaces/{self.namespace}/{kind}/{name}"
            try:
                self._cache[key] = await self.api.get(path)
            except KubeApiError as exc:
                if not exc.not_found:
                    raise ContainerConfigError(f"reading {kind[:-1]} {name!r}: {exc}") from exc
                self._cache[key] = None
        return self._cache[key]

    async def data(self, kind: str, name: str, *, optional: bool) -> dict[str, bytes] | None:
        """Every key of a ConfigMap (``kind='configmaps'``) or Secret, decoded to bytes."""
        obj = await self._read(kind, name)
        if obj is None:
            if optional:
                return None
            singular = "configmap" if kind == "configmaps" else "secret"
            raise ContainerConfigError(f'{singular} "{name}" not found')
        out: dict[str, bytes] = {}
        if kind == "secrets":
            for key, value in (obj.get("data") or {}).items():
                out[key] = base64.b64decode(value)
        else:
            for key, value in (obj.get("data") or {}).items():
                out[key] = value.encode()
            for key, value in (obj.get("binaryData") or {}).items():
                out[key] = base64.b64decode(value)
        return out

    async def key(self, kind: str, ref: JSON) -> bytes | None:
        """One key of a ``configMapKeyRef``/``secretKeyRef``; None when optional and absent."""
        optional = bool(ref.get("optional", False))
        data = await self.data(kind, ref["name"], optional=optional)
        if data is None:
            return None
        if ref["key"] not in data:
            if optional:
                return None
            singular = "configmap" if kind == "configmaps" else "secret"
            raise ContainerConfigError(
                f'couldn\'t find key {ref["key"]} in {singular} {self.namespace}/{ref["name"]}'
            )
        return data[ref["key"]]


def field_value(pod: JSON, field_path: str) -> str:
    """The value of a ``fieldRef``: pod metadata, spec and status fields the kubelet offers."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    match = _INDEXED.match(field_path)
    if match:
        return (meta.get(match.group(1)) or {}).get(match.group(2), "")
    simple: dict[str, Any] = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(i["ip"] for i in status.get("hostIPs") or []),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs") or []),
    }
    if field_path in simple:
        return str(simple[field_path] or "")
    if field_path in ("metadata.labels", "metadata.annotations"):
        # Only downwardAPI volumes may ask for the whole map; the format is the kubelet's.
        items = sorted((meta.get(field_path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{_quote(v)}"' for k, v in items)
    raise ContainerConfigError(f"unsupported fieldRef fieldPath {field_path!r}")


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def resource_value(
    pod: JSON, ref: JSON, *, default_container: str | None, allocatable: dict[str, str]
) -> str:
    """The value of a ``resourceFieldRef``, rounded up by its divisor as the kubelet does.

    A limit the container does not set reads as the node's allocatable amount.
    """
    name = ref.get("containerName") or default_container
    containers = [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]
    container = next((c for c in containers if c["name"] == name), None)
    if container is None:
        raise ContainerConfigError(f"resourceFieldRef names unknown container {name!r}")
    kind, _, resource = ref["resource"].partition(".")
    if kind not in ("limits", "requests") or not resource:
        raise ContainerConfigError(f"unsupported resourceFieldRef resource {ref['resource']!r}")
    resources = container.get("resources") or {}
    raw = (resources.get(kind) or {}).get(resource)
    if raw is None and kind == "limits":
        raw = allocatable.get(resource)
    quantity = parse_quantity(raw) if raw is not None else Decimal(0)
    divisor = parse_quantity(ref.get("divisor") or "1")
    if divisor <= 0:
        raise ContainerConfigError(f"resourceFieldRef divisor must be positive, not {divisor}")
    if resource == "cpu":
        # In milli-units, each rounded up first, as resource.Quantity.MilliValue does.
        milli = math.ceil(quantity * 1000)
        return str(math.ceil(Decimal(milli) / Decimal(math.ceil(divisor * 1000))))
    return str(math.ceil(Decimal(math.ceil(quantity)) / Decimal(math.ceil(divisor))))
