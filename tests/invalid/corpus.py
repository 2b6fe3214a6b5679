"""Loading the API test objects: the invalid corpus here and the samples in examples/.

Each `tests/invalid/*.yaml` holds one object (or, for immutability, an object
and an update of it) that breaks exactly one rule, headed by comment lines:

    # expect: <fragment of the API server's message>
    # why: <the rule, in words>

Unit tests check the corpus against the models and the CRDs (every CEL rule is
broken by some file); integration tests send it to a real API server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
INVALID_DIR = Path(__file__).resolve().parent
EXAMPLES_DIR = REPO / "examples"

_HEADER = re.compile(r"^# (expect|why): (.+)$", re.MULTILINE)


@dataclass(frozen=True)
class InvalidCase:
    """One corpus file."""

    path: Path
    expect: str
    why: str
    documents: tuple[dict[str, Any], ...]

    @property
    def id(self) -> str:
        return self.path.stem

    @property
    def kind(self) -> str:
        return self.documents[0]["kind"]

    @property
    def name(self) -> str:
        return self.documents[0]["metadata"]["name"]

    @property
    def is_update(self) -> bool:
        """True when the first object is valid and the second, an update of it, is not."""
        return len(self.documents) == 2


def invalid_cases() -> list[InvalidCase]:
    cases = []
    for path in sorted(INVALID_DIR.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        header = dict(m.groups() for m in _HEADER.finditer(text))
        documents = tuple(d for d in yaml.safe_load_all(text) if d)
        cases.append(
            InvalidCase(
                path=path,
                expect=header.get("expect", ""),
                why=header.get("why", ""),
                documents=documents,
            )
        )
    return cases


@dataclass(frozen=True)
class Example:
    """One document of one file under examples/."""

    path: Path
    index: int
    document: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.path.stem}[{self.index}]"

    @property
    def kind(self) -> str:
        return self.document["kind"]


def example_files() -> list[Path]:
    return sorted(EXAMPLES_DIR.glob("*.yaml"))


def examples() -> list[Example]:
    found = []
    for path in example_files():
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        found.extend(Example(path, i, d) for i, d in enumerate(documents))
    return found
