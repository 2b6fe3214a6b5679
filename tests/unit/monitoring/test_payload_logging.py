"""Payload logging samples at its rate and never writes a credential."""

from __future__ import annotations

import json
import logging
import random

import numpy as np
import pytest

from modelship_serving.monitoring import PayloadLogger, scrub, scrub_headers
from modelship_serving.monitoring.payload import REDACTED, scrub_text

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
       "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")


def request(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "request_id": "req-1",
        "model": "clf",
        "version": "2",
        "inputs": {"x": np.arange(40, dtype=np.float32).reshape(2, 20)},
        "outputs": {"probs": np.array([[np.nan, np.inf]], np.float32)},
        "headers": {"Authorization": "Bearer abc.def", "Content-Type": "application/json"},
        "parameters": {"api_key": "k-123", "note": "call me"},
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize("name", ["Authorization", "proxy-authorization", "Cookie",
                                  "Set-Cookie", "X-Api-Key", "x-amz-security-token",
                                  "X-Auth-Token", "X-Client-Secret"])
def test_credential_headers_are_replaced_whole(name: str) -> None:
    assert scrub_headers({name: "hunter2"}) == {name.lower(): REDACTED}


def test_asgi_header_pairs_are_accepted_and_harmless_ones_kept() -> None:
    headers = [(b"authorization", b"Basic dXNlcjpwYXNz"), (b"x-request-id", b"abc")]
    assert scrub_headers(headers) == {"authorization": REDACTED, "x-request-id": "abc"}


@pytest.mark.parametrize(("text", "leaked"), [
    ("Bearer s3cr3t-token", "s3cr3t-token"),
    (f"session {JWT}", JWT),
    ("key AKIAABCDEFGHIJKLMNOP here", "AKIAABCDEFGHIJKLMNOP"),
    ("s3://u:pa55word@bucket/x", "pa55word"),
    ("https://h/m?token=t0k&x=1", "t0k"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "MIIE"),
])
def test_secret_looking_text_is_masked_anywhere(text: str, leaked: str) -> None:
    assert leaked not in scrub_text(text)
    assert leaked not in json.dumps(scrub({"nested": [{"v": text}]}))


def test_ordinary_text_is_left_alone() -> None:
    assert scrub_text("the basic idea is a bearer of news") == "the basic idea is a bearer of news"


def test_a_record_carries_the_request_id_and_is_strict_json() -> None:
    logger = PayloadLogger(1.0)
    record = logger.record(**request())
    text = json.dumps(record, allow_nan=False)
    assert record["request_id"] == "req-1"
    assert "abc.def" not in text and "k-123" not in text
    assert record["headers"]["content-type"] == "application/json"
    assert record["parameters"] == {"api_key": REDACTED, "note": "call me"}
    assert record["inputs"]["x"]["shape"] == [2, 20]
    assert record["inputs"]["x"]["truncated"] is True
    assert len(record["inputs"]["x"]["data"]) == logger.max_elements
    assert record["outputs"]["probs"]["data"] == ["nan", "inf"]


def test_text_tensors_are_scrubbed_and_shortened() -> None:
    text = np.array([f"token {JWT}".encode(), b"x" * 1_000], dtype=object)
    preview = PayloadLogger(1.0).record(**request(inputs={"text": text}))["inputs"]["text"]
    assert JWT not in json.dumps(preview)
    assert len(preview["data"][1]) <= 260


def test_a_zero_rate_never_samples_and_one_always_does() -> None:
    assert not any(PayloadLogger(0.0).should_sample() for _ in range(1_000))
    assert all(PayloadLogger(1.0).should_sample() for _ in range(1_000))


def test_a_rate_samples_about_that_share() -> None:
    logger = PayloadLogger(0.25, rng=random.Random(7))
    hits = sum(logger.should_sample() for _ in range(10_000))
    assert 2_300 < hits < 2_700


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_a_rate_outside_zero_to_one_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="sample rate"):
        PayloadLogger(rate)


def test_a_sampled_request_is_logged_with_its_payload(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="modelship_serving.monitoring.payload"):
        assert PayloadLogger(1.0).maybe_log(**request())
    [line] = caplog.records
    assert line.request_id == "req-1"  # type: ignore[attr-defined]
    assert line.payload["model"] == "clf"  # type: ignore[attr-defined]
    assert "abc.def" not in json.dumps(line.payload)  # type: ignore[attr-defined]


def test_a_payload_that_cannot_be_previewed_does_not_fail_the_request() -> None:
    assert PayloadLogger(1.0).maybe_log(request_id="r", model="m") is False
