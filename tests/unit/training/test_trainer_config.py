"""The trainer's config is validated at the edge, naming field and value."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelship_serving.training.config import load_config, parse_config
from modelship_serving.training.errors import InvalidConfig


def config(**fine_tuning: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "baseModel": {"uri": "file:///models/base/1"},
        "dataset": {"uri": "sklearn://breast_cancer"},
        "task": "classification",
    }
    spec.update(fine_tuning)
    return {"modelName": "cancer", "version": 2, "outputRepository": "/repo",
            "fineTuning": spec}


def error_of(raw: dict[str, Any]) -> str:
    with pytest.raises(InvalidConfig) as caught:
        parse_config(raw)
    return str(caught.value)


def test_a_minimal_config_gets_the_documented_defaults() -> None:
    parsed = parse_config(config())
    hp = parsed.fine_tuning.hyper_parameters
    assert (hp.optimizer, hp.learning_rate, hp.batch_size, hp.epochs) == ("adam", 1e-3, 32, 20)
    assert parsed.fine_tuning.dataset.split.train == 0.7
    assert parsed.fine_tuning.workers == 1
    assert parsed.fine_tuning.metric == "accuracy"


def test_a_regression_watches_rmse_unless_promotion_names_a_metric() -> None:
    assert parse_config(config(task="regression")).fine_tuning.metric == "rmse"
    chosen = parse_config(config(task="regression", promotion={"metric": "r2"}))
    assert chosen.fine_tuning.metric == "r2"


def test_split_ratios_that_do_not_sum_to_one_are_refused_with_their_values() -> None:
    bad = config(dataset={"uri": "sklearn://diabetes",
                          "split": {"train": 0.8, "validation": 0.15, "test": 0.15}})
    message = error_of(bad)
    assert "fineTuning.dataset.split" in message
    assert "0.8 + 0.15 + 0.15" in message


def test_a_negative_learning_rate_names_the_field_and_the_value() -> None:
    message = error_of(config(hyperParameters={"learningRate": -0.1}))
    assert "fineTuning.hyperParameters.learningRate" in message
    assert "-0.1" in message


def test_an_unknown_optimizer_is_refused() -> None:
    message = error_of(config(hyperParameters={"optimizer": "lbfgs"}))
    assert "optimizer" in message and "lbfgs" in message


def test_a_misspelt_hyper_parameter_is_refused_rather_than_ignored() -> None:
    message = error_of(config(hyperParameters={"epoch": 3}))
    assert "fineTuning.hyperParameters.epoch" in message


def test_a_fine_tuning_field_only_the_operator_reads_is_dropped_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    parsed = parse_config(config(historyLimit=5))
    assert parsed.fine_tuning.task == "classification"
    assert "historyLimit" in caplog.text


def test_a_metric_of_the_other_task_is_refused() -> None:
    message = error_of(config(promotion={"metric": "rmse", "threshold": 3}))
    assert "promotion.metric 'rmse' does not fit task 'classification'" in message


def test_auc_is_refused_for_more_than_two_classes() -> None:
    message = error_of(config(numClasses=10, promotion={"metric": "auc"}))
    assert "binary" in message


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/data.csv", "storage initializer"),
        ("sklearn://iris", "unknown scikit-learn dataset 'iris'"),
        ("sklearn://diabetes?rows=10", "start:stop"),
        ("sklearn://diabetes?rows=20:10", "selects no row"),
        ("sklearn://diabetes?limit=3", "unknown query parameter"),
        ("data.csv", "no scheme"),
    ],
)
def test_a_dataset_uri_the_trainer_cannot_read_is_refused(uri: str, expected: str) -> None:
    message = error_of(config(dataset={"uri": uri}))
    assert "fineTuning.dataset.uri" in message
    assert expected in message


def test_training_from_scratch_needs_hidden_sizes() -> None:
    message = error_of(config(baseModel={"architecture": "mlp"}))
    assert "hiddenSizes" in message


def test_the_model_name_must_be_a_repository_directory_name() -> None:
    raw = config()
    raw["modelName"] = "../escape"
    assert "modelName" in error_of(raw)


def test_a_config_that_is_not_json_says_so() -> None:
    with pytest.raises(InvalidConfig, match="not JSON"):
        parse_config("{nope")


def test_the_config_can_come_inline_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIP_TRAINER_CONFIG", json.dumps(config()))
    assert load_config(None).model_name == "cancer"


def test_no_config_at_all_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELSHIP_TRAINER_CONFIG", raising=False)
    with pytest.raises(InvalidConfig, match="--config"):
        load_config(None)
