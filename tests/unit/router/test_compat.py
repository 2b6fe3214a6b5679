"""Member compatibility, from metadata dicts alone: the ensemble's signature for each
strategy when members fit, and every reason when they do not."""

from __future__ import annotations

from typing import Any

import pytest

from modelship_serving.router.compat import (
    IncompatibleMembers,
    TensorMeta,
    check_members,
    compatibility_problems,
)
from modelship_serving.router.config import EnsembleConfig, parse_config


def tensor(name: str, datatype: str, shape: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape}


def classifier(classes: int = 2, *, features: int = 30, label: str = "INT64"
               ) -> dict[str, Any]:
    return {"name": "m", "versions": ["1"], "platform": "onnxruntime_onnx",
            "inputs": [tensor("input", "FP32", [-1, features])],
            "outputs": [tensor("probabilities", "FP32", [-1, classes]),
                        tensor("label", label, [-1])]}


def config(strategy: str, names: list[str], **extra: Any) -> EnsembleConfig:
    weights = {"weight": 1.0} if strategy == "weighted" else {}
    return parse_config({
        "name": "ens", "strategy": strategy,
        "members": [{"name": n, "url": "http://h:8000", "grpcUrl": "h:8001", "model": n,
                     **weights} for n in names], **extra})


def metas(plan_tensors: tuple[TensorMeta, ...]) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {t.name: (t.datatype, t.shape) for t in plan_tensors}


def test_voting_classifiers_vote_their_label_and_average_their_probabilities() -> None:
    plan = check_members(config("voting", ["a", "b", "c"]),
                         {n: classifier() for n in "abc"})
    assert metas(plan.inputs) == {"input": ("FP32", (-1, 30))}
    assert metas(plan.outputs) == {"label": ("INT64", (-1,)),
                                   "probabilities": ("FP32", (-1, 2))}
    assert plan.vote is not None
    assert (plan.vote.label, plan.vote.probabilities) == ("label", "probabilities")
    assert all(set(c.outputs) == {"label", "probabilities"} for c in plan.calls)


def test_voting_without_a_label_output_votes_the_argmax_of_probabilities() -> None:
    only_probs = {"inputs": [tensor("x", "FP64", [-1, 4])],
                  "outputs": [tensor("scores", "FP64", [-1, 3])]}
    plan = check_members(config("voting", ["a", "b"]), {"a": only_probs, "b": only_probs})
    assert plan.vote is not None and plan.vote.label is None
    assert metas(plan.outputs) == {"label": ("INT64", (-1,)), "scores": ("FP64", (-1, 3))}


def test_grpc_metadata_with_dims_as_strings_reads_the_same() -> None:
    grpc_json = classifier()
    grpc_json["inputs"] = [tensor("input", "FP32", ["-1", "30"])]
    plan = check_members(config("voting", ["a", "b"]), {"a": classifier(), "b": grpc_json})
    assert metas(plan.inputs) == {"input": ("FP32", (-1, 30))}


def test_a_fixed_size_and_a_dynamic_one_merge_to_the_fixed_size() -> None:
    dynamic = classifier()
    dynamic["inputs"] = [tensor("input", "FP32", [-1, -1])]
    plan = check_members(config("voting", ["a", "b"]), {"a": dynamic, "b": classifier()})
    assert metas(plan.inputs) == {"input": ("FP32", (-1, 30))}


@pytest.mark.parametrize(("b", "reason"), [
    (classifier(classes=3), "output 'probabilities': member 'a' gives FP32 [-1, 2] but member "
                            "'b' gives FP32 [-1, 3]"),
    (classifier(label="INT32"), "output 'label': member 'a' gives INT64 [-1] but member 'b' "
                                "gives INT32 [-1]"),
    (classifier(features=10), "input 'input': member 'a' takes FP32 [-1, 30] but member 'b' "
                              "takes FP32 [-1, 10]"),
    ({**classifier(), "outputs": [tensor("probabilities", "FP32", [-1, 2])]},
     "member 'b' has outputs ['probabilities'] but member 'a' has ['label', 'probabilities']; "
     "voting needs the same outputs from every member"),
])
def test_voting_members_must_agree_on_outputs_and_inputs(b: dict[str, Any], reason: str
                                                         ) -> None:
    with pytest.raises(IncompatibleMembers) as error:
        check_members(config("voting", ["a", "b"]), {"a": classifier(), "b": b})
    assert reason in error.value.reasons


def test_voting_needs_a_label_or_probabilities_and_says_which_it_found() -> None:
    regressor = {"inputs": [tensor("x", "FP32", [-1, 10])],
                 "outputs": [tensor("target", "FP32", [-1, 1])]}
    problems = compatibility_problems(config("voting", ["a", "b"]),
                                      {"a": regressor, "b": regressor})
    assert problems == ["voting needs a class label output (integer, [rows] or [rows, 1]) or "
                        "class probabilities (floating-point, [rows, classes]); members have "
                        "'target' FP32 [-1, 1]"]


def test_voting_asks_which_output_is_the_label_when_several_could_be() -> None:
    two_labels = classifier()
    two_labels["outputs"].append(tensor("other", "INT32", [-1, 1]))
    cfg = config("voting", ["a", "b"])
    assert compatibility_problems(cfg, {"a": two_labels, "b": two_labels}) == [
        "members have several integer label outputs ['label', 'other']; "
        "set voting.labelOutput"]
    chosen = config("voting", ["a", "b"], voting={"labelOutput": "other"})
    plan = check_members(chosen, {"a": two_labels, "b": two_labels})
    assert plan.vote is not None and plan.vote.label == "other"


def test_weighted_averages_floats_follows_them_with_the_label_and_normalises_weights() -> None:
    cfg = parse_config({"name": "ens", "strategy": "weighted", "members": [
        {"name": n, "url": "http://h:1", "grpcUrl": "h:2", "model": n, "weight": w}
        for n, w in (("a", 3), ("b", 1))]})
    plan = check_members(cfg, {"a": classifier(), "b": classifier()})
    assert plan.weighted is not None
    assert plan.weighted.weights == {"a": 0.75, "b": 0.25}
    assert plan.weighted.averaged == ("probabilities",)
    assert plan.weighted.argmax == {"label": "probabilities"}
    assert metas(plan.outputs) == {"probabilities": ("FP32", (-1, 2)),
                                   "label": ("INT64", (-1,))}


def test_weighted_refuses_members_with_nothing_to_average() -> None:
    labels_only = {"inputs": [tensor("x", "FP32", [-1, 3])],
                   "outputs": [tensor("label", "INT64", [-1])]}
    assert compatibility_problems(config("weighted", ["a", "b"]),
                                  {"a": labels_only, "b": labels_only}) == [
        "weighted averages floating-point outputs; members have 'label' INT64 [-1]"]


SCALER = {"inputs": [tensor("raw", "FP32", [-1, 30])],
          "outputs": [tensor("scaled", "FP32", [-1, 30])]}


def serial(mapping: dict[str, str], **extra: Any) -> EnsembleConfig:
    return config("serial", ["scale", "clf"], steps=[
        {"member": "scale", "inputMapping": {"raw": "$input.features"}},
        {"member": "clf", "inputMapping": mapping}], **extra)


def test_a_serial_plan_takes_the_requests_inputs_and_the_last_steps_outputs() -> None:
    plan = check_members(serial({"input": "scale.scaled"}),
                         {"scale": SCALER, "clf": classifier()})
    assert metas(plan.inputs) == {"features": ("FP32", (-1, 30))}
    assert metas(plan.outputs) == {"probabilities": ("FP32", (-1, 2)),
                                   "label": ("INT64", (-1,))}
    assert plan.sources == {"probabilities": ("clf", "probabilities"), "label": ("clf", "label")}
    assert [c.outputs for c in plan.calls] == [("scaled",), ("probabilities", "label")]


def test_serial_outputs_may_name_any_steps_output() -> None:
    plan = check_members(serial({"input": "scale.scaled"},
                                outputs={"z": "scale.scaled", "y": "clf.label"}),
                         {"scale": SCALER, "clf": classifier()})
    assert metas(plan.outputs) == {"z": ("FP32", (-1, 30)), "y": ("INT64", (-1,))}
    assert plan.calls[1].outputs == ("label",)


@pytest.mark.parametrize(("mapping", "clf", "reason"), [
    ({"input": "scale.scaled"}, classifier(features=10),
     "step 'clf': input 'input' takes FP32 [-1, 10] but 'scale.scaled' gives FP32 [-1, 30]"),
    ({"input": "scale.nothing"}, classifier(),
     "step 'clf': input 'input' reads 'scale.nothing', but member 'scale' has outputs "
     "['scaled']"),
    ({"features": "scale.scaled"}, classifier(),
     "step 'clf': inputMapping names input 'features', but model 'clf' has inputs ['input']"),
    ({"features": "scale.scaled"}, classifier(),
     "step 'clf': inputs ['input'] of model 'clf' have no source in inputMapping"),
    ({"input": "$input.features"}, {**classifier(), "inputs": [
        tensor("input", "FP64", [-1, 30])]},
     "input 'features' feeds FP32 [-1, 30] elsewhere but step 'clf' takes it as "
     "FP64 [-1, 30]"),
])
def test_a_serial_mapping_must_connect_matching_tensors(
        mapping: dict[str, str], clf: dict[str, Any], reason: str) -> None:
    problems = compatibility_problems(serial(mapping), {"scale": SCALER, "clf": clf})
    assert reason in problems


def test_parallel_separate_names_every_output_after_its_member() -> None:
    cfg = config("parallel", ["a", "b"], parallel={"combine": "separate"})
    plan = check_members(cfg, {"a": classifier(), "b": SCALER})
    assert metas(plan.inputs) == {"input": ("FP32", (-1, 30)), "raw": ("FP32", (-1, 30))}
    assert set(metas(plan.outputs)) == {"a.probabilities", "a.label", "b.scaled"}
    assert plan.calls[1].inputs == {"raw": "$input.raw"}


def test_parallel_concat_widens_the_last_axis_and_stacks_columns() -> None:
    cfg = config("parallel", ["a", "b", "c"])
    plan = check_members(cfg, {"a": classifier(), "b": classifier(3), "c": SCALER})
    assert metas(plan.outputs) == {"probabilities": ("FP32", (-1, 5)),
                                   "label": ("INT64", (-1, 2)),
                                   "scaled": ("FP32", (-1, 30))}
    assert plan.columns == frozenset({"label"})


def test_parallel_concat_refuses_outputs_that_differ_before_the_last_axis() -> None:
    odd = {"inputs": [tensor("input", "FP32", [-1, 30])],
           "outputs": [tensor("probabilities", "FP32", [-1, 4, 2])]}
    assert compatibility_problems(config("parallel", ["a", "b"]),
                                  {"a": classifier(), "b": odd}) == [
        "output 'probabilities': member 'a' gives FP32 [-1, 2] but member 'b' gives "
        "FP32 [-1, 4, 2]; concat needs the same datatype and every dimension but the last "
        "alike"]


def test_missing_or_malformed_metadata_is_a_reason_naming_the_member() -> None:
    problems = compatibility_problems(
        config("voting", ["a", "b", "c"]),
        {"a": classifier(), "b": {"inputs": [], "outputs": [{"name": "y"}]}})
    assert problems[0].startswith("member 'b': metadata outputs entry")
    assert problems[1] == "member 'c': no metadata"
