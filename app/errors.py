"""One error hierarchy: each class carries an HTTP status and a stable ``code``.

Messages are written for the person reading them and never contain token
material: callers pass descriptions, not values they received.
"""
from __future__ import annotations


class ConnectorError(Exception):
    status = 500
    code = "server_error"
    title = "Internal error"

    def __init__(self, description: str | None = None, *, code: str | None = None):
        self.description = description or self.title
        if code:
            self.code = code
        super().__init__(self.description)

    def problem_fields(self) -> dict:
        """Members added to the problem document beside type, title, status, detail and code."""
        return {}


class InvalidRequest(ConnectorError):
    status, code, title = 400, "invalid_request", "The request is malformed"


class ReturnUrlRejected(InvalidRequest):
    code, title = "invalid_return_url", "The return URL is not allowed"


class InvalidState(InvalidRequest):
    code, title = "invalid_state", "The authorization response does not match a pending request"


class ScopeNotAllowed(InvalidRequest):
    code, title = "scope_not_allowed", "A requested scope is malformed or not allowed for this provider"


class UnknownProvider(InvalidRequest):
    code, title = "unknown_provider", "This provider is unknown or not enabled"


class InvalidToken(ConnectorError):
    status, code, title = 401, "invalid_token", "The access token is missing or invalid"


class SigningKeysUnavailable(ConnectorError):
    """The Auth0 tenant's signing keys could not be fetched: tokens cannot be checked right now.

    Not a 401: the caller's token may well be good, and a 401 tells an SPA its user is signed out."""

    status, code, title = 503, "signing_keys_unavailable", "Access tokens cannot be checked right now"

    def __init__(self, description: str | None = None, *, retry_after: float | None = None):
        super().__init__(description)
        self.retry_after = retry_after


class Forbidden(ConnectorError):
    status, code, title = 403, "forbidden", "Not allowed"


class CrossSiteRequest(Forbidden):
    code, title = "cross_site_request", "The request did not come from an allowed origin"


class InsufficientScope(Forbidden):
    code, title = "insufficient_scope", "The token lacks the required permission"


class NotFound(ConnectorError):
    status, code, title = 404, "not_found", "Not found"


class TooManyAttempts(ConnectorError):
    """Throttled: too many attempts from one client; ``retry_after`` says when to come back."""

    status, code, title = 429, "too_many_attempts", "Too many attempts"

    def __init__(self, description: str | None = None, *, retry_after: float | None = None):
        super().__init__(description)
        self.retry_after = retry_after


class ReauthorizationRequired(ConnectorError):
    status, code, title = 409, "reauthorization_required", "The user must connect this provider again"


class MissingScopes(ReauthorizationRequired):
    """The connection works but was not granted every scope the caller requires: the user must
    connect again, granting them (``missing_scopes`` names them; never token material)."""

    code, title = "insufficient_scope", "The connection lacks scopes the caller requires"

    def __init__(self, description: str | None = None, *, missing_scopes: tuple[str, ...] = ()):
        super().__init__(description)
        self.missing_scopes = missing_scopes

    def problem_fields(self) -> dict:
        return {"missing_scopes": list(self.missing_scopes)}


class ProviderError(ConnectorError):
    """The provider answered, but not with what we need (an OAuth error, a bad body)."""

    status, code, title = 502, "provider_error", "The provider returned an error"


class ProviderUnavailable(ConnectorError):
    """Transient: timeout, connection error, 5xx, 429. Worth retrying later."""

    status, code, title = 503, "provider_unavailable", "The provider is unavailable"

    def __init__(self, description: str | None = None, *, retry_after: float | None = None, code: str | None = None):
        super().__init__(description, code=code)
        self.retry_after = retry_after


class DecryptionError(ConnectorError):
    code, title = "decryption_failed", "Stored token material could not be decrypted"


class DatabaseUnavailable(ConnectorError):
    """Transient: the database refused or dropped the connection, or a lock wait timed out."""

    status, code, title = 503, "database_unavailable", "The service's database is unavailable"

    def __init__(self, description: str | None = None, *, retry_after: float | None = None):
        super().__init__(description)
        self.retry_after = retry_after


class NotReady(ConnectorError):
    """Readiness: the process runs, but cannot serve yet (database unreachable or not migrated)."""

    status, code, title = 503, "not_ready", "The service is not ready"

    def __init__(self, description: str | None = None, *, retry_after: float | None = None):
        super().__init__(description)
        self.retry_after = retry_after
