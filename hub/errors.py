"""The hub's exceptions.

Every error a person can cause carries two messages: `message`, safe to show to
the client, and `log_message`, for operators (never containing secrets).
`hub.api.base` is the one place that turns these into HTTP responses.
"""

from __future__ import annotations


class AtriumError(Exception):
    """An error with an HTTP status and a message meant for the client."""

    status = 500
    default_message = "Internal server error"

    def __init__(self, message: str | None = None, *, log_message: str | None = None) -> None:
        self.message = message or self.default_message
        self.log_message = log_message or self.message
        super().__init__(self.message)


class BadRequest(AtriumError):
    status = 400
    default_message = "Bad request"


class Unauthorized(AtriumError):
    # JupyterHub answers 403 for missing or invalid credentials on its API and
    # clients (HubAuth, the idle culler) rely on that, so we keep the status.
    status = 403
    default_message = "Missing or invalid credentials"


class Forbidden(AtriumError):
    status = 403
    default_message = "Forbidden"


class NotFound(AtriumError):
    status = 404
    default_message = "Not found"


class Conflict(AtriumError):
    status = 409
    default_message = "Conflict"


class PayloadTooLarge(AtriumError):
    status = 413
    default_message = "Request body too large"


class TooManyRequests(AtriumError):
    """A limit was reached; `retry_after` (seconds) says when to try again."""

    status = 429
    default_message = "Too many requests, try again shortly"

    def __init__(self, message: str | None = None, *, retry_after: int = 30) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BadGateway(AtriumError):
    """Something the hub depends on (the proxy) failed to answer properly."""

    status = 502
    default_message = "The proxy did not answer properly"


class ServiceUnavailable(AtriumError):
    status = 503
    default_message = "Service temporarily unavailable, try again shortly"


class ConfigError(Exception):
    """A setting is invalid; the hub refuses to start and says why."""


class DatabaseBehind(ConfigError):
    """The database schema is older than the code; `atrium upgrade-db` fixes it."""
