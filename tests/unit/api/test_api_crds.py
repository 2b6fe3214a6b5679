"""The generated CRDs: in sync with the committed files, structural, documented, complete."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelship_operator.api import ModelDeployment, ModelEnsemble
from modelship_operator.api.crd import KINDS, crd, crd_files
from tests.unit.api.schema_walk import all_nodes, root_schema

REPO = Path(__file__).resolve().parents[3]
REGENERATE = "run `modelship crds --write {}` and commit the result"


@pytest.mark.parametrize("folder", ["crds", "charts/modelship/crds"])
def test_committed_crds_are_what_the_models_generate(folder: str) -> None:
    directory = REPO / folder
    if folder != "crds" and not directory.exists():
        pytest.skip(f"{folder} does not exist yet")

    expected = crd_files()
    committed = {
        p.name: p.read_text(encoding="utf-8") for p in directory.glob("*.modelship.io.yaml")
    }

    assert sorted(committed) == sorted(expected), REGENERATE.format(folder)
    for name, text in expected.items():
        assert committed[name] == text, f"{folder}/{name} is stale: " + REGENERATE.format(folder)


def test_the_crds_are_valid_yaml_of_one_document_each() -> None:
    for text in crd_files().values():
        documents = list(yaml.safe_load_all(text))
        assert len(documents) == 1
        assert documents[0]["kind"] == "CustomResourceDefinition"


def test_every_node_has_a_type_and_no_ref_or_structural_anyof() -> None:
    for kind, path, node in all_nodes():
        assert "$ref" not in node and "$defs" not in node, (kind, path)
        assert "allOf" not in node and "oneOf" not in node, (kind, path)
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], (kind, path)
            continue
        assert "anyOf" not in node, (kind, path)
        assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, (
            kind,
            path,
        )
        assert not ("properties" in node and "additionalProperties" in node), (kind, path)
        assert node.get("additionalProperties", {}) is not False, (kind, path)


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    undocumented = [
        f"{kind}{path}"
        for kind, path, node in all_nodes()
        if path and not path.endswith(("[]", ".*")) and path != ".metadata"
        and not node.get("description")
    ]
    assert undocumented == []


def test_every_string_list_and_map_in_a_spec_is_bounded_for_cel_cost() -> None:
    unbounded = []
    for kind, path, node in all_nodes():
        if not path.startswith(".spec") or node.get("x-kubernetes-int-or-string"):
            continue
        kind_of = node.get("type")
        if kind_of == "string" and "enum" not in node and "maxLength" not in node:
            unbounded.append(f"{kind}{path}")
        if kind_of == "array" and "maxItems" not in node:
            unbounded.append(f"{kind}{path}")
        if kind_of == "object" and "additionalProperties" in node and "maxProperties" not in node:
            unbounded.append(f"{kind}{path}")
    assert unbounded == []


def test_every_cel_rule_has_a_message_a_user_can_act_on() -> None:
    for kind, path, node in all_nodes():
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["rule"].strip(), (kind, path)
            assert len(rule["message"]) > 20, (kind, path, rule)


def test_optional_fields_are_not_required_and_required_ones_are() -> None:
    spec = root_schema(ModelDeployment)["properties"]["spec"]
    assert spec["required"] == ["model"]
    assert spec["properties"]["model"]["required"] == ["format", "storageUri"]
    fine_tuning = spec["properties"]["fineTuning"]
    assert sorted(fine_tuning["required"]) == ["baseModel", "dataset", "promotion", "task"]
    assert root_schema(ModelEnsemble)["properties"]["spec"]["required"] == ["members", "strategy"]


def test_quantities_take_kubernetes_int_or_string_form() -> None:
    limits = root_schema(ModelDeployment)["properties"]["spec"]["properties"]["runtime"][
        "properties"
    ]["resources"]["properties"]["limits"]
    assert limits["additionalProperties"]["x-kubernetes-int-or-string"] is True
    assert limits["maxProperties"] == 16


def test_runtime_kind_and_model_format_are_immutable() -> None:
    spec = root_schema(ModelDeployment)["properties"]["spec"]["properties"]
    for node in (spec["runtime"]["properties"]["kind"], spec["model"]["properties"]["format"]):
        rules = node["x-kubernetes-validations"]
        assert [r["rule"] for r in rules] == ["self == oldSelf"]


def test_model_deployments_scale_through_spec_replicas() -> None:
    version = crd(ModelDeployment)["spec"]["versions"][0]
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    assert "scale" not in crd(ModelEnsemble)["spec"]["versions"][0]["subresources"]


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        (ModelDeployment, ["Ready", "Serving", "Runtime", "Phase", "Age"]),
        (ModelEnsemble, ["Strategy", "Members", "Ready", "Phase", "Age"]),
    ],
)
def test_printer_columns_show_what_a_user_checks_first(kind: type, columns: list[str]) -> None:
    printed = crd(kind)["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in printed if c.get("priority", 0) == 0] == columns
    for column in printed:
        assert column["jsonPath"].startswith((".spec.", ".status.", ".metadata."))


def test_names_short_names_and_category() -> None:
    names = {kind.__name__: crd(kind)["spec"]["names"] for kind in KINDS}
    assert names["ModelDeployment"] == {
        "kind": "ModelDeployment",
        "listKind": "ModelDeploymentList",
        "plural": "modeldeployments",
        "singular": "modeldeployment",
        "shortNames": ["md"],
        "categories": ["modelship"],
    }
    assert names["ModelEnsemble"]["shortNames"] == ["me"]
    assert names["ModelEnsemble"]["categories"] == ["modelship"]
    assert all(crd(kind)["spec"]["scope"] == "Namespaced" for kind in KINDS)
