"""Startup, liveness and readiness probes with the kubelet's timing and thresholds.

A probe runs every ``periodSeconds`` after ``initialDelaySeconds``; its result
flips only after ``successThreshold`` successes or ``failureThreshold``
failures in a row. httpGet (any status from 200 to 399), tcpSocket, exec
(inside the container's mount namespace, through ``nsenter``) and gRPC
health checks are supported. Probes only ever reach 127.0.0.0/8: a probe
with another ``host`` fails and says why.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import shutil
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from tests.harness.devnode.kubeapi import JSON

log = logging.getLogger(__name__)


@dataclass
class ProbeTarget:
    """What a probe needs to know about the container it checks."""

    pod_ip: str
    ports: dict[str, int]
    pid: Callable[[], int | None]
    env: dict[str, str]


@dataclass(frozen=True)
class ProbeTiming:
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def of(cls, probe: JSON) -> ProbeTiming:
        return cls(
            initial_delay=float(probe.get("initialDelaySeconds", 0)),
            period=float(probe.get("periodSeconds", 10)),
            timeout=float(probe.get("timeoutSeconds", 1)),
            success_threshold=int(probe.get("successThreshold", 1)),
            failure_threshold=int(probe.get("failureThreshold", 3)),
        )


def _port(value: int | str, target: ProbeTarget) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    if value not in target.ports:
        raise ValueError(f"the container has no port named {value!r}")
    return target.ports[value]


def _loopback_host(host: str | None, target: ProbeTarget) -> str:
    host = host or target.pod_ip
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(
            f"probe host {host} is outside 127.0.0.0/8; the node only probes its pods")
    return host


async def check(probe: JSON, target: ProbeTarget, session: aiohttp.ClientSession) -> str | None:
    """Run ``probe`` once. None means success; a string says why it failed."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        return await asyncio.wait_for(_check(probe, target, session, timeout), timeout + 1)
    except TimeoutError:
        return f"probe timed out after {timeout:g}s"
    except (OSError, ValueError, aiohttp.ClientError) as exc:
        return f"probe failed: {exc}"


async def _check(
    probe: JSON, target: ProbeTarget, session: aiohttp.ClientSession, timeout: float
) -> str | None:
    if "httpGet" in probe:
        spec = probe["httpGet"]
        host = _loopback_host(spec.get("host"), target)
        scheme = spec.get("scheme", "HTTP").lower()
        url = f"{scheme}://{host}:{_port(spec['port'], target)}{spec.get('path', '/')}"
        headers = {h["name"]: h["value"] for h in spec.get("httpHeaders") or []}
        headers.setdefault("User-Agent", "kube-probe/devnode")
        ctx: ssl.SSLContext | bool = False if scheme == "https" else True
        async with session.get(
            url, headers=headers, allow_redirects=False, ssl=ctx,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            await resp.read()
            if 200 <= resp.status < 400:
                return None
            return f"HTTP probe failed with statuscode: {resp.status}"
    if "tcpSocket" in probe:
        spec = probe["tcpSocket"]
        host = _loopback_host(spec.get("host"), target)
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, _port(spec["port"], target)), timeout)
        writer.close()
        return None
    if "exec" in probe:
        return await _exec(probe["exec"]["command"], target, timeout)
    if "grpc" in probe:
        return await _grpc(probe["grpc"], target, timeout)
    return f"unsupported probe handler {sorted(probe)}"


async def _exec(command: list[str], target: ProbeTarget, timeout: float) -> str | None:
    pid = target.pid()
    if pid is None:
        return "the container is not running"
    proc = await asyncio.create_subprocess_exec(
        shutil.which("nsenter") or "nsenter", f"--target={pid}", "--mount", "--uts", "--",
        *command, env=target.env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return f"command timed out after {timeout:g}s"
    if proc.returncode == 0:
        return None
    return f"command exited {proc.returncode}: {out.decode(errors='replace')[-300:]}"


async def _grpc(spec: JSON, target: ProbeTarget, timeout: float) -> str | None:
    """grpc.health.v1.Health/Check, with its two tiny messages encoded by hand."""
    import grpc.aio

    service = spec.get("service", "").encode()
    request = (b"\x0a" + bytes([len(service)]) + service) if service else b""
    host = f"{target.pod_ip}:{int(spec['port'])}"
    async with grpc.aio.insecure_channel(host) as channel:
        check_call = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda b: b, response_deserializer=lambda b: b,
        )
        try:
            reply = await check_call(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            return f"gRPC health check failed: {exc.code().name}"
    return None if reply == b"\x08\x01" else "gRPC service is not SERVING"


class ProbeRunner:
    """One probe of one container run; ``result`` follows the thresholds."""

    def __init__(self, kind: str, probe: JSON, *, initial: bool) -> None:
        self.kind = kind
        self.probe = probe
        self.timing = ProbeTiming.of(probe)
        self.result = initial
        self.failed = False
        self.last_failure: str | None = None

    async def run(
        self,
        target: ProbeTarget,
        session: aiohttp.ClientSession,
        on_change: Callable[[ProbeRunner], None],
        *,
        stop_on_success: bool = False,
    ) -> None:
        """Probe until cancelled (or, for startup probes, until the first pass)."""
        await asyncio.sleep(self.timing.initial_delay)
        successes = failures = 0
        while True:
            failure = await check(self.probe, target, session)
            if failure is None:
                successes, failures = successes + 1, 0
                if not self.result and successes >= self.timing.success_threshold:
                    self.result = True
                    on_change(self)
                if stop_on_success and self.result:
                    return
            else:
                successes, failures = 0, failures + 1
                self.last_failure = failure
                log.debug("%s probe failed (%d in a row): %s", self.kind, failures, failure)
                if failures >= self.timing.failure_threshold:
                    if self.kind != "readiness":
                        # Startup and liveness failures end the container run.
                        self.result, self.failed = False, True
                        on_change(self)
                        return
                    if self.result:
                        self.result = False
                        on_change(self)
            await asyncio.sleep(self.timing.period)
