"""A provider's behaviour as data: what its endpoints accept and what they answer.

A ``Profile`` is written from the provider's documentation (``../shared/PROVIDERS.md``), never from
the catalog entry under test: where the two disagree, the conformance test fails. Facts that are
unverified are settings here (with a comment saying so), so a test can be run both ways.

URLs are the provider's real ones; the simulator serves ``https://host/path`` at
``http://127.0.0.1:<port>/host/path`` (``to_loopback``), ``{placeholders}`` matching one path
segment's worth of characters (Zendesk's ``{subdomain}.zendesk.com``, Microsoft's ``{tenant}``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# Client authentication the token endpoint demands; anything else is answered invalid_client.
CLIENT_AUTH = ("basic", "post", "either")
# Revocation authentication: client_id_post is a client_id in the body without a secret (Twitch);
# none: no client authentication at all (Google, Salesforce); any: accepts whatever comes.
REVOCATION_AUTH = ("basic", "post", "either", "client_id_post", "none", "any")
# rfc7009: POST form token=; json_token: POST JSON {"token"}; bearer: the access token as Bearer,
# no body; github_grant: DELETE JSON {"access_token"} with Basic; delete_token_url: DELETE with
# the token in the URL ({token}); slack_api: a Slack Web API method (the token as Bearer or as a
# token= form field; answers {"ok": true}).
REVOCATION_STYLES = ("rfc7009", "json_token", "bearer", "github_grant", "delete_token_url", "slack_api")
# none: a refresh answers no refresh_token (keep the old one); same: the same one again;
# rotating: a new one, the used one dies (single-use); new_old_valid: a new one, the used one
# stays valid (Microsoft); sometimes: a new one every second refresh (Spotify); access_only: only
# access_token + expires_in (Figma).
ROTATIONS = ("none", "same", "rotating", "new_old_valid", "sometimes", "access_only")
PKCE = ("required", "optional", "refused")  # refused: a code_verifier is an error (Slack's pkce_not_allowed)
SCOPE_STYLES = ("string", "list", "absent", "empty")


def to_loopback(url: str, base: str) -> str:
    """``https://host/path`` → ``{base}/host/path`` (placeholders kept); other URLs unchanged."""
    if not url.startswith("https://"):
        return url
    return base + "/" + url.removeprefix("https://")


def path_pattern(url: str) -> re.Pattern:
    """The simulator path for a profile URL, ``{name}`` matching one run of non-slash characters."""
    path = "/" + url.removeprefix("https://")
    parts = re.split(r"(\{[a-z_]+\})", path)
    regex = "".join(f"(?P<{p[1:-1]}>[^/]+?)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(regex + r"\Z")


@dataclass(frozen=True)
class ErrorAnswer:
    """An error as this provider sends it: HTTP status, then a body (JSON unless ``form``)."""
    status: int
    body: dict
    form: bool = False


@dataclass(frozen=True)
class Revocation:
    style: str
    url: str
    method: str = "POST"
    auth: str = "any"
    token: str = "either"  # which token it takes: refresh | access | either
    ok_status: int = 200
    ok_body: dict | None = None
    # How it says no (Slack: HTTP 200 {"ok": false, "error": "invalid_auth"}); answered while the
    # simulator's refuse_revocations is set. None: not modelled.
    refusal: ErrorAnswer | None = None

    def __post_init__(self) -> None:
        assert self.style in REVOCATION_STYLES and self.auth in REVOCATION_AUTH, self
        assert self.token in ("refresh", "access", "either"), self


@dataclass(frozen=True)
class Profile:
    name: str  # the catalog entry it stands for (unless ``entry`` says)
    authorize_url: str
    token_url: str
    refresh_url: str | None = None  # default: token_url (Figma refreshes elsewhere)
    revocation: Revocation | None = None  # None: the provider offers no revocation
    userinfo: tuple[tuple[str, dict], ...] = ()  # (url, JSON answer) of each account endpoint
    account_ids: tuple[str, ...] = ()  # the external account id the connector may find (documented choices)
    aliases: tuple[tuple[str, str], ...] = ()  # (token | authorize, url): a second documented address
    # --- what the token endpoint demands --------------------------------------------------
    client_auth: str = "either"
    body_format: str = "form"  # form | json | either (nothing else is accepted)
    required_headers: tuple[tuple[str, str], ...] = ()  # name, value ("": any value) (Notion-Version)
    pkce: str = "optional"
    refresh_needs_redirect_uri: bool = False  # GitLab
    # --- what the authorize endpoint takes and sends back ------------------------------------
    scope_param: str = "scope"  # Slack user scopes: user_scope
    scope_separator: str = " "  # how requested scopes are joined
    default_scope: str = ""  # granted when none is asked for (Asana "default")
    sends_iss: bool = False  # RFC 9207 iss on the redirect
    issuer: str | None = None
    callback_extras: tuple[tuple[str, str], ...] = ()  # QuickBooks' realmId
    # --- what the token endpoint answers -----------------------------------------------------
    form_unless_accept_json: bool = False  # GitHub: form-encoded unless Accept: application/json
    token_path: str = ""  # where the user's token sits in the code exchange (Slack: authed_user)
    refresh_token_path: str = ""  # ... and in a refresh answer
    success_flag: str | None = None  # Slack: "ok": true on success, false on error
    token_type: str = "Bearer"
    scope_style: str = "string"
    scope_key: str = "scope"  # Bitbucket: scopes
    response_scope_separator: str = " "  # GitHub, LinkedIn, Slack: ","
    access_ttl: int | None = 3600  # None: no expires_in in the answer (Notion, Salesforce, GitHub OAuth app)
    sends_expires_at: bool = False  # Strava: expires_at as well
    refresh_token_expires_in: int | None = None  # GitHub App: refresh_token_expires_in
    refresh_token_expires_in_key: str = "refresh_token_expires_in"  # QuickBooks: x_refresh_token_expires_in
    issues_refresh_token: bool = True
    rotation: str = "none"
    id_token_for_openid: bool = False  # an id_token (iss, aud, nonce) when openid is asked for
    token_extras: tuple[tuple[str, object], ...] = ()  # Salesforce instance_url, Dropbox account_id
    # --- errors --------------------------------------------------------------------------------
    dead_grant: ErrorAnswer = ErrorAnswer(400, {"error": "invalid_grant"})
    error_status: int = 400  # other token-endpoint errors (invalid_client is 401 unless this is 200)
    # --- the connect request -----------------------------------------------------------------
    connect_values: tuple[tuple[str, str], ...] = ()  # values for the entry's connect params
    unverified: tuple[str, ...] = ()  # settings above that rest on no documentation (for the report)
    # A variant of a provider (HubSpot's legacy v1 token endpoint): the catalog entry it runs
    # against, and what an operator's providers file would change in it for this variant.
    entry: str | None = None
    entry_override: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        assert self.client_auth in CLIENT_AUTH and self.body_format in ("form", "json", "either"), self.name
        assert self.pkce in PKCE and self.rotation in ROTATIONS and self.scope_style in SCOPE_STYLES, self.name

    @property
    def entry_name(self) -> str:
        return self.entry or self.name

    @property
    def account_id(self) -> str | None:
        return self.account_ids[0] if self.account_ids else None

    @property
    def refresh_at(self) -> str:
        return self.refresh_url or self.token_url

    @property
    def expires(self) -> bool:
        return self.access_ttl is not None

    def error(self, code: str, description: str = "", status: int | None = None) -> ErrorAnswer:
        """A token-endpoint error other than a dead grant, in this provider's shape."""
        body: dict = {"error": code}
        if description:
            body["error_description"] = description
        if self.success_flag:
            body[self.success_flag] = False
        if self.error_status == 200:
            return ErrorAnswer(200, body, form=self.form_unless_accept_json)
        return ErrorAnswer(status or self.error_status, body)

    def format_scope(self, scopes: list[str]) -> object:
        if self.scope_style == "list":
            return scopes
        if self.scope_style == "empty":
            return ""
        return self.response_scope_separator.join(scopes)
