"""A small asynchronous Kubernetes API client for the development node.

The node agent needs a handful of verbs (get, create, patch, delete, list and
watch) on a few kinds, all from one asyncio loop that also runs probes and
TCP proxies. aiohttp does that without threads; the generated ``kubernetes``
client would need one thread per blocking call and per watch.

Only API servers on 127.0.0.0/8 are accepted: the agent plays a node of the
local control plane and nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml

log = logging.getLogger(__name__)

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


class KubeApiError(RuntimeError):
    """The API server answered with an error status."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}".strip())
        self.status = status
        self.reason = reason

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


class WatchExpired(KubeApiError):
    """The watch's resourceVersion is too old (410); the caller must list again."""


class ApiUnreachable(KubeApiError):
    """The connection to the API server failed or broke (retry later)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(0, f"{type(cause).__name__}: {cause}", "Unreachable")


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to prove who we are, from a kubeconfig."""

    server: str
    ssl_context: ssl.SSLContext | bool
    token: str | None

    @property
    def host(self) -> str:
        return urlsplit(self.server).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.server)
        return parts.port or (443 if parts.scheme == "https" else 80)


def _material(entry: dict[str, Any], key: str, base: Path) -> bytes | None:
    """A kubeconfig value given inline (``<key>-data``, base64) or as a file path."""
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        path = Path(entry[key])
        return (path if path.is_absolute() else base / path).read_bytes()
    return None


def load_credentials(kubeconfig: Path, secrets_dir: Path) -> Credentials:
    """Read the current context of ``kubeconfig``.

    Client keys given inline are written under ``secrets_dir`` (mode 0600),
    because Python's ssl module loads certificate chains only from files.
    """
    config = yaml.safe_load(Path(kubeconfig).read_text())
    context_name = config.get("current-context")
    contexts = {c["name"]: c["context"] for c in config.get("contexts", [])}
    if context_name not in contexts:
        raise ValueError(f"{kubeconfig}: current-context {context_name!r} is not defined")
    context = contexts[context_name]
    cluster = {c["name"]: c["cluster"] for c in config["clusters"]}[context["cluster"]]
    user = {u["name"]: u["user"] for u in config.get("users", [])}.get(context.get("user"), {})

    server = cluster["server"].rstrip("/")
    host = urlsplit(server).hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ValueError(
            "the development node only joins a local control plane; "
            f"{server} is not on 127.0.0.0/8"
        )

    base = Path(kubeconfig).resolve().parent
    context_or_flag: ssl.SSLContext | bool = True
    if server.startswith("https://"):
        ctx = ssl.create_default_context()
        ca = _material(cluster, "certificate-authority", base)
        if cluster.get("insecure-skip-tls-verify"):
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif ca is not None:
            ctx.load_verify_locations(cadata=ca.decode())
        cert = _material(user, "client-certificate", base)
        key = _material(user, "client-key", base)
        if cert is not None and key is not None:
            secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            cert_file, key_file = secrets_dir / "client.crt", secrets_dir / "client.key"
            for path, data in ((cert_file, cert), (key_file, key)):
                path.touch(mode=0o600)
                path.write_bytes(data)
            ctx.load_cert_chain(str(cert_file), str(key_file))
        context_or_flag = ctx
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    return Credentials(server=server, ssl_context=context_or_flag, token=token)


class KubeApi:
    """JSON in, JSON out; errors become :class:`KubeApiError`. Create inside a running loop."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        headers = {"Accept": "application/json", "User-Agent": "modelship-devnode"}
        if credentials.token:
            headers["Authorization"] = f"Bearer {credentials.token}"
        self._session = aiohttp.ClientSession(
            base_url=credentials.server,
            headers=headers,
            connector=aiohttp.TCPConnector(ssl=credentials.ssl_context, limit=32),
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def close(self) -> None:
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else None
        try:
            async with self._session.request(
                method, path, data=data, params=params, headers=headers
            ) as resp:
                text = await resp.text()
        except aiohttp.ClientError as exc:
            raise ApiUnreachable(exc) from exc
        if resp.status >= 400:
            raise _error(resp.status, text)
        return json.loads(text) if text else {}

    async def get(self, path: str, **params: str) -> JSON:
        return await self.request("GET", path, params=params or None)

    async def create(self, path: str, body: JSON) -> JSON:
        return await self.request("POST", path, body=body)

    async def put(self, path: str, body: JSON) -> JSON:
        return await self.request("PUT", path, body=body)

    async def patch(self, path: str, body: JSON, *, strategic: bool = False) -> JSON:
        kind = STRATEGIC_PATCH if strategic else MERGE_PATCH
        return await self.request("PATCH", path, body=body, content_type=kind)

    async def delete(self, path: str, body: JSON | None = None) -> JSON:
        return await self.request("DELETE", path, body=body)

    async def watch(
        self, path: str, *, resource_version: str, params: dict[str, str] | None = None
    ) -> AsyncIterator[JSON]:
        """Yield watch events from ``resource_version`` until the server closes the stream."""
        query = dict(params or {})
        query.update(watch="1", resourceVersion=resource_version, allowWatchBookmarks="true",
                     timeoutSeconds="240")
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300)
        try:
            async with self._session.get(path, params=query, timeout=timeout) as resp:
                if resp.status >= 400:
                    raise _error(resp.status, await resp.text())
                buffer = b""
                # Lines can be longer than aiohttp's readline limit (managedFields),
                # so the stream is split by hand.
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event.get("type") == "ERROR":
                            status = event.get("object", {})
                            raise _error(int(status.get("code", 500)), json.dumps(status))
                        yield event
        except aiohttp.ClientError as exc:
            raise ApiUnreachable(exc) from exc


def _error(status: int, text: str) -> KubeApiError:
    try:
        body = json.loads(text)
        message, reason = body.get("message", text), body.get("reason", "")
    except ValueError:
        message, reason = text[:500], ""
    if status == 410:
        return WatchExpired(status, message, reason)
    return KubeApiError(status, message, reason)


async def ignore_not_found(coro: Any) -> JSON | None:
    """Await an API call; a 404 means the work is already done."""
    try:
        return await coro
    except KubeApiError as exc:
        if exc.not_found:
            return None
        raise


async def sleep_or(event: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``event`` is set first; return whether it was set."""
    try:
        await asyncio.wait_for(event.wait(), timeout=seconds)
        return True
    except TimeoutError:
        return False
