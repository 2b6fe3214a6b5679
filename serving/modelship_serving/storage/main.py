"""`modelship-storage-initializer`: fetch, lay out, verify, install; or say why not.

It runs as an init container before the server. On failure it exits non-zero
and writes one line, "<Reason>: <message>", to the termination log, which
the kubelet copies into the pod status and the operator shows in a condition.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from modelship_serving import termination
from modelship_serving.storage import layout
from modelship_serving.storage.errors import LayoutInvalid, StorageError
from modelship_serving.storage.fetch import fetch

log = logging.getLogger(__name__)



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="modelship-storage-initializer",
                                description="Fetch a model into Triton's repository layout.")
    p.add_argument("--uri", required=True, help="file://, pvc://, s3:// or http(s):// URI")
    p.add_argument("--dest", required=True, type=Path, help="model repository directory")
    p.add_argument("--model-name", default="model",
                   help="model directory name when the URI holds a single model")
    p.add_argument("--version", type=int, default=1,
                   help="version number when the URI holds a single model file")
    config = p.add_mutually_exclusive_group()
    config.add_argument("--config-pbtxt", type=Path, help="config.pbtxt to install")
    config.add_argument("--config-pbtxt-b64", help="config.pbtxt, base64-encoded")
    p.add_argument("--sha256", help="expected sha256 of the single model file")
    p.add_argument("--reference", default=None, metavar="URI",
                   help="reference.json for drift detection, installed into every version "
                   "(spec.monitoring.reference); overrides the one stored with a version")
    p.add_argument("--termination-log", default=None)
    return p


def run(args: argparse.Namespace) -> list[Path]:
    """Do the whole job; raises StorageError with a one-line reason."""
    config_text = _config_text(args)
    args.dest.mkdir(parents=True, exist_ok=True)
    # Stage next to dest so the final move is a rename on the same filesystem.
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=args.dest) as tmp:
        staging = Path(tmp) / "fetch"
        staging.mkdir()
        fetched = layout.unpack(fetch(args.uri, staging))
        build = Path(tmp) / "build"
        build.mkdir()
        model_dirs = layout.arrange(fetched, build, model_name=args.model_name,
                                    version=args.version)
        if config_text is not None:
            target = [d for d in model_dirs if d.name == args.model_name] or model_dirs[:1]
            layout.write_config(target[0], config_text)
        layout.verify(model_dirs, sha256=args.sha256)
        if args.reference:
            _install_reference(args.reference, Path(tmp) / "reference", model_dirs)
        installed = layout.install(model_dirs, args.dest)
    log.info("Installed %s into %s.", ", ".join(d.name for d in installed), args.dest)
    return installed


def _install_reference(uri: str, staging: Path, model_dirs: list[Path]) -> None:
    """Fetch the drift reference named in the spec and put it beside every version."""
    staging.mkdir()
    fetched = fetch(uri, staging)
    if fetched.is_dir():
        candidates = sorted(fetched.rglob("reference.json")) or sorted(fetched.rglob("*.json"))
        if not candidates:
            raise LayoutInvalid(f"reference {uri!r} holds no .json file")
        fetched = candidates[0]
    try:
        document = json.loads(fetched.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise LayoutInvalid(f"reference {uri!r} is not a JSON document: {exc}") from None
    if not isinstance(document, dict) or not {"inputs", "outputs"} & set(document):
        raise LayoutInvalid(f"reference {uri!r} has neither 'inputs' nor 'outputs' statistics")
    for model_dir in model_dirs:
        for version in layout.versions_of(model_dir):
            (model_dir / version / "reference.json").write_text(json.dumps(document))


def _config_text(args: argparse.Namespace) -> str | None:
    if args.config_pbtxt is not None:
        try:
            return args.config_pbtxt.read_text(encoding="utf-8")
        except OSError as exc:
            raise StorageError(f"cannot read --config-pbtxt {args.config_pbtxt}: "
                               f"{exc.strerror}") from None
    if args.config_pbtxt_b64:
        try:
            return base64.b64decode(args.config_pbtxt_b64, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise StorageError("--config-pbtxt-b64 is not base64-encoded UTF-8") from None
    return None


def write_termination_log(path: str | None, line: str) -> None:
    termination.write_message(line, path)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Their debug output carries request headers (the access key id among them).
    for chatty in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        installed = run(args)
    except StorageError as exc:
        line = f"{exc.reason}: {exc.message}"
        log.error("Storage initialisation failed: %s", line)
        write_termination_log(args.termination_log, line)
        return 1
    except Exception as exc:  # a bug; still leave a reason behind
        line = f"InternalError: {type(exc).__name__}: {exc}".splitlines()[0]
        log.exception("Storage initialisation failed unexpectedly.")
        write_termination_log(args.termination_log, line)
        return 2
    # On success the message says what was fetched: the operator reads the
    # stored versions from it (the pod status) without reading the storage.
    summary = {
        "models": {d.name: sorted(int(v) for v in layout.versions_of(d)) for d in installed},
    }
    summary["versions"] = sorted({v for vs in summary["models"].values() for v in vs})
    write_termination_log(args.termination_log, json.dumps(summary, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
