"""Kubernetes Events about Modelship's objects, for `kubectl describe`.

Events are posted by the operator's own client (so they count among its
writes, honestly) and only on transitions, never on every reconcile. A failure
to post is logged and swallowed: an Event is a courtesy, not state.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from modelship_operator.cluster.client import ApiError, KubeClient, resource_path
from modelship_operator.reconcile.conditions import now

log = logging.getLogger(__name__)


class EventRecorder:
    def __init__(self, client: KubeClient, *, component: str = "modelship-operator"):
        self._client = client
        self._component = component
        self._host = os.environ.get("POD_NAME", os.uname().nodename)

    async def post(
        self, body: dict[str, Any], *, reason: str, message: str, warning: bool = False
    ) -> None:
        meta = body["metadata"]
        namespace = meta.get("namespace") or "default"
        stamp = now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
                "name": meta["name"], "namespace": namespace, "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": self._component, "host": self._host},
            "reportingComponent": self._component,
            "reportingInstance": self._host,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self._client.create(resource_path("v1", "events", namespace=namespace), event)
        except ApiError as exc:
            log.warning("Could not post the %s event for %s/%s: %s; carrying on.",
                        reason, namespace, meta["name"], exc)
