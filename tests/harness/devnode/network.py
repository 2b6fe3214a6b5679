"""kube-proxy and cluster DNS for the development node's own pods.

Each Service with a cluster IP gets a loopback "service address" (127.1.x.y)
of its own, with a TCP proxy on each of its ports that forwards, round-robin,
to the ready pods the Service selects (their pod IP and resolved
targetPort). The Service's real cluster IP (10.0.0.x) stays in its spec, but
nothing here routes it, so names are how pods find Services.

Names resolve through each pod's own /etc/hosts (bind-mounted into every
container of the pod, rewritten in place when Services or pods change):
``<svc>`` (same namespace), ``<svc>.<ns>``, ``<svc>.<ns>.svc`` and
``<svc>.<ns>.svc.<domain>`` map to the service address; a headless Service's
names map to its ready pods; ``<hostname>.<subdomain>...`` names map to pods
that set both (how an indexed Job's workers find worker 0). No DNS server is
needed: glibc reads the hosts file first.

Limitations, each removable by a real proxy: TCP only (no UDP/SCTP), no
sessionAffinity, and a connection to a Service with no ready endpoint is
accepted and then closed rather than refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.devnode.addresses import AddressPool
from tests.harness.devnode.kubeapi import JSON

log = logging.getLogger(__name__)

CLUSTER_DOMAIN = "cluster.local"
Endpoints = Callable[[JSON, JSON], list[tuple[str, int]]]


def service_key(namespace: str, name: str) -> tuple[str, str]:
    return namespace, name


def is_proxied(service: JSON) -> bool:
    spec = service.get("spec", {})
    return spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None"


@dataclass
class _Proxy:
    address: str
    ports: dict[int, JSON] = field(default_factory=dict)
    servers: dict[int, asyncio.Server] = field(default_factory=dict)
    service: JSON = field(default_factory=dict)
    turn: itertools.count = field(default_factory=itertools.count)


class ServiceProxies:
    """One loopback address and TCP listeners per Service."""

    def __init__(self, pool: AddressPool, endpoints: Endpoints) -> None:
        self.pool = pool
        self.endpoints = endpoints
        self._proxies: dict[tuple[str, str], _Proxy] = {}
        self._connections: set[asyncio.Task[None]] = set()
        # Events for one Service may arrive back to back; their changes apply in order.
        self._lock = asyncio.Lock()

    def address(self, namespace: str, name: str) -> str | None:
        proxy = self._proxies.get(service_key(namespace, name))
        return proxy.address if proxy else None

    def addresses(self) -> list[str]:
        return [p.address for p in self._proxies.values()]

    async def apply(self, service: JSON) -> None:
        """Start, update or (for a headless Service) stop the proxy of ``service``."""
        async with self._lock:
            await self._apply(service)

    async def _apply(self, service: JSON) -> None:
        meta = service["metadata"]
        key = service_key(meta["namespace"], meta["name"])
        if not is_proxied(service):
            await self._remove(*key)
            return
        proxy = self._proxies.get(key)
        if proxy is None:
            proxy = _Proxy(address=self.pool.claim())
            self._proxies[key] = proxy
            log.info("Service %s/%s is reachable at %s.", *key, proxy.address)
        proxy.service = service
        wanted = {int(p["port"]): p for p in service["spec"].get("ports") or []
                  if p.get("protocol", "TCP") == "TCP"}
        for port in set(proxy.servers) - set(wanted):
            await _close_server(proxy.servers.pop(port))
        proxy.ports = wanted
        for port in set(wanted) - set(proxy.servers):
            try:
                proxy.servers[port] = await asyncio.start_server(
                    lambda r, w, k=key, p=port: self._accept(r, w, k, p),
                    host=proxy.address, port=port, reuse_address=True,
                )
            except OSError as exc:
                log.warning("Service %s/%s cannot listen on %s:%d: %s", *key, proxy.address,
                            port, exc)

    async def remove(self, namespace: str, name: str) -> None:
        async with self._lock:
            await self._remove(namespace, name)

    async def _remove(self, namespace: str, name: str) -> None:
        proxy = self._proxies.pop(service_key(namespace, name), None)
        if proxy is None:
            return
        for server in proxy.servers.values():
            await _close_server(server)
        self.pool.free(proxy.address)

    async def close(self) -> None:
        for namespace, name in list(self._proxies):
            await self.remove(namespace, name)
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        key: tuple[str, str], port: int,
    ) -> None:
        task = asyncio.create_task(self._forward(reader, writer, key, port))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _forward(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        key: tuple[str, str], port: int,
    ) -> None:
        proxy = self._proxies.get(key)
        upstream = None
        try:
            if proxy is None or port not in proxy.ports:
                return
            candidates = self.endpoints(proxy.service, proxy.ports[port])
            if not candidates:
                log.debug("Service %s/%s has no ready endpoint for port %d.", *key, port)
                return
            start = next(proxy.turn)
            for i in range(len(candidates)):
                host, target = candidates[(start + i) % len(candidates)]
                try:
                    upstream = await asyncio.wait_for(asyncio.open_connection(host, target), 5)
                    break
                except (TimeoutError, OSError) as exc:
                    log.debug("Endpoint %s:%d of %s/%s refused: %s", host, target, *key, exc)
            if upstream is None:
                return
            up_reader, up_writer = upstream
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, upstream[1] if upstream else None):
                if w is not None:
                    w.close()
                    with contextlib.suppress(Exception):
                        await w.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


async def _close_server(server: asyncio.Server) -> None:
    server.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), 2)


@dataclass(frozen=True)
class NamedPod:
    """A pod as the hosts files see it."""

    namespace: str
    name: str
    ip: str
    hostname: str
    subdomain: str
    labels: dict[str, str]
    ready: bool


def render_hosts(
    pod: NamedPod,
    *,
    services: list[tuple[JSON, str | None]],
    pods: list[NamedPod],
    domain: str = CLUSTER_DOMAIN,
) -> str:
    """The /etc/hosts of ``pod``: itself, every Service, every pod with hostname.subdomain."""
    lines = [
        "# Kubernetes-managed hosts file (Modelship development node).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
    ]
    own = [pod.hostname]
    if pod.subdomain:
        own.insert(0, f"{pod.hostname}.{pod.subdomain}.{pod.namespace}.svc.{domain}")
    lines.append(f"{pod.ip}\t{' '.join(own)}")

    for service, address in sorted(services, key=lambda s: _meta_key(s[0])):
        meta = service["metadata"]
        names = _names(meta["name"], meta["namespace"], pod.namespace, domain)
        if address is not None:
            lines.append(f"{address}\t{' '.join(names)}")
        elif service["spec"].get("clusterIP") == "None":
            publish = bool(service["spec"].get("publishNotReadyAddresses"))
            selector = service["spec"].get("selector") or {}
            for other in pods:
                if (other.namespace == meta["namespace"] and selector
                        and _selects(selector, other.labels) and (other.ready or publish)):
                    lines.append(f"{other.ip}\t{' '.join(names)}")
    for other in pods:
        if other.subdomain and other is not pod:
            names = _names(f"{other.hostname}.{other.subdomain}", other.namespace,
                           pod.namespace, domain)
            lines.append(f"{other.ip}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def _names(name: str, namespace: str, own_namespace: str, domain: str) -> list[str]:
    names = [f"{name}.{namespace}.svc.{domain}", f"{name}.{namespace}.svc", f"{name}.{namespace}"]
    if namespace == own_namespace:
        names.append(name)
    return names


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _meta_key(obj: JSON) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def write_in_place(path: Path, content: str) -> bool:
    """Rewrite ``path`` keeping its inode (bind mounts follow the inode); True if it changed."""
    try:
        if path.read_text() == content:
            return False
    except FileNotFoundError:
        pass
    with open(path, "r+" if path.exists() else "w") as out:
        out.write(content)
        out.truncate()
    return True


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a Service's equality selector matches a pod's labels (empty selects nothing)."""
    return bool(selector) and _selects(selector, labels)
