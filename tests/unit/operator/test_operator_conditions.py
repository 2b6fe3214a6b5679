"""merge_conditions: transition times move only when a status flips."""

from __future__ import annotations

import re

from modelship_operator.reconcile.conditions import (
    MAX_MESSAGE,
    Condition,
    condition_of,
    merge_conditions,
    now,
)

T0 = "2030-01-01T00:00:00Z"
T1 = "2030-01-01T00:05:00Z"


def _ready(status: str = "True", reason: str = "ServersReady", message: str = "2 of 2") -> (
    Condition
):
    return Condition("Ready", status, reason, message)  # type: ignore[arg-type]


def test_a_new_condition_gets_the_given_time_and_generation() -> None:
    merged = merge_conditions(None, [_ready()], generation=3, timestamp=T0)

    assert merged == [{
        "type": "Ready", "status": "True", "reason": "ServersReady", "message": "2 of 2",
        "observedGeneration": 3, "lastTransitionTime": T0,
    }]


def test_an_unchanged_status_keeps_its_transition_time_but_takes_the_new_reason() -> None:
    first = merge_conditions(None, [_ready()], generation=1, timestamp=T0)

    second = merge_conditions(
        first, [_ready(reason="StillReady", message="3 of 3")], generation=2, timestamp=T1)

    assert second == [{
        "type": "Ready", "status": "True", "reason": "StillReady", "message": "3 of 3",
        "observedGeneration": 2, "lastTransitionTime": T0,
    }]


def test_a_flipped_status_moves_the_transition_time() -> None:
    first = merge_conditions(None, [_ready()], generation=1, timestamp=T0)

    second = merge_conditions(
        first, [_ready("False", "ServerFailing", "crash")], generation=1, timestamp=T1)

    assert second[0]["status"] == "False"
    assert second[0]["lastTransitionTime"] == T1


def test_merging_the_same_conditions_twice_gives_an_identical_list() -> None:
    updates = [_ready(), Condition("ModelLoaded", "True", "ModelServed", "loaded")]
    first = merge_conditions(None, updates, generation=1, timestamp=T0)

    second = merge_conditions(first, updates, generation=1, timestamp=T1)

    assert second == first


def test_conditions_it_was_not_told_about_are_kept_after_the_updated_ones() -> None:
    fine_tuned = {"type": "FineTuned", "status": "True", "reason": "Promoted",
                  "message": "v2", "observedGeneration": 1, "lastTransitionTime": T0}
    previous = [fine_tuned, *merge_conditions(None, [_ready()], generation=1, timestamp=T0)]

    merged = merge_conditions(previous, [_ready("False", "WaitingForServers", "0 of 1")],
                              generation=2, timestamp=T1)

    assert [c["type"] for c in merged] == ["Ready", "FineTuned"]
    assert merged[1] == fine_tuned


def test_updates_keep_the_order_they_were_given_in() -> None:
    updates = [Condition("Progressing", "True", "RollingOut", ""), _ready()]

    merged = merge_conditions(None, updates, generation=1, timestamp=T0)

    assert [c["type"] for c in merged] == ["Progressing", "Ready"]


def test_long_messages_are_trimmed_to_the_limit() -> None:
    merged = merge_conditions(None, [_ready(message="x" * 5000)], generation=1, timestamp=T0)

    assert MAX_MESSAGE == 1024
    assert merged[0]["message"] == "x" * 1024


def test_without_a_timestamp_the_current_time_is_written_in_rfc3339() -> None:
    merged = merge_conditions(None, [_ready()], generation=1)

    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", merged[0]["lastTransitionTime"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", now())


def test_condition_of_finds_a_condition_by_type_or_nothing() -> None:
    conditions = merge_conditions(None, [_ready()], generation=1, timestamp=T0)

    assert condition_of(conditions, "Ready") == conditions[0]
    assert condition_of(conditions, "FineTuned") is None
    assert condition_of(None, "Ready") is None
