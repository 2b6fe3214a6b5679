"""The Node object and its heartbeats.

The scheduler binds pods only to a Node that is Ready, untainted and has room;
the node-lifecycle controller taints a Node whose Lease in kube-node-lease
stops being renewed. So the agent registers a Node with generous allocatable
resources (no GPUs: pods asking for ``nvidia.com/gpu`` stay unschedulable,
which is what a cluster without GPUs does too), renews its Lease every ten
seconds and refreshes the Ready condition's heartbeat, and deletes both when
it stops.
"""

from __future__ import annotations

import asyncio
import logging
import platform
from datetime import datetime, timezone

from tests.harness.devnode.kubeapi import JSON, KubeApi, KubeApiError, ignore_not_found

log = logging.getLogger(__name__)

NODE_LABEL = "modelship.io/dev-node"
LEASE_SECONDS = 40
RENEW_EVERY = 10.0
STATUS_EVERY = 20.0
ALLOCATABLE = {
    "cpu": "64",
    "memory": "256Gi",
    "pods": "500",
    "ephemeral-storage": "500Gi",
}


def _micro_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_status(*, ready: bool = True, since: str | None = None) -> JSON:
    stamp = _now()
    pressure = [
        {"type": kind, "status": "False", "reason": f"KubeletHas{reason}",
         "message": message, "lastHeartbeatTime": stamp, "lastTransitionTime": since or stamp}
        for kind, reason, message in (
            ("MemoryPressure", "SufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "NoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "SufficientPID", "kubelet has sufficient PID available"),
        )
    ]
    ready_condition = {
        "type": "Ready", "status": "True" if ready else "False",
        "reason": "KubeletReady" if ready else "KubeletNotReady",
        "message": ("the Modelship development node is posting ready status" if ready
                    else "the Modelship development node is stopping"),
        "lastHeartbeatTime": stamp, "lastTransitionTime": since or stamp,
    }
    return {
        "capacity": dict(ALLOCATABLE),
        "allocatable": dict(ALLOCATABLE),
        "conditions": [*pressure, ready_condition],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": platform.release(), "osImage": "Modelship development node",
            "containerRuntimeVersion": "devnode://0.1", "kubeletVersion": "v0.0.0-devnode",
            "kubeProxyVersion": "", "operatingSystem": "linux",
            "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(
                platform.machine(), platform.machine()),
        },
    }


def node_manifest(name: str, taints: list[JSON] | None = None) -> JSON:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": arch,
                NODE_LABEL: "true",
            },
        },
        "spec": {"taints": list(taints)} if taints else {},
        "status": node_status(),
    }


class NodeRegistration:
    """Creates the Node and keeps it (and its Lease) fresh until :meth:`remove`."""

    def __init__(self, api: KubeApi, name: str, taints: list[JSON] | None = None) -> None:
        self.api = api
        self.name = name
        self.taints = taints
        self.uid = ""
        self._since = _now()

    async def register(self) -> None:
        path = f"/api/v1/nodes/{self.name}"
        try:
            node = await self.api.create("/api/v1/nodes", node_manifest(self.name, self.taints))
        except KubeApiError as exc:
            if not exc.conflict:
                raise
            log.info("Node %s exists already; taking it over.", self.name)
            node = await self.api.get(path)
        self.uid = node["metadata"]["uid"]
        await self.api.patch(f"{path}/status", {"status": node_status(since=self._since)})
        await self.renew_lease()
        log.info("Registered node %s.", self.name)

    async def heartbeat(self) -> None:
        """Renew the Lease every 10 s and the Ready heartbeat every 20 s, until cancelled."""
        last_status = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                await self.renew_lease()
                if asyncio.get_running_loop().time() - last_status >= STATUS_EVERY:
                    await self.api.patch(f"/api/v1/nodes/{self.name}/status",
                                         {"status": node_status(since=self._since)})
                    last_status = asyncio.get_running_loop().time()
            except (TimeoutError, KubeApiError, OSError) as exc:
                log.warning("Node %s heartbeat failed (%s); retrying.", self.name, exc)

    async def renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": _micro_now()}
        try:
            await self.api.patch(path, {"spec": spec})
        except KubeApiError as exc:
            if not exc.not_found:
                raise
            await self.api.create(path.rsplit("/", 1)[0], {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {
                    "name": self.name, "namespace": "kube-node-lease",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": self.name,
                                         "uid": self.uid}],
                },
                "spec": spec,
            })

    async def remove(self) -> None:
        """Delete the Lease and the Node; pods still bound to it are then garbage."""
        await ignore_not_found(self.api.delete(
            f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"))
        await ignore_not_found(self.api.delete(f"/api/v1/nodes/{self.name}"))
        log.info("Removed node %s.", self.name)
