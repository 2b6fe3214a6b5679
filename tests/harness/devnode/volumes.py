"""Pod volumes as host folders, and each container's mounts of them.

Every volume becomes a folder (or a file) on this machine; the container's
process later sees it at its ``mountPath`` through a bind mount in its own
mount namespace (see ``sandbox``). The folders are:

- emptyDir (either medium) and the files of configMap, secret, downwardAPI
  and projected volumes: under the pod's folder, gone with the pod;
- persistentVolumeClaim (and generic ephemeral volumes, whose claim is
  ``<pod>-<volume>``): ``<root>/pvc/<namespace>/<claim>``, which outlives
  pods, so a test can put model files there first;
- hostPath: the path itself.

ConfigMap, Secret, downwardAPI and projected volumes are written once when
the pod starts; unlike the kubelet, the node does not refresh them later.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tests.harness.devnode.downward import (
    ContainerConfigError,
    ObjectSource,
    field_value,
    resource_value,
)
from tests.harness.devnode.environment import expand
from tests.harness.devnode.kubeapi import JSON

TokenSource = Callable[[str | None, int], Awaitable[str]]
DEFAULT_MODE = 0o644
# The kubelet mounts these read-only whatever the volumeMount says.
ALWAYS_READ_ONLY = ("configMap", "secret", "downwardAPI", "projected")


@dataclass(frozen=True)
class HostVolume:
    path: Path
    read_only: bool = False


@dataclass(frozen=True)
class Mount:
    """A bind mount of ``source`` (host) at ``target`` (container path)."""

    source: str
    target: str
    read_only: bool


def claim_folder(pvc_root: Path, namespace: str, claim: str) -> Path:
    """The host folder behind claim ``claim``; created on first use."""
    folder = pvc_root / namespace / claim
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def prepare_volumes(
    pod: JSON,
    volumes_dir: Path,
    *,
    objects: ObjectSource,
    pvc_root: Path,
    tokens: TokenSource,
    allocatable: dict[str, str],
) -> dict[str, HostVolume]:
    """Lay out every volume of ``pod``; safe to repeat (files are rewritten)."""
    namespace = pod["metadata"]["namespace"]
    out: dict[str, HostVolume] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        folder = volumes_dir / name
        if "emptyDir" in volume:
            folder.mkdir(parents=True, exist_ok=True)
            out[name] = HostVolume(folder)
        elif "persistentVolumeClaim" in volume:
            source = volume["persistentVolumeClaim"]
            out[name] = HostVolume(
                claim_folder(pvc_root, namespace, source["claimName"]),
                read_only=bool(source.get("readOnly")),
            )
        elif "ephemeral" in volume:
            claim = f"{pod['metadata']['name']}-{name}"
            out[name] = HostVolume(claim_folder(pvc_root, namespace, claim))
        elif "hostPath" in volume:
            out[name] = HostVolume(_host_path(volume["hostPath"]))
        elif any(kind in volume for kind in ALWAYS_READ_ONLY):
            files = await _projected_files(pod, volume, objects, tokens, allocatable)
            _write_files(folder, files)
            out[name] = HostVolume(folder, read_only=True)
        else:
            kinds = sorted(set(volume) - {"name"})
            raise ContainerConfigError(
                f"volume {name!r} of type {kinds} is not supported by the development node"
            )
    return out


def _host_path(source: JSON) -> Path:
    path = Path(source["path"])
    kind = source.get("type", "")
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True)
    elif kind == "FileOrCreate":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    elif kind in ("Directory", "File") and not path.exists():
        raise ContainerConfigError(f"hostPath {path} does not exist")
    return path


async def _projected_files(
    pod: JSON, volume: JSON, objects: ObjectSource, tokens: TokenSource,
    allocatable: dict[str, str],
) -> dict[str, tuple[bytes, int]]:
    """Relative path → (content, mode) for a configMap/secret/downwardAPI/projected volume."""
    if "projected" in volume:
        spec = volume["projected"]
        sources = spec.get("sources") or []
    else:
        kind = next(k for k in ALWAYS_READ_ONLY if k in volume)
        spec = volume[kind]
        sources = [{kind: spec}]
    default_mode = spec.get("defaultMode", DEFAULT_MODE)

    files: dict[str, tuple[bytes, int]] = {}
    for source in sources:
        if "configMap" in source or "secret" in source:
            kind = "configMap" if "configMap" in source else "secret"
            ref = source[kind]
            name = ref.get("name") or ref.get("secretName", "")
            data = await objects.data(
                "configmaps" if kind == "configMap" else "secrets", name,
                optional=bool(ref.get("optional")),
            )
            files.update(_select_items(data or {}, ref.get("items"), default_mode,
                                       optional=bool(ref.get("optional")), what=f"{kind} {name}"))
        elif "downwardAPI" in source:
            for item in source["downwardAPI"].get("items") or []:
                if "fieldRef" in item:
                    value = field_value(pod, item["fieldRef"]["fieldPath"])
                else:
                    value = resource_value(pod, item["resourceFieldRef"],
                                           default_container=None, allocatable=allocatable)
                files[item["path"]] = (value.encode(), item.get("mode", default_mode))
        elif "serviceAccountToken" in source:
            token = source["serviceAccountToken"]
            text = await tokens(token.get("audience"), int(token.get("expirationSeconds", 3600)))
            files[token["path"]] = (text.encode(), default_mode)
        else:
            raise ContainerConfigError(
                f"projected source {sorted(source)} is not supported by the development node"
            )
    return files


def _select_items(
    data: Mapping[str, bytes], items: list[JSON] | None, default_mode: int, *,
    optional: bool, what: str,
) -> dict[str, tuple[bytes, int]]:
    if not items:
        return {key: (value, default_mode) for key, value in data.items()}
    out: dict[str, tuple[bytes, int]] = {}
    for item in items:
        if item["key"] not in data:
            if optional:
                continue
            raise ContainerConfigError(f"key {item['key']!r} not found in {what}")
        out[item["path"]] = (data[item["key"]], item.get("mode", default_mode))
    return out


def _write_files(folder: Path, files: dict[str, tuple[bytes, int]]) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for relative, (content, mode) in files.items():
        rel = PurePosixPath(relative)
        if rel.is_absolute() or ".." in rel.parts:
            raise ContainerConfigError(f"volume item path {relative!r} must be relative")
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.chmod(path, mode & 0o777)


def container_mounts(
    container: JSON, volumes: Mapping[str, HostVolume], env: Mapping[str, str]
) -> list[Mount]:
    """The bind mounts ``container`` asks for, with subPath/subPathExpr resolved on the host."""
    mounts: list[Mount] = []
    for vm in container.get("volumeMounts") or []:
        volume = volumes.get(vm["name"])
        if volume is None:
            raise ContainerConfigError(f"volumeMount {vm['name']!r} names no volume of the pod")
        source = volume.path
        sub = vm.get("subPath") or ""
        if not sub and vm.get("subPathExpr"):
            sub = expand(vm["subPathExpr"], env)
        if sub:
            rel = PurePosixPath(sub)
            if rel.is_absolute() or ".." in rel.parts:
                raise ContainerConfigError(f"subPath {sub!r} must be relative and stay inside")
            source = source / rel
            if not source.exists():
                source.mkdir(parents=True)
        mounts.append(Mount(
            source=str(source), target=vm["mountPath"],
            read_only=volume.read_only or bool(vm.get("readOnly")),
        ))
    return mounts
