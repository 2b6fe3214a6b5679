"""Arranging what was fetched into Triton's layout, and verifying it.

A URI may name a single model file, an archive, a version directory (it holds
model.onnx), a model directory (numbered version directories) or a whole
repository (model directories). Whatever it was, the result is
<dest>/<model>/<version>/model.onnx with config.pbtxt beside the versions,
checked before it is moved into place: every model file loads as ONNX,
checksums match when given, config.pbtxt parses with Triton's schema.
Nothing is unpickled: TorchScript copies are checked as zip archives only.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tarfile
import zipfile
from pathlib import Path

from modelship_serving.storage.errors import LayoutInvalid, VerificationFailed

log = logging.getLogger(__name__)

MODEL_FILES = ("model.onnx", "model.pt")
CONFIG = "config.pbtxt"


def unpack(fetched: Path) -> Path:
    """Extract an archive in place (refusing paths that escape); other paths as they are."""
    name = fetched.name.lower()
    if fetched.is_file() and name.endswith((".tar.gz", ".tgz", ".tar")):
        target = fetched.parent / "unpacked"
        try:
            with tarfile.open(fetched) as archive:
                archive.extractall(target, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise LayoutInvalid(f"cannot unpack {fetched.name}: {exc}") from None
        fetched.unlink()
        return _single_child(target)
    if fetched.is_file() and name.endswith(".zip"):
        target = fetched.parent / "unpacked"
        try:
            with zipfile.ZipFile(fetched) as archive:
                for member in archive.namelist():
                    path = (target / member).resolve()
                    if target.resolve() not in path.parents and path != target.resolve():
                        raise LayoutInvalid(f"archive member {member!r} escapes the directory")
                archive.extractall(target)
        except (zipfile.BadZipFile, OSError) as exc:
            raise LayoutInvalid(f"cannot unpack {fetched.name}: {exc}") from None
        fetched.unlink()
        return _single_child(target)
    return fetched


def _single_child(directory: Path) -> Path:
    """An archive holding one top directory means that directory."""
    children = [c for c in directory.iterdir() if not c.name.startswith(".")]
    if len(children) == 1 and children[0].is_dir():
        return children[0]
    return directory


def _is_version_dir(path: Path) -> bool:
    return path.is_dir() and any((path / f).is_file() for f in MODEL_FILES)


def _is_model_dir(path: Path) -> bool:
    return path.is_dir() and any(
        c.name.isdigit() and _is_version_dir(c) for c in path.iterdir())


def arrange(fetched: Path, build: Path, *, model_name: str, version: int) -> list[Path]:
    """Lay `fetched` out under `build` in Triton's layout; returns the model directories."""
    if fetched.is_file():
        if fetched.suffix not in (".onnx", ".pt"):
            raise LayoutInvalid(f"{fetched.name} is neither a model file (.onnx, .pt) nor an "
                                f"archive (.tar.gz, .tgz, .zip)")
        target = build / model_name / str(version)
        target.mkdir(parents=True)
        shutil.move(str(fetched), target / f"model{fetched.suffix}")
        return [build / model_name]
    if _is_version_dir(fetched):
        target = build / model_name
        target.mkdir(parents=True)
        shutil.move(str(fetched), target / str(version))
        return [target]
    if _is_model_dir(fetched):
        shutil.move(str(fetched), build / model_name)
        return [build / model_name]
    models = [c for c in fetched.iterdir() if _is_model_dir(c)]
    if models:
        build.mkdir(parents=True, exist_ok=True)
        for model in models:
            shutil.move(str(model), build / model.name)
        return [build / m.name for m in models]
    found = sorted(str(p.relative_to(fetched)) for p in fetched.rglob("*") if p.is_file())[:8]
    raise LayoutInvalid(
        f"found no model: expected model.onnx in a version directory "
        f"(<model>/<version>/model.onnx); the URI holds {found or 'nothing'}")


def write_config(model_dir: Path, text: str) -> None:
    (model_dir / CONFIG).write_text(text, encoding="utf-8")


def verify(model_dirs: list[Path], *, sha256: str | None = None) -> None:
    """Check every model file and config; VerificationFailed says which and why."""
    import onnx
    from tritonclient.grpc import model_config_pb2 as mc
    from google.protobuf import text_format

    files: list[Path] = []
    for model_dir in model_dirs:
        config = model_dir / CONFIG
        if config.is_file():
            try:
                text_format.Parse(config.read_text(encoding="utf-8"), mc.ModelConfig())
            except (text_format.ParseError, UnicodeDecodeError) as exc:
                raise VerificationFailed(f"{model_dir.name}/{CONFIG} does not parse: "
                                         f"{exc}") from None
        for version in sorted(model_dir.iterdir()):
            if not (version.is_dir() and version.name.isdigit()):
                continue
            onnx_file = version / "model.onnx"
            if onnx_file.is_file():
                try:
                    onnx.checker.check_model(str(onnx_file))
                except Exception as exc:  # onnx raises several unrelated types
                    raise VerificationFailed(
                        f"{model_dir.name}/{version.name}/model.onnx is not a valid ONNX "
                        f"model: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                    ) from None
                files.append(onnx_file)
            torch_file = version / "model.pt"
            if torch_file.is_file() and not zipfile.is_zipfile(torch_file):
                raise VerificationFailed(
                    f"{model_dir.name}/{version.name}/model.pt is not a TorchScript archive")
    if not files and not any((d / v / "model.pt").is_file()
                             for d in model_dirs for v in _versions(d)):
        raise VerificationFailed("no model file was found after fetching")
    if sha256:
        if len(files) != 1:
            raise VerificationFailed(f"--sha256 checks one model file, but {len(files)} "
                                     f"were fetched")
        digest = _sha256(files[0])
        if digest != sha256.lower():
            raise VerificationFailed(f"{files[0].name} has sha256 {digest}, expected "
                                     f"{sha256.lower()}")
    log.info("Verified %d ONNX model file(s).", len(files))


def versions_of(model_dir: Path) -> list[str]:
    """The version folders (numeric names) of an installed model directory."""
    return _versions(model_dir)


def _versions(model_dir: Path) -> list[str]:
    return [c.name for c in model_dir.iterdir() if c.is_dir() and c.name.isdigit()]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def install(model_dirs: list[Path], dest: Path) -> list[Path]:
    """Move verified model directories into `dest`, replacing earlier copies."""
    dest.mkdir(parents=True, exist_ok=True)
    installed = []
    for model_dir in model_dirs:
        target = dest / model_dir.name
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(model_dir), target)
        installed.append(target)
    return installed
