"""Modelship's whole life cycle on this machine: the demo and the end-to-end test.

One flow, two users: ``tests.harness.demo`` prints it for a person, and
``tests/e2e`` asserts on the very same steps. It starts the local control
plane and the development node, installs the CRDs, runs the operator (the
real ``modelship run`` process), pre-trains version 1 of each model on part of
scikit-learn's breast-cancer data, applies ``examples/demo/``, waits for the
fine-tuning Job's version to pass the gate and be served, and answers
inference through ``tritonclient`` over HTTP and gRPC.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.harness.controlplane import ControlPlane, free_port
from tests.harness.devnode.devnode import DevNode

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "modelship-demo"
MEMBERS = {"bc-small": [8], "bc-medium": [32, 16], "bc-wide": [128, 64]}


def say(message: str) -> None:
    print(message, flush=True)


@dataclass
class Environment:
    """Everything the flow started; ``close`` stops it all."""

    plane: ControlPlane
    node: DevNode
    root: Path
    operator: subprocess.Popen[bytes] | None = None
    operator_log: Path | None = None
    prometheus: subprocess.Popen[bytes] | None = None
    extra: list[Callable[[], None]] = field(default_factory=list)

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.plane.kubectl(*args, **kwargs)

    def get(self, *args: str) -> dict[str, Any] | None:
        done = self.kubectl("get", *args, "-o", "json", check=False)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def close(self) -> None:
        for stop in reversed(self.extra):
            with contextlib.suppress(Exception):
                stop()
        for proc in (self.prometheus, self.operator):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.node.stop()
        self.plane.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def environment() -> Iterator[Environment]:
    """Control plane, development node, CRDs and the operator, stopped on exit."""
    say("==> Starting the local control plane (etcd, kube-apiserver, controller manager, "
        "scheduler)")
    started = time.monotonic()
    plane = ControlPlane.start()
    root = Path(tempfile.mkdtemp(prefix="modelship-demo-"))
    try:
        node = DevNode(plane.kubeconfig, root / "node").start()
    except BaseException:
        plane.stop()
        raise
    env = Environment(plane=plane, node=node, root=root)
    try:
        say(f"    up at {plane.server} with node {node.node_name} "
            f"in {time.monotonic() - started:.1f}s")
        say("==> Installing Modelship's CRDs")
        env.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        env.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        start_operator(env)
        yield env
    finally:
        env.close()


def start_operator(env: Environment) -> None:
    say("==> Starting the operator (modelship run --all-namespaces)")
    env.operator_log = env.root / "operator.log"
    port = free_port()
    env.operator = subprocess.Popen(
        [sys.executable, "-m", "modelship_operator.cli", "run", "--all-namespaces",
         "--metrics-port", str(port)],
        env={**os.environ, "KUBECONFIG": str(env.plane.kubeconfig)},
        stdout=open(env.operator_log, "wb"), stderr=subprocess.STDOUT,
    )


def wait_for(predicate: Callable[[], Any], what: str, *, timeout: float = 300,
             env: Environment | None = None) -> Any:
    """Poll until ``predicate`` is truthy; on timeout say what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if env is not None and env.operator is not None and env.operator.poll() is not None:
            raise RuntimeError(f"the operator exited while waiting for {what}")
        time.sleep(1)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), {})


# -- models ------------------------------------------------------------------

def _pretrain_command(repository: Path, model: str, hidden: list[int], seed: int) -> list[str]:
    return [sys.executable, "-m", "modelship_serving.training.pretrain",
            "--dataset", "sklearn://breast_cancer?rows=0:200", "--task", "classification",
            "--num-classes", "2", "--out", str(repository), "--model-name", model,
            "--hidden-sizes", ",".join(map(str, hidden)), "--seed", str(seed), "--epochs", "30"]


def prepare_models(env: Environment) -> None:
    """Version 1 of each model on the demo's volume, trained on rows 0-199 (in parallel)."""
    say("==> Pre-training version 1 of each model on rows 0-199 of breast cancer")
    env.kubectl("create", "namespace", NAMESPACE)
    env.kubectl("apply", "-n", NAMESPACE, "-f", str(REPO / "examples/demo/storage.yaml"))
    repository = env.node.pvc_path(NAMESPACE, "models")
    started = time.monotonic()
    runs = {
        name: subprocess.Popen(
            _pretrain_command(repository, name, hidden, seed),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            # One thread each: the runs share the machine's cores between them.
            env={**os.environ, "OMP_NUM_THREADS": "1", "MODELSHIP_CPU_LIMIT": "1"},
        )
        for seed, (name, hidden) in enumerate({"breast-cancer": [32, 16], **MEMBERS}.items())
    }
    for name, proc in runs.items():
        output, _ = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"pre-training {name} failed: {output[-1500:].decode()}")
        say(f"    {name}: version 1 written ({time.monotonic() - started:.0f}s)")


def apply_examples(env: Environment) -> None:
    say("==> kubectl apply -f examples/demo/")
    out = env.kubectl("apply", "-n", NAMESPACE, "-f", str(REPO / "examples/demo")).stdout
    for line in out.splitlines():
        say(f"    {line}")


def wait_ready(env: Environment, kind: str, name: str, *, timeout: int = 300) -> None:
    started = time.monotonic()
    env.kubectl("wait", f"--for=condition=Ready", f"{kind}/{name}", "-n", NAMESPACE,
                f"--timeout={timeout}s", timeout=timeout + 30)
    say(f"    {kind}/{name} is Ready ({time.monotonic() - started:.0f}s)")


def wait_for_promotion(env: Environment, name: str, *, timeout: float = 900) -> dict[str, Any]:
    """Wait for the fine-tuning run's verdict and, if promoted, for it to be served."""
    say(f"==> Fine-tuning {name} on rows 200-568 (a Job runs modelship-trainer)")
    last = [""]

    def verdict() -> dict[str, Any] | None:
        md = env.get("md", name, "-n", NAMESPACE)
        ft = condition(md, "FineTuned")
        if ft.get("message") and ft.get("message") != last[0]:
            last[0] = ft["message"]
            say(f"    FineTuned={ft.get('status')} {ft.get('reason')}: {ft['message']}")
        return md if ft.get("status") in ("True", "False") else None

    md = wait_for(verdict, f"the fine-tuning verdict of {name}", timeout=timeout, env=env)
    if condition(md, "FineTuned").get("status") == "True":
        produced = md["status"]["fineTuning"]["producedVersion"]
        wait_for(lambda: (m := env.get("md", name, "-n", NAMESPACE))
                 and m["status"].get("servingVersion") == produced
                 and condition(m, "Ready").get("status") == "True"
                 and condition(m, "Progressing").get("status") == "False" and m,
                 f"version {produced} of {name} to be served", timeout=timeout, env=env)
        say(f"    version {produced} is serving")
        md = env.get("md", name, "-n", NAMESPACE)
    return md or {}


# -- inference ---------------------------------------------------------------

@dataclass(frozen=True)
class TestSplit:
    features: np.ndarray
    labels: np.ndarray


def held_out_split(md: dict[str, Any]) -> TestSplit:
    """The fine-tuning run's own test split, rebuilt with the trainer's code."""
    from modelship_serving.training.config import parse_config
    from modelship_serving.training.pipeline import prepare_data

    config = parse_config({"modelName": "x", "version": 1, "outputRepository": "/tmp",
                           "fineTuning": md["spec"]["fineTuning"]})
    data = prepare_data(config)
    classification = md["spec"]["fineTuning"]["task"] == "classification"
    labels = data.y[data.test]
    return TestSplit(features=data.x[data.test].astype(np.float32),
                     labels=labels.astype(np.int64) if classification else labels)


def _chunks(features: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(features), size):
        yield np.ascontiguousarray(features[start:start + size])


def _joined(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def infer(protocol: str, address: str, model: str, features: np.ndarray, *,
          batch: int = 16) -> dict[str, np.ndarray]:
    """Outputs for every row over ``protocol`` (http or grpc), ``batch`` rows a request.

    Requests stay within the model's max_batch_size, as a client must.
    """
    if protocol == "http":
        import tritonclient.http as client_module
        url, as_json = f"{address}:8000", {}
    else:
        import tritonclient.grpc as client_module  # type: ignore[no-redef]
        url, as_json = f"{address}:8001", {"as_json": True}
    client = client_module.InferenceServerClient(url)
    parts = []
    try:
        for chunk in _chunks(features, batch):
            request = client_module.InferInput("input", list(chunk.shape), "FP32")
            request.set_data_from_numpy(chunk)
            result = client.infer(model, [request])
            response = result.get_response(**as_json)
            parts.append({o["name"]: result.as_numpy(o["name"]) for o in response["outputs"]})
    finally:
        client.close()
    return _joined(parts)


def infer_http(address: str, model: str, features: np.ndarray) -> dict[str, np.ndarray]:
    return infer("http", address, model, features)


def infer_grpc(address: str, model: str, features: np.ndarray) -> dict[str, np.ndarray]:
    return infer("grpc", address, model, features)


def in_process(model_file: Path, features: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"input": features})))


def show_predictions(labels: np.ndarray, predicted: np.ndarray, *, rows: int = 10) -> float:
    accuracy = float((predicted == labels).mean())
    say("    row  predicted  true")
    for i in range(min(rows, len(labels))):
        mark = "" if predicted[i] == labels[i] else "   <- wrong"
        say(f"    {i:3d}  {int(predicted[i]):9d}  {int(labels[i]):4d}{mark}")
    say(f"    accuracy on {len(labels)} held-out rows: {accuracy:.4f}")
    return accuracy


def majority_vote(labels: list[np.ndarray]) -> np.ndarray:
    """Each row's most frequent label; a tie goes to the lowest label."""
    stacked = np.stack(labels, axis=1)
    classes = int(stacked.max()) + 1
    counts = np.stack([(stacked == c).sum(axis=1) for c in range(classes)], axis=1)
    return counts.argmax(axis=1)


# -- Prometheus ----------------------------------------------------------------

def start_prometheus(env: Environment, targets: dict[str, str]) -> str:
    """Debian's Prometheus scraping ``targets`` (job -> host:port) every second."""
    port = free_port()
    folder = env.root / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }
    (folder / "prometheus.yml").write_text(json.dumps(config))
    env.prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={folder / 'prometheus.yml'}",
         f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=open(folder / "prometheus.log", "wb"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _prometheus_ready(url), "Prometheus to start", timeout=60)
    return url


def _prometheus_ready(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def prometheus_query(url: str, query: str) -> list[dict[str, Any]]:
    import urllib.parse
    import urllib.request

    with urllib.request.urlopen(
            f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}", timeout=5) as r:
        return json.loads(r.read())["data"]["result"]
