"""The `modelship` command: CRD generation, version, and the operator itself.

The parser is built when `main()` runs, never at import, so importing this
module (as the console script does) has no side effects. `run` imports the
operator lazily: `crds` and `version` work without Kopf's machinery loaded.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from modelship_operator import __version__

logger = logging.getLogger(__name__)


def _crds(args: argparse.Namespace) -> int:
    from modelship_operator.api.crd import crd_files, write_crds

    if args.write is None:
        sys.stdout.write("---\n".join(crd_files().values()))
        return 0
    for path in write_crds(Path(args.write)):
        print(path)
    return 0


def _version(args: argparse.Namespace) -> int:
    from modelship_operator.api.base import API_VERSION

    print(f"modelship {__version__}")
    print(f"api {API_VERSION}")
    return 0


def _run(args: argparse.Namespace) -> int:
    try:
        operator = importlib.import_module("modelship_operator.reconcile.main")
    except ModuleNotFoundError as error:
        # Only the operator package itself being absent is "not built yet";
        # a missing dependency inside it is a real error and propagates.
        if error.name not in ("modelship_operator.reconcile", "modelship_operator.reconcile.main"):
            raise
        print(
            f"modelship: the operator is not part of this build ({error.name} is missing)",
            file=sys.stderr,
        )
        return 2
    operator.run(
        namespaces=args.namespace or [],
        all_namespaces=args.all_namespaces,
        liveness=args.liveness,
        peering=args.peering,
        metrics_port=args.metrics_port,
        log_format=args.log_format,
        verbose=args.verbose,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelship",
        description="Modelship: serve, fine-tune, ensemble and monitor models on Kubernetes.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    crds = verbs.add_parser(
        "crds",
        help="print the CustomResourceDefinitions (or write them with --write)",
        description="Print the CRDs generated from the API types, as YAML, to stdout.",
    )
    crds.add_argument(
        "--write",
        metavar="DIR",
        help="write one file per CRD into DIR instead (crds/ or charts/modelship/crds/)",
    )
    crds.set_defaults(handler=_crds)

    version = verbs.add_parser("version", help="print Modelship's version and API version")
    version.set_defaults(handler=_version)

    run = verbs.add_parser("run", help="start the operator")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        metavar="NS",
        help="watch this namespace (repeatable; glob patterns allowed)",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch every namespace (the default when no --namespace is given)",
    )
    run.add_argument(
        "--liveness",
        metavar="URL",
        default=None,
        help="serve a liveness probe at this URL, e.g. http://0.0.0.0:8080/healthz",
    )
    run.add_argument(
        "--peering",
        metavar="NAME",
        default=None,
        help="coordinate with other replicas through Kopf's peering object NAME (for HA); "
        "without it the operator runs standalone",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve the operator's Prometheus metrics on this port (default 9090, or "
        "MODELSHIP_METRICS_PORT; 0 turns them off)",
    )
    run.add_argument(
        "--log-format",
        choices=["full", "plain", "json"],
        default="full",
        help="log lines as text (full, plain) or JSON objects (json)",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log the flow at debug level")
    run.set_defaults(handler=_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `modelship` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.verb == "run" and not args.namespace:
        args.all_namespaces = True
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
