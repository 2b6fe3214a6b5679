"""A small Dockerfile reader: enough structure to check what the images promise.

No container engine runs on the test machines, so the images cannot be built
here; these checks hold the Dockerfiles to the promises that can be read off
the text: pinned bases, several stages, a non-root user, no downloads by ADD.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    alias: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(path: Path) -> list[Stage]:
    """The stages of a Dockerfile, comments dropped and continuation lines joined."""
    stages: list[Stage] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        pending += " " + stripped.removesuffix("\\").strip()
        if stripped.endswith("\\"):
            continue
        keyword, _, args = pending.strip().partition(" ")
        pending = ""
        instruction = Instruction(start, keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?",
                                 instruction.args, re.IGNORECASE)
            if not match:
                raise ValueError(f"{path.name}:{start}: cannot read FROM {instruction.args}")
            stages.append(Stage(base=match[1], alias=match[2]))
        elif not stages:
            if instruction.keyword != "ARG":
                raise ValueError(f"{path.name}:{start}: {instruction.keyword} before FROM")
        else:
            stages[-1].instructions.append(instruction)
    return stages


# name[:tag][@sha256:digest]; an exact tag has a full x.y.z version in it.
_IMAGE = re.compile(
    r"^(?P<name>[^:@\s]+)(?::(?P<tag>[^@\s]+))?(?:@sha256:(?P<digest>[0-9a-f]{64}))?$"
)
_EXACT_VERSION = re.compile(r"\d+\.\d+\.\d+")


def base_is_pinned(base: str) -> bool:
    """True for an image pinned by digest, or by a tag that names an exact release."""
    match = _IMAGE.match(base)
    if not match:
        return False
    if match["digest"]:
        return True
    tag = match["tag"] or ""
    return tag != "latest" and bool(_EXACT_VERSION.search(tag))


def user_is_non_root(user: str) -> bool:
    """A numeric, non-zero UID (the kubelet checks runAsNonRoot only on numbers)."""
    uid = user.split(":", 1)[0]
    return uid.isdigit() and int(uid) != 0
