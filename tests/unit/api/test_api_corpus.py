"""The invalid-object corpus is complete, and each object breaks exactly one kind of rule.

The models enforce the schema's own constraints (enums, bounds, patterns,
required fields) in Python too, but leave cross-field CEL rules to the API
server. So an object that breaks a schema rule must fail `from_k8s`, and one
that breaks a CEL rule must parse: if it did not, it would break two rules.
"""

from __future__ import annotations

import pytest

from modelship_operator.api import InvalidResourceError, ModelDeployment, ModelEnsemble
from tests.invalid.corpus import InvalidCase, invalid_cases
from tests.unit.api.schema_walk import cel_messages

KINDS = {"ModelDeployment": ModelDeployment, "ModelEnsemble": ModelEnsemble}
CASES = invalid_cases()


def _breaks_a_cel_rule(case: InvalidCase) -> bool:
    return any(case.expect in message for message in cel_messages())


def test_the_corpus_holds_at_least_forty_objects_with_unique_names() -> None:
    assert len(CASES) >= 40
    keys = [(c.kind, c.name) for c in CASES]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_corpus_file_says_what_it_expects_and_why(case: InvalidCase) -> None:
    assert len(case.expect) >= 10, "a fragment this short would match anything"
    assert case.why
    assert case.kind in KINDS
    assert 1 <= len(case.documents) <= 2
    if case.is_update:
        assert case.documents[1]["metadata"]["name"] == case.name


def test_every_cel_rule_is_broken_by_some_corpus_object() -> None:
    unbroken = [m for m in cel_messages() if not any(c.expect in m for c in CASES)]
    assert unbroken == []


def test_the_corpus_covers_enums_bounds_patterns_required_and_unknown_fields() -> None:
    schema_level = [c.expect for c in CASES if not _breaks_a_cel_rule(c)]
    for marker in (
        "Unsupported value",  # enums
        "should match",  # patterns
        "Required value",  # required fields
        ": Invalid value: ",  # numeric bounds
        "items",  # list lengths
        "unknown field",  # typos
    ):
        assert any(marker in fragment for fragment in schema_level), marker


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_schema_rules_are_enforced_by_the_models_and_cel_rules_only_by_the_server(
    case: InvalidCase,
) -> None:
    model = KINDS[case.kind]
    if _breaks_a_cel_rule(case):
        for document in case.documents:
            model.from_k8s(document)
    else:
        with pytest.raises(InvalidResourceError):
            model.from_k8s(case.documents[-1])
