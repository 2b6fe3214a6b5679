"""Restarts, probes, init containers, deletion and images the node cannot run."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.harness.controlplane import ControlPlane
from tests.harness.devnode import DevNode
from tests.integration.devnode.conftest import (
    SERVER_IMAGE,
    TRAINER_IMAGE,
    TRITON_IMAGE,
    apply,
    container_status,
    get,
    terminated,
    wait_until,
)

pytestmark = pytest.mark.cluster


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def sleeper(name: str, *, grace: int, handle_term: bool) -> str:
    handler = (
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))" if handle_term
        else "signal.signal(signal.SIGTERM, signal.SIG_IGN)"
    )
    # Ready only once the handler is in place, so the test never signals too early.
    script = f"import signal, sys, time; {handler}; open('/run/ready', 'w'); time.sleep(600)"
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: {grace}
  containers:
  - name: main
    image: {SERVER_IMAGE}
    command: {json.dumps(["python", "-c", script])}
    volumeMounts: [{{name: run, mountPath: /run}}]
    readinessProbe:
      exec: {{command: [test, -f, /run/ready]}}
      periodSeconds: 1
  volumes: [{{name: run, emptyDir: {{}}}}]
"""


def test_deleting_a_pod_stops_its_process_with_sigterm_and_removes_the_pod(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    apply(control_plane, namespace, sleeper("polite", grace=30, handle_term=True))
    control_plane.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/polite",
                          "--timeout=60s")
    [pid] = dev_node.pod_pids(namespace, "polite")

    started = time.monotonic()
    control_plane.kubectl("delete", "-n", namespace, "pod", "polite", "--timeout=60s")
    assert time.monotonic() - started < 10
    assert not pid_alive(pid)


def test_a_process_that_ignores_sigterm_is_killed_when_the_grace_period_ends(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    apply(control_plane, namespace, sleeper("stubborn", grace=2, handle_term=False))
    control_plane.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/stubborn",
                          "--timeout=60s")
    [pid] = dev_node.pod_pids(namespace, "stubborn")

    started = time.monotonic()
    control_plane.kubectl("delete", "-n", namespace, "pod", "stubborn", "--wait=false")
    wait_until(lambda: not pid_alive(pid), "the process to be killed", timeout=15)
    assert 1.8 <= time.monotonic() - started < 8
    wait_until(lambda: get(control_plane, namespace, "pod", "stubborn") is None,
               "the pod to be removed")


def test_a_crashing_container_is_restarted_with_back_off(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    apply(control_plane, namespace, f"""
apiVersion: v1
kind: Pod
metadata: {{name: crasher}}
spec:
  containers:
  - name: main
    image: {SERVER_IMAGE}
    command: [python, -c, "raise SystemExit(7)"]
""")

    def restarted_twice() -> dict | None:
        status = container_status(get(control_plane, namespace, "pod", "crasher") or {}, "main")
        return status if status.get("restartCount", 0) >= 2 else None

    status = wait_until(restarted_twice, "two restarts")
    assert status["lastState"]["terminated"]["exitCode"] == 7

    def backing_off() -> dict | None:
        pod = get(control_plane, namespace, "pod", "crasher") or {}
        state = container_status(pod, "main").get("state", {})
        return pod if state.get("waiting", {}).get("reason") == "CrashLoopBackOff" else None

    pod = wait_until(backing_off, "CrashLoopBackOff")
    # Restarting, so still Running by the kubelet's rules, but not Ready.
    assert pod["status"]["phase"] == "Running"
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"


def test_liveness_and_readiness_probes_run_inside_the_container(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    # /probe exists only in the container's mount namespace: exec probes must enter it.
    script = (
        "import os, time; open('/probe/ok', 'w').close(); time.sleep(3); "
        "os.remove('/probe/ok'); time.sleep(600)"
    )
    apply(control_plane, namespace, f"""
apiVersion: v1
kind: Pod
metadata: {{name: probed}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {SERVER_IMAGE}
    command: {json.dumps(["python", "-c", script])}
    volumeMounts: [{{name: probe, mountPath: /probe}}]
    readinessProbe:
      exec: {{command: [test, -f, /probe/ok]}}
      periodSeconds: 1
    livenessProbe:
      exec: {{command: [test, -f, /probe/ok]}}
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 2
  volumes: [{{name: probe, emptyDir: {{}}}}]
""")
    control_plane.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/probed",
                          "--timeout=60s")

    def restarted() -> dict | None:
        status = container_status(get(control_plane, namespace, "pod", "probed") or {}, "main")
        return status if status.get("restartCount", 0) >= 1 else None

    status = wait_until(restarted, "a restart after the liveness probe failed")
    last = status["lastState"]["terminated"]
    assert last["exitCode"] in (137, 143)
    assert "liveness probe failed" in last["message"]


def test_init_containers_run_in_order_before_the_containers(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    def step(text: str) -> str:
        return json.dumps(["python", "-c", f"open('/work/trace', 'a').write('{text}')"])

    apply(control_plane, namespace, f"""
apiVersion: v1
kind: Pod
metadata: {{name: ordered}}
spec:
  restartPolicy: Never
  initContainers:
  - {{name: first, image: {SERVER_IMAGE}, command: {step("1")},
     volumeMounts: [{{name: work, mountPath: /work}}]}}
  - {{name: second, image: {SERVER_IMAGE}, command: {step("2")},
     volumeMounts: [{{name: work, mountPath: /work}}]}}
  containers:
  - name: main
    image: {SERVER_IMAGE}
    command: [python, -c, "import shutil; shutil.copy('/work/trace', '/dev/termination-log')"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  volumes: [{{name: work, emptyDir: {{}}}}]
""")
    state = terminated(control_plane, namespace, "ordered", "main")
    assert state["message"] == "12"
    pod = get(control_plane, namespace, "pod", "ordered")
    assert pod["status"]["phase"] == "Succeeded"
    for name in ("first", "second"):
        assert container_status(pod, name, init=True)["state"]["terminated"]["exitCode"] == 0


def test_a_failed_init_container_fails_a_pod_that_never_restarts(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    apply(control_plane, namespace, f"""
apiVersion: v1
kind: Pod
metadata: {{name: badinit}}
spec:
  restartPolicy: Never
  initContainers:
  - name: fetch
    image: {SERVER_IMAGE}
    command: [python, -c, "raise SystemExit(4)"]
  containers:
  - {{name: main, image: {SERVER_IMAGE}, command: [python, -c, "pass"]}}
""")
    pod = wait_until(
        lambda: (p := get(control_plane, namespace, "pod", "badinit")) and
        p["status"].get("phase") == "Failed" and p, "the pod to fail")
    init = container_status(pod, "fetch", init=True)["state"]["terminated"]
    assert init["exitCode"] == 4
    assert container_status(pod, "main")["state"]["waiting"]["reason"] == "PodInitializing"


def test_a_command_that_does_not_exist_ends_in_start_error(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    apply(control_plane, namespace, f"""
apiVersion: v1
kind: Pod
metadata: {{name: typo}}
spec:
  restartPolicy: Never
  containers:
  - {{name: main, image: {TRAINER_IMAGE}, command: [modelship-trainr]}}
""")
    state = terminated(control_plane, namespace, "typo", "main")
    assert state["exitCode"] == 128 and state["reason"] == "StartError"
    assert "modelship-trainr" in state["message"]


def test_a_missing_config_map_holds_the_container_until_it_exists(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    apply(control_plane, namespace, f"""
apiVersion: v1
kind: Pod
metadata: {{name: waits}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {TRAINER_IMAGE}
    command: [python, -c, "import os; open('/dev/termination-log', 'w').write(os.environ['X'])"]
    env:
    - name: X
      valueFrom: {{configMapKeyRef: {{name: late, key: x}}}}
""")

    def waiting_reason() -> str | None:
        state = container_status(get(control_plane, namespace, "pod", "waits") or {}, "main")
        return state.get("state", {}).get("waiting", {}).get("reason")

    wait_until(lambda: waiting_reason() == "CreateContainerConfigError",
               "CreateContainerConfigError")
    control_plane.kubectl("create", "configmap", "late", "-n", namespace, "--from-literal=x=1")
    state = terminated(control_plane, namespace, "waits", "main")
    assert state["exitCode"] == 0 and state["message"] == "1"


def test_an_image_the_node_cannot_run_waits_with_a_reason_that_says_so(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    apply(control_plane, namespace, f"""
apiVersion: v1
kind: Pod
metadata: {{name: triton}}
spec:
  containers:
  - name: server
    image: {TRITON_IMAGE}
    command: [tritonserver, --model-repository=/mnt/models]
""")

    def waiting() -> dict | None:
        state = container_status(get(control_plane, namespace, "pod", "triton") or {}, "server")
        return state.get("state", {}).get("waiting")

    reason = wait_until(lambda: (w := waiting()) and w.get("reason") == "ImageCannotRun" and w,
                        "ImageCannotRun")
    assert "runs only Modelship's images" in reason["message"]
    assert TRITON_IMAGE in reason["message"]
    pod = get(control_plane, namespace, "pod", "triton")
    assert pod["status"]["phase"] == "Pending"
    assert dev_node.pod_pids(namespace, "triton") == []
