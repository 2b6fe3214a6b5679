"""Walking the generated CRD schemas, shared by the API unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from modelship_operator.api.crd import KINDS, crd

Node = dict[str, Any]


def root_schema(kind: type) -> Node:
    return crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(node: Node, path: str = "") -> Iterator[tuple[str, Node]]:
    """Every schema node with its path (.a.b, [] for items, .* for map values)."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}.*")


def all_nodes() -> Iterator[tuple[str, str, Node]]:
    for kind in KINDS:
        for path, node in walk(root_schema(kind)):
            yield kind.__name__, path, node


def cel_messages() -> list[str]:
    """The message of every CEL rule in every CRD."""
    return [
        rule["message"]
        for _, _, node in all_nodes()
        for rule in node.get("x-kubernetes-validations", [])
    ]
