"""Typed exceptions for the Relay REST API.

Every API error body carries a stable ``code``; callers catch a class instead of comparing
strings. Transport failures get their own class so that "the server said no" and "the server
could not be reached" are never confused.
"""

from __future__ import annotations

from typing import Any


class RelayError(Exception):
    """Base class of every error this client raises."""


class RelayConnectionError(RelayError):
    """The server could not be reached, or the connection broke before a response arrived."""


class APIError(RelayError):
    """The server answered with an error status; ``code`` is the API's stable error code."""

    def __init__(self, message: str, *, status: int, code: str, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.body = body

    def __str__(self) -> str:
        return f"{self.message} ({self.code}, HTTP {self.status})"


class ValidationError(APIError):
    """The request violated the API contract (``VALIDATION_ERROR``, ``INVALID_JSON``)."""


class PayloadTooLargeError(APIError):
    """A payload or request body exceeded the server's size limit; nothing was stored."""


class UnauthorizedError(APIError):
    """The API key is missing or wrong."""


class RouteNotFoundError(APIError):
    """The server has no such endpoint (often a wrong base URL)."""


class QueueNotFoundError(APIError):
    """The named queue does not exist."""


class MessageNotFoundError(APIError):
    """The message id does not exist (or, for touch, is no longer being processed)."""


class InvalidStateError(APIError):
    """The message is not in the state the operation needs (e.g. already acknowledged)."""


class LockLostError(APIError):
    """The lock token is no longer the message's current one: another worker may hold it."""


class QueueExistsError(APIError):
    """A queue with that name already exists."""


class QueueNotEmptyError(APIError):
    """Deleting a queue that still has queued or processing messages needs ``force``."""


class DefaultQueueProtectedError(APIError):
    """The ``default`` queue can be neither renamed nor deleted."""


class DatabaseUnavailableError(APIError):
    """The server cannot reach its database; the request changed nothing and may be retried."""


class ServerError(APIError):
    """An unexpected server-side failure (``INTERNAL_ERROR`` or any other 5xx)."""


ERROR_CLASSES: dict[str, type[APIError]] = {
    "VALIDATION_ERROR": ValidationError,
    "INVALID_JSON": ValidationError,
    "PAYLOAD_TOO_LARGE": PayloadTooLargeError,
    "UNAUTHORIZED": UnauthorizedError,
    "ROUTE_NOT_FOUND": RouteNotFoundError,
    "QUEUE_NOT_FOUND": QueueNotFoundError,
    "NOT_FOUND": MessageNotFoundError,
    "INVALID_STATE": InvalidStateError,
    "LOCK_LOST": LockLostError,
    "QUEUE_EXISTS": QueueExistsError,
    "QUEUE_NOT_EMPTY": QueueNotEmptyError,
    "DEFAULT_QUEUE_PROTECTED": DefaultQueueProtectedError,
    "DATABASE_UNAVAILABLE": DatabaseUnavailableError,
    "INTERNAL_ERROR": ServerError,
}

# When a body carries no code (a proxy's error page, an old server), fall back on the status.
_STATUS_CODES: dict[int, str] = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    404: "ROUTE_NOT_FOUND",
    413: "PAYLOAD_TOO_LARGE",
    422: "VALIDATION_ERROR",
    503: "DATABASE_UNAVAILABLE",
}


def error_from_response(status: int, body: Any) -> APIError:
    """Build the exception matching an error response's ``code`` (or, lacking one, its status)."""
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or not code:
        code = _STATUS_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "HTTP_ERROR")
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message:
        message = f"HTTP {status}" if not isinstance(body, str) or not body else body[:200]
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        cls = ServerError if status >= 500 else APIError
    return cls(message, status=status, code=code, body=body)
