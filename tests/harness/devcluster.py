"""Start or stop the local control plane by hand, for exploring.

    python -m tests.harness.devcluster up      # prints the KUBECONFIG to export
    python -m tests.harness.devcluster down

The processes are the same ones the test fixture starts (same class, same
flags); `up` leaves them running in the background and records them in a
state file under the cache folder so that `down` can find them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tests.harness.controlplane import ControlPlane, cache_dir


def _state_file() -> Path:
    return cache_dir() / "dev" / "controlplane.json"


def up() -> int:
    state = _state_file()
    if state.exists():
        plane = ControlPlane.load_state(state)
        print(f"already up: export KUBECONFIG={plane.kubeconfig}")
        return 0
    state.parent.mkdir(parents=True, exist_ok=True)
    plane = ControlPlane.start(data_dir=state.parent / "data")
    plane.owns_data_dir = True
    plane.save_state(state)
    print(f"control plane up at {plane.server}")
    print(f"export KUBECONFIG={plane.kubeconfig}")
    print(f"export PATH={plane.bin_dir}:$PATH")
    return 0


def down() -> int:
    state = _state_file()
    if not state.exists():
        print("nothing is running")
        return 0
    plane = ControlPlane.load_state(state)
    plane.stop()
    state.unlink()
    print("control plane stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devcluster", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return up() if args.action == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
