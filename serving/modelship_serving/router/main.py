"""`modelship-router`: serve one ensemble, or check that its members fit together.

    modelship-router --config /etc/modelship/ensemble/ensemble.json \
        --http-port 8000 --grpc-port 8001 --metrics-port 8002

The router listens at once and reports ready when every member has answered
and the members fit together. `--check-config` asks the members once and
prints either the ensemble's signature (exit 0) or why it cannot be served
(exit 1); a config that is not valid exits 1 in either mode.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from prometheus_client import REGISTRY

from modelship_serving.router.config import ConfigError, EnsembleConfig, load_config
from modelship_serving.router.core import EnsembleRouter
from modelship_serving.router.members import make_member
from modelship_serving.router.watch import assess, fetch_metadata
from modelship_serving.server import logs
from modelship_serving.server.app import (
    add_listener_arguments,
    Listeners,
    ServingProcess,
    run_event_loop,
    serve_until_signalled,
)

log = logging.getLogger(__name__)


def _positive(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modelship-router",
        description="Serve a Modelship ensemble over Triton's HTTP and gRPC protocol.",
    )
    p.add_argument("--config", required=True, help="the ensemble's JSON config")
    p.add_argument("--check-config", action="store_true",
                   help="ask the members once, print whether they fit together, and exit")
    add_listener_arguments(p)
    p.add_argument("--recheck-seconds", type=_positive, default=30.0,
                   help="how often a ready router checks its members' metadata again")
    return p


async def check(config: EnsembleConfig) -> tuple[bool, str]:
    """Ask every member for its metadata once; (fits, what to print)."""
    members = [make_member(m, protocol=config.member_protocol,
                           timeout=config.timeout_seconds, retries=config.retries)
               for m in config.members]
    try:
        found, problems = await fetch_metadata(members, retries=config.retries)
    finally:
        for member in members:
            await member.close()
    readiness = assess(config, found, list(problems.values()))
    plan = readiness.plan
    if plan is None:
        return False, f"ensemble '{config.name}' cannot be served: {readiness.reason}"
    lines = [f"ensemble '{config.name}' ({config.strategy}) fits: "
             f"{len(config.members)} member(s)"]
    lines += [f"  input  {t.name}: {t.describe()}" for t in plan.inputs]
    lines += [f"  output {t.name}: {t.describe()}" for t in plan.outputs]
    return True, "\n".join(lines)


async def serve(config: EnsembleConfig, args: argparse.Namespace) -> int:
    router = EnsembleRouter(config, registry=REGISTRY, recheck_seconds=args.recheck_seconds)
    listeners = Listeners.from_args(args)
    return await serve_until_signalled(ServingProcess(router, listeners))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_format, args.log_level.upper())
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        if args.check_config:
            print(exc, file=sys.stderr)
        else:
            log.error("Cannot start: %s", exc)
        return 1
    if args.check_config:
        fits, report = asyncio.run(check(config))
        print(report, file=sys.stdout if fits else sys.stderr)
        return 0 if fits else 1
    return run_event_loop(lambda: serve(config, args))


if __name__ == "__main__":
    sys.exit(main())
