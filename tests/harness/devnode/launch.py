"""The first program of every container process, inside its own mount and UTS namespaces.

Started as ``unshare --mount --uts --propagation private python -I -S launch.py
SPEC``: it bind-mounts the pod's host folders onto the container's paths,
makes read-only mounts read-only, sets the pod's hostname, changes to the
working directory and replaces itself (same PID) with the container's
command. The standard library only, since it runs with ``-S``.

Every source is opened before the first mount, because a mount (of /tmp, say)
may hide the host path of a later source; the host folders the process runs
from (``keepVisible``) are put back on top if a mount hid them. Mounts go shallowest first, as a
container runtime orders them, so a mount inside another lands on top of it.
A failure before exec is written to the spec's ``startError`` file and exits
128, which the node reports as the kubelet's ``StartError``.
"""

import ctypes
import json
import os
import socket
import sys

MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC = 1, 32, 4096, 16384
START_ERROR_EXIT = 128


def _mount(libc, source, target, flags):
    if libc.mount(source, target.encode(), None, flags, None) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {target}: {os.strerror(errno)}")


def _make_target(target, source_is_dir):
    if os.path.lexists(target):
        return
    if source_is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "a"):
            pass


def prepare(spec):
    libc = ctypes.CDLL(None, use_errno=True)
    os.chdir(spec["fallbackWorkdir"])
    mounts = sorted(spec["mounts"], key=lambda m: len(m["target"].rstrip("/").split("/")))
    opened = [(m, os.open(m["source"], os.O_PATH | os.O_CLOEXEC)) for m in mounts]
    kept = [(path, os.open(path, os.O_PATH | os.O_CLOEXEC))
            for path in spec.get("keepVisible", []) if os.path.isdir(path)]
    for m, fd in opened:
        target = m["target"]
        _make_target(target, os.path.isdir(f"/proc/self/fd/{fd}"))
        _mount(libc, f"/proc/self/fd/{fd}".encode(), target, MS_BIND | MS_REC)
        if m["readOnly"]:
            _mount(libc, None, target, MS_REMOUNT | MS_BIND | MS_RDONLY)
        os.close(fd)
    # Put back the host folders a mount just hid (the program itself lives
    # there), each on its own path inside whatever now covers it.
    for path, fd in kept:
        before = os.fstat(fd)
        try:
            now = os.stat(path)
            hidden = (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino)
        except FileNotFoundError:
            hidden = True
        if hidden:
            os.makedirs(path, exist_ok=True)
            _mount(libc, f"/proc/self/fd/{fd}".encode(), path, MS_BIND | MS_REC)
        os.close(fd)
    socket.sethostname(spec["hostname"])
    workdir = spec.get("workdir")
    if workdir:
        if os.path.isdir(workdir):
            os.chdir(workdir)
        elif spec.get("workdirRequired"):
            raise OSError(f"working directory {workdir} does not exist")


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    try:
        prepare(spec)
        argv = spec["argv"]
        os.execvp(argv[0], argv)
    except OSError as exc:
        message = f"failed to start container: {exc}"
        if getattr(exc, "filename", None) is None and spec["argv"]:
            message += f" (command {spec['argv'][0]!r})"
        with open(spec["startError"], "w") as f:
            f.write(message)
        print(message, file=sys.stderr, flush=True)
        os._exit(START_ERROR_EXIT)


if __name__ == "__main__":
    main()
