"""Sampled payload logging that never writes a credential.

A share of requests (``--payload-log-sample-rate``, from the spec's
``monitoring.payloadLogSampleRate``) is logged as one structured record: the
request id, model, headers, parameters and a bounded preview of every tensor.
Scrubbing is by name *and* by shape: a header or parameter whose name looks
like a credential is replaced whole, and any string that looks like one
(``Bearer ...``, a JWT, a cloud access key, a PEM private key, a URL with a
password, ``token=...`` in a query) is masked wherever it appears, tensor
text included. Logging a little too little beats leaking a key.

The record goes out as the ``payload`` field of a log record, so the server's
JSON formatter serialises it with the request id beside it; nothing here
formats JSON by hand.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

REDACTED = "[REDACTED]"
DEFAULT_MAX_ELEMENTS = 16
DEFAULT_MAX_CHARS = 256

_SECRET_NAME = re.compile(
    r"authorization|cookie|token|secret|passw(or)?d|passwd|credential|api[-_]?key|"
    r"private[-_]?key|access[-_]?key|session|signature|security[-_]?token|x-amz-",
    re.IGNORECASE,
)
_SECRET_VALUES = (
    # HTTP auth schemes: keep the scheme so a reader knows what was sent. Real
    # credentials are long token68 strings; "a bearer of news" is left alone.
    (re.compile(r"\b(bearer|basic|digest|negotiate)\s+[\w.~+/=-]{8,}", re.IGNORECASE),
     r"\1 " + REDACTED),
    (re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"), REDACTED),
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)",
                re.DOTALL), REDACTED),
    (re.compile(r"(://[^/\s:@]+:)[^/\s@]+@"), r"\1" + REDACTED + "@"),
    (re.compile(r"\b((?:access_|id_|refresh_)?token|secret|password|passwd|api[-_]?key|sig|"
                r"signature|x-amz-signature|x-amz-credential)=[^&\s\"']+", re.IGNORECASE),
     r"\1=" + REDACTED),
)


def scrub_text(text: str) -> str:
    """Mask every substring of ``text`` that looks like a credential."""
    for pattern, replacement in _SECRET_VALUES:
        text = pattern.sub(replacement, text)
    return text


def scrub(value: Any, *, max_chars: int = DEFAULT_MAX_CHARS) -> Any:
    """A JSON-safe copy of ``value`` with secret-named keys and secret-looking text masked."""
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if _SECRET_NAME.search(str(k)) else scrub(v, max_chars=max_chars)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [scrub(v, max_chars=max_chars) for v in value]
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        text = scrub_text(value)
        return text if len(text) <= max_chars else text[:max_chars] + "..."
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN and infinities are not JSON
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return scrub(str(value), max_chars=max_chars)


def scrub_headers(
    headers: Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]],
) -> dict[str, str]:
    """Headers as a lower-cased dict, credential headers replaced whole."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    scrubbed: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name = _text(raw_name).lower()
        value = _text(raw_value)
        scrubbed[name] = REDACTED if _SECRET_NAME.search(name) else scrub_text(value)
    return scrubbed


def tensor_preview(
    array: Any,
    *,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> dict[str, Any]:
    """Shape, dtype and the first few values of a tensor, JSON-safe and scrubbed."""
    array = np.asarray(array)
    flat = array.reshape(-1)
    head = flat[:max_elements].tolist()
    return {
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "data": scrub(head, max_chars=max_chars),
        "truncated": flat.size > max_elements,
    }


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


class PayloadLogger:
    """Logs a sampled share of requests; thread-safe, and free when the rate is 0."""

    def __init__(
        self,
        sample_rate: float,
        *,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
        max_chars: int = DEFAULT_MAX_CHARS,
        rng: random.Random | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"payload log sample rate must be within [0, 1], got {sample_rate}")
        self.sample_rate = sample_rate
        self.max_elements = max_elements
        self.max_chars = max_chars
        self._rng = rng or random.Random()
        self._log = log or logger

    def should_sample(self) -> bool:
        """Decide for one request; call once per request, before building anything."""
        if self.sample_rate <= 0.0:
            return False
        return self.sample_rate >= 1.0 or self._rng.random() < self.sample_rate

    def record(
        self,
        *,
        request_id: str,
        model: str,
        version: str,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]] = (),
        parameters: Mapping[str, Any] | None = None,
        status: int | None = None,
    ) -> dict[str, Any]:
        """The scrubbed, JSON-safe payload record of one request."""
        preview = {"max_elements": self.max_elements, "max_chars": self.max_chars}
        return {
            "request_id": request_id,
            "model": model,
            "version": version,
            "status": status,
            "headers": scrub_headers(headers),
            "parameters": scrub(dict(parameters or {}), max_chars=self.max_chars),
            "inputs": {name: tensor_preview(a, **preview) for name, a in inputs.items()},
            "outputs": {name: tensor_preview(a, **preview)
                        for name, a in (outputs or {}).items()},
        }

    def maybe_log(self, **request: Any) -> bool:
        """Sample, and log the request's record if chosen; returns whether it was.

        Takes the keyword arguments of ``record``. Never raises: a payload that
        cannot be previewed is a debug line, not a failed request.
        """
        if not self.should_sample():
            return False
        try:
            payload = self.record(**request)
        except Exception:  # noqa: BLE001 - logging must not fail the request
            logger.debug("Payload of request %s could not be logged.",
                         request.get("request_id"), exc_info=True)
            return False
        self._log.info(
            "Sampled request payload.",
            extra={"request_id": payload["request_id"], "model": payload["model"],
                   "payload": payload},
        )
        return True
