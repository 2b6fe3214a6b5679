"""Building blocks shared by every Modelship API type.

The pydantic models in this package are the single source of truth for the
CRDs: the schema generator (`schema.py`) reads their JSON schema, and the
operator parses the objects it watches through them. To keep the two in step:

- Python attributes are snake_case and JSON names camelCase (aliases), exactly
  as they appear in the CRD, and unknown fields are refused, so a field cannot
  exist on one side only.
- Cross-field rules are CEL expressions (`Rule`) attached to the model they
  constrain. The API server evaluates them; the models do not repeat them in
  Python, because every object the operator sees has already been admitted.
- Serialising (`to_k8s`) writes back only the fields that were given, so a
  parsed manifest round-trips without defaults creeping in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel
from pydantic.json_schema import WithJsonSchema

GROUP = "modelship.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "modelship"

# Kubernetes' own patterns, so names that pass here also pass for the children
# the operator derives from them.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# A name the Open Inference Protocol can carry in a URL path segment.
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# Tensor names come from model files (ONNX allows almost anything but spaces).
TENSOR_NAME = r"^\S+$"

GPU_RESOURCE = "nvidia.com/gpu"


class InvalidResourceError(ValueError):
    """An object does not match Modelship's API types.

    Raised by `from_k8s`. For an object read from the API server this means
    the CRD installed in the cluster and the operator's types disagree: a
    deployment problem, not a user mistake.
    """

    def __init__(self, what: str, error: ValidationError) -> None:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or '<root>'}: {e['msg']}"
            for e in error.errors()[:10]
        )
        super().__init__(f"{what} is not a valid object: {problems}")
        self.what = what
        self.errors = error.errors()


@dataclass(frozen=True)
class Rule:
    """A CEL validation rule that the API server evaluates (x-kubernetes-validations).

    `message` is what a user reads when the rule fails, so it says what to change.
    `field_path` (relative to the node the rule sits on, e.g. ".minReplicas")
    points the error at the field a user should look at.
    """

    rule: str
    message: str
    field_path: str | None = None
    reason: str | None = None

    def to_schema(self) -> dict[str, str]:
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.reason:
            out["reason"] = self.reason
        return out


def defaults_of(model: type[ApiModel]) -> dict[str, Any]:
    """Schema extras giving a model-typed field the model's defaults, spelled out.

    The API server checks a default against the CEL rules as it is written
    (without filling in nested defaults), so `default: {}` is not enough.
    """
    return {"default": model().model_dump(by_alias=True, exclude_none=True, mode="json")}


def validations(*rules: Rule, **extra: Any) -> dict[str, Any]:
    """Schema extras carrying CEL rules, for `json_schema_extra` of a model or a field."""
    return {**extra, "x-kubernetes-validations": [r.to_schema() for r in rules]}


def immutable(field: str, why: str) -> dict[str, Any]:
    """Schema extras that make a field immutable once the object exists."""
    return validations(
        Rule("self == oldSelf", f"{field} is immutable: {why}", reason="FieldValueForbidden")
    )


# A Kubernetes resource quantity ("500m", "2Gi", 4). The schema is the one
# Kubernetes uses for its own quantities: integer or string, with a pattern.
Quantity = Annotated[
    int | Annotated[str, StringConstraints(pattern=QUANTITY, max_length=64)],
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY,
            "x-kubernetes-int-or-string": True,
        }
    ),
]


def _plain(value: Any) -> Any:
    """Deep-copy mappings and sequences (kopf's bodies, for instance) into dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value


class ApiModel(BaseModel):
    """Base of every API type: camelCase JSON names, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        protected_namespaces=(),
    )

    @classmethod
    def from_k8s(cls, body: Mapping[str, Any]) -> Self:
        """Parses a JSON-shaped body (as the API server or kopf hands it over).

        Raises InvalidResourceError naming every offending field.
        """
        try:
            return cls.model_validate(_plain(body))
        except ValidationError as error:
            raise InvalidResourceError(cls.__name__, error) from error

    def to_k8s(self) -> dict[str, Any]:
        """The JSON-shaped body: camelCase names, only the fields that were set."""
        return self.model_dump(by_alias=True, exclude_unset=True, exclude_none=True, mode="json")


class ResourceRequirements(ApiModel):
    """Compute resources of a container, as in a Pod's `resources`."""

    requests: dict[str, Quantity] | None = Field(
        None,
        max_length=16,
        description=(
            "Resources the scheduler reserves for each container, by resource name "
            '(cpu, memory, nvidia.com/gpu), as quantities such as "500m" or "2Gi".'
        ),
    )
    limits: dict[str, Quantity] | None = Field(
        None,
        max_length=16,
        description=(
            "Most each container may use, by resource name. GPUs are requested here "
            'as "nvidia.com/gpu": 1; Kubernetes sets the request equal to the limit.'
        ),
    )

    def gpus(self) -> bool:
        """Whether these resources ask for a GPU."""
        return GPU_RESOURCE in (self.limits or {}) or GPU_RESOURCE in (self.requests or {})
