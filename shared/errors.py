"""Errors a tool may raise, and the one place they become safe client messages.

A tool raises one of the `ToolFailure` subclasses with a message written for the model. Anything else
that escapes a tool is an internal error: the client sees only a generic message and the error class,
while the details go to the server log. No stack trace, SQL text, secret or file path reaches a client.
"""

from __future__ import annotations


class ToolFailure(Exception):
    """A failure whose message is safe to show the caller.

    `error_class` is a stable machine-readable name recorded in the audit log and returned to clients;
    `retry_after` (seconds) tells a client when trying again can succeed.
    """

    error_class = "internal"
    retryable = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class InvalidInput(ToolFailure):
    error_class = "invalid_input"


class NotFound(ToolFailure):
    error_class = "not_found"


class PermissionDenied(ToolFailure):
    error_class = "permission_denied"


class Conflict(ToolFailure):
    error_class = "conflict"


class RateLimited(ToolFailure):
    error_class = "rate_limited"


class Unavailable(ToolFailure):
    """A dependency (database, model, audit store) cannot serve now; the caller may retry later."""

    error_class = "unavailable"
    retryable = True


class DeadlineExceeded(ToolFailure):
    error_class = "timeout"
    retryable = True


class Cancelled(ToolFailure):
    """The caller cancelled or hung up while the tool ran (recorded; nobody is left to answer)."""

    error_class = "cancelled"

    def __init__(self, message: str = "the caller cancelled the call or disconnected") -> None:
        super().__init__(message)


class InternalError(ToolFailure):
    error_class = "internal"


def to_failure(exc: BaseException) -> ToolFailure:
    """Map any exception to the failure a client may see.

    Known failures pass through unchanged; everything else becomes a generic internal error whose
    message reveals nothing about the cause.
    """
    if isinstance(exc, ToolFailure):
        return exc
    if isinstance(exc, TimeoutError):
        return DeadlineExceeded("the tool did not finish within its time limit")
    return InternalError("the tool failed unexpectedly; the incident was logged")
