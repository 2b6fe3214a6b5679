"""The JSON-schema-to-structural translation refuses what a CRD cannot hold."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import Field

from modelship_operator.api.base import ApiModel, Quantity, Rule, validations
from modelship_operator.api.schema import SchemaError, structural_schema


class Inner(ApiModel):
    """An inner object."""

    model_config = {"json_schema_extra": validations(Rule("size(self.a) > 0", "a is empty"))}

    a: str = Field(max_length=5, description="A string.")


class Outer(ApiModel):
    """An outer object."""

    inner: Inner | None = Field(
        None,
        description="The field's own words win over the model's docstring.",
        json_schema_extra=validations(Rule("self.a != 'x'", "a is x")),
    )
    level: float = Field(0.5, gt=0, le=1, description="A bounded number.")
    mode: Literal["only"] = Field("only", description="A one-value enum.")
    cpu: Quantity = Field(1, description="A quantity.")


def test_refs_and_optionals_are_inlined_with_the_fields_words_and_both_rule_sets() -> None:
    schema = structural_schema(Outer)
    inner = schema["properties"]["inner"]

    assert inner["type"] == "object"
    assert inner["description"] == "The field's own words win over the model's docstring."
    assert [r["message"] for r in inner["x-kubernetes-validations"]] == ["a is empty", "a is x"]
    assert "default" not in inner and "anyOf" not in inner


def test_json_schema_idioms_become_openapi_v3_ones() -> None:
    props = structural_schema(Outer)["properties"]

    assert props["level"]["minimum"] == 0 and props["level"]["exclusiveMinimum"] is True
    assert props["mode"]["enum"] == ["only"]
    assert props["cpu"]["x-kubernetes-int-or-string"] is True
    assert "title" not in props["level"]


def test_an_undocumented_field_fails_generation() -> None:
    class Bare(ApiModel):
        """A model with a field nobody described."""

        size: int = 1

    with pytest.raises(SchemaError, match="needs a description"):
        structural_schema(Bare)


def test_a_union_of_two_types_fails_generation() -> None:
    class Either(ApiModel):
        """A model with a union no structural schema can express."""

        value: int | str = Field(description="Either.")

    with pytest.raises(SchemaError, match="not structural"):
        structural_schema(Either)
