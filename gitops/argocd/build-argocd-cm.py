#!/usr/bin/env python3
"""Write argocd-cm.yaml from the health scripts beside it.

Argo CD reads custom health checks from its `argocd-cm` ConfigMap, one key per
group and kind, each a self-contained script. The Lua files are the source:
health-common.lua holds what every kind shares and each *-health.lua what is
its own; a kind's check is the two put together (`script`), which is what the
tests run with a Lua interpreter and the ConfigMap embeds. The snippet is
built from them, never edited by hand, and `--check` fails when it no longer
embeds the current scripts.

    python3 gitops/argocd/build-argocd-cm.py          # rewrite argocd-cm.yaml
    python3 gitops/argocd/build-argocd-cm.py --check  # exit 1 when out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE / "argocd-cm.yaml"
# (group, kind, script): the key Argo CD looks for is health.<group>_<kind>.
CHECKS = (
    ("modelship.io", "ModelDeployment", "modeldeployment-health.lua"),
    ("modelship.io", "ModelEnsemble", "modelensemble-health.lua"),
)
COMMON = "health-common.lua"
HEADER = """\
# Argo CD health checks for Modelship's resources. Generated from the *-health.lua
# files beside it by build-argocd-cm.py: edit those, then rerun it.
# Merge into Argo CD's own ConfigMap (its other keys are kept):
#   kubectl -n argocd patch configmap argocd-cm --patch-file gitops/argocd/argocd-cm.yaml
"""


def block(text: str, indent: str) -> str:
    """`text` as the body of a YAML literal block, every non-empty line indented."""
    return "".join(indent + line if line.strip() else "\n" for line in text.splitlines(True))


def render() -> str:
    out = [
        HEADER,
        "apiVersion: v1\n",
        "kind: ConfigMap\n",
        "metadata:\n",
        "  name: argocd-cm\n",
        "  namespace: argocd\n",
        "  labels:\n",
        "    app.kubernetes.io/name: argocd-cm\n",
        "    app.kubernetes.io/part-of: argocd\n",
        "data:\n",
    ]
    for group, kind, name in CHECKS:
        out.append(f"  resource.customizations.health.{group}_{kind}: |\n")
        out.append(block(script(name), "    "))
    return "".join(out)


def script(name: str) -> str:
    """The self-contained check of one kind: the shared part, then the kind's own."""
    parts = [(HERE / COMMON).read_text(), (HERE / name).read_text()]
    return "\n".join(part if part.endswith("\n") else part + "\n" for part in parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether it is current")
    args = parser.parse_args(argv)
    wanted = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != wanted:
            print(f"{TARGET.name} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
