"""Object metadata, conditions and the base of the top-level resources.

`Resource` gives ModelDeployment and ModelEnsemble their `from_k8s`/`to_k8s`
pair and carries what the CRD generator needs to know about a kind besides
its schema (names, printer columns, subresources), next to the types
themselves. Metadata is the one place that keeps unknown fields: the API
server owns it and adds fields (managedFields and friends) we never read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from modelship_operator.api.base import API_VERSION, ApiModel, Rule


class ObjectMeta(ApiModel):
    """The fields of Kubernetes' ObjectMeta the operator reads; others are kept as they are."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class Condition(ApiModel):
    """One aspect of the object's state, following the Kubernetes API conventions."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description=(
            "Condition type in CamelCase: Ready, ModelLoaded, FineTuned, Monitoring. "
            "`kubectl wait --for=condition=Ready` waits on these."
        ),
    )
    status: Literal["True", "False", "Unknown"] = Field(
        description="Whether the condition holds: True, False or Unknown."
    )
    observed_generation: int | None = Field(
        None,
        ge=0,
        description=(
            "metadata.generation the condition was computed from; older than the "
            "object's generation means the condition may be out of date."
        ),
    )
    last_transition_time: datetime = Field(
        description="When status last changed (RFC 3339).",
    )
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description=(
            "Why the condition is in its status, as one CamelCase word a program can "
            "match on (for example MinimumReplicasUnavailable)."
        ),
    )
    message: str = Field(
        "",
        max_length=32768,
        description="What happened and what to do about it, for a person to read.",
    )


# The list of conditions, keyed by type as the API conventions ask (and as
# server-side apply merges them).
CONDITIONS_SCHEMA: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}

# ModelDeployment and ModelEnsemble names become the names of Services and Jobs
# with suffixes, and Services need DNS-1035 labels (a letter first).
NAME_LIMIT = 45
NAME_RULE = Rule(
    f"self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') "
    f"&& size(self.metadata.name) <= {NAME_LIMIT}",
    f"metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting "
    f"with a letter) of at most {NAME_LIMIT} characters: Modelship names Services and Jobs "
    f"after it",
    reason="FieldValueInvalid",
)


class PrinterColumn(ApiModel):
    """One column of `kubectl get` (additionalPrinterColumns)."""

    name: str
    type: Literal["integer", "number", "string", "boolean", "date"]
    json_path: str = Field(alias="jsonPath")
    description: str
    priority: int = 0


class Resource(ApiModel):
    """Base of the top-level kinds: apiVersion, kind, metadata, spec and status.

    Subclasses declare the CRD's names and extras as class variables.
    """

    plural: ClassVar[str]
    singular: ClassVar[str]
    short_names: ClassVar[tuple[str, ...]]
    printer_columns: ClassVar[tuple[PrinterColumn, ...]]
    selectable_fields: ClassVar[tuple[str, ...]] = ()
    # (specReplicasPath, statusReplicasPath, labelSelectorPath) when the kind scales.
    scale_paths: ClassVar[tuple[str, str, str] | None] = None
    root_rules: ClassVar[tuple[Rule, ...]] = (NAME_RULE,)

    api_version: str = Field(API_VERSION, description="modelship.io/v1alpha1")
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @classmethod
    def kind_name(cls) -> str:
        return cls.model_fields["kind"].default

    def to_k8s(self) -> dict[str, Any]:
        """The JSON-shaped object, apiVersion and kind always included."""
        body = super().to_k8s()
        return {"apiVersion": self.api_version, "kind": self.kind, **body}
