"""Operator throughput, idle writes and memory, against a bare client, in one run.

    ~/.cache/modelship/venv/bin/python -m benchmarks.operator.bench_reconcile [--count 200]

1. A bare async client creates, for N ModelDeployments, the same children the
   operator would (ConfigMap, Deployment, Service, PDB) in a scratch
   namespace: the floor for "make these objects exist".
2. The operator (the real `modelship run` process) is started, N
   ModelDeployments are applied in another namespace, and the time until every
   child exists is measured.
3. Once its writes have stopped for 90 s (the controllers keep making Pods,
   statuses follow them, and retries come back after their backoff), it
   idles for a minute: API writes per idle
   minute (goal: zero) are read from the operator's own request counter; its
   RSS is read from /proc.

Everything runs against the local control plane on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import kopf

from modelship_operator.api.deployment import ModelDeployment
from modelship_operator.builders.children import desired_children
from modelship_operator.cluster.client import KubeClient, resource_path
from modelship_operator.settings import Settings
from tests.harness.controlplane import ControlPlane, free_port

REPO = Path(__file__).resolve().parents[2]
MD = {
    "apiVersion": "modelship.io/v1alpha1", "kind": "ModelDeployment",
    "spec": {"model": {"format": "onnx", "storageUri": "pvc://models/bc"},
             "runtime": {"batching": {"maxBatchSize": 8}}, "replicas": 2},
}


def md_body(namespace: str, index: int) -> dict:
    body = json.loads(json.dumps(MD))
    body["metadata"] = {"name": f"m{index:04d}", "namespace": namespace}
    return body


async def bare_create(plane: ControlPlane, namespace: str, count: int) -> tuple[float, int]:
    """Create every child of ``count`` ModelDeployments with plain POSTs, concurrently."""
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    client = KubeClient(info)
    settings = Settings.from_env()
    manifests = []
    for i in range(count):
        body = md_body(namespace, i)
        body["metadata"]["uid"] = f"00000000-0000-0000-0000-{i:012d}"
        md = ModelDeployment.from_k8s(body)
        for child in desired_children(md, body, settings):
            if child.manifest is not None:
                manifest = dict(child.manifest)
                manifest["metadata"] = {k: v for k, v in manifest["metadata"].items()
                                        if k != "ownerReferences"}
                manifests.append((child.kind, manifest))
    semaphore = asyncio.Semaphore(32)

    async def create(kind, manifest):
        async with semaphore:
            await client.create(resource_path(kind.api_version, kind.plural,
                                              namespace=namespace), manifest)

    started = time.perf_counter()
    await asyncio.gather(*(create(k, m) for k, m in manifests))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed, len(manifests)


def count_children(plane: ControlPlane, namespace: str) -> int:
    out = plane.kubectl("get", "configmaps,deployments,services,pdb", "-n", namespace,
                        "-l", "app.kubernetes.io/managed-by=modelship", "-o", "name").stdout
    return len(out.split())


def operator_writes(port: int) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("modelship_operator_api_requests_total{") and 'verb="GET"' not in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    args = parser.parse_args()
    # SIGTERM ends the run through the `finally` below, which stops every process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    plane = ControlPlane.start()
    operator = None
    try:
        plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        plane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        plane.kubectl("create", "namespace", "bare")
        plane.kubectl("create", "namespace", "operated")
        os.environ["KUBECONFIG"] = str(plane.kubeconfig)

        bare_seconds, objects = asyncio.run(bare_create(plane, "bare", args.count))
        print(f"bare client: {objects} objects in {bare_seconds:.2f}s", flush=True)

        port = free_port()
        log = tempfile.NamedTemporaryFile(prefix="modelship-operator-", suffix=".log",
                                          delete=False)
        operator = subprocess.Popen(
            [sys.executable, "-m", "modelship_operator.cli", "run", "--all-namespaces",
             "--metrics-port", str(port)],
            env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)},
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                operator_writes(port)
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(2)  # let Kopf finish its initial listing

        manifest = "\n---\n".join(json.dumps(md_body("operated", i)) for i in range(args.count))
        started = time.perf_counter()
        plane.kubectl("apply", "-f", "-", input=manifest, timeout=600)
        while count_children(plane, "operated") < objects:
            if time.perf_counter() - started > 900:
                raise SystemExit("the operator did not create every child within 15 minutes")
            time.sleep(0.5)
        operator_seconds = time.perf_counter() - started
        print(f"operator: {objects} objects for {args.count} ModelDeployments in "
              f"{operator_seconds:.2f}s (apply included)", flush=True)

        # The controllers go on creating ReplicaSets and Pods after the last
        # child exists, each change is rightly followed by a status write, and
        # a reconcile that met a retryable error comes back after up to 60 s
        # of backoff: idle starts once no write has happened for 90 seconds.
        settled_at, last = time.monotonic(), operator_writes(port)
        settle_started = time.monotonic()
        while time.monotonic() - settled_at < 90 and time.monotonic() - settle_started < 900:
            time.sleep(2)
            now = operator_writes(port)
            if now != last:
                settled_at, last = time.monotonic(), now
        settle_seconds = time.monotonic() - settle_started
        before = operator_writes(port)
        time.sleep(args.idle_seconds)
        idle = operator_writes(port) - before
        per_minute = idle * 60.0 / args.idle_seconds
        memory = rss_mib(operator.pid)

        print()
        print("| measure | value |")
        print("| --- | --- |")
        print(f"| ModelDeployments | {args.count} ({objects} children) |")
        print(f"| bare client, create every child | {bare_seconds:.2f} s |")
        print(f"| operator, apply until every child exists | {operator_seconds:.2f} s |")
        print(f"| ratio operator / bare client | {operator_seconds / bare_seconds:.2f} |")
        print(f"| time until the status writes settled | {settle_seconds:.0f} s |")
        print(f"| API writes per idle minute | {per_minute:.1f} |")
        print(f"| operator RSS | {memory:.0f} MiB |")
    finally:
        if operator is not None:
            operator.terminate()
            try:
                operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                operator.kill()
        plane.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
