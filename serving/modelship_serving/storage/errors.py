"""Why a model could not be initialised, as one line the operator can show.

The initializer's only output that reaches a user is this reason, written to
the termination log and surfaced by the operator in a condition; so every
error carries a message fit for that: one line, no secrets, no stack.
"""

from __future__ import annotations


class StorageError(Exception):
    """The model could not be fetched, laid out or verified."""

    reason = "StorageFailed"

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
        self.message = " ".join(message.split())


class UnsupportedUri(StorageError):
    reason = "UnsupportedUri"


class FetchFailed(StorageError):
    reason = "FetchFailed"


class LayoutInvalid(StorageError):
    reason = "LayoutInvalid"


class VerificationFailed(StorageError):
    reason = "VerificationFailed"
