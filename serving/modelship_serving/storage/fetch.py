"""Fetching a storage URI into a local staging directory.

Each scheme copies what the URI names (one file, or everything under a
directory or prefix) into `staging`, keeping relative paths. Credentials come
only from the environment or from files a Secret mounts; the ambient chains
(instance metadata, shared config files) are never consulted, and no
credential value is ever logged or put in an error message.
"""

from __future__ import annotations

import logging
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

from modelship_serving.storage.errors import FetchFailed, UnsupportedUri

log = logging.getLogger(__name__)

PVC_ROOT_ENV = "MODELSHIP_PVC_ROOT"
DEFAULT_PVC_ROOT = "/mnt/pvc"
SECRET_DIR_ENV = "MODELSHIP_STORAGE_SECRET_DIR"
DEFAULT_SECRET_DIR = "/var/run/secrets/modelship/storage"
_CHUNK = 1 << 20


def fetch(uri: str, staging: Path) -> Path:
    """Copy what `uri` names into `staging`; returns the fetched file or directory."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("file", ""):
        return _copy_local(Path(unquote(parts.netloc + parts.path)), staging)
    if scheme == "pvc":
        claim = parts.netloc
        if not claim:
            raise UnsupportedUri(f"pvc:// URI {uri!r} names no claim (pvc://<claim>/<path>)")
        root = Path(os.environ.get(PVC_ROOT_ENV, DEFAULT_PVC_ROOT))
        return _copy_local(root / claim / unquote(parts.path).lstrip("/"), staging)
    if scheme == "s3":
        from modelship_serving.storage.s3 import fetch_s3

        return fetch_s3(parts.netloc, unquote(parts.path).lstrip("/"), staging,
                        credentials=secret_values())
    if scheme in ("http", "https"):
        return _fetch_http(uri, staging)
    raise UnsupportedUri(f"URI scheme {scheme!r} is not supported; use file://, pvc://, "
                         f"s3:// or http(s)://")


def secret_values(env: dict[str, str] | None = None) -> dict[str, str]:
    """Credential settings from the environment, overlaid by mounted secret files."""
    env = dict(os.environ if env is None else env)
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
            "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
            "MODELSHIP_HTTP_TOKEN")
    values = {k: env[k] for k in keys if env.get(k)}
    secret_dir = Path(env.get(SECRET_DIR_ENV, DEFAULT_SECRET_DIR))
    if secret_dir.is_dir():
        for key in keys:
            file = secret_dir / key
            if file.is_file():
                values[key] = file.read_text().strip()
    return values


def _copy_local(source: Path, staging: Path) -> Path:
    if not source.exists():
        raise FetchFailed(f"{source} does not exist")
    try:
        if source.is_dir():
            target = staging / "fetched"
            shutil.copytree(source, target, symlinks=False)
        else:
            target = staging / source.name
            shutil.copyfile(source, target)
    except OSError as exc:
        raise FetchFailed(f"cannot copy {source}: {exc.strerror or exc}") from exc
    log.info("Copied %s into the staging directory.", source)
    return target


def _fetch_http(uri: str, staging: Path) -> Path:
    """Download one file (a model or an archive) over HTTP(S)."""
    parts = urlsplit(uri)
    name = Path(unquote(parts.path)).name or "model.onnx"
    headers = {"User-Agent": "modelship-storage-initializer"}
    token = secret_values().get("MODELSHIP_HTTP_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    shown = f"{parts.scheme}://{parts.hostname}{parts.path}"  # no userinfo, no query
    target = staging / name
    request = urllib.request.Request(uri, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)
    except urllib.error.HTTPError as exc:
        raise FetchFailed(f"GET {shown} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchFailed(f"GET {shown} failed: {reason}") from None
    log.info("Downloaded %s (%d bytes).", shown, target.stat().st_size)
    return target
