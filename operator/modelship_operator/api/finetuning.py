"""spec.fineTuning and status.fineTuning: training new versions and promoting them.

The gate is part of the spec, not of the trainer: `promotion` decides whether
a version that trained successfully goes live. The metric must suit the task
(classification metrics are floors, regression errors are ceilings), and the
API server refuses a gate that could never pass or never fail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from modelship_operator.api.base import (
    ApiModel,
    ResourceRequirements,
    Rule,
    defaults_of,
    validations,
)

DATASET_URI = (
    r"^((file:///|pvc://)[^?#\s]+|sklearn://(breast_cancer|diabetes|digits))"
    r"([?]rows=[0-9]*:[0-9]*)?$"
)
# The trainer reads local files only: a claim the Job mounts, or a path in its image.
BASE_MODEL_URI = r"^(file:///|pvc://)[^?#\s]+$"
DATASET_EXTENSION = r"[.](csv|parquet|pq|npy|npz)([?]|$)"
CRON = (
    r"^(@(yearly|annually|monthly|weekly|daily|hourly)|"
    r"[0-9A-Za-z*/,?-]+( +[0-9A-Za-z*/,?-]+){4})$"
)
CLASSIFICATION_METRICS = ("accuracy", "f1", "auc")
REGRESSION_METRICS = ("rmse", "mae", "r2")


class BaseModelSpec(ApiModel):
    """The network that fine-tuning starts from."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "self.architecture == 'mlp' || has(self.uri)",
                "baseModel.uri is required for architectures torchscript and text-classifier",
                field_path=".uri",
            ),
            Rule(
                "self.architecture != 'mlp' || has(self.uri) || has(self.hiddenSizes)",
                "an mlp without a uri is trained from scratch and needs baseModel.hiddenSizes",
                field_path=".hiddenSizes",
            ),
            Rule(
                "self.architecture == 'mlp' || !has(self.hiddenSizes)",
                "baseModel.hiddenSizes is only used by architecture mlp",
                field_path=".hiddenSizes",
            ),
        )
    )

    architecture: Literal["mlp", "torchscript", "text-classifier"] = Field(
        "mlp",
        description="mlp: a feed-forward network on tabular features. torchscript: the "
        "TorchScript module at uri, with its output head adapted to the task. "
        "text-classifier: a classification head on a sentence-embedding encoder named by uri."
    )
    uri: str | None = Field(
        None,
        max_length=2048,
        pattern=BASE_MODEL_URI,
        description="Where the starting weights are, on pvc://<claim>/<path> or "
        "file:///<path>: a PyTorch checkpoint, a TorchScript file, or a version directory an "
        "earlier fine-tuning run wrote. Absent (mlp only): the network starts from fresh "
        "weights.",
    )
    hidden_sizes: list[Annotated[int, Field(ge=1, le=65536)]] | None = Field(
        None,
        max_length=16,
        description="Widths of the mlp's hidden layers, input side first. Required when "
        "there is no uri to read them from.",
    )


class Split(ApiModel):
    """Fractions of the dataset for training, validation (early stopping, drift reference)
    and the test that the promotion gate reads."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "self.train + self.validation + self.test >= 0.999 && "
                "self.train + self.validation + self.test <= 1.001",
                "split.train, split.validation and split.test must sum to 1",
            )
        )
    )

    train: float = Field(0.7, gt=0, lt=1, description="Fraction used for training.")
    validation: float = Field(
        0.15,
        gt=0,
        lt=1,
        description="Fraction used for early stopping and the drift reference statistics.",
    )
    test: float = Field(
        0.15, gt=0, lt=1, description="Fraction held out for the metrics the promotion "
        "gate reads."
    )


class Dataset(ApiModel):
    """The data to fine-tune on."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "self.uri.startsWith('sklearn://') || has(self.format) || "
                f"self.uri.matches('{DATASET_EXTENSION}')",
                "dataset.format is required when the uri does not end in .csv, .parquet, .pq, "
                ".npy or .npz",
                field_path=".format",
            ),
        )
    )

    uri: str = Field(
        max_length=2048,
        pattern=DATASET_URI,
        description="file:///<path>, pvc://<claim>/<path>, or a dataset scikit-learn ships: "
        "sklearn://breast_cancer, sklearn://diabetes (regression), sklearn://digits. An "
        "optional "
        "?rows=<start>:<stop> takes a slice of the rows, so one dataset can pre-train on "
        "one part and fine-tune on another.",
    )
    format: Literal["csv", "parquet", "numpy"] | None = Field(
        None,
        description="File format: csv, parquet, or numpy (an .npz holding arrays X and y, "
        "or an .npy). Absent: taken from the file extension. Ignored for sklearn:// datasets.",
    )
    target_column: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Column holding the label (classification) or value (regression); every "
        "other column is a feature. Absent: target for csv and parquet, y in an .npz, the "
        "last column of a 2-D .npy. Ignored for sklearn:// datasets.",
    )
    split: Split = Field(
        default_factory=Split,
        description="How the rows are divided; the fractions must sum to 1.",
        json_schema_extra=defaults_of(Split),
    )


class HyperParameters(ApiModel):
    """Optimiser settings for the training run."""

    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="Optimiser.")
    learning_rate: float = Field(0.001, gt=0, le=10, description="Initial learning rate.")
    batch_size: int = Field(32, ge=1, le=65536, description="Rows per training step.")
    epochs: int = Field(20, ge=1, le=10000, description="Most passes over the training split.")
    early_stopping_patience: int = Field(
        5,
        ge=0,
        le=10000,
        description="Stop after this many epochs without a better validation loss; 0 "
        "never stops early.",
    )
    weight_decay: float = Field(0.0, ge=0, le=1, description="L2 weight decay.")
    seed: int = Field(
        0,
        ge=0,
        le=2**31 - 1,
        description="Seed for the split and the initial weights, so a run can be repeated.",
    )


class Promotion(ApiModel):
    """The gate a fine-tuned version must pass before it is served."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                f"!has(self.threshold) || !(self.metric in {list(CLASSIFICATION_METRICS)}) || "
                "(self.threshold >= 0.0 && self.threshold <= 1.0)",
                "promotion.threshold for accuracy, f1 and auc must be between 0 and 1",
                field_path=".threshold",
            ),
            Rule(
                "!has(self.threshold) || !(self.metric in ['rmse', 'mae']) || "
                "self.threshold > 0.0",
                "promotion.threshold for rmse and mae is a ceiling and must be positive",
                field_path=".threshold",
            ),
            Rule(
                "has(self.threshold) || self.mustBeatServing",
                "promotion needs a threshold, mustBeatServing: true, or both; otherwise every "
                "version would pass",
                field_path=".threshold",
            ),
            Rule(
                "!has(self.threshold) || self.metric != 'r2' || self.threshold <= 1.0",
                "promotion.threshold for r2 must be at most 1",
                field_path=".threshold",
            ),
        )
    )

    metric: Literal["accuracy", "f1", "auc", "rmse", "mae", "r2"] = Field(
        description="Test-split metric the gate reads: accuracy, f1 or auc for "
        "classification; rmse, mae or r2 for regression."
    )
    threshold: float | None = Field(
        None,
        ge=-1e9,
        le=1e9,
        description="For rmse and mae a ceiling (the version must score at most this); for "
        "the others a floor (at least this). May be left out when mustBeatServing is true.",
    )
    must_beat_serving: bool = Field(
        False,
        description="Also require a better score than the version now serving, measured on "
        "its own test split.",
    )


class FineTuning(ApiModel):
    """Fine-tuning runs: a batch Job trains a new version, which the promotion gate judges."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "self.task == 'classification' ? "
                f"self.promotion.metric in {list(CLASSIFICATION_METRICS)} : "
                f"self.promotion.metric in {list(REGRESSION_METRICS)}",
                "promotion.metric must suit the task: accuracy, f1 or auc for classification; "
                "rmse, mae or r2 for regression",
                field_path=".promotion.metric",
            ),
            Rule(
                "self.promotion.metric != 'auc' || !has(self.numClasses) || "
                "self.numClasses == 2",
                "promotion.metric auc needs a binary task: numClasses 2",
                field_path=".promotion.metric",
            ),
            Rule(
                "self.task == 'classification' || !has(self.numClasses)",
                "numClasses is only used by task classification",
                field_path=".numClasses",
            ),
            Rule(
                "self.baseModel.architecture != 'text-classifier' || "
                "self.task == 'classification'",
                "architecture text-classifier needs task classification",
                field_path=".task",
            ),
        )
    )

    base_model: BaseModelSpec = Field(description="The network training starts from.")
    dataset: Dataset = Field(description="The data to train, validate and test on.")
    task: Literal["classification", "regression"] = Field(
        description="classification (the model outputs class probabilities) or regression "
        "(one value)."
    )
    num_classes: int | None = Field(
        None,
        ge=2,
        le=100000,
        description="Classes of a classification task. Absent: counted from the labels.",
    )
    hyper_parameters: HyperParameters = Field(
        default_factory=HyperParameters,
        description="Optimiser settings; every one has a default.",
        json_schema_extra=defaults_of(HyperParameters),
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Training processes; more than one trains data-parallel.",
    )
    resources: ResourceRequirements | None = Field(
        None,
        description="CPU, memory and GPU for each training worker.",
    )
    schedule: str | None = Field(
        None,
        max_length=128,
        pattern=CRON,
        description='Cron schedule for repeated runs ("0 3 * * *" or "@daily"). Absent: one '
        "run each time spec.fineTuning changes.",
    )
    promotion: Promotion = Field(description="The gate a new version must pass to be served.")


class FineTuningStatus(ApiModel):
    """The latest fine-tuning run."""

    job: str | None = Field(None, description="Name of the run's Job.")
    phase: Literal["Pending", "Running", "Succeeded", "Failed"] | None = Field(
        None, description="Pending, Running, Succeeded or Failed."
    )
    progress: float | None = Field(
        None, ge=0, le=1, description="Fraction of the planned epochs done."
    )
    metrics: dict[str, float] | None = Field(
        None, description="Test-split metrics of the version the run produced."
    )
    produced_version: int | None = Field(
        None, ge=1, description="Version number the run wrote to the model repository."
    )
    started_at: datetime | None = Field(None, description="When the run started.")
    finished_at: datetime | None = Field(None, description="When the run finished.")
    reason: str | None = Field(
        None, description="Why the run ended as it did, as one CamelCase word."
    )
    message: str | None = Field(None, description="Details for a person to read.")


class VersionRecord(ApiModel):
    """A version of the model: what it scored and whether it went live."""

    version: int = Field(ge=1, description="Version number in the model repository.")
    metrics: dict[str, float] | None = Field(None, description="Its test-split metrics.")
    promoted: bool = Field(description="Whether it passed the gate and was served.")
    reason: str | None = Field(
        None, description="Why it was or was not promoted, for a person to read."
    )
    job: str | None = Field(None, description="The Job that produced it, if one did.")
    created_at: datetime | None = Field(None, description="When the version was recorded.")
