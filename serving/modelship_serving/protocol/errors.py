"""The one error type every layer of the server raises toward a client.

An error carries both its HTTP status and its gRPC status code, so the core
raises it once and each transport adapter only picks the field it speaks.
Messages name the tensor, datatype, shape or size that is wrong and why; they
are what a client sees, so they never carry payload bytes.
"""

from __future__ import annotations

import enum


class GrpcCode(enum.IntEnum):
    """The gRPC status codes used here (values as in grpc.StatusCode)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14


class InferenceError(Exception):
    """A failure that a client is told about, with its HTTP and gRPC status."""

    http_status: int = 500
    grpc_code: GrpcCode = GrpcCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def is_client_error(self) -> bool:
        """True when the client sent something wrong (logged below warning)."""
        return 400 <= self.http_status < 500


class InvalidArgument(InferenceError):
    """The request is malformed or does not match the model's signature."""

    http_status = 400
    grpc_code = GrpcCode.INVALID_ARGUMENT


class RequestTooLarge(InferenceError):
    """The request body (or a size it declares) exceeds the configured limit."""

    http_status = 413
    grpc_code = GrpcCode.RESOURCE_EXHAUSTED


class RequestTimeout(InferenceError):
    """The client stopped sending a request body it had announced."""

    http_status = 408
    grpc_code = GrpcCode.DEADLINE_EXCEEDED


class NotFound(InferenceError):
    """The model or version named in the request is not in the repository."""

    http_status = 404
    grpc_code = GrpcCode.NOT_FOUND


class Unavailable(InferenceError):
    """The model exists but is not ready, or the server is shutting down."""

    http_status = 503
    grpc_code = GrpcCode.UNAVAILABLE


class Unsupported(InferenceError):
    """The request asks for a protocol feature this server does not implement."""

    http_status = 501
    grpc_code = GrpcCode.UNIMPLEMENTED


class InternalError(InferenceError):
    """A broken invariant or a runtime failure: a bug or a model that misbehaves."""

    http_status = 500
    grpc_code = GrpcCode.INTERNAL
