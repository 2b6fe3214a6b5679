"""Loading the base model and adapting its head to the task.

ONNX cannot be trained, so a base model is one of:

- a PyTorch checkpoint (a ``state_dict``) with an ``architecture.json`` beside
  it (or ``hiddenSizes`` in the spec), rebuilt from the trainer's catalogue and
  loaded with ``torch.load(weights_only=True)`` so a checkpoint cannot run code;
- a TorchScript module. One that has ``body`` and ``head`` submodules (every
  ``model.pt`` this trainer writes does) keeps its body and gets its head
  adapted; any other module is taken whole as the body and gets a new head.

The URI may name the file, or a version directory this trainer wrote
(``checkpoint.pt`` + ``architecture.json``, and ``model.pt``).

Head adaptation keeps the head's weights when the base was trained for the
same task with the same number of outputs and replaces it with a freshly
initialised linear layer otherwise; the body is always kept.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .architectures import Architecture, Network, build_network
from .config import BaseModelSpec
from .errors import BaseModelNotFound, InvalidBaseModel
from .uris import parse_uri

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
ARCHITECTURE_FILE = "architecture.json"
TORCHSCRIPT_FILE = "model.pt"


@dataclass
class PreparedModel:
    network: Network
    architecture: Architecture  # of the adapted network
    head_kept: bool
    source: str  # "scratch" or the file it came from


def prepare_network(
    spec: BaseModelSpec,
    *,
    input_features: int,
    outputs: int,
    task: str,
    feature_names: list[str],
) -> PreparedModel:
    """Builds or loads the base network and fits its head to the task.

    The caller seeds torch's generator first: fresh layers draw from it.
    """
    if spec.architecture == "text-classifier":
        build_network(Architecture("text-classifier", input_features, outputs, task))
    if spec.uri is None:
        arch = Architecture("mlp", input_features, outputs, task,
                            hidden_sizes=list(spec.hidden_sizes or []),
                            feature_names=feature_names)
        return PreparedModel(build_network(arch), arch, head_kept=False, source="scratch")

    parsed = parse_uri(spec.uri, allow_sklearn=False)
    assert parsed.path is not None, "a model URI always resolves to a path"
    if spec.architecture == "torchscript":
        module_path = _pick(parsed.path, TORCHSCRIPT_FILE, spec.uri)
        network, base = _load_torchscript(module_path, input_features)
        state = None
        source = module_path
    else:
        checkpoint = _pick(parsed.path, CHECKPOINT_FILE, spec.uri)
        base = _read_architecture(checkpoint, spec, input_features, task)
        if base.architecture == "torchscript":
            module_path = checkpoint.with_name(TORCHSCRIPT_FILE)
            if not module_path.is_file():
                raise BaseModelNotFound(f"{checkpoint.parent} has a TorchScript architecture "
                                        f"but no {TORCHSCRIPT_FILE}")
            network, _ = _load_torchscript(module_path, input_features)
        else:
            network = build_network(base)
        state = _read_state(checkpoint)
        source = checkpoint

    if base.input_features != input_features:
        raise InvalidBaseModel(
            f"the base model takes {base.input_features} features but the dataset has "
            f"{input_features}"
        )
    if state is not None:
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise InvalidBaseModel(f"the checkpoint does not fit {base.architecture} "
                                   f"{base.hidden_sizes}: {str(exc)[:600]}") from exc

    head_kept = base.task == task and base.outputs == outputs
    if not head_kept:
        network.head = nn.Linear(network.head.in_features, outputs)
    arch = replace(base, outputs=outputs, task=task, feature_names=feature_names)
    logger.info("Loaded the base model from %s; %s.", spec.uri,
                "kept its head" if head_kept else f"gave it a new {outputs}-output head")
    return PreparedModel(network, arch, head_kept, str(source))


def _pick(path: Path, default_name: str, uri: str) -> Path:
    candidate = path / default_name if path.is_dir() else path
    if not candidate.is_file():
        raise BaseModelNotFound(f"base model {uri} not found: {candidate} does not exist "
                                f"(name the file, or a version directory holding "
                                f"{default_name})")
    return candidate


def _read_architecture(checkpoint: Path, spec: BaseModelSpec, input_features: int,
                       task: str) -> Architecture:
    side = checkpoint.with_name(ARCHITECTURE_FILE)
    if side.is_file():
        try:
            arch = Architecture.from_json(json.loads(side.read_text()))
        except json.JSONDecodeError as exc:
            raise InvalidBaseModel(f"{side} is not JSON: {exc}") from exc
        if spec.hidden_sizes is not None and arch.architecture == "mlp" \
                and spec.hidden_sizes != arch.hidden_sizes:
            raise InvalidBaseModel(
                f"baseModel.hiddenSizes {spec.hidden_sizes} disagrees with "
                f"{ARCHITECTURE_FILE} ({arch.hidden_sizes}); drop one of them"
            )
        return arch
    if spec.hidden_sizes is None:
        raise InvalidBaseModel(f"{checkpoint} has no {ARCHITECTURE_FILE} beside it; "
                               "set baseModel.hiddenSizes to rebuild it")
    # Without a side file the head's width is read from the weights themselves.
    state = _read_state(checkpoint)
    head = state.get("head.weight")
    if head is None or head.ndim != 2:
        raise InvalidBaseModel(f"{checkpoint} has no 'head.weight': not a trainer checkpoint")
    return Architecture("mlp", input_features, int(head.shape[0]),
                        task if head.shape[0] > 1 else "regression",
                        hidden_sizes=list(spec.hidden_sizes))


def _read_state(checkpoint: Path) -> dict[str, torch.Tensor]:
    try:
        loaded: Any = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refuses anything but tensors and containers
        raise InvalidBaseModel(f"cannot load {checkpoint} as weights only: "
                               f"{str(exc)[:600]}") from exc
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor)
                                               for v in loaded.values()):
        raise InvalidBaseModel(f"{checkpoint} does not hold a state_dict of tensors")
    return dict(loaded)


def _load_torchscript(path: Path, input_features: int) -> tuple[Network, Architecture]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is what we load
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise InvalidBaseModel(f"cannot load {path} as TorchScript: {str(exc)[:600]}") from exc

    side = path.with_name(ARCHITECTURE_FILE)
    known = Architecture.from_json(json.loads(side.read_text())) if side.is_file() else None
    if hasattr(module, "body") and hasattr(module, "head"):
        body: nn.Module = module.body
        weight = getattr(module.head, "weight", None)
        if weight is None or weight.ndim != 2:
            raise InvalidBaseModel(f"{path}: 'head' is not a linear layer")
        head = nn.Linear(int(weight.shape[1]), int(weight.shape[0]))
        with torch.no_grad():
            head.weight.copy_(weight)
            head.bias.copy_(module.head.bias)
        width, outputs = int(weight.shape[1]), int(weight.shape[0])
        task = known.task if known else ("classification" if outputs > 1 else "regression")
    else:
        body = module
        width = _probe_width(module, input_features, path)
        head = nn.Linear(width, 1)
        outputs, task = 0, "unknown"  # a head of our own is always new
    for parameter in body.parameters():
        parameter.requires_grad_(True)

    features = known.input_features if known else input_features
    arch = Architecture("torchscript", features, outputs, task, body_outputs=width)
    return Network(body, head), arch


def _probe_width(module: nn.Module, input_features: int, path: Path) -> int:
    """Runs the module once on zeros to learn the width of what it returns."""
    try:
        with torch.no_grad():
            out = module(torch.zeros(2, input_features))
    except Exception as exc:
        raise InvalidBaseModel(f"{path} does not accept [rows, {input_features}] float "
                               f"input: {str(exc)[:400]}") from exc
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InvalidBaseModel(f"{path} must return a [rows, width] tensor, got {shape}")
    return int(out.shape[1])

