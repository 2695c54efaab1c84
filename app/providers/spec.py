"""``ProviderSpec``: everything the flow needs to know about one provider, as data."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from urllib.parse import urlsplit

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


class SpecError(ValueError):
    """A catalog or providers-file entry is invalid; the message names it."""


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
    error_shape: ErrorShape = ErrorShape()
    revocation_method: str = "POST"  # POST | DELETE
    revocation_auth: str | None = None  # client_secret_basic | client_secret_post | client_id_post | none; default: client_auth
    revocation_token: str = "refresh"  # refresh | access: which token is sent (or used as Bearer)
    allowed_scopes: tuple[str, ...] = ()  # empty: any scope may be requested
    scope_param: str = "scope"  # Slack user scopes: user_scope
    include_granted_scopes: bool = False  # Google: incremental authorization
    account_id_source: str = "none"
    account_id_url: str | None = None
    account_id_field: str = "sub"
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False, compare=False)

    @property
    def needs_discovery(self) -> bool:
        return self.issuer is not None and (self.authorize_url is None or self.token_url is None)

    @property
    def enabled(self) -> bool:
        return bool(self.client_id and self.client_secret)

    @property
    def uses_openid(self) -> bool:
        return "openid" in self.scopes


def _url(name: str, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise SpecError(f"provider {name!r}: {key} must be a string URL")
    parts = urlsplit(value.replace("{client_id}", "x"))
    secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)
    if not secure or not parts.hostname or parts.fragment or parts.username:
        raise SpecError(f"provider {name!r}: {key} must be an https URL (http only on loopback), got {value!r}")
    return value


def spec_from_mapping(name: str, entry: dict) -> ProviderSpec:
    """Validate one catalog/providers-file entry (credentials are never read from files)."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SpecError(f"provider name {str(name)[:64]!r} must match {NAME_RE.pattern}")
    if not isinstance(entry, dict):
        raise SpecError(f"provider {name!r}: entry must be a table/mapping")
    known = {f.name for f in fields(ProviderSpec)} - {"name", "client_id", "client_secret",
                                                        "account_id_source", "account_id_url", "account_id_field"}
    known.add("account_id")
    unknown = sorted(str(key)[:64] for key in set(entry) - known)
    if unknown:
        raise SpecError(f"provider {name!r}: unknown key(s) {', '.join(unknown)}")

    display_name = entry.get("display_name", name.title())
    if not isinstance(display_name, str) or not display_name.strip() or len(display_name) > 100:
        raise SpecError(f"provider {name!r}: display_name must be a non-empty string of at most 100 characters")
    values: dict = {"name": name, "display_name": display_name}
    for key in ("authorize_url", "token_url", "api_base_url", "issuer", "revocation_url"):
        if entry.get(key) is not None:
            values[key] = _url(name, key, entry[key])
    for key in ("sends_iss", "pkce", "non_expiring_access_tokens", "revocation_revokes_grant"):
        if key in entry:
            if not isinstance(entry[key], bool):
                raise SpecError(f"provider {name!r}: {key} must be true or false")
            values[key] = entry[key]
    _ttl(name, entry, values)
    scopes = entry.get("scopes", [])
    if not isinstance(scopes, list) or not all(isinstance(s, str) and s and " " not in s for s in scopes):
        raise SpecError(f"provider {name!r}: scopes must be a list of scope strings")
    values["scopes"] = tuple(scopes)
    if "scope_separator" in entry:
        if not isinstance(entry["scope_separator"], str) or entry["scope_separator"] not in (" ", ","):
            raise SpecError(f"provider {name!r}: scope_separator must be ' ' or ','")
        values["scope_separator"] = entry["scope_separator"]
    _choice(name, entry, values, "client_auth", CLIENT_AUTH_METHODS)
    _choice(name, entry, values, "revocation_style", REVOCATION_STYLES)
    if "revocation_style" not in entry and values.get("revocation_url"):
        values["revocation_style"] = "rfc7009"
    if values.get("revocation_style", "none") != "none" and not values.get("revocation_url") and "issuer" not in values:
        raise SpecError(f"provider {name!r}: revocation_style needs a revocation_url")
    codes = entry.get("reauth_error_codes", ["invalid_grant"])
    if not isinstance(codes, (list, tuple)) or not all(isinstance(c, str) and c for c in codes):
        raise SpecError(f"provider {name!r}: reauth_error_codes must be a list of OAuth error codes")
    values["reauth_error_codes"] = tuple(codes)
    params = entry.get("extra_authorize_params", {})
    if not isinstance(params, dict) or not all(isinstance(k, str) and k and isinstance(v, str)
                                                   for k, v in params.items()):
        raise SpecError(f"provider {name!r}: extra_authorize_params must map names to strings")
    values["extra_authorize_params"] = tuple(sorted(params.items()))
    _account_id(name, entry.get("account_id"), values)
    for key in ("refresh_token_absolute_lifetime", "refresh_token_idle_lifetime"):
        if entry.get(key) is not None:
            if isinstance(entry[key], bool) or not isinstance(entry[key], int) or entry[key] <= 0:
                raise SpecError(f"provider {name!r}: {key} must be a positive whole number of seconds")
            values[key] = entry[key]

    spec = ProviderSpec(**values)
    if not spec.needs_discovery and not (spec.authorize_url and spec.token_url):
        raise SpecError(f"provider {name!r}: needs authorize_url and token_url, or an issuer for discovery")
    return spec


def _ttl(name: str, entry: dict, values: dict) -> None:
    if "default_access_token_ttl" not in entry:
        return
    ttl = entry["default_access_token_ttl"]
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl <= MAX_ACCESS_TOKEN_TTL:
        raise SpecError(f"provider {name!r}: default_access_token_ttl must be a whole number of seconds "
                        f"between 1 and {MAX_ACCESS_TOKEN_TTL}")
    if values.get("non_expiring_access_tokens"):
        raise SpecError(f"provider {name!r}: default_access_token_ttl and non_expiring_access_tokens = true "
                        "contradict each other; set one")
    values["default_access_token_ttl"] = ttl


def _choice(name: str, entry: dict, values: dict, key: str, allowed: tuple[str, ...]) -> None:
    if key in entry:
        if not isinstance(entry[key], str) or entry[key] not in allowed:
            raise SpecError(f"provider {name!r}: {key} must be one of {', '.join(allowed)}")
        values[key] = entry[key]


def _account_id(name: str, account: object, values: dict) -> None:
    if account is None:
        if "issuer" in values:  # OIDC: the userinfo endpoint from discovery
            values["account_id_source"] = "userinfo"
        return
    if (not isinstance(account, dict) or not isinstance(account.get("source"), str)
            or account["source"] not in ACCOUNT_ID_SOURCES):
        raise SpecError(f"provider {name!r}: account_id.source must be one of {', '.join(ACCOUNT_ID_SOURCES)}")
    values["account_id_source"] = account["source"]
    if account.get("url") is not None:
        values["account_id_url"] = _url(name, "account_id.url", account["url"])
    if account.get("field") is not None:
        if not isinstance(account["field"], str) or not account["field"]:
            raise SpecError(f"provider {name!r}: account_id.field must be a dotted path string")
        values["account_id_field"] = account["field"]
    if values["account_id_source"] == "userinfo" and "account_id_url" not in values and "issuer" not in values:
        raise SpecError(f"provider {name!r}: account_id.source=userinfo needs account_id.url")
