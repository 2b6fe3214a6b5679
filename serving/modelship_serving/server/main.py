"""`modelship-server`: the command line, with tritonserver's flags where they overlap.

SIGTERM and SIGINT start the graceful shutdown (readiness off, stop accepting,
drain, exit 0); a second signal exits at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from modelship_serving import termination
from modelship_serving.monitoring import DriftMonitor
from modelship_serving.server import logs
from modelship_serving.server.app import (
    DEFAULT_MAX_REQUEST_BYTES,
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


def _positive(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modelship-server",
        description="Serve ONNX models over Triton's HTTP and gRPC protocol.",
    )
    p.add_argument("--model-repository", required=True, help="Triton-layout model repository")
    p.add_argument("--host", default=os.environ.get("MODELSHIP_BIND_ADDRESS", "0.0.0.0"))
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002,
                   help="port of /metrics (-1 turns it off)")
    p.add_argument("--model-control-mode", choices=["none", "explicit"], default="none")
    p.add_argument("--load-model", action="append", default=[], metavar="NAME",
                   help="model to load at startup in explicit mode ('*' for all)")
    p.add_argument("--strict-readiness", type=lambda v: v.lower() in ("1", "true", "yes"),
                   default=True, help="ready only when every model to load is ready")
    p.add_argument("--exit-on-error", type=lambda v: v.lower() in ("1", "true", "yes"),
                   default=False,
                   help="exit (status 1, the reason in the termination message) when a model "
                   "to load at startup fails, as Triton's flag of the same name does")
    p.add_argument("--max-request-bytes", type=_positive, default=DEFAULT_MAX_REQUEST_BYTES)
    p.add_argument("--log-format", choices=["json", "text"], default="json")
    p.add_argument("--log-level", default=os.environ.get("MODELSHIP_LOG_LEVEL", "INFO"))
    p.add_argument("--payload-log-sample-rate", type=_rate, default=0.0)
    p.add_argument("--shutdown-grace-seconds", type=float, default=30.0,
                   help="how long in-flight requests may take to finish on SIGTERM")
    p.add_argument("--drain-delay-seconds", type=float, default=0.0,
                   help="pause between turning readiness off and closing the listeners")
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
    listeners = Listeners(
        host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
        metrics_port=None if args.metrics_port < 0 else args.metrics_port,
        max_request_bytes=args.max_request_bytes,
        shutdown_grace_seconds=args.shutdown_grace_seconds,
        drain_delay_seconds=args.drain_delay_seconds,
    )
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
