"""Where the trainer's inputs live, as URIs a ModelDeployment can name.

The trainer reads only local files: ``file://`` paths, ``pvc://<claim>/<path>``
(a claim the Job mounts under ``$MODELSHIP_PVC_ROOT``, ``/mnt/pvc`` by default)
and ``sklearn://<name>`` for the datasets scikit-learn ships. Remote stores
(``s3://``, ``http://``) are the storage initializer's job, so they are refused
here with a message that says so. Parsing is pure and eager: the config
validator calls it, so a bad URI fails before any data is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

PVC_ROOT_ENV = "MODELSHIP_PVC_ROOT"
DEFAULT_PVC_ROOT = "/mnt/pvc"
SKLEARN_DATASETS = ("breast_cancer", "diabetes", "digits")


@dataclass(frozen=True)
class RowSlice:
    """A ``?rows=start:stop`` slice; either end may be open, as in Python."""

    start: int | None
    stop: int | None

    def as_slice(self) -> slice:
        return slice(self.start, self.stop)


@dataclass(frozen=True)
class ParsedUri:
    scheme: str  # "file" or "sklearn"; pvc:// is resolved to "file"
    path: Path | None  # local path for files
    name: str | None  # dataset name for sklearn://
    rows: RowSlice | None


def pvc_root() -> Path:
    return Path(os.environ.get(PVC_ROOT_ENV, DEFAULT_PVC_ROOT))


def parse_rows(text: str) -> RowSlice:
    """Parses ``start:stop`` (either side may be empty) into a slice."""
    start, sep, stop = text.partition(":")
    if not sep:
        raise ValueError(f"rows must look like 'start:stop', got {text!r}")
    try:
        first = int(start) if start.strip() else None
        last = int(stop) if stop.strip() else None
    except ValueError:
        raise ValueError(f"rows must hold integers as 'start:stop', got {text!r}") from None
    if first is not None and last is not None and first >= 0 and last >= 0 and last <= first:
        raise ValueError(f"rows {text!r} selects no row: stop must be after start")
    return RowSlice(first, last)


def parse_uri(uri: str, *, allow_sklearn: bool) -> ParsedUri:
    """Parses a dataset or model URI; raises ValueError naming what is wrong."""
    parts = urlsplit(uri)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"rows"})
    if unknown:
        raise ValueError(f"unknown query parameter(s) {unknown} in {uri!r}; only 'rows' is known")
    rows = parse_rows(query["rows"][-1]) if "rows" in query else None

    if parts.scheme == "sklearn":
        if not allow_sklearn:
            raise ValueError(f"sklearn:// names a dataset, not a model: {uri!r}")
        name = parts.netloc or parts.path.strip("/")
        if name not in SKLEARN_DATASETS:
            raise ValueError(
                f"unknown scikit-learn dataset {name!r} in {uri!r}; "
                f"known: {', '.join(SKLEARN_DATASETS)}"
            )
        return ParsedUri("sklearn", None, name, rows)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file:// URIs name a local path, got host {parts.netloc!r}")
        return ParsedUri("file", Path(unquote(parts.path)), None, rows)
    if parts.scheme == "pvc":
        claim, rest = parts.netloc, unquote(parts.path).lstrip("/")
        if not claim:
            raise ValueError(f"pvc:// URIs look like pvc://<claim>/<path>, got {uri!r}")
        return ParsedUri("file", pvc_root() / claim / rest, None, rows)
    if parts.scheme == "":
        raise ValueError(f"{uri!r} has no scheme; use file://, pvc:// or sklearn://")
    raise ValueError(
        f"the trainer reads local files only, not {parts.scheme}:// ({uri!r}); "
        "let the storage initializer copy it to a volume and name it with pvc:// or file://"
    )
