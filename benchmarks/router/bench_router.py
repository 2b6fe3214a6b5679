"""What the ensemble router costs per request, against a client calling the members itself.

    /root/.cache/modelship/venv/bin/python benchmarks/router/bench_router.py

Two modelship-server processes host the members (breast-cancer classifiers,
a scaler and a classifier on scaled input, as in tests/router); one
modelship-router per ensemble calls them (over HTTP, its default;
`--member-protocol grpc` for the other). For each strategy the
"direct" client does the router's job itself with tritonclient's asyncio
clients: a voting client calls the three classifiers at once and votes with
the router's own numpy code; a serial client calls the scaler, then the
classifier. The "router" client sends one request to the router. Both use
the same protocol, and requests alternate direct / router (order swapped
every request), so both see the same machine at the same moments.

Reported per point: p50 and p99 latency of each, their ratios, the p50
difference (the router's overhead: one more hop plus decode, check, fan-out
and encode), and the router process's CPU time per routed request (it does
no work for direct requests). `--concurrency` runs that many alternating
loops at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from modelship_serving.router.combine import average, majority_vote  # noqa: E402
from tests.router import members  # noqa: E402
from tests.serving.harness import free_port  # noqa: E402

VOTERS = ["logreg", "mlp", "weak"]


@dataclass
class Proc:
    process: subprocess.Popen[bytes]
    http: str
    grpc: str

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _wait_ready(http: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://{http}/v2/health/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)  # a subprocess: nothing to await
    raise SystemExit(f"{what} did not become ready")


def start(args: list[str], what: str, log_dir: Path) -> Proc:
    http, grpc_port = free_port(), free_port()
    cmd = [sys.executable, "-m", *args, "--http-port", str(http), "--grpc-port", str(grpc_port),
           "--metrics-port", "-1", "--log-level", "WARNING"]
    env = {**os.environ, "MODELSHIP_BIND_ADDRESS": "127.0.0.1", "MODELSHIP_CPU_LIMIT": "1"}
    with open(log_dir / f"{what}.log", "wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    proc = Proc(process, f"127.0.0.1:{http}", f"127.0.0.1:{grpc_port}")
    _wait_ready(proc.http, process, what)
    return proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def member(name: str, server: Proc, model: str) -> dict[str, str]:
    return {"name": name, "url": f"http://{server.http}", "grpcUrl": server.grpc, "model": model}


# -- clients ---------------------------------------------------------------------


class Client:
    """tritonclient's asyncio client of one protocol, to any number of servers."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self._clients: dict[str, object] = {}
        if protocol == "grpc":
            import tritonclient.grpc as module
            import tritonclient.grpc.aio as aio
        else:
            import tritonclient.http as module  # type: ignore[no-redef]
            import tritonclient.http.aio as aio  # type: ignore[no-redef]
        self.module, self.aio = module, aio

    def _client(self, url: str) -> object:
        if url not in self._clients:
            self._clients[url] = self.aio.InferenceServerClient(url)
        return self._clients[url]

    async def infer(self, url: str, model: str, inputs: dict[str, np.ndarray],
                    outputs: list[str]) -> dict[str, np.ndarray]:
        tensors = []
        for name, array in inputs.items():
            t = self.module.InferInput(name, list(array.shape), "FP32")
            t.set_data_from_numpy(array)
            tensors.append(t)
        result = await self._client(url).infer(  # type: ignore[attr-defined]
            model, tensors, outputs=[self.module.InferRequestedOutput(n) for n in outputs])
        return {n: result.as_numpy(n) for n in outputs}

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()  # type: ignore[attr-defined]


Call = Callable[[np.ndarray], Awaitable[dict[str, np.ndarray]]]


def voting_calls(client: Client, servers: dict[str, Proc], router: Proc) -> tuple[Call, Call]:
    address = "grpc" if client.protocol == "grpc" else "http"

    async def direct(rows: np.ndarray) -> dict[str, np.ndarray]:
        answers = await asyncio.gather(*(
            client.infer(getattr(servers[m], address), m, {"input": rows},
                         ["probabilities", "label"]) for m in VOTERS))
        probabilities = average([a["probabilities"] for a in answers])
        return {"label": majority_vote([a["label"] for a in answers], probabilities),
                "probabilities": probabilities}

    async def routed(rows: np.ndarray) -> dict[str, np.ndarray]:
        return await client.infer(getattr(router, address), "vote", {"input": rows},
                                  ["label", "probabilities"])
    return direct, routed


def serial_calls(client: Client, servers: dict[str, Proc], router: Proc) -> tuple[Call, Call]:
    address = "grpc" if client.protocol == "grpc" else "http"

    async def direct(rows: np.ndarray) -> dict[str, np.ndarray]:
        scaled = await client.infer(getattr(servers["scaler"], address), "scaler",
                                    {"raw": rows}, ["scaled"])
        return await client.infer(getattr(servers["scaled_logreg"], address), "scaled_logreg",
                                  {"input": scaled["scaled"]}, ["probabilities", "label"])

    async def routed(rows: np.ndarray) -> dict[str, np.ndarray]:
        return await client.infer(getattr(router, address), "pipeline", {"features": rows},
                                  ["probabilities", "label"])
    return direct, routed


async def measure(direct: Call, routed: Call, rows: np.ndarray, *, requests: int,
                  concurrency: int, warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """Latencies (seconds) of `requests` direct and routed calls, alternating."""
    for _ in range(warmup):
        a, b = await direct(rows), await routed(rows)
        for name in a:  # the router must answer what the client computes itself
            np.testing.assert_allclose(a[name], b[name], rtol=1e-6)
    times: dict[str, list[float]] = {"direct": [], "router": []}

    async def loop(worker: int) -> None:
        for i in range(requests // concurrency):
            order = [("direct", direct), ("router", routed)]
            if (i + worker) % 2:
                order.reverse()
            for label, call in order:
                start = time.perf_counter()
                await call(rows)
                times[label].append(time.perf_counter() - start)

    await asyncio.gather(*(loop(w) for w in range(concurrency)))
    return np.array(times["direct"]), np.array(times["router"])


async def run(args: argparse.Namespace, servers: dict[str, Proc],
              routers: dict[str, Proc]) -> list[dict[str, object]]:
    x, _ = members.breast_cancer()
    results = []
    for protocol in args.protocols:
        client = Client(protocol)
        try:
            for strategy, make in (("voting", voting_calls), ("serial", serial_calls)):
                direct, routed = make(client, servers, routers[strategy])
                for batch in args.batches:
                    for concurrency in args.concurrency:
                        pid = routers[strategy].process.pid
                        before = cpu_seconds(pid)
                        d, r = await measure(direct, routed, x[:batch], requests=args.requests,
                                             concurrency=concurrency, warmup=args.warmup)
                        cpu = (cpu_seconds(pid) - before) / (r.size + args.warmup)
                        row = summarise(strategy, protocol, batch, concurrency, d, r)
                        row["router_cpu_us"] = round(cpu * 1e6)
                        print(format_row(row), flush=True)
                        results.append(row)
        finally:
            await client.close()
    return results


def summarise(strategy: str, protocol: str, batch: int, concurrency: int,
              direct: np.ndarray, router: np.ndarray) -> dict[str, object]:
    d50, d99 = np.percentile(direct, [50, 99]) * 1e3
    r50, r99 = np.percentile(router, [50, 99]) * 1e3
    return {"strategy": strategy, "protocol": protocol, "rows": batch,
            "concurrency": concurrency, "requests": int(direct.size),
            "direct_p50_ms": round(d50, 3), "direct_p99_ms": round(d99, 3),
            "router_p50_ms": round(r50, 3), "router_p99_ms": round(r99, 3),
            "ratio_p50": round(r50 / d50, 2), "ratio_p99": round(r99 / d99, 2),
            "overhead_p50_ms": round(r50 - d50, 3)}


HEADER = (f"{'strategy':8} {'proto':5} {'rows':>4} {'conc':>4} {'direct p50':>10} "
          f"{'direct p99':>10} {'router p50':>10} {'router p99':>10} {'x p50':>6} "
          f"{'x p99':>6} {'+p50 ms':>8} {'router cpu us':>13}")


def format_row(r: dict[str, object]) -> str:
    return (f"{r['strategy']:8} {r['protocol']:5} {r['rows']:>4} {r['concurrency']:>4} "
            f"{r['direct_p50_ms']:>10} {r['direct_p99_ms']:>10} {r['router_p50_ms']:>10} "
            f"{r['router_p99_ms']:>10} {r['ratio_p50']:>6} {r['ratio_p99']:>6} "
            f"{r['overhead_p50_ms']:>8} {r['router_cpu_us']:>13}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=400, help="per target and point")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    p.add_argument("--protocols", nargs="+", default=["grpc", "http"])
    p.add_argument("--member-protocol", choices=["grpc", "http"], default="http")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-router-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        repo_a = members.write_repository(work / "a", ["logreg", "scaler"])
        repo_b = members.write_repository(work / "b", ["mlp", "weak", "scaled_logreg"])
    procs: list[Proc] = []
    try:
        a = start(["modelship_serving.server.main", "--model-repository", str(repo_a)],
                  "server-a", work)
        procs.append(a)
        b = start(["modelship_serving.server.main", "--model-repository", str(repo_b)],
                  "server-b", work)
        procs.append(b)
        servers = {"logreg": a, "scaler": a, "mlp": b, "weak": b, "scaled_logreg": b}
        configs = {
            "voting": {"name": "vote", "strategy": "voting",
                       "members": [member(m, servers[m], m) for m in VOTERS]},
            "serial": {"name": "pipeline", "strategy": "serial",
                       "members": [member("scale", a, "scaler"),
                                   member("classify", b, "scaled_logreg")],
                       "steps": [{"member": "scale", "inputMapping": {"raw": "$input.features"}},
                                 {"member": "classify",
                                  "inputMapping": {"input": "scale.scaled"}}]},
        }
        routers: dict[str, Proc] = {}
        for strategy, config in configs.items():
            config["memberProtocol"] = args.member_protocol
            path = work / f"{strategy}.json"
            path.write_text(json.dumps(config))
            routers[strategy] = start(["modelship_serving.router.main", "--config", str(path)],
                                      f"router-{strategy}", work)
            procs.append(routers[strategy])

        print(f"members called over {args.member_protocol}; latencies in ms; "
              f"x = router / direct", flush=True)
        print(HEADER, flush=True)
        try:
            import uvloop
            results = uvloop.run(run(args, servers, routers))
        except ImportError:
            results = asyncio.run(run(args, servers, routers))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        for proc in reversed(procs):
            proc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
