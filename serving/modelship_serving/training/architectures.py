"""The trainer's catalogue of networks and the wrappers it exports.

Every trainable model is a ``Network``: a ``body`` that turns standardised
features into a representation, and a linear ``head`` that turns that into
logits (classification) or one standardised value (regression). Splitting the
two is what makes fine-tuning cheap to express: adapting to a new task swaps
the head and keeps the body.

Training runs on standardised inputs (and, for regression, a standardised
target). What gets exported is a ``ServingModel``: the same body and head with
the train split's statistics baked in as buffers, so the served model takes
raw features and returns class probabilities and labels, or the prediction on
the original scale.

NB: no ``from __future__ import annotations`` here: TorchScript reads the
buffer annotations of the exported wrappers and cannot resolve them as strings.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import InvalidBaseModel, UnsupportedArchitecture

ARCHITECTURE_FORMAT = 1


@dataclass
class Architecture:
    """What ``architecture.json`` records, enough to rebuild the network."""

    architecture: str  # "mlp" or "torchscript"
    input_features: int
    outputs: int
    task: str
    hidden_sizes: list[int] = field(default_factory=list)
    body_outputs: int = 0
    feature_names: list[str] = field(default_factory=list)
    format: int = ARCHITECTURE_FORMAT

    def to_json(self) -> dict[str, Any]:
        names = {"input_features": "inputFeatures", "hidden_sizes": "hiddenSizes",
                 "body_outputs": "bodyOutputs", "feature_names": "featureNames"}
        return {names.get(k, k): v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Architecture":
        try:
            return cls(
                architecture=str(data["architecture"]),
                input_features=int(data["inputFeatures"]),
                outputs=int(data["outputs"]),
                task=str(data["task"]),
                hidden_sizes=[int(s) for s in data.get("hiddenSizes", [])],
                body_outputs=int(data.get("bodyOutputs", 0)),
                feature_names=[str(n) for n in data.get("featureNames", [])],
                format=int(data.get("format", ARCHITECTURE_FORMAT)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidBaseModel(f"architecture.json is malformed: {exc!r}") from exc


class Network(nn.Module):
    """A body and a linear head, trained on standardised inputs."""

    def __init__(self, body: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def build_mlp_body(input_features: int, hidden_sizes: list[int]) -> nn.Sequential:
    """Linear + ReLU for each hidden size; the head comes on top."""
    layers: list[nn.Module] = []
    width = input_features
    for size in hidden_sizes:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers)


def build_network(arch: Architecture) -> Network:
    """Builds a freshly initialised network from the catalogue."""
    if arch.architecture == "mlp":
        if not arch.hidden_sizes:
            raise InvalidBaseModel("an mlp needs at least one hidden size")
        body = build_mlp_body(arch.input_features, arch.hidden_sizes)
        return Network(body, nn.Linear(arch.hidden_sizes[-1], arch.outputs))
    if arch.architecture == "text-classifier":
        raise UnsupportedArchitecture(
            "architecture 'text-classifier' is not built into this trainer image: "
            "it needs a sentence encoder package; use 'mlp' on embedded features instead"
        )
    raise UnsupportedArchitecture(f"unknown architecture {arch.architecture!r}; known: mlp, "
                                  "torchscript")


class ServingModel(nn.Module):
    """Base of the exported wrappers: raw features in, standardised inside."""

    input_mean: torch.Tensor
    input_std: torch.Tensor

    def __init__(self, network: Network, input_mean: torch.Tensor,
                 input_std: torch.Tensor) -> None:
        super().__init__()
        self.body = network.body
        self.head = network.head
        self.register_buffer("input_mean", input_mean.reshape(1, -1).clone())
        self.register_buffer("input_std", input_std.reshape(1, -1).clone())

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body((x - self.input_mean) / self.input_std))


class ClassifierExport(ServingModel):
    """Outputs ``probabilities`` [rows, C] and ``label`` [rows] (int64)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probabilities = torch.softmax(self.logits(x), dim=1)
        return probabilities, torch.argmax(probabilities, dim=1)


class RegressorExport(ServingModel):
    """Outputs ``prediction`` [rows, 1] on the target's original scale."""

    target_mean: torch.Tensor
    target_std: torch.Tensor

    def __init__(self, network: Network, input_mean: torch.Tensor, input_std: torch.Tensor,
                 target_mean: float, target_std: float) -> None:
        super().__init__(network, input_mean, input_std)
        self.register_buffer("target_mean", torch.tensor([[target_mean]], dtype=torch.float32))
        self.register_buffer("target_std", torch.tensor([[target_std]], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x) * self.target_std + self.target_mean


def output_names(task: str) -> tuple[str, ...]:
    return ("probabilities", "label") if task == "classification" else ("prediction",)
