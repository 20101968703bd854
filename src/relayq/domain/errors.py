"""Stable error codes. Every client-visible failure is a `RelayError` with one of these codes."""

from __future__ import annotations

from typing import Any


class RelayError(Exception):
    """An error with an HTTP status, a stable `code`, and extra body fields for the client."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON error body: `message`, `code`, then any extra keys."""
        return {"message": self.message, "code": self.code, **self.extra}


def validation_error(message: str, field: str | None = None, details: list[dict[str, str]] | None = None) -> RelayError:
    """A 400 VALIDATION_ERROR with `details` pointing at the offending field."""
    if details is None:
        details = [{"field": field, "message": message}] if field is not None else []
    text = f"{field} {message}" if field is not None and not message.startswith(field) else message
    return RelayError(400, "VALIDATION_ERROR", text, details=details)


def queue_not_found(name: str) -> RelayError:
    """The queue does not exist (or was deleted a moment ago)."""
    return RelayError(404, "QUEUE_NOT_FOUND", f"Queue not found: {name}")


def database_unavailable(detail: str = "") -> RelayError:
    """The database is unreachable; the request changed nothing and may be retried."""
    text = "Database unavailable" + (f": {detail}" if detail else "")
    return RelayError(503, "DATABASE_UNAVAILABLE", text)


ERROR_CODES: dict[str, tuple[str, str]] = {
    "VALIDATION_ERROR": ("400", "body or parameter violates the contract"),
    "PAYLOAD_TOO_LARGE": ("413", "payload above MAX_PAYLOAD_BYTES or body above MAX_REQUEST_BYTES"),
    "DATABASE_UNAVAILABLE": ("503", "the database cannot be reached; nothing changed, retry"),
    "INVALID_JSON": ("400", "body is not JSON"),
    "UNAUTHORIZED": ("401", "API key missing or wrong"),
    "ROUTE_NOT_FOUND": ("404", "no such endpoint"),
    "QUEUE_NOT_FOUND": ("404", "the named queue does not exist"),
    "NO_MESSAGE": ("404", "dequeue found nothing before its timeout"),
    "NOT_FOUND": ("400/404", "message id does not exist"),
    "INVALID_STATE": ("400/404/409", "message is not in the state the operation needs"),
    "LOCK_LOST": ("409", "lock_token is not the message's current token"),
    "DUPLICATE": ("batch item", "the same id appears twice in one batch"),
    "QUEUE_EXISTS": ("409", "create or rename onto an existing name"),
    "QUEUE_NOT_EMPTY": ("400", "delete without force while messages are queued or processing"),
    "DEFAULT_QUEUE_PROTECTED": ("400", "rename or delete of the default queue"),
    "INTERNAL_ERROR": ("500", "unexpected failure; never caused by client input"),
}
