"""Structured logs carry the request's id and model, from a real JSON formatter."""

from __future__ import annotations

import json
import logging

from modelship_serving.server.logs import (
    JsonFormatter,
    RequestContextFilter,
    new_request_id,
    request_context,
)


def record_as_json(message: str, *args: object, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("modelship_serving.test", logging.INFO, __file__, 1, message,
                               args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    RequestContextFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_lines_inside_a_request_carry_its_id_and_model():
    with request_context("req-7", "mlp"):
        entry = record_as_json("Refused request: %s", 'shape "wrong"\nnext line')
    assert entry["request_id"] == "req-7" and entry["model"] == "mlp"
    assert entry["message"] == 'Refused request: shape "wrong"\nnext line'
    assert entry["level"] == "info" and entry["logger"] == "modelship_serving.test"


def test_lines_outside_a_request_have_no_request_fields_and_extras_are_kept():
    entry = record_as_json("Loaded.", payload={"inputs": {"x": [1, 2]}})
    assert "request_id" not in entry
    assert entry["payload"] == {"inputs": {"x": [1, 2]}}


def test_generated_request_ids_are_unique():
    assert len({new_request_id() for _ in range(1000)}) == 1000
