"""Telling a hand edit of a child from the operator's own writes and the controllers' work."""

from __future__ import annotations

from typing import Any

import pytest

from modelship_operator.cluster.client import FIELD_MANAGER
from modelship_operator.cluster.converge import edited_by_someone_else

OURS_AT = "2030-01-01T00:10:00Z"
BEFORE = "2030-01-01T00:05:00Z"
AFTER = "2030-01-01T00:15:00Z"


def _entry(manager: str, time: str, *, operation: str = "Update",
           subresource: str | None = None) -> dict[str, Any]:
    entry = {"manager": manager, "operation": operation, "time": time,
             "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": {}}
    if subresource is not None:
        entry["subresource"] = subresource
    return entry


def _live(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "clf-predictor", "managedFields": list(entries)}}


def _ours(time: str = OURS_AT) -> dict[str, Any]:
    return _entry(FIELD_MANAGER, time, operation="Apply")


def test_the_operator_applies_as_modelship_operator() -> None:
    assert FIELD_MANAGER == "modelship-operator"


def test_kubectl_edit_after_our_apply_is_an_edit() -> None:
    assert edited_by_someone_else(_live(_ours(), _entry("kubectl-edit", AFTER))) is True


def test_kubectl_patch_in_the_same_second_as_our_apply_is_an_edit() -> None:
    assert edited_by_someone_else(_live(_ours(), _entry("kubectl-patch", OURS_AT))) is True


def test_an_edit_before_our_last_apply_was_already_taken_back() -> None:
    assert edited_by_someone_else(_live(_entry("kubectl-edit", BEFORE), _ours())) is False


def test_only_our_newest_apply_counts() -> None:
    live = _live(_ours(BEFORE), _entry("kubectl-edit", OURS_AT), _ours(AFTER))

    assert edited_by_someone_else(live) is False


def test_status_written_by_another_manager_is_not_an_edit() -> None:
    live = _live(_ours(), _entry("kube-scheduler", AFTER, subresource="status"),
                 _entry("some-controller", AFTER, subresource="status"))

    assert edited_by_someone_else(live) is False


def test_scaling_through_the_scale_subresource_is_not_an_edit() -> None:
    live = _live(_ours(), _entry("kubectl", AFTER, subresource="scale"))

    assert edited_by_someone_else(live) is False


def test_the_controller_managers_bookkeeping_is_not_an_edit() -> None:
    live = _live(_ours(), _entry("kube-controller-manager", AFTER))

    assert edited_by_someone_else(live) is False


def test_an_object_without_managed_fields_has_not_been_edited() -> None:
    assert edited_by_someone_else({"metadata": {"name": "x"}}) is False
    assert edited_by_someone_else({}) is False


def test_an_object_only_we_wrote_has_not_been_edited() -> None:
    assert edited_by_someone_else(_live(_ours(BEFORE), _ours())) is False


def test_an_update_to_an_object_we_never_applied_is_an_edit() -> None:
    assert edited_by_someone_else(_live(_entry("kubectl-create", BEFORE))) is True


def test_a_forced_server_side_apply_by_someone_else_after_ours_is_an_edit() -> None:
    live = _live(_ours(), _entry("kubectl", AFTER, operation="Apply"))

    assert edited_by_someone_else(live) is True
