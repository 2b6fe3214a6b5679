"""One pod on the development node, from binding to deletion.

The worker lays out the pod's sandbox (a loopback address, folders, the
hosts file, volumes), runs its init containers in order and then its
containers, reports status whenever something changes, and on deletion stops
every process (SIGTERM, the grace period, SIGKILL), reports the final status
and deletes the pod with grace 0, as the kubelet does. A pod that ends by
itself (a Job's pod) gives back its address at once but stays, with its
status, until it is deleted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from tests.harness.devnode.container import ContainerRunner
from tests.harness.devnode.downward import ContainerConfigError, ObjectSource
from tests.harness.devnode.kubeapi import JSON, KubeApiError, sleep_or
from tests.harness.devnode.network import NamedPod, write_in_place
from tests.harness.devnode.status import now, stamp_transitions, status_patch, waiting
from tests.harness.devnode.volumes import HostVolume, prepare_volumes

if TYPE_CHECKING:
    from tests.harness.devnode.agent import NodeAgent

log = logging.getLogger(__name__)

TERMINAL = ("Succeeded", "Failed")


class PodWorker:
    """Runs one pod; :meth:`update` and :meth:`vanished` feed it the API's view."""

    def __init__(self, agent: NodeAgent, pod: JSON) -> None:
        self.agent = agent
        self._pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        folder = f"{self.namespace}_{self.name}_{self.uid[:8]}"
        self.pod_dir: Path = agent.pods_dir / folder
        self.log_dir: Path = agent.logs_dir / folder
        self.hosts_file = self.pod_dir / "etc-hosts"
        self.pod_ip = ""
        self.network_active = False
        self.sandbox_ready = False
        self.start_time: str | None = None
        self.volumes: dict[str, HostVolume] = {}
        self.terminating = asyncio.Event()
        self.gone = False
        self.node_stopping = False
        self._grace: float | None = None
        self._dirty = asyncio.Event()
        self._sent = ""
        self._conditions: list[JSON] = list(pod.get("status", {}).get("conditions") or [])
        self._status_lock = asyncio.Lock()
        self.init_runners: list[ContainerRunner] = []
        self.runners: list[ContainerRunner] = []
        self.task: asyncio.Task[None] | None = None

    # -- what containers read --------------------------------------------------
    @property
    def pod(self) -> JSON:
        """The API's pod with what this node knows of its status already filled in."""
        status = dict(self._pod.get("status") or {})
        if self.pod_ip:
            status.update(podIP=self.pod_ip, podIPs=[{"ip": self.pod_ip}])
        status.update(hostIP="127.0.0.1", hostIPs=[{"ip": "127.0.0.1"}])
        return {**self._pod, "status": status}

    @property
    def backoff(self):  # noqa: ANN201 - container.Backoff, kept import-light
        return self.agent.backoff

    @property
    def mountpoints(self):  # noqa: ANN201
        return self.agent.mountpoints

    @property
    def session(self):  # noqa: ANN201
        return self.agent.session

    @property
    def allocatable(self) -> dict[str, str]:
        return self.agent.allocatable

    def objects(self) -> ObjectSource:
        return ObjectSource(self.agent.api, self.namespace)

    def service_env(self) -> dict[str, str]:
        links = self._pod["spec"].get("enableServiceLinks", True) is not False
        return self.agent.service_env(self.namespace, links=links)

    def grace_seconds(self) -> float:
        if self._grace is not None:
            return self._grace
        return float(self._pod["spec"].get("terminationGracePeriodSeconds", 30))

    def status_changed(self) -> None:
        self._dirty.set()
        self.agent.pods_changed()

    @property
    def ready(self) -> bool:
        return (self.network_active and not self.terminating.is_set()
                and bool(self.runners) and all(r.record.ready for r in self.runners))

    def named(self) -> NamedPod:
        spec = self._pod["spec"]
        return NamedPod(
            namespace=self.namespace, name=self.name, ip=self.pod_ip,
            hostname=spec.get("hostname") or self.name, subdomain=spec.get("subdomain", ""),
            labels=dict(self._pod["metadata"].get("labels") or {}), ready=self.ready,
        )

    # -- what the agent calls ---------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"pod {self.namespace}/{self.name}")

    def update(self, pod: JSON) -> None:
        self._pod = pod
        meta = pod["metadata"]
        if meta.get("deletionTimestamp") and not self.terminating.is_set():
            grace = meta.get("deletionGracePeriodSeconds")
            self._begin_termination(None if grace is None else float(grace))

    def vanished(self) -> None:
        """The pod was removed from the API (force-deleted, or deleted by this worker)."""
        self.gone = True
        self._begin_termination(self._grace)

    def shut_down(self, grace: float) -> None:
        """The node is stopping: stop processes, leave the pod object alone."""
        self.node_stopping = True
        self._begin_termination(min(grace, self.grace_seconds()))

    def _begin_termination(self, grace: float | None) -> None:
        if self.terminating.is_set():
            return
        self._grace = grace
        log.info("Stopping pod %s/%s (grace %.0fs).", self.namespace, self.name,
                 self.grace_seconds())
        self.terminating.set()
        self.status_changed()

    # -- the life ---------------------------------------------------------------
    async def _run(self) -> None:
        writer = asyncio.create_task(self._write_status())
        try:
            await self._live()
        except Exception:
            log.exception("Pod %s/%s failed on the node.", self.namespace, self.name)
            await self.terminating.wait()
        finally:
            await asyncio.gather(*(r.stop(0) for r in self._all_runners()))
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            await self._finish()

    async def _live(self) -> None:
        spec = self._pod["spec"]
        phase = (self._pod.get("status") or {}).get("phase")
        if phase in TERMINAL or self._pod["metadata"].get("deletionTimestamp"):
            # Finished before this node (re)started, or already going: nothing to run.
            await self.terminating.wait()
            return
        policy = spec.get("restartPolicy", "Always")
        self.init_runners = [ContainerRunner(self, c, init=True)
                             for c in spec.get("initContainers") or []]
        self.runners = [ContainerRunner(self, c, init=False) for c in spec["containers"]]
        self.start_time = now()
        self.status_changed()

        if await self._set_up_sandbox():
            initialized = True
            for runner in self.init_runners:
                if not await runner.run(policy):
                    initialized = False
                    break
            if initialized and not self.terminating.is_set():
                await asyncio.gather(*(r.run(policy) for r in self.runners))

        await self._flush_status()
        if not self.terminating.is_set():
            log.info("Pod %s/%s finished; it keeps its status until deleted.",
                     self.namespace, self.name)
            self._release_network()
        await self.terminating.wait()
        await self._flush_status()

    async def _set_up_sandbox(self) -> bool:
        self.pod_ip = self.agent.pod_addresses.claim()
        self.network_active = True
        for folder in (self.pod_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.refresh_hosts()
        self.status_changed()
        while True:
            try:
                self.volumes = await prepare_volumes(
                    self.pod, self.pod_dir / "volumes", objects=self.objects(),
                    pvc_root=self.agent.pvc_root, tokens=self._token,
                    allocatable=self.allocatable,
                )
                break
            except (ContainerConfigError, OSError, KubeApiError) as exc:
                log.warning("Volumes of pod %s/%s are not ready: %s", self.namespace,
                            self.name, exc)
                for runner in self._all_runners():
                    runner.record.state = waiting("ContainerCreating",
                                                  f"MountVolume.SetUp failed: {exc}")
                self.status_changed()
                if await sleep_or(self.terminating, 2):
                    return False
        self.sandbox_ready = True
        self.status_changed()
        return not self.terminating.is_set()

    async def _token(self, audience: str | None, seconds: int) -> str:
        return await self.agent.service_account_token(self._pod, audience, seconds)

    def refresh_hosts(self) -> None:
        if self.network_active:
            write_in_place(self.hosts_file, self.agent.hosts_for(self.named()))

    def _release_network(self) -> None:
        if self.network_active:
            self.network_active = False
            self.agent.pod_addresses.free(self.pod_ip)
            self.agent.pods_changed()

    async def _finish(self) -> None:
        self._release_network()
        if not self.gone and not self.node_stopping:
            path = f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"
            options = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                       "preconditions": {"uid": self.uid}}
            try:
                await self.agent.api.delete(path, options)
            except KubeApiError as exc:
                if not (exc.not_found or exc.conflict):
                    log.warning("Deleting pod %s/%s failed: %s", self.namespace, self.name, exc)
        shutil.rmtree(self.pod_dir, ignore_errors=True)
        self.agent.forget(self)
        log.info("Pod %s/%s is gone from the node.", self.namespace, self.name)

    def _all_runners(self) -> list[ContainerRunner]:
        return [*self.init_runners, *self.runners]

    # -- status -----------------------------------------------------------------
    async def _write_status(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0.05)
            self._dirty.clear()
            try:
                sent = await self._flush_status()
            except Exception:  # noqa: BLE001 - a bug here must not silence the pod for good
                log.exception("Building the status of pod %s/%s failed.", self.namespace,
                              self.name)
                sent = False
            if not sent:
                await asyncio.sleep(1)
                self._dirty.set()

    async def _flush_status(self) -> bool:
        """Send the status if it changed; False when the API refused it (retried later)."""
        if self.gone or self.node_stopping or not self.runners:
            return True
        async with self._status_lock:
            stopped = not any(r.record.running for r in self._all_runners())
            body = status_patch(
                self.pod, [r.record for r in self.init_runners], [r.record for r in self.runners],
                pod_ip=self.pod_ip, start_time=self.start_time,
                terminal=self.terminating.is_set() and stopped,
                sandbox_ready=self.sandbox_ready and self.network_active,
            )
            fingerprint = json.dumps(body, sort_keys=True)
            if fingerprint == self._sent:
                return True
            body["conditions"] = stamp_transitions(body["conditions"], self._conditions)
            path = f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status"
            try:
                await self.agent.api.patch(path, {"status": body}, strategic=True)
            except KubeApiError as exc:
                if exc.not_found:
                    self.gone = True
                    return True
                log.warning("Reporting the status of pod %s/%s failed: %s", self.namespace,
                            self.name, exc)
                return False
            except (TimeoutError, OSError) as exc:
                log.warning("Reporting the status of pod %s/%s failed: %s", self.namespace,
                            self.name, exc)
                return False
            self._sent = fingerprint
            self._conditions = body["conditions"]
            log.debug("Pod %s/%s is %s.", self.namespace, self.name, body["phase"])
            return True
