"""A real Kubernetes control plane on 127.0.0.1, for tests and the demo.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the
upstream programs,
built from the Go modules by ``build-controlplane.sh`` and cached outside the
repository. This module starts them with TLS, a throwaway CA and
service-account keys, waits until they answer, and stops them leaving no
process and no listening port behind.

The pytest fixture and the ``devcluster`` command for humans both drive this
one class, so what the tests exercise is what a developer explores.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.harness import pki as pkimod

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "tests" / "harness" / "build-controlplane.sh"
K8S_VERSION = os.environ.get("MODELSHIP_K8S_VERSION", "v1.37.2")
SERVICE_CIDR = "10.96.0.0/16"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or stopped cleanly."""


def cache_dir() -> Path:
    return Path(os.environ.get("MODELSHIP_CACHE", Path.home() / ".cache" / "modelship"))


def ensure_binaries() -> Path:
    """Build the binaries once per machine (cached by release) and return their folder."""
    bin_dir = cache_dir() / "controlplane" / K8S_VERSION / "bin"
    names = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl",
             "helm")
    if all((bin_dir / n).exists() for n in names):
        return bin_dir
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise ControlPlaneError(f"building the control plane failed (exit {done.returncode})")
    return Path(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, *, server: str, ca: Path, user: pkimod.Pair, name: str) -> Path:
    """Write a kubeconfig with embedded certificates for one client identity."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "modelship-dev",
            "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
        }],
        "users": [{
            "name": name,
            "user": {
                "client-certificate-data": _b64(user.cert),
                "client-key-data": _b64(user.key),
            },
        }],
        "contexts": [{
            "name": "modelship-dev",
            "context": {"cluster": "modelship-dev", "user": name, "namespace": "default"},
        }],
        "current-context": "modelship-dev",
    }
    # JSON is valid YAML, and every Kubernetes client reads it.
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


@dataclass
class Process:
    name: str
    pid: int
    port: int
    log: str


@dataclass
class ControlPlane:
    """One running control plane. Create with :meth:`start`, end with :meth:`stop`."""

    bin_dir: Path
    data_dir: Path
    apiserver_port: int = 0
    processes: list[Process] = field(default_factory=list)
    owns_data_dir: bool = True

    # -- paths -------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    def env(self) -> dict[str, str]:
        """The environment a client of this control plane runs with."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("HELM_CACHE_HOME", str(self.data_dir / "helm" / "cache"))
        env.setdefault("HELM_CONFIG_HOME", str(self.data_dir / "helm" / "config"))
        env.setdefault("HELM_DATA_HOME", str(self.data_dir / "helm" / "data"))
        return env

    # -- clients -----------------------------------------------------------
    def kubectl(
        self,
        *args: str,
        input: str | None = None,  # noqa: A002 - mirrors subprocess.run
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this control plane."""
        return self._run("kubectl", args, input=input, check=check, timeout=timeout)

    def helm(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run the built helm against this control plane."""
        return self._run("helm", args, input=input, check=check, timeout=timeout)

    def _run(
        self, tool: str, args: tuple[str, ...], *, input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / tool), *args]
        done = subprocess.run(
            cmd, input=input, capture_output=True, text=True, env=self.env(), timeout=timeout
        )
        if check and done.returncode != 0:
            raise ControlPlaneError(
                f"{tool} {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}"
            )
        return done

    # -- lifecycle ---------------------------------------------------------
    @classmethod
    def start(cls, *, data_dir: Path | None = None, timeout: float = 120) -> "ControlPlane":
        """Start etcd, the API server, controller manager and scheduler; wait until they serve."""
        bin_dir = ensure_binaries()
        owns = data_dir is None
        data_dir = Path(tempfile.mkdtemp(prefix="modelship-cp-")) if data_dir is None else data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        plane = cls(bin_dir=bin_dir, data_dir=data_dir, owns_data_dir=owns)
        started = time.monotonic()
        try:
            plane._start_all(timeout)
        except BaseException:
            plane.stop()
            raise
        log.info("Control plane %s is ready at %s after %.1fs.",
                 K8S_VERSION, plane.server, time.monotonic() - started)
        return plane

    def _start_all(self, timeout: float) -> None:
        certs = pkimod.generate(self.pki_dir)
        etcd_port, etcd_peer = free_port(), free_port()
        self.apiserver_port = free_port()
        kcm_port = free_port()

        self._spawn("etcd", etcd_port, [
            "--name=modelship-dev",
            f"--data-dir={self.data_dir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=modelship-dev=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync=true",
            "--quota-backend-bytes=2147483648",
            "--log-level=warn",
        ])
        self._wait_for(lambda: port_is_listening(etcd_port), "etcd", timeout)

        self._spawn("kube-apiserver", self.apiserver_port, [
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.apiserver_port}",
            f"--tls-cert-file={certs.apiserver.cert}",
            f"--tls-private-key-file={certs.apiserver.key}",
            f"--client-ca-file={certs.ca.cert}",
            f"--service-account-key-file={certs.service_account_pub}",
            f"--service-account-signing-key-file={certs.service_account_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            # No kubelet, so nothing can serve the endpoints of the
            # `kubernetes` Service on a loopback address.
            "--endpoint-reconciler-type=none",
            f"--cert-dir={self.data_dir / 'apiserver-certs'}",
            "--profiling=false",
            "--v=1",
        ])
        write_kubeconfig(
            self.kubeconfig, server=self.server, ca=certs.ca.cert, user=certs.admin,
            name="modelship-admin",
        )
        context = ssl.create_default_context(cafile=str(certs.ca.cert))
        context.load_cert_chain(str(certs.admin.cert), str(certs.admin.key))
        self._wait_for(lambda: self._readyz(context), "kube-apiserver", timeout)

        kcm_config = write_kubeconfig(
            self.data_dir / "controller-manager.kubeconfig", server=self.server,
            ca=certs.ca.cert, user=certs.controller_manager,
            name="system:kube-controller-manager",
        )
        self._spawn("kube-controller-manager", kcm_port, [
            f"--kubeconfig={kcm_config}",
            f"--authentication-kubeconfig={kcm_config}",
            f"--authorization-kubeconfig={kcm_config}",
            "--bind-address=127.0.0.1",
            f"--secure-port={kcm_port}",
            f"--cert-dir={self.data_dir / 'kcm-certs'}",
            f"--service-account-private-key-file={certs.service_account_key}",
            f"--root-ca-file={certs.ca.cert}",
            f"--cluster-signing-cert-file={certs.ca.cert}",
            f"--cluster-signing-key-file={certs.ca.key}",
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--leader-elect=false",
            "--controllers=*",
            # Short sync periods make the controllers' behaviour visible in
            # seconds rather than minutes in tests.
            "--horizontal-pod-autoscaler-sync-period=5s",
            "--profiling=false",
            "--v=1",
        ])
        scheduler_port = free_port()
        scheduler_config = write_kubeconfig(
            self.data_dir / "scheduler.kubeconfig", server=self.server, ca=certs.ca.cert,
            user=certs.scheduler, name="system:kube-scheduler",
        )
        self._spawn("kube-scheduler", scheduler_port, [
            f"--kubeconfig={scheduler_config}",
            f"--authentication-kubeconfig={scheduler_config}",
            f"--authorization-kubeconfig={scheduler_config}",
            "--bind-address=127.0.0.1",
            f"--secure-port={scheduler_port}",
            f"--cert-dir={self.data_dir / 'scheduler-certs'}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ])
        # The service-account controller creating `default` proves the
        # controller manager runs and talks to the API server.
        self._wait_for(self._default_service_account_exists, "kube-controller-manager", timeout)

    def _readyz(self, context: ssl.SSLContext) -> bool:
        try:
            with urllib.request.urlopen(f"{self.server}/readyz", context=context, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def _default_service_account_exists(self) -> bool:
        done = self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False)
        return done.returncode == 0

    def _spawn(self, name: str, port: int, args: list[str]) -> None:
        log_path = self.data_dir / f"{name}.log"
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                [str(self.bin_dir / name), *args],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes.append(Process(name=name, pid=proc.pid, port=port, log=str(log_path)))

    def _wait_for(self, ready: "callable[[], bool]", what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.processes:
                if not _alive(p.pid):
                    raise ControlPlaneError(
                        f"{p.name} exited while waiting for {what}; last log lines:\n"
                        + _tail(Path(p.log))
                    )
            if ready():
                return
            time.sleep(0.2)
        raise ControlPlaneError(f"{what} was not ready after {timeout:.0f}s")

    def stop(self, *, grace: float = 15) -> None:
        """Stop every process (newest first) and remove the data folder. Safe to repeat."""
        for p in reversed(self.processes):
            _terminate(p.pid, grace)
        ports = [p.port for p in self.processes]
        self.processes.clear()
        deadline = time.monotonic() + 10
        while any(port_is_listening(port) for port in ports) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- state, for the human command that outlives one Python process -----
    def save_state(self, path: Path) -> None:
        state = asdict(self)
        state["bin_dir"] = str(self.bin_dir)
        state["data_dir"] = str(self.data_dir)
        path.write_text(json.dumps(state, indent=2))

    @classmethod
    def load_state(cls, path: Path) -> "ControlPlane":
        state = json.loads(path.read_text())
        state["bin_dir"] = Path(state["bin_dir"])
        state["data_dir"] = Path(state["data_dir"])
        state["processes"] = [Process(**p) for p in state["processes"]]
        return cls(**state)


@contextlib.contextmanager
def scratch_namespace(plane: ControlPlane, test_name: str) -> Iterator[str]:
    """A namespace named after the test, deleted (without waiting) afterwards."""
    base = test_name.lower().replace("_", "-")[:40].strip("-")
    name = f"t-{base}-{os.urandom(3).hex()}"
    plane.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _terminate(pid: int, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
