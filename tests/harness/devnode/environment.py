"""A container's environment and command line, built by the kubelet's rules.

Order and precedence are the kubelet's: Service links first, then ``envFrom``
in order, then ``env`` in order (later wins); ``$(NAME)`` in an env value
expands to a variable defined before it, and in ``command``/``args`` to any
variable of the final environment; ``$$`` escapes a dollar; a reference to
an unknown name stays as written.

On top come the variables that stand for what a container engine would
otherwise give: a PATH whose first entry is this virtual environment's bin
folder (where the console scripts live), the images' own ENV, and the
development node's runtime contract (``MODELSHIP_BIND_ADDRESS``,
``MODELSHIP_TERMINATION_LOG``) at the lowest precedence, so a manifest
always wins.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from tests.harness.devnode.downward import (
    ContainerConfigError,
    ObjectSource,
    field_value,
    resource_value,
)
from tests.harness.devnode.images import IMAGE_ENV
from tests.harness.devnode.kubeapi import JSON

VENV_BIN = Path(sys.executable).parent
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def expand(text: str, lookup: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (k8s.io/kubernetes third_party/forked/golang/expansion)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 >= len(text):
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end < 0:
                out.append(text[i:])
                break
            name = text[i + 2:end]
            out.append(lookup[name] if name in lookup else f"$({name})")
            i = end + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


def service_links(services: list[tuple[str, str, list[JSON]]]) -> dict[str, str]:
    """``<NAME>_SERVICE_HOST``/``_PORT`` variables for (name, address, ports) of a namespace."""
    env: dict[str, str] = {}
    for name, address, ports in services:
        prefix = name.upper().replace("-", "_")
        env[f"{prefix}_SERVICE_HOST"] = address
        if ports:
            env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                suffix = port["name"].upper().replace("-", "_")
                env[f"{prefix}_SERVICE_PORT_{suffix}"] = str(port["port"])
    return env


async def container_environment(
    pod: JSON,
    container: JSON,
    *,
    objects: ObjectSource,
    allocatable: dict[str, str],
    service_env: Mapping[str, str],
    runtime_env: Mapping[str, str],
) -> tuple[dict[str, str], dict[str, str]]:
    """The process environment of ``container`` and the part the manifest defines.

    The second mapping is what ``$(NAME)`` in command and args may refer to
    (the kubelet knows nothing of the image's ENV). Raises ContainerConfigError
    when a reference cannot be resolved.
    """
    env: dict[str, str] = {
        "PATH": f"{VENV_BIN}:{SYSTEM_PATH}",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        **IMAGE_ENV,
        "HOSTNAME": pod["spec"].get("hostname") or pod["metadata"]["name"],
        **runtime_env,
        **service_env,
    }
    # Names the manifest defines itself (envFrom, env) see only the Service
    # links and each other in $(...) expansion, as on a real node.
    defined: dict[str, str] = dict(service_env)

    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            if key not in source:
                continue
            ref = source[key]
            data = await objects.data(kind, ref["name"], optional=bool(ref.get("optional")))
            for name, value in (data or {}).items():
                defined[prefix + name] = value.decode(errors="replace")

    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            defined[name] = expand(var.get("value", ""), defined)
            continue
        value = await _value_from(pod, container, var["valueFrom"], objects, allocatable)
        if value is not None:
            defined[name] = value

    env.update(defined)
    return env, defined


async def _value_from(
    pod: JSON, container: JSON, source: JSON, objects: ObjectSource, allocatable: dict[str, str]
) -> str | None:
    if "fieldRef" in source:
        return field_value(pod, source["fieldRef"]["fieldPath"])
    if "resourceFieldRef" in source:
        return resource_value(
            pod, source["resourceFieldRef"], default_container=container["name"],
            allocatable=allocatable,
        )
    if "configMapKeyRef" in source:
        raw = await objects.key("configmaps", source["configMapKeyRef"])
        return None if raw is None else raw.decode(errors="replace")
    if "secretKeyRef" in source:
        raw = await objects.key("secrets", source["secretKeyRef"])
        return None if raw is None else raw.decode(errors="replace")
    raise ContainerConfigError(f"unsupported valueFrom {sorted(source)}")


def expand_argv(argv: list[str], env: Mapping[str, str]) -> list[str]:
    return [expand(arg, env) for arg in argv]
