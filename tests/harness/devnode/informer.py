"""List-then-watch caches, the way every Kubernetes agent stays level-based.

An :class:`Informer` lists a collection, reports every object as added, then
watches from the list's resourceVersion. When the watch expires it lists
again and reports what vanished meanwhile as deleted, so handlers see a
complete, ordered history of the objects they care about and never a gap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from tests.harness.devnode.kubeapi import JSON, KubeApi, KubeApiError, WatchExpired

log = logging.getLogger(__name__)

Handler = Callable[[str, JSON], None]


def object_key(obj: JSON) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class Informer:
    """Keeps ``cache`` in step with one collection and calls ``handler(type, obj)``.

    The handler runs on the loop and must not block; it may start tasks.
    """

    def __init__(
        self,
        api: KubeApi,
        path: str,
        handler: Handler,
        *,
        params: dict[str, str] | None = None,
    ) -> None:
        self.api = api
        self.path = path
        self.params = dict(params or {})
        self.handler = handler
        self.cache: dict[str, JSON] = {}
        self.synced = asyncio.Event()

    async def run(self) -> None:
        """List and watch until cancelled; transient failures are retried."""
        backoff = 0.5
        version = ""
        while True:
            try:
                if not version:
                    version = await self._relist()
                async for event in self.api.watch(
                    self.path, resource_version=version, params=self.params
                ):
                    version = self._apply(event) or version
                backoff = 0.5
            except WatchExpired:
                log.debug("The watch on %s expired; listing again.", self.path)
                version = ""
            except (TimeoutError, KubeApiError, OSError, ValueError) as exc:
                log.warning("Watching %s failed (%s); retrying in %.1fs.", self.path, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
                version = ""

    async def _relist(self) -> str:
        listing = await self.api.get(self.path, **self.params)
        seen: dict[str, JSON] = {}
        for item in listing.get("items", []):
            seen[object_key(item)] = item
        for key, old in list(self.cache.items()):
            if key not in seen:
                del self.cache[key]
                self._call("DELETED", old)
        for key, obj in seen.items():
            kind = "MODIFIED" if key in self.cache else "ADDED"
            self.cache[key] = obj
            self._call(kind, obj)
        self.synced.set()
        return str(listing.get("metadata", {}).get("resourceVersion", ""))

    def _apply(self, event: JSON) -> str:
        kind, obj = event.get("type", ""), event.get("object", {})
        version = str(obj.get("metadata", {}).get("resourceVersion", ""))
        if kind == "BOOKMARK":
            return version
        key = object_key(obj)
        if kind == "DELETED":
            self.cache.pop(key, None)
        else:
            self.cache[key] = obj
        self._call(kind, obj)
        return version

    def _call(self, kind: str, obj: JSON) -> None:
        try:
            self.handler(kind, obj)
        except Exception:  # noqa: BLE001 - one bad object must not stop the watch
            log.exception("Handling %s of %s failed.", kind, object_key(obj))
