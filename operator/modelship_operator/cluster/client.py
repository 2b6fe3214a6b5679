"""An async Kubernetes API client for the operator's own reads and writes.

Kopf watches; this client applies children with server-side apply, patches
status and posts Events. It is small on purpose: every request goes through
one method, which counts writes (the proof that an idle reconcile writes
nothing), maps failures onto retryable and permanent errors, and never blocks
the event loop.

Credentials come from Kopf's ``ConnectionInfo``, so the operator logs in once
and both Kopf and this client use the same identity.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

import aiohttp
import kopf
from prometheus_client import Counter as PromCounter

log = logging.getLogger(__name__)

FIELD_MANAGER = "modelship-operator"
_WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_API_REQUESTS = PromCounter(
    "modelship_operator_api_requests", "Requests the operator sent to the API server.",
    ["verb", "code"],
)


class ApiError(Exception):
    """The API server refused a request."""

    def __init__(self, status: int, reason: str, message: str, *, method: str, path: str):
        super().__init__(f"{method} {path}: {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class TemporaryApiError(ApiError):
    """Worth retrying: throttling, a server error, a conflict or a lost connection."""


class PermanentApiError(ApiError):
    """Retrying the same request cannot help: invalid, forbidden or not served."""


class NotFound(PermanentApiError):
    """The object or the kind does not exist."""


def namespace_is_terminating(exc: ApiError) -> bool:
    """Whether the API server refused a write because the namespace is being deleted."""
    return exc.status == 403 and "being terminated" in exc.message


def resource_path(
    api_version: str, plural: str, *, namespace: str | None = None, name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The URL path of a collection or an object, for a core or a grouped API."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    if name:
        base += f"/{name}"
    if subresource:
        base += f"/{subresource}"
    return base


class KubeClient:
    """One aiohttp session to the API server, with a write counter."""

    def __init__(self, info: kopf.ConnectionInfo, *, timeout: float = 30.0):
        self._info = info
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self.requests: Counter[str] = Counter()
        self.recent_writes: deque[tuple[str, str]] = deque(maxlen=50)
        self.writes_by_namespace: Counter[str] = Counter()

    @property
    def writes(self) -> int:
        """How many writing requests (any verb but GET) this client has sent."""
        return sum(n for verb, n in self.requests.items() if verb in _WRITE_VERBS)

    async def _ensure(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Kopf's own helpers turn its ConnectionInfo into TLS settings and
            # headers, so both clients authenticate exactly alike.
            connector = aiohttp.TCPConnector(ssl=self._info.as_ssl_context(), limit=32)
            self._session = aiohttp.ClientSession(
                base_url=self._info.server.rstrip("/"), connector=connector,
                timeout=self._timeout, headers=self._info.as_http_headers(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self, method: str, path: str, *, body: Any = None, params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """Send one request; return the decoded body; raise ApiError subclasses."""
        session = await self._ensure()
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        self.requests[method] += 1
        if method in _WRITE_VERBS:
            self.recent_writes.append((method, path))
            parts = path.split("/namespaces/", 1)
            self.writes_by_namespace[parts[1].split("/", 1)[0] if len(parts) == 2 else ""] += 1
        try:
            async with session.request(
                method, path, data=data, params=params, headers=headers
            ) as response:
                text = await response.text()
                _API_REQUESTS.labels(method, str(response.status)).inc()
                if response.status < 400:
                    return json.loads(text) if text else {}
                raise _error(response.status, text, method=method, path=path)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
            _API_REQUESTS.labels(method, "connection").inc()
            raise TemporaryApiError(
                0, "ConnectionError", str(exc) or type(exc).__name__, method=method, path=path
            ) from exc

    async def get(self, path: str, **params: str) -> dict[str, Any] | None:
        """The object at ``path``, or None when it does not exist."""
        try:
            return await self.request("GET", path, params=params or None)
        except NotFound:
            return None

    async def list(self, path: str, *, label_selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        return (await self.request("GET", path, params=params)).get("items", [])

    async def apply(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply ``body`` under Modelship's field manager, taking fields back."""
        return await self.request(
            "PATCH", path, body=body, content_type="application/apply-patch+yaml",
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
        )

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request(
            "PATCH", path, body=body, content_type="application/merge-patch+json",
            params={"fieldManager": FIELD_MANAGER},
        )

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body=body, params={"fieldManager": FIELD_MANAGER})

    async def delete(self, path: str) -> None:
        try:
            await self.request("DELETE", path, body={"propagationPolicy": "Background"})
        except NotFound:
            pass


def _error(status: int, text: str, *, method: str, path: str) -> ApiError:
    try:
        payload = json.loads(text)
        reason, message = payload.get("reason", ""), payload.get("message", text)
    except ValueError:
        reason, message = "", text
    message = message[:500]
    kind: type[ApiError]
    if status == 404:
        kind = NotFound
    elif status in (409, 429) or status >= 500:
        kind = TemporaryApiError
    else:
        kind = PermanentApiError
    return kind(status, reason, message, method=method, path=path)
