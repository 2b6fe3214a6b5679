"""CustomResourceDefinitions for Modelship's kinds, generated from the API models.

`crds/*.yaml` (and the Helm chart's copy) are this module's output, written by
`modelship crds --write DIR`; a unit test fails when the committed files and
the models disagree. Everything a CRD says beyond the schema (names, printer
columns, subresources) comes from class variables on the kinds, so the whole
definition of a kind lives with its types.

The CRDs need Kubernetes 1.32 or later: a serial ensemble's ordering rule uses
CEL's two-variable comprehensions, and both kinds declare selectableFields.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from modelship_operator.api.base import CATEGORY, GROUP, VERSION
from modelship_operator.api.deployment import ModelDeployment
from modelship_operator.api.ensemble import ModelEnsemble
from modelship_operator.api.meta import Resource
from modelship_operator.api.schema import JSONSchema, structural_schema

KINDS: tuple[type[Resource], ...] = (ModelDeployment, ModelEnsemble)

HEADER = (
    "# Generated from operator/modelship_operator/api by `modelship crds --write crds/`.\n"
    "# Do not edit: change the API models and regenerate.\n"
)


def _field_model(kind: type[Resource], field: str) -> type[BaseModel]:
    """The model class behind `kind.<field>`, unwrapping `X | None`."""
    annotation = kind.model_fields[field].annotation
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    raise TypeError(f"{kind.__name__}.{field} is not a model")


def _root_schema(kind: type[Resource]) -> JSONSchema:
    name = kind.kind_name()
    return {
        "description": " ".join((kind.__doc__ or "").split()),
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "description": f"API group and version of the object: {GROUP}/{VERSION}.",
                "type": "string",
            },
            "kind": {"description": f"Kind of the object: {name}.", "type": "string"},
            "metadata": {"type": "object"},
            "spec": structural_schema(_field_model(kind, "spec")),
            "status": structural_schema(_field_model(kind, "status")),
        },
        "x-kubernetes-validations": [rule.to_schema() for rule in kind.root_rules],
    }


def crd(kind: type[Resource]) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind, as a JSON-shaped dict."""
    name = kind.kind_name()
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": _root_schema(kind)},
        "subresources": {"status": {}},
        "additionalPrinterColumns": [c.to_k8s() for c in kind.printer_columns],
    }
    if kind.scale_paths:
        spec_path, status_path, selector_path = kind.scale_paths
        version["subresources"]["scale"] = {
            "specReplicasPath": spec_path,
            "statusReplicasPath": status_path,
            "labelSelectorPath": selector_path,
        }
    if kind.selectable_fields:
        version["selectableFields"] = [{"jsonPath": p} for p in kind.selectable_fields]

    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "modelship"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": name,
                "listKind": f"{name}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [version],
        },
    }


def render(document: dict[str, Any]) -> str:
    """YAML text of one CRD, stable from run to run."""
    body = yaml.safe_dump(document, sort_keys=False, width=99, allow_unicode=True)
    return HEADER + body


def crd_files() -> dict[str, str]:
    """File name to YAML text, for every kind: what `crds/` must hold."""
    return {f"{kind.plural}.{GROUP}.yaml": render(crd(kind)) for kind in KINDS}


def write_crds(directory: Path) -> list[Path]:
    """Writes every CRD into `directory` (created if missing); returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in crd_files().items():
        path = directory / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
