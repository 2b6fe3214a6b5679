"""The operator, run with a token of the chart's ServiceAccount, reconciles a ModelDeployment.

The RBAC tables say what the account may do; this says it is enough. The
chart is installed in namespaced mode (the tighter grant), the operator runs
as a local process with exactly the arguments and environment of the
Deployment Helm created, and a ModelDeployment goes from Progressing to
Healthy to Degraded as Argo CD's health script reads it. Along the way the operator must
meet no 403, and must leave the object's spec to its owner.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.controlplane import ControlPlane, free_port
from tests.integration.install.release import Release, install
from tests.unit.install.lua import health_script, lua_available, run_health
from tests.unit.install.paths import REPO

# A 403 status or a Forbidden reason, not the digits 403 inside a uid or a timestamp.
FORBIDDEN = re.compile(rb"(?<![\w.:-])403(?![\w.:-])|Forbidden")

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

EXAMPLE = REPO / "examples" / "breast-cancer-onnx-pvc.yaml"
HEALTH_SCRIPT = health_script("modeldeployment-health.lua")
TEST_MANAGER = "modelship-install-test"


def wait_until(predicate, what: str, *, timeout: float = 90.0, process=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the operator exited ({process.returncode}) while waiting "
                                 f"for {what}")
        last = predicate()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def token_kubeconfig(plane: ControlPlane, release: Release, path: Path) -> Path:
    """A kubeconfig that logs in with a fresh token of the chart's ServiceAccount."""
    token = plane.kubectl("create", "token", release.service_account, "-n", release.namespace,
                          "--duration=1h").stdout.strip()
    admin = json.loads(plane.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "chart-account", "user": {"token": token}}],
        "contexts": [{"name": "chart", "context": {"cluster": cluster["name"],
                                                   "user": "chart-account"}}],
        "current-context": "chart",
    }))
    path.chmod(0o600)
    return path


def capture(obj: dict[str, Any], name: str, expect: str, description: str) -> None:
    """With MODELSHIP_CAPTURE_FIXTURES=DIR, save an operator-written object as a Lua fixture.

    That is how the `operator-*` fixtures of tests/unit/install/fixtures were made.
    """
    folder = os.environ.get("MODELSHIP_CAPTURE_FIXTURES")
    if not folder:
        return
    obj = json.loads(json.dumps(obj))
    obj["metadata"].pop("managedFields", None)
    fixture = {"description": description, "expect": {"status": expect}, "object": obj}
    (Path(folder) / f"{name}.json").write_text(json.dumps(fixture, indent=2) + "\n")


def get(plane: ControlPlane, *args: str) -> dict[str, Any]:
    return json.loads(plane.kubectl("get", *args, "-o", "json").stdout)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), {})


def answers(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


def play_kubelet(plane: ControlPlane, namespace: str, selector: str) -> int:
    """Mark the pods Running and Ready, as a kubelet would once the servers answer."""
    pods = get(plane, "pods", "-n", namespace, "-l", selector)["items"]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for pod in pods:
        containers = [{"name": c["name"], "ready": True, "restartCount": 0, "image": c["image"],
                       "imageID": "", "state": {"running": {"startedAt": now}}}
                      for c in pod["spec"]["containers"]]
        status = {"status": {"phase": "Running", "containerStatuses": containers, "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now}]}}
        plane.kubectl("patch", "pod", pod["metadata"]["name"], "-n", namespace,
                      "--subresource=status", "--type=merge", "-p", json.dumps(status))
    return len(pods)


def crash_servers(plane: ControlPlane, namespace: str, selector: str, message: str) -> None:
    """Put every server container into CrashLoopBackOff, the way a bad model does."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for pod in get(plane, "pods", "-n", namespace, "-l", selector)["items"]:
        containers = [{
            "name": c["name"], "ready": False, "restartCount": 3, "image": c["image"],
            "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": message}},
        } for c in pod["spec"]["containers"]]
        status = {"status": {"phase": "Running", "containerStatuses": containers, "conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": now}]}}
        plane.kubectl("patch", "pod", pod["metadata"]["name"], "-n", namespace,
                      "--subresource=status", "--type=merge", "-p", json.dumps(status))


@pytest.fixture
def watched(control_plane: ControlPlane) -> Iterator[str]:
    name = f"t-watched-{os.urandom(3).hex()}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def release(
    control_plane: ControlPlane, namespace: str, watched: str, request: pytest.FixtureRequest
) -> Iterator[Release]:
    """The chart in namespaced mode, with any extra values the test passes indirectly."""
    extra = getattr(request, "param", {})
    made = install(control_plane, namespace, {"watchNamespaces": [watched], **extra})
    yield made
    made.uninstall()


@pytest.fixture
def operator_process(
    control_plane: ControlPlane, release: Release, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str, str, Path]]:
    """`modelship run` with the installed Deployment's arguments and environment."""
    container = release.deployment()["spec"]["template"]["spec"]["containers"][0]
    health_port, metrics_port = free_port(), free_port()
    # Kopf's health endpoint on a free loopback port instead of the pod's 0.0.0.0:8080.
    local = f"--liveness=http://127.0.0.1:{health_port}"
    args = [re.sub(r"^--liveness=http://0\.0\.0\.0:\d+", local, a) for a in container["args"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
    env.update({
        "KUBECONFIG": str(token_kubeconfig(control_plane, release, tmp_path / "kubeconfig")),
        "MODELSHIP_METRICS_PORT": str(metrics_port),
        "POD_ID": "chart-account-test",
    })
    command = Path(sys.executable).with_name(container["command"][0])
    log = tmp_path / "operator.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(command), *args], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    health = f"http://127.0.0.1:{health_port}/healthz"
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        yield process, health, metrics, log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.skipif(not lua_available(), reason="lua5.4 is not installed")
def test_the_operator_with_the_charts_token_reconciles_a_model_deployment(
    control_plane: ControlPlane, release: Release, watched: str,
    operator_process: tuple[subprocess.Popen[bytes], str, str, Path],
):
    process, health, metrics, log = operator_process
    try:
        wait_until(lambda: answers(health) is not None, "Kopf's health endpoint",
                   process=process)

        control_plane.kubectl("apply", "--server-side", f"--field-manager={TEST_MANAGER}",
                              "-n", watched, "-f", str(EXAMPLE))
        name = get(control_plane, "-f", str(EXAMPLE), "-n", watched)["metadata"]["name"]
        first = wait_until(
            lambda: (md := get(control_plane, "modeldeployment", name, "-n", watched))
            .get("status", {}).get("observedGeneration") == md["metadata"]["generation"]
            and condition(md, "Ready") and md,
            "the operator to write the ModelDeployment's status", process=process,
        )
        children = get(control_plane, "deployments", "-n", watched, "-l",
                       "app.kubernetes.io/managed-by=modelship")["items"]
        assert children, "the operator created no server Deployment"
        assert run_health(HEALTH_SCRIPT, first).status == "Progressing"
        capture(first, "operator-md-waiting-for-servers", "Progressing",
                "Written by the operator: servers created, none ready yet.")

        selector = first["status"].get("selector") or "app.kubernetes.io/managed-by=modelship"
        wait_until(lambda: play_kubelet(control_plane, watched, selector) >= 2,
                   "the Deployment controller to create the server pods", process=process)
        ready = wait_until(
            lambda: condition(md := get(control_plane, "modeldeployment", name, "-n", watched),
                              "Ready").get("status") == "True" and md,
            "the ModelDeployment to become Ready", process=process,
        )
        verdict = run_health(HEALTH_SCRIPT, ready)
        assert verdict.status == "Healthy", verdict.message
        capture(ready, "operator-md-ready", "Healthy",
                "Written by the operator: every server ready, no Prometheus Operator.")

        # A model the servers cannot load turns the application Degraded.
        crash_servers(control_plane, watched, selector, "model.onnx: protobuf parsing failed")
        failing = wait_until(
            lambda: condition(md := get(control_plane, "modeldeployment", name, "-n", watched),
                              "ModelLoaded").get("status") == "False" and md,
            "the operator to report the servers failing", process=process,
        )
        verdict = run_health(HEALTH_SCRIPT, failing)
        assert verdict.status == "Degraded", verdict.message
        assert "protobuf parsing failed" in verdict.message
        capture(failing, "operator-md-servers-crashing", "Degraded",
                "Written by the operator: the servers crash loop on a bad model file.")

        # The operator wrote status only: every spec field is still the test's.
        assert failing["spec"] == first["spec"]
        for entry in failing["metadata"].get("managedFields", []):
            if entry["manager"] != TEST_MANAGER and entry.get("subresource") != "status":
                assert "f:spec" not in json.dumps(entry.get("fieldsV1", {})), entry["manager"]

        # Its own requests all succeeded, writes included.
        exported = answers(metrics) or ""
        codes = re.findall(r'modelship_operator_api_requests_total\{[^}]*code="(\w+)"[^}]*\}'
                           r' ([0-9.e+]+)', exported)
        assert codes, "the operator exported no API request counts"
        assert not [code for code, _ in codes if code in ("401", "403")], codes
        assert not FORBIDDEN.search(log.read_bytes()), log.read_bytes()[-3000:]
    except AssertionError:
        print(log.read_text(errors="replace")[-6000:])
        raise


@pytest.mark.parametrize("release", [{"replicas": 2, "peering": {"name": "ha-test"}}],
                         indirect=True)
def test_a_peer_with_the_charts_token_keeps_its_place_in_the_peering_object(
    control_plane: ControlPlane, release: Release, watched: str,
    operator_process: tuple[subprocess.Popen[bytes], str, str, Path],
):
    process, health, _, log = operator_process
    try:
        wait_until(lambda: answers(health) is not None, "Kopf's health endpoint",
                   process=process)

        # Kopf's keep-alive is a patch of the peering object's status, keyed by POD_ID.
        peering = wait_until(
            lambda: (obj := get(control_plane, "kopfpeering", "ha-test", "-n", watched))
            .get("status", {}).get("chart-account-test") and obj,
            "the operator's keep-alive in the peering object", process=process,
        )

        assert peering["metadata"]["labels"]["app.kubernetes.io/instance"] == release.name
        assert not FORBIDDEN.search(log.read_bytes()), log.read_bytes()[-3000:]
    except AssertionError:
        print(log.read_text(errors="replace")[-6000:])
        raise
