"""`modelship-server`: the command line, with tritonserver's flags where they overlap.

SIGTERM and SIGINT start the graceful shutdown (readiness off, stop accepting,
drain, exit 0); a second signal exits at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from modelship_serving import termination
from modelship_serving.monitoring import DriftMonitor
from modelship_serving.server import logs
from modelship_serving.server.app import (
    add_listener_arguments,
    Listeners,
    ServingProcess,
    run_event_loop,
    serve_until_signalled,
)
from modelship_serving.server.core import ModelServer, ModelsFailedToLoad


log = logging.getLogger(__name__)

def _rate(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modelship-server",
        description="Serve ONNX models over Triton's HTTP and gRPC protocol.",
    )
    p.add_argument("--model-repository", required=True, help="Triton-layout model repository")
    add_listener_arguments(p)
    p.add_argument("--model-control-mode", choices=["none", "explicit"], default="none")
    p.add_argument("--load-model", action="append", default=[], metavar="NAME",
                   help="model to load at startup in explicit mode ('*' for all)")
    p.add_argument("--strict-readiness", type=lambda v: v.lower() in ("1", "true", "yes"),
                   default=True, help="ready only when every model to load is ready")
    p.add_argument("--exit-on-error", type=lambda v: v.lower() in ("1", "true", "yes"),
                   default=False,
                   help="exit (status 1, the reason in the termination message) when a model "
                   "to load at startup fails, as Triton's flag of the same name does")
    p.add_argument("--payload-log-sample-rate", type=_rate, default=0.0)
    return p


async def serve(args: argparse.Namespace) -> int:
    core = ModelServer(
        args.model_repository,
        control_mode=args.model_control_mode,
        startup_models=args.load_model,
        payload_log_sample_rate=args.payload_log_sample_rate,
        strict_readiness=args.strict_readiness,
        exit_on_error=args.exit_on_error,
    )
    # Drift and anomaly detection for every version that ships a reference.json.
    core.add_observer(DriftMonitor(args.model_repository, core.registry, loaded=lambda: [
        (v.name, v.version_str) for v in core.manager.loaded_versions()]))
    listeners = Listeners.from_args(args)
    return await serve_until_signalled(ServingProcess(core, listeners))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_format, args.log_level.upper())
    try:
        return run_event_loop(lambda: serve(args))
    except ModelsFailedToLoad as exc:
        # In a pod this is what the operator shows: the server cannot serve
        # what it was deployed for, and restarting will not change that.
        log.error("Exiting: %s", exc)
        termination.write_message(f"ModelLoadFailed: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
