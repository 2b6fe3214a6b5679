"""The trainer's configuration: ``spec.fineTuning`` plus where to write.

The operator hands the trainer one JSON document (a file, or inline in
``MODELSHIP_TRAINER_CONFIG``). It is parsed here, at the edge, with pydantic and
validated eagerly: every rule the rest of the trainer relies on (ratios that sum
to one, a metric that fits the task, a URI it can read) is checked before any
data is touched, and the error names the field and the value it got.

Field names are camelCase as in the CRD; unknown fields are refused so a typo
in a manifest is not silently ignored. The one exception is the top level of
``fineTuning``: the operator passes the spec on whole, and a field only the
operator reads (a trigger, a history limit) is dropped with a warning rather
than failing the Job.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from .errors import InvalidConfig
from .uris import parse_uri

logger = logging.getLogger(__name__)

CONFIG_ENV = "MODELSHIP_TRAINER_CONFIG"

Task = Literal["classification", "regression"]
MetricName = Literal["accuracy", "f1", "auc", "rmse", "mae", "r2"]
CLASSIFICATION_METRICS: tuple[MetricName, ...] = ("accuracy", "f1", "auc")
REGRESSION_METRICS: tuple[MetricName, ...] = ("rmse", "mae", "r2")
LOWER_IS_BETTER = frozenset({"rmse", "mae"})


class _Spec(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class Split(_Spec):
    """Fractions of the rows for each split; each above zero, summing to one."""

    train: float = Field(0.7, gt=0, lt=1)
    validation: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> Split:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"train + validation + test must be 1, got "
                f"{self.train} + {self.validation} + {self.test} = {total:g}"
            )
        return self


class DatasetSpec(_Spec):
    uri: str
    # Inferred from the file's extension when absent; ignored for sklearn://.
    format: Literal["csv", "parquet", "numpy"] | None = None
    # Column (CSV/Parquet), field or column index (NumPy) holding the target;
    # "target" when absent (the last column for a plain 2-D .npy array).
    target_column: str | None = None
    split: Split = Field(default_factory=lambda: Split.model_validate({}))

    @field_validator("uri")
    @classmethod
    def _readable_uri(cls, uri: str) -> str:
        parse_uri(uri, allow_sklearn=True)
        return uri


class BaseModelSpec(_Spec):
    # A checkpoint (or a version directory holding checkpoint.pt and
    # architecture.json), or a TorchScript file; absent to train from scratch.
    uri: str | None = None
    architecture: Literal["mlp", "torchscript", "text-classifier"] = "mlp"
    hidden_sizes: list[int] | None = None

    @field_validator("uri")
    @classmethod
    def _local_uri(cls, uri: str | None) -> str | None:
        if uri is not None:
            parsed = parse_uri(uri, allow_sklearn=False)
            if parsed.rows is not None:
                raise ValueError(f"'rows' applies to datasets, not to a model: {uri!r}")
        return uri

    @field_validator("hidden_sizes")
    @classmethod
    def _positive_sizes(cls, sizes: list[int] | None) -> list[int] | None:
        if sizes is not None:
            bad = [s for s in sizes if s < 1]
            if bad or not sizes:
                raise ValueError(f"hidden sizes must be a non-empty list of ints >= 1, "
                                 f"got {sizes}")
        return sizes

    @model_validator(mode="after")
    def _can_build(self) -> BaseModelSpec:
        if self.uri is None and self.architecture != "mlp":
            raise ValueError(f"architecture {self.architecture!r} needs a uri to start from")
        if self.uri is None and self.hidden_sizes is None:
            raise ValueError("training from scratch (no uri) needs hiddenSizes")
        return self


class HyperParameters(_Spec):
    # "sgd" is SGD with momentum 0.9, the usual choice for fine-tuning.
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: float = Field(1e-3, gt=0, le=10)
    # The global batch: with several workers each takes its share of it.
    batch_size: int = Field(32, ge=1, le=1 << 20)
    epochs: int = Field(20, ge=1, le=100_000)
    # Epochs without a better validation metric before stopping; 0 disables.
    early_stopping_patience: int = Field(5, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    seed: int = Field(0, ge=0, le=2**32 - 1)


class Promotion(_Spec):
    metric: MetricName
    threshold: float | None = None
    must_beat_serving: bool = False


class FineTuning(_Spec):
    base_model: BaseModelSpec
    dataset: DatasetSpec
    task: Task
    num_classes: int | None = Field(None, ge=2)
    hyper_parameters: HyperParameters = Field(
        default_factory=lambda: HyperParameters.model_validate({}))
    workers: int = Field(1, ge=1, le=1024)
    # Read by the operator only; accepted so the whole spec can be passed on.
    resources: dict[str, Any] | None = None
    schedule: str | None = None
    promotion: Promotion | None = None

    @model_validator(mode="after")
    def _fits_task(self) -> FineTuning:
        if self.task == "regression" and self.num_classes is not None:
            raise ValueError(f"numClasses ({self.num_classes}) applies to classification only")
        if self.promotion is not None:
            allowed = metrics_for(self.task)
            if self.promotion.metric not in allowed:
                raise ValueError(
                    f"promotion.metric {self.promotion.metric!r} does not fit task "
                    f"{self.task!r}; use one of {', '.join(allowed)}"
                )
            if self.promotion.metric == "auc" and (self.num_classes or 2) > 2:
                raise ValueError("promotion.metric 'auc' needs a binary task (numClasses 2)")
        return self

    @property
    def metric(self) -> MetricName:
        """The metric that early stopping and the gate watch."""
        if self.promotion is not None:
            return self.promotion.metric
        return "accuracy" if self.task == "classification" else "rmse"


class TrainerConfig(_Spec):
    model_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")
    version: int = Field(ge=1)
    output_repository: Path
    fine_tuning: FineTuning
    serving_metrics: dict[str, Any] | None = None


def metrics_for(task: str) -> tuple[MetricName, ...]:
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "config"
        message = item["msg"].removeprefix("Value error, ")
        value = json.dumps(item.get("input"), default=str)
        if len(value) > 120:
            value = value[:117] + "..."
        lines.append(f"{where}: {message} (got {value})")
    return "; ".join(lines)


def _drop_operator_fields(data: dict[str, Any]) -> dict[str, Any]:
    spec = data.get("fineTuning")
    if not isinstance(spec, dict):
        return data
    known = {f.alias or name for name, f in FineTuning.model_fields.items()}
    known |= set(FineTuning.model_fields)
    unknown = sorted(set(spec) - known)
    if not unknown:
        return data
    logger.warning("Ignoring fineTuning field(s) the trainer does not use: %s.",
                   ", ".join(unknown))
    return {**data, "fineTuning": {k: v for k, v in spec.items() if k not in unknown}}


def parse_config(raw: str | bytes | dict[str, Any]) -> TrainerConfig:
    """Parses and validates a config; raises InvalidConfig naming each bad field."""
    try:
        data = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    except json.JSONDecodeError as exc:
        raise InvalidConfig(f"the config is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidConfig(f"the config must be a JSON object, got {type(data).__name__}")
    data = _drop_operator_fields(data)
    try:
        return TrainerConfig.model_validate(data)
    except ValidationError as exc:
        raise InvalidConfig(_describe(exc)) from exc


def load_config(path: str | None) -> TrainerConfig:
    """Reads the config from a file, or from $MODELSHIP_TRAINER_CONFIG inline."""
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise InvalidConfig(f"cannot read the config file {path}: {exc.strerror}") from exc
        return parse_config(text)
    inline = os.environ.get(CONFIG_ENV)
    if not inline:
        raise InvalidConfig(f"no config: pass --config FILE or set {CONFIG_ENV}")
    return parse_config(inline)
