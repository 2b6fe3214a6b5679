"""One container of a pod: start it, probe it, restart it with back-off, stop it.

A runner owns its :class:`ContainerRecord` and changes it at each step of the
container's life (ContainerCreating → running → terminated, CrashLoopBackOff
between runs), telling the pod through ``status_changed`` so the pod's status
follows within a fraction of a second. The restart rule is the kubelet's:
the first restart is immediate, later ones wait a back-off that doubles from
``backoff_initial`` up to ``backoff_max`` and resets after a long enough run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp

from tests.harness.devnode import images
from tests.harness.devnode.downward import ContainerConfigError, ObjectSource
from tests.harness.devnode.environment import container_environment, expand_argv
from tests.harness.devnode.kubeapi import JSON, sleep_or
from tests.harness.devnode.probes import ProbeRunner, ProbeTarget
from tests.harness.devnode.sandbox import (
    START_ERROR_EXIT,
    ContainerProcess,
    HostMountpoints,
    LaunchSpec,
    SandboxError,
    check_mounts,
    host_folders,
    resolve_command,
)
from tests.harness.devnode.status import ContainerRecord, now, waiting
from tests.harness.devnode.volumes import HostVolume, Mount, container_mounts

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4096
FALLBACK_LINES, FALLBACK_BYTES = 80, 2048
DEFAULT_TERMINATION_PATH = "/dev/termination-log"


@dataclass(frozen=True)
class Backoff:
    initial: float = 1.0
    maximum: float = 20.0
    reset_after: float = 60.0


class PodContext(Protocol):
    """What a container needs from its pod (implemented by the pod worker)."""

    pod: JSON
    pod_ip: str
    volumes: dict[str, HostVolume]
    pod_dir: Path
    log_dir: Path
    hosts_file: Path
    terminating: asyncio.Event
    backoff: Backoff
    mountpoints: HostMountpoints
    session: aiohttp.ClientSession
    allocatable: dict[str, str]

    def objects(self) -> ObjectSource: ...
    def service_env(self) -> dict[str, str]: ...
    def grace_seconds(self) -> float: ...
    def status_changed(self) -> None: ...


class ContainerRunner:
    """Runs one container spec of one pod until it is done or the pod goes."""

    def __init__(self, pod: PodContext, spec: JSON, *, init: bool) -> None:
        self.pod = pod
        self.spec = spec
        self.name = spec["name"]
        self.image = spec.get("image", "")
        has_init = bool(pod.pod["spec"].get("initContainers"))
        self.record = ContainerRecord(
            name=self.name, image=self.image, init=init,
            state=waiting("PodInitializing" if has_init else "ContainerCreating"),
        )
        self.process: ContainerProcess | None = None
        self._env: dict[str, str] = {}
        self._kill = asyncio.Event()
        self._kill_reason = ""
        folder = pod.pod_dir / "containers" / self.name
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.termination_file = folder / "termination-log"

    # -- the loop ------------------------------------------------------------
    async def run(self, restart_policy: str) -> bool:
        """Run, restarting by ``restart_policy``; True when it ended with exit code 0."""
        if not images.can_run(self.image):
            self._set(waiting(images.CANNOT_RUN_REASON, images.cannot_run_message(self.image)))
            log.info("Container %s of pod %s cannot run here: image %s.", self.name,
                     self._pod_name(), self.image)
            await self.pod.terminating.wait()
            return False

        delay = 0.0
        backoff = self.pod.backoff.initial
        first_restart = True
        while not self.pod.terminating.is_set():
            started = time.monotonic()
            code = await self.run_once()
            if code is None:
                # Configuration not resolvable yet; retried without a restart.
                if await sleep_or(self.pod.terminating, backoff):
                    return False
                backoff = min(backoff * 2, self.pod.backoff.maximum)
                continue
            if self.pod.terminating.is_set() or code == 0 and self.record.init:
                return code == 0
            if restart_policy == "Never" or (restart_policy == "OnFailure" and code == 0):
                return code == 0

            if time.monotonic() - started > self.pod.backoff.reset_after:
                backoff, first_restart = self.pod.backoff.initial, True
            if first_restart:
                delay, first_restart = 0.0, False
            else:
                delay, backoff = backoff, min(backoff * 2, self.pod.backoff.maximum)
                self.record.last_state = self.record.state
                self._set(waiting(
                    "CrashLoopBackOff",
                    f"back-off {delay:g}s restarting failed container={self.name} "
                    f"pod={self._pod_name()}",
                ))
            if await sleep_or(self.pod.terminating, delay):
                return False
            self.record.restart_count += 1
        return False

    async def run_once(self) -> int | None:
        """Start the container once and wait for its end; None if it could not be created."""
        try:
            launch = await self._launch_spec()
        except (ContainerConfigError, SandboxError, OSError) as exc:
            log.warning("Container %s of pod %s cannot be created: %s", self.name,
                        self._pod_name(), exc)
            self._set(waiting("CreateContainerConfigError", str(exc)))
            return None

        run = self.record.restart_count
        self.termination_file.write_bytes(b"")
        log_file = self.log_file(run)
        previous = self.record.state if "terminated" in self.record.state else None
        self.process = await ContainerProcess.start(
            launch, spec_file=self.folder / "launch.json", log_file=log_file)
        self.record.container_id = f"devnode://{self.pod.pod['metadata']['uid']}/{self.name}/{run}"
        if previous is not None:
            self.record.last_state = previous
        started_at = now()
        self.record.ready, self.record.started = False, False
        self._kill.clear()
        self._set({"running": {"startedAt": started_at}})
        log.info("Started container %s of pod %s (pid %d).", self.name, self._pod_name(),
                 self.process.pid)

        probing = asyncio.create_task(self._probe(launch.env))
        exited = asyncio.create_task(self.process.wait())
        killed = asyncio.create_task(self._kill.wait())
        leaving = asyncio.create_task(self.pod.terminating.wait())
        await asyncio.wait({exited, killed, leaving}, return_when=asyncio.FIRST_COMPLETED)
        for task in (probing, killed, leaving):
            task.cancel()
        if not exited.done():
            grace = self.pod.grace_seconds()
            if killed.done() and self.spec.get("livenessProbe", {}).get(
                    "terminationGracePeriodSeconds") is not None:
                grace = float(self.spec["livenessProbe"]["terminationGracePeriodSeconds"])
            await self.process.stop(grace)
        code = await exited
        await asyncio.gather(probing, killed, leaving, return_exceptions=True)

        self.record.ready = False
        self.record.started = False
        self._set({"terminated": self._terminated(code, started_at, log_file)})
        log.info("Container %s of pod %s exited with %d.", self.name, self._pod_name(), code)
        return code

    async def stop(self, grace: float) -> None:
        if self.process is not None and self.process.running:
            await self.process.stop(grace)

    def log_file(self, run: int | None = None) -> Path:
        run = self.record.restart_count if run is None else run
        return self.pod.log_dir / self.name / f"{run}.log"

    # -- pieces --------------------------------------------------------------
    async def _launch_spec(self) -> LaunchSpec:
        pod = self.pod
        termination_path = self.spec.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
        runtime = {
            "MODELSHIP_BIND_ADDRESS": pod.pod_ip,
            "MODELSHIP_TERMINATION_LOG": termination_path,
        }
        env, defined = await container_environment(
            pod.pod, self.spec, objects=pod.objects(), allocatable=pod.allocatable,
            service_env=pod.service_env(), runtime_env=runtime,
        )
        self._env = env
        mounts = container_mounts(self.spec, pod.volumes, defined)
        self.termination_file.touch()
        mounts += [
            Mount(str(pod.hosts_file), "/etc/hosts", read_only=False),
            Mount(str(self.termination_file), termination_path, read_only=False),
        ]
        check_mounts(mounts, pod.mountpoints)

        argv = images.effective_argv(self.image, self.spec.get("command"), self.spec.get("args"))
        if not argv:
            raise ContainerConfigError("no command: the container and its image name none")
        argv = resolve_command(expand_argv(argv, defined), env["PATH"])
        workdir = self.spec.get("workingDir") or images.default_workdir(self.image)
        spec = pod.pod["spec"]
        return LaunchSpec(
            argv=argv, mounts=mounts,
            hostname=spec.get("hostname") or pod.pod["metadata"]["name"],
            fallback_workdir=str(self.folder), start_error=str(self.folder / "start-error"),
            workdir=workdir, workdir_required=bool(self.spec.get("workingDir")), env=env,
            keep_visible=host_folders(self.folder.parents[3]),  # the node root
        )

    def _terminated(self, code: int, started_at: str, log_file: Path) -> JSON:
        start_error = self.process.start_error() if self.process else None
        if code == START_ERROR_EXIT and start_error:
            reason, message = "StartError", start_error
        else:
            reason = "Completed" if code == 0 else "Error"
            message = self._termination_message(code, log_file)
        if self._kill.is_set() and self._kill_reason and not message:
            message = self._kill_reason
        body: JSON = {"exitCode": code, "reason": reason, "startedAt": started_at,
                      "finishedAt": now(), "containerID": self.record.container_id}
        if message:
            body["message"] = message
        return body

    def _termination_message(self, code: int, log_file: Path) -> str:
        try:
            with open(self.termination_file, "rb") as f:
                message = f.read(MAX_MESSAGE_BYTES).decode(errors="replace")
        except OSError:
            message = ""
        policy = self.spec.get("terminationMessagePolicy", "File")
        if not message.strip() and code != 0 and policy == "FallbackToLogsOnError":
            message = tail(log_file)
        return message

    async def _probe(self, env: dict[str, str]) -> None:
        ports = {p["name"]: int(p["containerPort"]) for p in self.spec.get("ports") or []
                 if p.get("name")}
        process = self.process
        target = ProbeTarget(
            pod_ip=self.pod.pod_ip, ports=ports, env=env,
            pid=lambda: process.pid if process is not None and process.running else None,
        )
        session = self.pod.session
        if self.record.init:
            return
        startup = self.spec.get("startupProbe")
        if startup:
            runner = ProbeRunner("startup", startup, initial=False)
            await runner.run(target, session, self._on_probe, stop_on_success=True)
            if runner.failed:
                return
        self.record.started = True
        readiness = self.spec.get("readinessProbe")
        self.record.ready = readiness is None
        self.pod.status_changed()
        runners = []
        if readiness:
            runners.append(ProbeRunner("readiness", readiness, initial=False))
        if self.spec.get("livenessProbe"):
            runners.append(ProbeRunner("liveness", self.spec["livenessProbe"], initial=True))
        await asyncio.gather(*(r.run(target, session, self._on_probe) for r in runners))

    def _on_probe(self, runner: ProbeRunner) -> None:
        if runner.failed:
            self._kill_reason = f"{runner.kind} probe failed: {runner.last_failure}"
            log.info("Container %s of pod %s failed its %s probe; it will be stopped (%s).",
                     self.name, self._pod_name(), runner.kind, runner.last_failure)
            self._kill.set()
        elif runner.kind == "readiness":
            self.record.ready = runner.result
            self.pod.status_changed()

    def _set(self, state: JSON) -> None:
        self.record.state = state
        self.pod.status_changed()

    def _pod_name(self) -> str:
        meta = self.pod.pod["metadata"]
        return f"{meta['namespace']}/{meta['name']}"


def tail(path: Path, lines: int = FALLBACK_LINES, limit: int = FALLBACK_BYTES) -> str:
    """The end of a log, as the kubelet's FallbackToLogsOnError takes it."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    text = b"\n".join(data.splitlines()[-lines:])[-limit:]
    return text.decode(errors="replace")

