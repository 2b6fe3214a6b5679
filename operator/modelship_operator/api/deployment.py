"""ModelDeployment: one model served by a runtime, optionally fine-tuned and monitored."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field

from modelship_operator.api.base import ApiModel, defaults_of, Rule, validations
from modelship_operator.api.finetuning import FineTuning, FineTuningStatus, VersionRecord
from modelship_operator.api.meta import CONDITIONS_SCHEMA, Condition, PrinterColumn, Resource
from modelship_operator.api.monitoring import Monitoring
from modelship_operator.api.serving import Autoscaling, ModelSource, RuntimeSpec

MAX_VERSIONS = 50

Phase = Literal["Pending", "Progressing", "Ready", "Degraded", "Failed"]


class ModelDeploymentSpec(ApiModel):
    """The desired state of a ModelDeployment."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "!(has(self.replicas) && has(self.autoscaling))",
                "set spec.replicas or spec.autoscaling, not both",
                field_path=".replicas",
            ),
            Rule(
                "self.model.format == 'onnx' || self.runtime.kind == 'triton'",
                "model.format torchscript and savedmodel need runtime.kind triton: the "
                "onnxruntime server loads only onnx",
                field_path=".runtime.kind",
            ),
        )
    )

    model: ModelSource = Field(description="The model to serve.")
    runtime: RuntimeSpec = Field(
        default_factory=RuntimeSpec,
        description="The server that runs the model. Absent: Modelship's onnxruntime server.",
        json_schema_extra=defaults_of(RuntimeSpec),
    )
    replicas: int | None = Field(
        None,
        ge=0,
        le=1000,
        description="Number of servers. Absent (and no autoscaling): 1. `kubectl scale` and "
        "a HorizontalPodAutoscaler aimed at the ModelDeployment set this field.",
    )
    autoscaling: Autoscaling | None = Field(
        None,
        description="Let a HorizontalPodAutoscaler choose the number of servers instead of "
        "spec.replicas.",
    )
    fine_tuning: FineTuning | None = Field(
        None,
        description="Train new versions of the model in a Job and promote those that pass "
        "a gate. Absent: the stored versions are served as they are.",
    )
    monitoring: Monitoring = Field(
        default_factory=Monitoring,
        description="Metrics, alerts, drift detection and payload logging. On by default.",
        json_schema_extra=defaults_of(Monitoring),
    )


class ModelDeploymentStatus(ApiModel):
    """The observed state of a ModelDeployment, written by the operator."""

    phase: Phase | None = Field(
        None,
        description="Summary for people: Pending (nothing ready yet), Progressing (a rollout "
        "is under way), Ready, Degraded (serving, but short of replicas or failing a "
        "check), Failed (cannot serve; see conditions).",
    )
    conditions: list[Condition] | None = Field(
        None,
        max_length=32,
        description="Ready, ModelLoaded, FineTuned, Monitoring and others, one per type.",
        json_schema_extra=CONDITIONS_SCHEMA,
    )
    observed_generation: int | None = Field(
        None, ge=0, description="metadata.generation the operator last acted on."
    )
    serving_version: int | None = Field(
        None, ge=1, description="Model version the servers are serving."
    )
    url: str | None = Field(
        None, description="Base URL of the Open Inference Protocol's HTTP endpoint."
    )
    grpc_url: str | None = Field(
        None, description="host:port of the Open Inference Protocol's gRPC endpoint."
    )
    replicas: int | None = Field(None, ge=0, description="Servers that exist.")
    ready_replicas: int | None = Field(None, ge=0, description="Servers ready to serve.")
    selector: str | None = Field(
        None,
        description="Label selector of the server pods, in string form (used by the scale "
        "subresource and autoscalers).",
    )
    fine_tuning: FineTuningStatus | None = Field(
        None, description="The latest fine-tuning run."
    )
    versions: list[VersionRecord] | None = Field(
        None,
        max_length=MAX_VERSIONS,
        description=f"Versions fine-tuning produced, oldest first; the last {MAX_VERSIONS} are "
        "kept.",
    )


class ModelDeployment(Resource):
    """A model served on Kubernetes by NVIDIA Triton or Modelship's ONNX Runtime server,
    optionally fine-tuned by Jobs that produce new versions, and monitored by Prometheus."""

    plural: ClassVar[str] = "modeldeployments"
    singular: ClassVar[str] = "modeldeployment"
    short_names: ClassVar[tuple[str, ...]] = ("md",)
    scale_paths: ClassVar[tuple[str, str, str] | None] = (
        ".spec.replicas",
        ".status.replicas",
        ".status.selector",
    )
    selectable_fields: ClassVar[tuple[str, ...]] = (".spec.runtime.kind", ".spec.model.format")
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn(
            name="Ready",
            type="integer",
            json_path=".status.readyReplicas",
            description="Servers ready to serve.",
        ),
        PrinterColumn(
            name="Serving",
            type="integer",
            json_path=".status.servingVersion",
            description="Model version being served.",
        ),
        PrinterColumn(
            name="Runtime",
            type="string",
            json_path=".spec.runtime.kind",
            description="onnxruntime or triton.",
        ),
        PrinterColumn(
            name="Phase",
            type="string",
            json_path=".status.phase",
            description="Summary of the state.",
        ),
        PrinterColumn(
            name="Age",
            type="date",
            json_path=".metadata.creationTimestamp",
            description="Time since creation.",
        ),
        PrinterColumn(
            name="Replicas",
            type="integer",
            json_path=".status.replicas",
            description="Servers that exist.",
            priority=1,
        ),
        PrinterColumn(
            name="Format",
            type="string",
            json_path=".spec.model.format",
            description="Model format.",
            priority=1,
        ),
        PrinterColumn(
            name="URL",
            type="string",
            json_path=".status.url",
            description="HTTP endpoint.",
            priority=1,
        ),
    )

    kind: Literal["ModelDeployment"] = "ModelDeployment"
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus | None = None

    def model_name(self) -> str:
        """The model's name in the repository: spec.model.name, else metadata.name."""
        name = self.spec.model.name or self.metadata.name
        if not name:
            raise ValueError("a ModelDeployment without a name has no model name")
        return name

    def desired_replicas(self) -> int:
        """Servers wanted when autoscaling is off: spec.replicas, else 1."""
        return 1 if self.spec.replicas is None else self.spec.replicas

