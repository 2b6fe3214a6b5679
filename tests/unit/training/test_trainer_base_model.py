"""Base models load weights-only and get a head fitted to the task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from modelship_serving.training.architectures import Architecture, build_network
from modelship_serving.training.base_model import prepare_network
from modelship_serving.training.config import BaseModelSpec
from modelship_serving.training.errors import (
    BaseModelNotFound,
    InvalidBaseModel,
    UnsupportedArchitecture,
)

FEATURES = 6


def save_base(directory: Path, *, outputs: int = 2, task: str = "classification",
              hidden: tuple[int, ...] = (8, 4)) -> nn.Module:
    torch.manual_seed(0)
    arch = Architecture("mlp", FEATURES, outputs, task, hidden_sizes=list(hidden))
    network = build_network(arch)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), directory / "checkpoint.pt")
    (directory / "architecture.json").write_text(json.dumps(arch.to_json()))
    return network


def load(uri: str, *, outputs: int, task: str, **spec: object):
    return prepare_network(BaseModelSpec(uri=uri, **spec), input_features=FEATURES,
                           outputs=outputs, task=task, feature_names=[])


def test_a_base_for_the_same_task_keeps_its_body_and_head(tmp_path: Path) -> None:
    base = save_base(tmp_path / "v1")
    prepared = load((tmp_path / "v1").as_uri(), outputs=2, task="classification")
    assert prepared.head_kept
    for key, value in base.state_dict().items():
        assert torch.equal(prepared.network.state_dict()[key], value)


def test_more_classes_get_a_new_head_on_the_same_body(tmp_path: Path) -> None:
    base = save_base(tmp_path / "v1")
    prepared = load((tmp_path / "v1" / "checkpoint.pt").as_uri(), outputs=5,
                    task="classification")
    assert not prepared.head_kept
    assert prepared.network.head.out_features == 5
    assert prepared.architecture.outputs == 5
    body = {k: v for k, v in base.state_dict().items() if k.startswith("body.")}
    for key, value in body.items():
        assert torch.equal(prepared.network.state_dict()[key], value)


def test_a_classifier_base_gets_one_output_for_regression(tmp_path: Path) -> None:
    save_base(tmp_path / "v1")
    prepared = load((tmp_path / "v1").as_uri(), outputs=1, task="regression")
    assert prepared.network.head.out_features == 1
    assert prepared.architecture.task == "regression"


def test_a_base_for_another_feature_count_is_refused(tmp_path: Path) -> None:
    save_base(tmp_path / "v1")
    with pytest.raises(InvalidBaseModel, match="takes 6 features but the dataset has 9"):
        prepare_network(BaseModelSpec(uri=(tmp_path / "v1").as_uri()), input_features=9,
                        outputs=2, task="classification", feature_names=[])


def test_hidden_sizes_that_disagree_with_the_side_file_are_refused(tmp_path: Path) -> None:
    save_base(tmp_path / "v1")
    with pytest.raises(InvalidBaseModel, match="disagrees"):
        load((tmp_path / "v1").as_uri(), outputs=2, task="classification", hidden_sizes=[3])


def test_a_bare_checkpoint_is_rebuilt_from_the_specs_hidden_sizes(tmp_path: Path) -> None:
    save_base(tmp_path / "v1")
    (tmp_path / "v1" / "architecture.json").unlink()
    with pytest.raises(InvalidBaseModel, match="hiddenSizes"):
        load((tmp_path / "v1").as_uri(), outputs=2, task="classification")
    prepared = load((tmp_path / "v1").as_uri(), outputs=2, task="classification",
                    hidden_sizes=[8, 4])
    assert prepared.head_kept


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    save_base(tmp_path / "v1")
    # A pickled module is not a state_dict: weights_only loading must refuse it.
    torch.save(nn.Linear(2, 2), tmp_path / "v1" / "checkpoint.pt")
    with pytest.raises(InvalidBaseModel, match="weights only"):
        load((tmp_path / "v1").as_uri(), outputs=2, task="classification")


def test_a_missing_base_model_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(BaseModelNotFound, match=r"checkpoint\.pt"):
        load((tmp_path / "nowhere").as_uri(), outputs=2, task="classification")


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_a_foreign_torchscript_module_becomes_the_body_of_a_new_head(tmp_path: Path) -> None:
    encoder = torch.jit.script(nn.Sequential(nn.Linear(FEATURES, 7), nn.Tanh()))
    encoder.save(str(tmp_path / "encoder.pt"))
    prepared = load((tmp_path / "encoder.pt").as_uri(), outputs=3, task="classification",
                    architecture="torchscript")
    assert prepared.network.head.in_features == 7
    assert prepared.network.head.out_features == 3
    assert prepared.network(torch.zeros(4, FEATURES)).shape == (4, 3)
    assert all(p.requires_grad for p in prepared.network.parameters())


def test_pvc_uris_resolve_under_the_pvc_root(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIP_PVC_ROOT", str(tmp_path))
    save_base(tmp_path / "models" / "base" / "1")
    prepared = load("pvc://models/base/1", outputs=2, task="classification")
    assert prepared.source == str(tmp_path / "models" / "base" / "1" / "checkpoint.pt")


def test_the_text_classifier_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedArchitecture, match="sentence encoder"):
        load((tmp_path / "x").as_uri(), outputs=2, task="classification",
             architecture="text-classifier")
