"""Modelship's demo on the local control plane (the README's first command).

It starts the control plane, installs Modelship's CRDs, applies the examples
and shows what the API server made of them, then stops everything unless
``--keep`` is given.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tests.harness.controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[2]


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the control plane running")
    args = parser.parse_args(argv)

    step("Starting the local control plane (etcd, kube-apiserver, kube-controller-manager)")
    started = time.monotonic()
    plane = ControlPlane.start()
    print(f"    up at {plane.server} in {time.monotonic() - started:.1f}s")
    try:
        step("Installing Modelship's CRDs")
        print(plane.kubectl("apply", "-f", str(REPO / "crds")).stdout, end="")
        plane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")

        examples = sorted((REPO / "examples").glob("*.yaml"))
        if examples:
            step(f"Applying {len(examples)} example manifests")
            for example in examples:
                print(plane.kubectl("apply", "-f", str(example)).stdout, end="")
            step("kubectl get modelship")
            print(plane.kubectl("get", "modelship", "-A").stdout)

        if args.keep:
            print(f"\nexport KUBECONFIG={plane.kubeconfig}\nexport PATH={plane.bin_dir}:$PATH")
            print("Press Ctrl-C to stop.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        step("Stopping the control plane")
        plane.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
