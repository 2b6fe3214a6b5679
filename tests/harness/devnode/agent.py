"""The development node agent: one asyncio loop that plays kubelet and kube-proxy.

It registers a Node, watches the pods bound to it (and Services, claims and
its own volumes) and hands each pod to a :class:`PodWorker`. Services become
loopback proxies and hosts-file names (``network``); claims become hostPath
volumes (``provisioner``).

It talks to the API server with the kubeconfig it is given, normally the
control plane's admin one. A real kubelet would use a node identity (and the
Node authorizer would confine it to its own pods); for a test harness admin
is acceptable, and it is the only identity the local control plane hands out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from pathlib import Path

import aiohttp

from tests.harness.devnode.addresses import AddressPool
from tests.harness.devnode.container import Backoff
from tests.harness.devnode.environment import service_links
from tests.harness.devnode.informer import Informer
from tests.harness.devnode.kubeapi import JSON, Credentials, KubeApi, load_credentials
from tests.harness.devnode.network import ServiceProxies, render_hosts, selects
from tests.harness.devnode.node import ALLOCATABLE, NODE_LABEL, NodeRegistration
from tests.harness.devnode.pod import PodWorker
from tests.harness.devnode.provisioner import ClaimProvisioner
from tests.harness.devnode.sandbox import HostMountpoints

log = logging.getLogger(__name__)

DEFAULT_NODE_NAME = "modelship-dev-node"
POD_NETWORK = "127.0.0.0/16"
SERVICE_NETWORK = "127.1.0.0/16"


class NodeAgent:
    """Create, then ``await start()`` inside a loop; ``await stop()`` undoes everything."""

    def __init__(
        self,
        kubeconfig: Path,
        root: Path,
        *,
        node_name: str = DEFAULT_NODE_NAME,
        backoff: Backoff | None = None,
        stop_grace: float = 5.0,
        taints: list[JSON] | None = None,
        provision_volumes: bool = True,
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.root = Path(root)
        self.node_name = node_name
        self.backoff = backoff or Backoff()
        self.stop_grace = stop_grace
        self.taints = taints
        # One provisioner per cluster: a second node on the same control plane says False.
        self.provision_volumes = provision_volumes
        self.pods_dir = self.root / "pods"
        self.logs_dir = self.root / "logs"
        self.pvc_root = self.root / "pvc"
        self.allocatable = dict(ALLOCATABLE)
        self.workers: dict[str, PodWorker] = {}
        self.credentials: Credentials | None = None
        self.api: KubeApi = None  # type: ignore[assignment]  # set by start()
        self.session: aiohttp.ClientSession = None  # type: ignore[assignment]
        self.mountpoints: HostMountpoints = None  # type: ignore[assignment]
        self.pod_addresses = AddressPool(POD_NETWORK)
        self.service_addresses = AddressPool(SERVICE_NETWORK)
        self.proxies = ServiceProxies(self.service_addresses, self._endpoints)
        self.services: dict[tuple[str, str], JSON] = {}
        self._registration: NodeRegistration | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._service_tasks: set[asyncio.Task[None]] = set()
        self._hosts_dirty = asyncio.Event()
        self._provisioner: ClaimProvisioner | None = None

    # -- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        for folder in (self.pods_dir, self.logs_dir, self.pvc_root):
            folder.mkdir(parents=True, exist_ok=True)
        self.credentials = load_credentials(self.kubeconfig, self.root / "kube")
        self.api = KubeApi(self.credentials)
        self.session = aiohttp.ClientSession()
        self.mountpoints = HostMountpoints()
        self._registration = NodeRegistration(self.api, self.node_name, self.taints)
        await self._registration.register()
        self._provisioner = ClaimProvisioner(self.api, self.pvc_root, self.node_name)

        services = Informer(self.api, "/api/v1/services", self._on_service)
        informers = [services]
        if self.provision_volumes:
            informers += [
                Informer(self.api, "/api/v1/persistentvolumeclaims",
                         self._provisioner.on_claim),
                Informer(self.api, "/api/v1/persistentvolumes", self._provisioner.on_volume,
                         params={"labelSelector": f"{NODE_LABEL}={self.node_name}"}),
            ]
        self._tasks = [asyncio.create_task(i.run()) for i in informers]
        # Services first, so the first pods already find their names.
        await asyncio.wait_for(services.synced.wait(), 30)
        pods = Informer(self.api, "/api/v1/pods", self._on_pod,
                        params={"fieldSelector": f"spec.nodeName={self.node_name}"})
        self._tasks += [
            asyncio.create_task(pods.run()),
            asyncio.create_task(self._registration.heartbeat()),
            asyncio.create_task(self._refresh_hosts()),
        ]
        await asyncio.wait_for(pods.synced.wait(), 30)
        log.info("Development node %s is up (root %s).", self.node_name, self.root)

    async def stop(self) -> None:
        """Stop every pod process, the proxies and the heartbeats; deregister the node."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        workers = list(self.workers.values())
        running = self.pids()
        for worker in workers:
            worker.shut_down(self.stop_grace)
        await asyncio.gather(*(w.task for w in workers if w.task), return_exceptions=True)
        left = [pid for pid in running if _alive(pid)]
        if left:
            log.error("Container processes %s outlived the node's stop.", left)
        await asyncio.gather(*self._service_tasks, return_exceptions=True)
        await self.proxies.close()
        if self._provisioner is not None:
            await self._provisioner.close()
        if self._registration is not None:
            with contextlib.suppress(Exception):
                await self._registration.remove()
        self.pod_addresses.free_all()
        self.service_addresses.free_all()
        if self.mountpoints is not None:
            self.mountpoints.release()
        if self.session is not None:
            await self.session.close()
        if self.api is not None:
            await self.api.close()
        shutil.rmtree(self.root / "kube", ignore_errors=True)
        log.info("Development node %s stopped.", self.node_name)

    # -- events ------------------------------------------------------------------
    def _on_pod(self, kind: str, pod: JSON) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if kind == "DELETED":
            if worker is not None:
                worker.vanished()
            return
        if worker is None:
            worker = PodWorker(self, pod)
            self.workers[uid] = worker
            worker.update(pod)
            worker.start()
        else:
            worker.update(pod)

    def forget(self, worker: PodWorker) -> None:
        self.workers.pop(worker.uid, None)
        self.pods_changed()

    def _on_service(self, kind: str, service: JSON) -> None:
        meta = service["metadata"]
        key = (meta["namespace"], meta["name"])
        if kind == "DELETED":
            self.services.pop(key, None)
            coro = self.proxies.remove(*key)
        else:
            self.services[key] = service
            coro = self.proxies.apply(service)
        task = asyncio.create_task(self._then_refresh(coro))
        self._service_tasks.add(task)
        task.add_done_callback(self._service_tasks.discard)

    async def _then_refresh(self, coro) -> None:  # noqa: ANN001 - a coroutine
        await coro
        self.pods_changed()

    # -- networking ------------------------------------------------------------
    def pods_changed(self) -> None:
        self._hosts_dirty.set()

    async def _refresh_hosts(self) -> None:
        while True:
            await self._hosts_dirty.wait()
            await asyncio.sleep(0.1)
            self._hosts_dirty.clear()
            for worker in list(self.workers.values()):
                try:
                    worker.refresh_hosts()
                except OSError as exc:
                    log.warning("Cannot write the hosts file of %s/%s: %s", worker.namespace,
                                worker.name, exc)

    def hosts_for(self, pod) -> str:  # noqa: ANN001 - network.NamedPod
        named = [w.named() for w in self.workers.values() if w.network_active]
        services = [(svc, self.proxies.address(*key)) for key, svc in self.services.items()]
        return render_hosts(pod, services=services, pods=named)

    def _endpoints(self, service: JSON, port: JSON) -> list[tuple[str, int]]:
        meta = service["metadata"]
        if (meta["namespace"], meta["name"]) == ("default", "kubernetes"):
            assert self.credentials is not None
            return [(self.credentials.host, self.credentials.port)]
        selector = service["spec"].get("selector") or {}
        publish = bool(service["spec"].get("publishNotReadyAddresses"))
        out = []
        for worker in self.workers.values():
            if worker.namespace != meta["namespace"] or not worker.network_active:
                continue
            if not (worker.ready or publish):
                continue
            if not selects(selector, worker.named().labels):
                continue
            target = _target_port(worker.pod, port)
            if target is not None:
                out.append((worker.pod_ip, target))
        return sorted(out)

    def service_env(self, namespace: str, *, links: bool) -> dict[str, str]:
        assert self.credentials is not None
        # The API server itself, as in-cluster clients expect (its certificate names 127.0.0.1).
        env = {
            "KUBERNETES_SERVICE_HOST": self.credentials.host,
            "KUBERNETES_SERVICE_PORT": str(self.credentials.port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.credentials.port),
        }
        if links:
            entries = []
            for (ns, name), svc in sorted(self.services.items()):
                address = self.proxies.address(ns, name)
                if ns == namespace and address and (ns, name) != ("default", "kubernetes"):
                    entries.append((name, address, svc["spec"].get("ports") or []))
            env = {**service_links(entries), **env}
        return env

    def service_address(self, namespace: str, name: str) -> str | None:
        return self.proxies.address(namespace, name)

    async def service_account_token(self, pod: JSON, audience: str | None, seconds: int) -> str:
        meta = pod["metadata"]
        account = pod["spec"].get("serviceAccountName") or "default"
        request = {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {
                "audiences": [audience] if audience else [],
                "expirationSeconds": max(seconds, 600),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                   "uid": meta["uid"]},
            },
        }
        path = f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token"
        answer = await self.api.create(path, request)
        return str(answer["status"]["token"])

    # -- for tests -------------------------------------------------------------
    def worker(self, namespace: str, name: str) -> PodWorker | None:
        for worker in self.workers.values():
            if (worker.namespace, worker.name) == (namespace, name):
                return worker
        return None

    def pids(self) -> list[int]:
        return [r.process.pid for w in self.workers.values()
                for r in (*w.init_runners, *w.runners) if r.process and r.process.running]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _target_port(pod: JSON, port: JSON) -> int | None:
    target = port.get("targetPort", port["port"])
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for container in pod["spec"]["containers"]:
        for declared in container.get("ports") or []:
            if declared.get("name") == target:
                return int(declared["containerPort"])
    return None

