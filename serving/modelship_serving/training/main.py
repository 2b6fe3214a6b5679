"""``modelship-trainer``: the fine-tuning Job's container command.

Reads the config (``--config FILE`` or ``$MODELSHIP_TRAINER_CONFIG``), runs the
pipeline and always leaves a JSON summary in the termination log, success or
failure, before exiting: 0 on success, 2 for a failure that a retry cannot
fix (bad config, missing data, export mismatch), 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from . import termination
from .errors import EXIT_RETRYABLE, InternalError, TrainerError

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelship-trainer",
        description="Fine-tune a model version from a Modelship fineTuning spec.",
    )
    parser.add_argument("--config", help="trainer config JSON file (default: "
                        "$MODELSHIP_TRAINER_CONFIG holds the JSON inline)")
    parser.add_argument("--termination-log", default=None,
                        help=f"where to write the result (default: ${termination.PATH_ENV} "
                        f"or {termination.DEFAULT_PATH})")
    bar = parser.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="show a progress bar on stderr even when it is not a terminal")
    bar.add_argument("--no-progress", dest="progress", action="store_false",
                     help="never show a progress bar")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    return parser


def failure(error: TrainerError, version: int | None) -> dict[str, Any]:
    return {"phase": "Failed", "version": version, "reason": error.reason,
            "message": str(error), "retryable": error.retryable}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .progress import configure_logging, set_log_context

    configure_logging(level=getattr(logging, args.log_level.upper()))
    # The kubelet sends SIGTERM first. The loop checks this flag between steps
    # and fails with Interrupted; raising from the handler itself could land
    # inside a torch kernel and leave its thread pool hanging at exit.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    path = termination.resolve_path(args.termination_log)
    version: int | None = None
    try:
        from .config import load_config

        config = load_config(args.config)
        version = config.version
        set_log_context(model=config.model_name, version=config.version)
        # Imported late: torch takes seconds to import, a bad config should not wait.
        from .pipeline import run

        result = run(config, show_progress=args.progress, stop=stop)
    except TrainerError as exc:
        logger.error("Training failed (%s): %s", exc.reason, exc,
                     extra={"fields": {"event": "failed", "reason": exc.reason}})
        termination.write_summary(path, failure(exc, version))
        return exc.exit_code
    except Exception as exc:
        logger.exception("Training failed on an unexpected error; this is a bug.")
        wrapped = InternalError(f"{type(exc).__name__}: {exc}")
        termination.write_summary(path, failure(wrapped, version))
        return EXIT_RETRYABLE
    termination.write_summary(path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
