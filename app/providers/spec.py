"""``ProviderSpec``: everything the flow needs to know about one provider, as data."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
CLIENT_AUTH_METHODS_REVOCATION = (*CLIENT_AUTH_METHODS, "client_id_post", "none")
# rfc7009: POST form token=…&token_type_hint=…; github_grant: DELETE JSON {"access_token"} with Basic;
# bearer: the access token as Bearer, no body (Dropbox, Linear, Strava, Zendesk); json_token: JSON
# {"token": …} (Notion, QuickBooks); delete_token_url: DELETE revocation_url with {token} in it (HubSpot).
REVOCATION_STYLES = ("rfc7009", "github_grant", "bearer", "json_token", "delete_token_url", "none")
# param: the value of one of the connection's params (QuickBooks' realmId)
ACCOUNT_ID_SOURCES = ("userinfo", "token_response", "param", "none")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Used when a token response has no expires_in and the entry names no default_access_token_ttl:
# an access token is never taken for non-expiring unless the entry says so.
DEFAULT_ACCESS_TOKEN_TTL = 3600
MAX_ACCESS_TOKEN_TTL = 366 * 24 * 3600


@dataclass(frozen=True)
class Problem:
    """One broken rule of an entry: the dotted key and what is wrong (never more than a prefix of the input)."""
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class SpecError(ValueError):
    """A catalog or providers-file entry is invalid; the message names the provider, the key and, for a
    file, the line."""

    def __init__(self, message: str, provider: str | None = None, problems: tuple[Problem, ...] = ()):
        super().__init__(message)
        self.provider = provider
        self.problems = problems


PARAM_SOURCES = ("connect", "callback", "token_response")
TOKEN_BODY_FORMATS = ("form", "json")


@dataclass(frozen=True)
class ConnectionParam:
    """A per-connection value (Zendesk's subdomain, a GitLab host, Salesforce's instance_url) that
    fills ``{name}`` in the provider's URLs. Validated against ``pattern`` (a full match) wherever it
    comes from, stored on the connection, used by the token exchange, refresh, revocation and proxy."""
    name: str
    pattern: str
    # connect: a field of POST /connect/start; callback: a query parameter of the provider's redirect
    # (QuickBooks' realmId); token_response: a dotted path in the code-exchange response (instance_url).
    source: str = "connect"
    path: str | None = None  # the callback parameter or token-response path; default: the name
    required: bool = True
    description: str = ""


@dataclass(frozen=True)
class TokenPaths:
    """Where each value sits in a token response (dotted paths: Slack's user token is under authed_user)."""
    access_token: str = "access_token"
    refresh_token: str = "refresh_token"
    expires_in: str = "expires_in"
    scope: str = "scope"
    token_type: str = "token_type"
    refresh_token_expires_in: str = "refresh_token_expires_in"


@dataclass(frozen=True)
class ErrorShape:
    """How an error answer from the token endpoint is recognised."""
    field: str = "error"  # dotted path of the error code
    on_http_200: bool = False  # a 200 carrying ``field`` is an error (GitHub)
    success_flag: str | None = None  # dotted path of a boolean that is false on error (Slack's ``ok``)


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    display_name: str
    authorize_url: str | None = None
    token_url: str | None = None
    api_base_url: str | None = None
    issuer: str | None = None
    sends_iss: bool = False
    revocation_url: str | None = None
    revocation_style: str = "none"
    # Revoking any one token ends the whole grant (all of the user's tokens for this client), so a
    # replaced token of the same account must not be revoked: that would end the new one too.
    revocation_revokes_grant: bool = False
    scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    client_auth: str = "client_secret_basic"
    pkce: bool = True
    extra_authorize_params: tuple[tuple[str, str], ...] = ()
    non_expiring_access_tokens: bool = False
    # Seconds an access token is taken to live when the token response has no expires_in.
    default_access_token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL
    # OAuth error codes on refresh that mean the grant is gone and the user must connect again.
    reauth_error_codes: tuple[str, ...] = ("invalid_grant",)
    # Seconds a refresh token lives from the grant (absolute) or from its last use (idle); None: unknown.
    refresh_token_absolute_lifetime: int | None = None
    refresh_token_idle_lifetime: int | None = None
    # --- issue 17 vocabulary (see docs/providers.md) ---
    params: tuple[ConnectionParam, ...] = ()
    refresh_url: str | None = None  # default: token_url (Figma refreshes elsewhere)
    token_body_format: str = "form"  # form | json (Atlassian, Notion)
    token_request_headers: tuple[tuple[str, str], ...] = ()  # e.g. Notion-Version
    token_params: tuple[tuple[str, str], ...] = ()  # extra body parameters on the code exchange
    refresh_params: tuple[tuple[str, str], ...] = ()  # extra body parameters on a refresh
    refresh_sends_redirect_uri: bool = False  # GitLab
    token_response: TokenPaths = TokenPaths()
    # Where the values sit in a refresh answer, when not where the code exchange puts them (Slack's
    # refresh answers at the top level, its code exchange under authed_user); None: token_response.
    refresh_token_response: TokenPaths | None = None
    error_shape: ErrorShape = ErrorShape()
    revocation_method: str = "POST"  # POST | DELETE
    # client_secret_basic | client_secret_post | client_id_post | none; default: client_auth
    revocation_auth: str | None = None
    revocation_token: str = "refresh"  # refresh | access: which token is sent (or used as Bearer)
    allowed_scopes: tuple[str, ...] = ()  # empty: any scope may be requested
    scope_param: str = "scope"  # Slack user scopes: user_scope
    include_granted_scopes: bool = False  # Google: incremental authorization
    account_id_source: str = "none"
    account_id_url: str | None = None
    account_id_field: str = "sub"
    # The validated entry this spec came from (schema.ProviderEntry): discovery re-validates it with the
    # endpoints it found. None for a spec built in code.
    entry: Any = field(default=None, repr=False, compare=False)
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False, compare=False)

    @property
    def refresh_paths(self) -> TokenPaths:
        return self.refresh_token_response or self.token_response

    @property
    def needs_discovery(self) -> bool:
        return self.issuer is not None and (self.authorize_url is None or self.token_url is None)

    @property
    def enabled(self) -> bool:
        return bool(self.client_id and self.client_secret)

    @property
    def uses_openid(self) -> bool:
        return "openid" in self.scopes


def spec_from_mapping(name: object, entry: object) -> ProviderSpec:
    """Validate one catalog/providers-file entry against the entry schema (``schema.ProviderEntry``);
    credentials are never read from files."""
    from .schema import spec_from_entry  # the schema is built on this module's dataclasses

    return spec_from_entry(name, entry)
