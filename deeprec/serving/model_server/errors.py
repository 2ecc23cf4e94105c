"""The error every request-handling layer raises: a gRPC status code and a message.

The gRPC service aborts with the code; the REST front end maps it to an HTTP
status (`http_status`), as TensorFlow Serving's REST API does.

Example:
  >>> err = ServingError(grpc.StatusCode.NOT_FOUND, "no model 'x'")
  >>> err.code.name, http_status(err.code)
  ('NOT_FOUND', 404)
"""

from __future__ import annotations

import grpc

__all__ = ["ServingError", "from_tf_error_code", "http_status", "invalid", "not_found", "too_large"]

_HTTP = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

# TensorFlow's error codes are gRPC's (both come from google.rpc.Code).
_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request failed with `code` (a `grpc.StatusCode`) and a readable message."""

    def __init__(self, code: grpc.StatusCode, message: str, http: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http = http  # an HTTP status more precise than the code's (411, 413)


def invalid(message: str) -> ServingError:
    """An INVALID_ARGUMENT error."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    """A NOT_FOUND error."""
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def from_tf_error_code(code: int) -> grpc.StatusCode:
    """The gRPC status of a TensorFlow `OpError.error_code` (UNKNOWN if unmapped)."""
    return _BY_VALUE.get(code, grpc.StatusCode.UNKNOWN)


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status the REST API answers for a gRPC status code (500 by default)."""
    return _HTTP.get(code, 500)


def too_large(message: str) -> ServingError:
    """A request over the size limit: RESOURCE_EXHAUSTED, HTTP 413 (as gRPC answers it)."""
    return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, message, http=413)
