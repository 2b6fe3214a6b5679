"""Start the operator: Kopf's reactor with Modelship's handlers loaded.

Scope is one or more namespaces, or the whole cluster. With more than one
replica, Kopf's peering keeps exactly one of them active; the others stand by
and take over when its heartbeat stops.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence

import kopf
from prometheus_client import start_http_server

log = logging.getLogger(__name__)


def run(
    *,
    namespaces: Sequence[str] = (),
    all_namespaces: bool = False,
    liveness: str | None = None,
    peering: str | None = None,
    metrics_port: int | None = None,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    log_format: str = "full",
    verbose: bool = False,
) -> None:
    """Run until stopped (SIGTERM/SIGINT or ``stop_flag``)."""
    if not namespaces and not all_namespaces:
        raise ValueError("give namespaces to watch, or all_namespaces=True")
    # Kopf's own formatter: with json, each line about an object carries its
    # namespace and name as fields (as Kopf's per-object loggers add them).
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat[log_format.upper()],
                   log_refkey="object")
    # Importing registers the handlers with Kopf's default registry.
    from modelship_operator.reconcile import handlers  # noqa: F401

    port = metrics_port if metrics_port is not None else int(
        os.environ.get("MODELSHIP_METRICS_PORT", "9090"))
    # Where the pod's network is the host's (a development node), the node
    # names the address this pod may bind; elsewhere every address is ours.
    address = os.environ.get("MODELSHIP_BIND_ADDRESS", "0.0.0.0")
    if liveness and address != "0.0.0.0":
        liveness = liveness.replace("//0.0.0.0:", f"//{address}:", 1)
    if port:
        start_http_server(port, addr=address)
        log.info("Operator metrics are served on %s:%d at /metrics.", address, port)
    asyncio.run(kopf.operator(
        clusterwide=all_namespaces,
        namespaces=list(namespaces),
        liveness_endpoint=liveness,
        peering_name=peering,
        standalone=peering is None,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    ))
