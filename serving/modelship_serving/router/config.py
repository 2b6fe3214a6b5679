"""The router's configuration: one ModelEnsemble with its members resolved to endpoints.

The operator writes this file (ensemble.json) from a ModelEnsemble and the
status of its members' ModelDeployments. Field names are camelCase and mean
what they mean in the ModelEnsemble spec; what the spec's CEL rules enforce
is checked again here, because the file can also be written by hand, and a
router must refuse a config it would misread rather than guess.

What members serve (tensor names, types and shapes) is not in this file: the
router asks the members themselves (`compat.py` checks what they answer).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
INPUT_PREFIX = "$input."
# "$input.<tensor>" or "<member>.<tensor>", as in the ModelEnsemble spec.
SOURCE = r"^(\$input|[a-z0-9]([-a-z0-9]*[a-z0-9])?)[.]\S+$"

Strategy = Literal["voting", "weighted", "serial", "parallel"]
Source = Annotated[str, StringConstraints(pattern=SOURCE, max_length=256)]


class ConfigError(ValueError):
    """The ensemble config cannot be read or does not describe a valid ensemble."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True,
                              extra="forbid", frozen=True)


class MemberConfig(_Model):
    """One member: where its server answers and which model on it to call."""

    name: str = Field(max_length=63, pattern=DNS_LABEL)
    url: str = Field(description="HTTP endpoint of the member's Service: http://host:port")
    grpc_url: str = Field(description="gRPC endpoint of the member's Service: host:port")
    model: str = Field(max_length=256, pattern=MODEL_NAME)
    version: str = Field("", pattern=r"^([0-9]{1,18})?$",
                         description="Model version on that server; empty: its default")
    weight: float | None = Field(None, gt=0, le=1000)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return "" if value is None else str(value) if isinstance(value, int) else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^/\s]+/?", value):
            raise ValueError(f"url must be http://host:port, got {value!r}")
        return value.rstrip("/")

    @field_validator("grpc_url")
    @classmethod
    def _grpc_address(cls, value: str) -> str:
        if not re.fullmatch(r"[^/\s:]+:\d+|\[[0-9a-fA-F:]+\]:\d+", value):
            raise ValueError(f"grpcUrl must be host:port, got {value!r}")
        return value


class StepConfig(_Model):
    """One stage of a serial pipeline: which member, and where its inputs come from."""

    member: str = Field(pattern=DNS_LABEL)
    input_mapping: dict[str, Source] = Field(min_length=1)


class OutputSource(_Model):
    """Where an output of a serial ensemble comes from."""

    member: str = Field(pattern=DNS_LABEL)
    output: str = Field(min_length=1)


class ParallelConfig(_Model):
    combine: Literal["concat", "separate"] = "concat"


class VotingConfig(_Model):
    """Which member outputs carry class labels and probabilities (found when left out)."""

    label_output: str | None = None
    probabilities_output: str | None = None


class EnsembleConfig(_Model):
    """A whole ensemble as the router serves it (the file's top level)."""

    name: str = Field(max_length=253, pattern=MODEL_NAME)
    strategy: Strategy
    members: list[MemberConfig] = Field(min_length=2, max_length=16)
    steps: list[StepConfig] | None = None
    outputs: dict[str, OutputSource] | None = None
    parallel: ParallelConfig | None = None
    voting: VotingConfig | None = None
    timeout_seconds: float = Field(10.0, gt=0, le=3600,
                                   description="Limit of each attempt of each member call")
    retries: int = Field(2, ge=0, le=10, description="Extra attempts after a failure that is "
                         "safe to repeat (unreachable, UNAVAILABLE / 503)")
    # HTTP by default: with keep-alive, tritonclient's aiohttp client answered
    # 0.3-0.7 ms sooner than its gRPC one per routed request here
    # (benchmarks/router/RESULTS.md); members serve both alike.
    member_protocol: Literal["grpc", "http"] = Field(
        "http", description="How the router calls members (both speak the same protocol)")

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs_as_objects(cls, value: Any) -> Any:
        # The spec writes "<member>.<output>"; accept that form as well as the object.
        if isinstance(value, dict):
            return {k: _split_source(v) if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _rules(self) -> Self:
        names = [m.name for m in self.members]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"member names must be unique; repeated: {duplicates}")
        weighted = self.strategy == "weighted"
        if weighted and any(m.weight is None for m in self.members):
            raise ValueError("strategy weighted needs a weight on every member")
        if not weighted and any(m.weight is not None for m in self.members):
            raise ValueError("weight is only used by strategy weighted")
        for field, strategy in (("steps", "serial"), ("outputs", "serial"),
                                ("parallel", "parallel"), ("voting", "voting")):
            if getattr(self, field) is not None and self.strategy != strategy:
                raise ValueError(f"{field} is only used by strategy {strategy}")
        if self.strategy == "serial":
            self._check_steps(names)
        return self

    def _check_steps(self, names: list[str]) -> None:
        if not self.steps:
            raise ValueError("strategy serial needs steps: one per member, in order")
        order = [s.member for s in self.steps]
        if sorted(order) != sorted(names):
            raise ValueError(f"steps must list every member exactly once; members {names}, "
                             f"steps {order}")
        earlier: set[str] = set()
        for step in self.steps:
            for key, source in step.input_mapping.items():
                if source.startswith(INPUT_PREFIX):
                    continue
                member, _ = source.split(".", 1)
                if member not in earlier:
                    raise ValueError(f"step '{step.member}': input '{key}' reads {source!r}, "
                                     f"but '{member}' is not an earlier step")
            earlier.add(step.member)
        for name, out in (self.outputs or {}).items():
            if out.member not in names:
                raise ValueError(f"output '{name}' comes from '{out.member}', "
                                 f"which is not a member")

    def member(self, name: str) -> MemberConfig:
        for member in self.members:
            if member.name == name:
                return member
        raise KeyError(name)


def _split_source(source: str) -> dict[str, str]:
    member, sep, output = source.partition(".")
    if not sep or not output:
        raise ValueError(f"an output source must be <member>.<output>, got {source!r}")
    return {"member": member, "output": output}


def parse_config(raw: Any, *, source: str = "ensemble config") -> EnsembleConfig:
    """An EnsembleConfig from parsed JSON; ConfigError naming each wrong field."""
    try:
        return EnsembleConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
            for e in exc.errors()[:10]
        )
        raise ConfigError(f"{source} is not valid: {problems}") from None


def load_config(path: Path | str) -> EnsembleConfig:
    """Read and validate ensemble.json; ConfigError when unreadable or invalid."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    return parse_config(raw, source=str(path))
