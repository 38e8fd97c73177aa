"""Named exceptions of the server; each carries an HTTP status and a stable error code for the API."""

from __future__ import annotations


class ServerSettingsError(ValueError):
    """The server configuration or its secrets are invalid; the message names every bad key."""


class ApiError(Exception):
    """Base of the errors the API turns into `{"error": {"code", "message"}}`."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadInput(ApiError, ValueError):
    """The request is well-formed JSON but breaks a rule (unknown station, wrong key format, ...)."""

    status = 422
    code = "invalid"


class NotAuthenticated(ApiError, PermissionError):
    """No valid credentials were presented."""

    status = 401
    code = "not_authenticated"


class Forbidden(ApiError, PermissionError):
    """The caller is known but its role or site does not allow this."""

    status = 403
    code = "forbidden"


class NotFound(ApiError, LookupError):
    """The named resource does not exist (or is outside the caller's sites)."""

    status = 404
    code = "not_found"


class Conflict(ApiError, ValueError):
    """The request contradicts stored state (same event key with another payload, item claimed, ...)."""

    status = 409
    code = "conflict"


class TooLarge(ApiError, ValueError):
    """The request exceeds a configured limit."""

    status = 413
    code = "too_large"


class UnsupportedMedia(ApiError, ValueError):
    """The content type is not one this endpoint takes."""

    status = 415
    code = "unsupported_media_type"


class RateLimited(ApiError, PermissionError):
    """Too many attempts in the window."""

    status = 429
    code = "rate_limited"


class Unavailable(ApiError, ConnectionError):
    """A dependency (the database) does not answer; the caller may retry later."""

    status = 503
    code = "unavailable"


class UserError(ValueError):
    """An administrative operation was given bad input (unknown role, duplicate user, ...)."""


class AuditChainError(ValueError):
    """The audit log's hash chain is broken: a row was edited, inserted or deleted."""


class ServerStartError(OSError):
    """The server's environment refuses it: database unreachable, folder unwritable, port taken."""


class RetentionBusy(ValueError):
    """Another retention run holds the lease; this one did not start (nothing was deleted)."""
