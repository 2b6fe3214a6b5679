"""Publishing a version directory atomically.

A server polling the repository must never load a half-written version. The
trainer therefore fills a hidden staging directory beside the version
(``<repo>/<model>/.partial-<version>-<random>``; servers ignore names that are
not numbers) and renames it into place in one step once every file is written
and checked. A version that already exists is never overwritten: versions are
immutable once published.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import VersionExists

logger = logging.getLogger(__name__)


def version_path(repository: Path, model: str, version: int) -> Path:
    return repository / model / str(version)


def check_free(repository: Path, model: str, version: int) -> None:
    """Fails early, before training, when the version is already published."""
    target = version_path(repository, model, version)
    if target.exists():
        raise VersionExists(f"version {version} of {model} already exists at {target}; "
                            "versions are never overwritten")


@contextmanager
def staged_version(repository: Path, model: str, version: int) -> Iterator[Path]:
    """Yields a staging directory; publishes it as the version on a clean exit.

    On an exception the staging directory is removed and nothing is published.
    """
    model_dir = repository / model
    model_dir.mkdir(parents=True, exist_ok=True)
    check_free(repository, model, version)
    staging = Path(tempfile.mkdtemp(prefix=f".partial-{version}-", dir=model_dir))
    try:
        yield staging
        for entry in staging.iterdir():
            _fsync(entry)
        staging.chmod(0o755)
        target = version_path(repository, model, version)
        try:
            # rename() onto an existing non-empty directory fails, so a version
            # published meanwhile by someone else is never replaced.
            os.rename(staging, target)
        except OSError as exc:
            raise VersionExists(f"version {version} of {model} appeared at {target} while "
                                f"training: {exc.strerror}") from exc
        _fsync(model_dir)
        logger.info("Published version %d of %s at %s.", version, model, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def write_text_atomically(path: Path, text: str) -> None:
    """Writes a file through a temporary neighbour and a rename."""
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; servers in other users read it
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename still orders
    finally:
        os.close(fd)
