"""ModelEnsemble: several ModelDeployments answering as one model.

Strategies and what each needs, all checked by the API server:

- voting, weighted: members answer the same request; outputs are combined
  (majority vote of classes, or a weighted average). Only `weighted` takes
  weights, and then every member has one.
- serial: a pipeline. `steps` lists every member once, in order, each with an
  `inputMapping` from the member's input tensors to sources: `$input.<name>`
  (the ensemble's request) or `<member>.<output>` of an earlier step.
- parallel: members answer the same request; outputs are concatenated or
  returned side by side.

`runtime: triton` builds Triton's own ensemble scheduler, which wires tensors
between models but cannot vote, average or concatenate, so it takes serial or
parallel with `combine: separate` only.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, StringConstraints

from modelship_operator.api.base import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    ApiModel,
    Rule,
    validations,
)
from modelship_operator.api.meta import CONDITIONS_SCHEMA, Condition, PrinterColumn, Resource

MAX_MEMBERS = 16
MAX_MAPPINGS = 32
# "$input.<tensor>" or "<member>.<tensor>".
SOURCE = r"^(\$input|[a-z0-9]([-a-z0-9]*[a-z0-9])?)[.]\S+$"
MEMBER_OUTPUT = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?[.]\S+$"

Source = Annotated[str, StringConstraints(max_length=256, pattern=SOURCE)]
MemberOutput = Annotated[str, StringConstraints(max_length=256, pattern=MEMBER_OUTPUT)]
Strategy = Literal["voting", "weighted", "serial", "parallel"]
Phase = Literal["Pending", "Progressing", "Ready", "Degraded", "Failed"]



class Member(ApiModel):
    """One ModelDeployment taking part in the ensemble."""

    name: str = Field(
        max_length=63,
        pattern=DNS_LABEL,
        description="Name of the member within the ensemble, used by steps, sources and "
        "metrics; unique in the ensemble.",
    )
    deployment: str = Field(
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Name of the ModelDeployment in the ensemble's namespace.",
    )
    weight: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="Relative weight in a weighted average (strategy weighted only, where "
        "every member needs one). Weights need not sum to 1: they are normalised.",
    )


class Step(ApiModel):
    """One stage of a serial pipeline."""

    member: str = Field(
        max_length=63, pattern=DNS_LABEL, description="The member this step runs."
    )
    input_mapping: dict[str, Source] = Field(
        min_length=1,
        max_length=MAX_MAPPINGS,
        description='Where each of the member\'s inputs comes from: "$input.<name>" for an '
        'input of the ensemble\'s request, or "<member>.<output>" for an output of an '
        "earlier step. Keys are the member's input tensor names.",
    )


class Parallel(ApiModel):
    """How a parallel ensemble returns its members' outputs."""

    combine: Literal["concat", "separate"] = Field(
        "concat",
        description="concat: outputs of the same name are concatenated along the last "
        "dimension. separate: each member's outputs are returned side by side as "
        "<member>.<output>.",
    )


class ModelEnsembleSpec(ApiModel):
    """The desired state of a ModelEnsemble."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "self.members.all(m, self.members.exists_one(o, o.name == m.name))",
                "member names must be unique",
                field_path=".members",
            ),
            Rule(
                "self.strategy != 'weighted' || self.members.all(m, has(m.weight))",
                "strategy weighted needs a weight on every member",
                field_path=".members",
            ),
            Rule(
                "self.strategy == 'weighted' || self.members.all(m, !has(m.weight))",
                "weight is only used by strategy weighted: remove it from the members",
                field_path=".members",
            ),
            Rule(
                "self.strategy != 'serial' || has(self.steps)",
                "strategy serial needs steps: one per member, each with an inputMapping",
                field_path=".steps",
            ),
            Rule(
                "self.strategy == 'serial' || !has(self.steps)",
                "steps are only used by strategy serial",
                field_path=".steps",
            ),
            Rule(
                "!has(self.steps) || "
                "self.members.all(m, self.steps.exists_one(s, s.member == m.name))",
                "steps must list every member exactly once",
                field_path=".steps",
            ),
            Rule(
                "!has(self.steps) || "
                "self.steps.all(s, self.members.exists(m, m.name == s.member))",
                "each step's member must name one of spec.members",
                field_path=".steps",
            ),
            Rule(
                # Two-variable all/exists (index, value): Kubernetes 1.32 and later. The
                # pattern checks a "$input." source; this rule checks references only.
                "!has(self.steps) || self.steps.all(i, s, s.inputMapping.all(k, "
                "s.inputMapping[k].startsWith('$') || self.steps.exists(j, p, "
                "j < i && s.inputMapping[k].startsWith(p.member + '.'))))",
                "an inputMapping source must be $input.<name> or <member>.<output> of an "
                "earlier step",
                field_path=".steps",
            ),
            Rule(
                "self.strategy == 'serial' || !has(self.outputs)",
                "outputs are only used by strategy serial",
                field_path=".outputs",
            ),
            Rule(
                "!has(self.outputs) || self.outputs.all(k, "
                "self.members.exists(m, self.outputs[k].startsWith(m.name + '.')))",
                "each outputs source must be <member>.<output> of one of spec.members",
                field_path=".outputs",
            ),
            Rule(
                "self.strategy == 'parallel' || !has(self.parallel)",
                "parallel is only used by strategy parallel",
                field_path=".parallel",
            ),
            Rule(
                "self.runtime != 'triton' || self.strategy == 'serial' || "
                "(self.strategy == 'parallel' && has(self.parallel) && "
                "self.parallel.combine == 'separate')",
                "runtime triton can only wire tensors between models: use strategy serial, "
                "or parallel with combine separate, or runtime router",
                field_path=".runtime",
            ),
        )
    )

    members: list[Member] = Field(
        min_length=2,
        max_length=MAX_MEMBERS,
        description="The ModelDeployments that make up the ensemble.",
    )
    strategy: Strategy = Field(
        description="voting (majority class), weighted (weighted average of outputs), serial "
        "(a pipeline along steps) or parallel (fan-out, outputs concatenated or side by side)."
    )
    steps: list[Step] | None = Field(
        None,
        max_length=MAX_MEMBERS,
        description="Strategy serial only: the pipeline's stages in order, one per member.",
    )
    outputs: dict[str, MemberOutput] | None = Field(
        None,
        max_length=MAX_MAPPINGS,
        description='Strategy serial only: the ensemble\'s outputs, as output name to '
        '"<member>.<output>". Absent: the last step\'s outputs under their own names.',
    )
    parallel: Parallel | None = Field(
        None, description="Strategy parallel only: how outputs are returned."
    )
    runtime: Literal["router", "triton"] = Field(
        "router",
        description="router: Modelship's ensemble router, for any strategy and members on "
        "either runtime. triton: Triton's own ensemble scheduler, for serial and parallel "
        "(combine separate) ensembles whose members all run on Triton.",
    )


class MemberStatus(ApiModel):
    """What the ensemble sees of one member."""

    name: str = Field(description="The member's name.")
    deployment: str = Field(description="The member's ModelDeployment.")
    ready: bool = Field(description="Whether the member's ModelDeployment is Ready.")
    serving_version: int | None = Field(None, description="Version the member serves.")
    url: str | None = Field(None, description="HTTP endpoint the router calls.")
    message: str | None = Field(None, description="Why the member is not ready, if it is not.")


class ModelEnsembleStatus(ApiModel):
    """The observed state of a ModelEnsemble, written by the operator."""

    phase: Phase | None = Field(
        None,
        description="Pending, Progressing, Ready, Degraded (some members not ready) or "
        "Failed.",
    )
    conditions: list[Condition] | None = Field(
        None,
        max_length=32,
        description="Ready and MembersReady, among others, one per type.",
        json_schema_extra=CONDITIONS_SCHEMA,
    )
    observed_generation: int | None = Field(
        None, ge=0, description="metadata.generation the operator last acted on."
    )
    url: str | None = Field(None, description="Base URL of the ensemble's HTTP endpoint.")
    grpc_url: str | None = Field(None, description="host:port of its gRPC endpoint.")
    member_count: int | None = Field(None, ge=0, description="Members in the spec.")
    ready_members: int | None = Field(None, ge=0, description="Members ready to serve.")
    members: list[MemberStatus] | None = Field(
        None, max_length=MAX_MEMBERS, description="Each member's state."
    )


class ModelEnsemble(Resource):
    """Several ModelDeployments combined into one model by voting, weighted averaging, a
    serial pipeline or a parallel fan-out."""

    plural: ClassVar[str] = "modelensembles"
    singular: ClassVar[str] = "modelensemble"
    short_names: ClassVar[tuple[str, ...]] = ("me",)
    selectable_fields: ClassVar[tuple[str, ...]] = (".spec.strategy",)
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn(
            name="Strategy",
            type="string",
            json_path=".spec.strategy",
            description="How members are combined.",
        ),
        PrinterColumn(
            name="Members",
            type="integer",
            json_path=".status.memberCount",
            description="Members in the spec.",
        ),
        PrinterColumn(
            name="Ready",
            type="integer",
            json_path=".status.readyMembers",
            description="Members ready to serve.",
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
            name="URL",
            type="string",
            json_path=".status.url",
            description="HTTP endpoint.",
            priority=1,
        ),
    )

    kind: Literal["ModelEnsemble"] = "ModelEnsemble"
    spec: ModelEnsembleSpec
    status: ModelEnsembleStatus | None = None
