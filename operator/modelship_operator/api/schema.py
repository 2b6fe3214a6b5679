"""Structural OpenAPI v3 schemas from the API models, as a CRD needs them.

pydantic writes JSON Schema (draft 2020-12); the API server wants a
structural schema: every node typed, no `$ref`, no `anyOf` that carries
structure, OpenAPI v3.0's boolean `exclusiveMinimum`. This module bridges the
two and nothing more; it adds no fields, so the schema stays what the models
say. The translation:

- `$ref` is inlined; the field's own description, default and CEL rules win
  over (or, for rules, add to) the referenced model's.
- `X | None` becomes X. Optional fields are not nullable: the API server
  drops a null before validation, which reads as absent, the same as None.
- `const` becomes a one-value `enum`; titles and `additionalProperties: false`
  (pydantic's "forbid") go, because a structural schema prunes unknown fields.
- Quantities keep Kubernetes' own int-or-string form.

Every property must have a description: `kubectl explain` is documentation,
so a missing one is a bug in the models and fails generation.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

JSONSchema = dict[str, Any]

_KEY_ORDER = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "anyOf",
)
_DROPPED = {"title"}
_RULES = "x-kubernetes-validations"


class SchemaError(RuntimeError):
    """The models produce a schema the API server would not accept (a bug in the models)."""


def structural_schema(model: type[BaseModel]) -> JSONSchema:
    """The structural schema of `model`, with camelCase property names."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _convert(raw, defs, model.__name__)


def _resolve(node: JSONSchema, defs: dict[str, JSONSchema]) -> JSONSchema:
    """Inline a `$ref` (bare, or wrapped in a one-element allOf) with its siblings."""
    node = dict(node)
    if "allOf" in node and len(node["allOf"]) == 1 and "$ref" in node["allOf"][0]:
        node.update(node.pop("allOf")[0])
    ref = node.pop("$ref", None)
    if ref is None:
        return node

    target = copy.deepcopy(defs[ref.rsplit("/", 1)[-1]])
    rules = target.get(_RULES, []) + node.pop(_RULES, [])
    target.update(node)
    if rules:
        target[_RULES] = rules
    return _resolve(target, defs)


def _unwrap_optional(node: JSONSchema, path: str) -> JSONSchema:
    """`anyOf: [X, null]` becomes X, keeping the outer description, default and rules."""
    branches = node["anyOf"]
    if node.get("x-kubernetes-int-or-string"):
        return node
    kept = [b for b in branches if b != {"type": "null"}]
    if len(kept) != 1 or len(kept) == len(branches):
        raise SchemaError(f"{path}: unions other than X | None are not structural")

    outer = {k: v for k, v in node.items() if k != "anyOf"}
    if outer.get("default", ...) is None:
        del outer["default"]
    inner = dict(kept[0])
    rules = inner.pop(_RULES, []) + outer.pop(_RULES, [])
    inner.update(outer)
    if rules:
        inner[_RULES] = rules
    return inner


def _convert(node: JSONSchema, defs: dict[str, JSONSchema], path: str) -> JSONSchema:
    node = _resolve(node, defs)
    if "anyOf" in node:
        node = _unwrap_optional(node, path)
        node = _resolve(node, defs)

    out: JSONSchema = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema's numeric form; OpenAPI v3.0 pairs a bound with a flag.
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "additionalProperties":
            if value is False:
                continue
            out[key] = _convert(value, defs, f"{path}.*") if isinstance(value, dict) else value
        elif key == "items":
            out[key] = _convert(value, defs, f"{path}[]")
        elif key == "properties":
            out[key] = {
                name: _convert(child, defs, f"{path}.{name}") for name, child in value.items()
            }
        elif key == _RULES:
            out[key] = [_ordered_rule(rule) for rule in value]
        elif key == "description":
            out[key] = " ".join(value.split())
        elif key in ("patternProperties", "propertyNames", "$defs", "prefixItems"):
            raise SchemaError(f"{path}: {key} has no place in a structural schema")
        else:
            out[key] = value

    _check(out, path)
    return _ordered(out)


def _check(node: JSONSchema, path: str) -> None:
    if "type" not in node and not node.get("x-kubernetes-int-or-string"):
        raise SchemaError(f"{path}: every node of a structural schema needs a type")
    for name, child in node.get("properties", {}).items():
        if not child.get("description"):
            raise SchemaError(f"{path}.{name}: every field needs a description")
    if "properties" in node and isinstance(node.get("additionalProperties"), dict):
        raise SchemaError(f"{path}: properties and additionalProperties exclude each other")


def _ordered_rule(rule: dict[str, str]) -> dict[str, str]:
    order = ("rule", "message", "messageExpression", "fieldPath", "reason")
    return {key: rule[key] for key in order if key in rule}


def _ordered(node: JSONSchema) -> JSONSchema:
    rank = {key: i for i, key in enumerate(_KEY_ORDER)}
    return dict(sorted(node.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))
