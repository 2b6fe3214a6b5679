"""Container processes: started in their own mount namespace, stopped by process group.

A container is a local process here, so what makes it look like one to the
program inside is the file system: each process gets a private mount
namespace (``unshare``) in which the pod's host folders are bind-mounted at
the container's paths (see ``launch``), a hosts file of the pod's own at
/etc/hosts and its termination-message file at the declared path. Nothing
else of the machine is covered.

A bind mount needs its mount point to exist. Where a mountPath does not exist
on this machine (/mnt/models, say) it is created empty, recorded in a list
shared by every development node on the machine, and removed again by the
last node to stop, so no agent removes a mount point another still uses.

Each process leads a process group of its own: stopping a container signals
the whole group (SIGTERM, then SIGKILL after the grace period), and when the
main process exits, whatever it left behind in its group is killed, as the
end of a container's PID namespace would.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.devnode.addresses import LOCK_ROOT
from tests.harness.devnode.volumes import Mount

log = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("launch.py")
START_ERROR_EXIT = 128
FORBIDDEN_TARGETS = ("/proc", "/sys")


class SandboxError(RuntimeError):
    """A container's sandbox cannot be set up."""


def exit_code(returncode: int) -> int:
    """asyncio's negative returncode for a signal, as a shell (and Kubernetes) reports it."""
    return 128 - returncode if returncode < 0 else returncode


class HostMountpoints:
    """Creates missing mount points on this machine and removes them when the last node stops."""

    def __init__(self, lock_root: Path = LOCK_ROOT) -> None:
        lock_root.mkdir(parents=True, exist_ok=True)
        self.registry = lock_root / "mountpoints"
        self._agents = os.open(lock_root / "agents.lock", os.O_RDWR | os.O_CREAT, 0o644)
        # Shared while this node runs; exclusive only for the final clean-up.
        fcntl.flock(self._agents, fcntl.LOCK_SH)
        self._known: set[str] = set()

    def ensure(self, target: str, *, is_dir: bool) -> None:
        """Make ``target`` exist (a folder or an empty file), recording what this created."""
        if target in self._known or os.path.lexists(target):
            return
        path = Path(target)
        missing = [p for p in (path, *path.parents) if not os.path.lexists(p)]
        if not is_dir:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        else:
            path.mkdir(parents=True, exist_ok=True)
        with open(self.registry, "a") as out:
            fcntl.flock(out, fcntl.LOCK_EX)
            out.writelines(f"{p}\n" for p in missing)
        log.debug("Created mount point %s on this machine.", target)
        self._known.add(target)

    def release(self) -> None:
        """Give up this node's share; the last node removes every recorded mount point."""
        if self._agents < 0:
            return
        fcntl.flock(self._agents, fcntl.LOCK_UN)
        try:
            fcntl.flock(self._agents, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log.debug("Another development node still runs; mount points stay.")
        else:
            self._remove_recorded()
        finally:
            os.close(self._agents)
            self._agents = -1

    def _remove_recorded(self) -> None:
        if not self.registry.exists():
            return
        paths = {p for p in self.registry.read_text().splitlines() if p}
        # Deepest first, so a created parent goes after its created children.
        for path in sorted(paths, key=lambda p: p.count("/"), reverse=True):
            with contextlib.suppress(OSError):
                if os.path.isdir(path) and not os.path.islink(path):
                    os.rmdir(path)
                elif os.path.isfile(path) and os.path.getsize(path) == 0:
                    os.unlink(path)
        self.registry.unlink()


@dataclass
class LaunchSpec:
    """Everything ``launch.py`` needs to turn into the container's command."""

    argv: list[str]
    mounts: list[Mount]
    hostname: str
    fallback_workdir: str
    start_error: str
    workdir: str | None = None
    workdir_required: bool = False
    env: dict[str, str] = field(default_factory=dict)
    # Host folders the process itself runs from (the virtual environment, the
    # source tree, the node's own files): a container mount over one of their
    # parents (an emptyDir at /tmp, say) must not hide them.
    keep_visible: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({
            "argv": self.argv,
            "mounts": [{"source": m.source, "target": m.target, "readOnly": m.read_only}
                       for m in self.mounts],
            "hostname": self.hostname[:63],
            "fallbackWorkdir": self.fallback_workdir,
            "startError": self.start_error,
            "workdir": self.workdir,
            "workdirRequired": self.workdir_required,
            "keepVisible": self.keep_visible,
        })


def host_folders(node_root: Path) -> list[str]:
    """The folders a container process needs from the host, whatever it mounts.

    Here a "container" runs this machine's Python from this machine's
    virtual environment and source tree; a real image carries those inside.
    """
    repo = Path(__file__).resolve().parents[3]
    folders = {sys.prefix, sys.base_prefix, str(repo), str(node_root.resolve())}
    for package in ("modelship_serving", "modelship_operator"):
        # An editable install may point at another checkout than this one.
        found = importlib.util.find_spec(package)
        if found is not None and found.origin:
            folders.add(str(Path(found.origin).resolve().parents[1]))
    return sorted(os.path.realpath(f) for f in folders if os.path.isdir(f))


def check_mounts(mounts: list[Mount], mountpoints: HostMountpoints) -> None:
    """Refuse mounts over the root or kernel file systems; create missing top mount points."""
    targets = [m.target.rstrip("/") or "/" for m in mounts]
    for mount, target in zip(mounts, targets, strict=True):
        if target == "/" or any(target == f or target.startswith(f + "/")
                                for f in FORBIDDEN_TARGETS):
            raise SandboxError(f"the development node does not mount over {target}")
        nested = any(other != target and target.startswith(other + "/") for other in targets)
        if not nested:
            # A nested mount point is created inside its parent volume by the launcher.
            mountpoints.ensure(target, is_dir=os.path.isdir(mount.source))


def resolve_command(argv: list[str], path: str) -> list[str]:
    """Resolve argv[0] against the container's PATH (the venv's bin folder comes first)."""
    if not argv or "/" in argv[0]:
        return argv
    found = shutil.which(argv[0], path=path)
    return [found, *argv[1:]] if found else argv


class ContainerProcess:
    """One run of one container."""

    def __init__(self, proc: asyncio.subprocess.Process, start_error: Path) -> None:
        self._proc = proc
        self.pid = proc.pid
        self._start_error = start_error

    @classmethod
    async def start(cls, spec: LaunchSpec, *, spec_file: Path, log_file: Path) -> ContainerProcess:
        spec_file.write_text(spec.to_json())
        Path(spec.start_error).unlink(missing_ok=True)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as out:
            proc = await asyncio.create_subprocess_exec(
                shutil.which("unshare") or "unshare", "--mount", "--uts",
                "--propagation", "private",
                sys.executable, "-I", "-S", str(LAUNCHER), str(spec_file),
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                env=spec.env, start_new_session=True,
            )
        return cls(proc, Path(spec.start_error))

    async def wait(self) -> int:
        """Wait for the main process; kill what it left in its group; return the exit code."""
        code = exit_code(await self._proc.wait())
        self._signal_group(signal.SIGKILL)
        return code

    def start_error(self) -> str | None:
        """Why the launcher could not exec the command, if that is how it ended."""
        try:
            return self._start_error.read_text().strip() or None
        except OSError:
            return None

    @property
    def running(self) -> bool:
        return self._proc.returncode is None

    async def stop(self, grace: float) -> int:
        """SIGTERM the group, SIGKILL it after ``grace`` seconds; return the exit code."""
        if self.running:
            self._signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self._proc.wait()), timeout=max(grace, 0))
            except TimeoutError:
                log.debug("Process %d outlived its grace period; killing it.", self.pid)
        self._signal_group(signal.SIGKILL)
        return exit_code(await self._proc.wait())

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)
