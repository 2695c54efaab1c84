"""The providers-file entry schema: one declarative pydantic model that validates into a frozen ``ProviderSpec``.

The shape of each key (types, enums, patterns) is declared on the fields; the rules that tie keys
together (placeholders naming declared params, contradictions) are the model's validators. The same
model exports the JSON Schema editors use (``flask --app wsgi connector providers-schema``).
"""
from __future__ import annotations

import re
from dataclasses import fields
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from . import url_template
from .entry_rules import EntryProblem, check_entry
from .entry_types import (
    DOTTED_PATH_PATTERN,
    NAME_PATTERN,
    PATTERN_MEANINGS,
    QUERY_NAME_PATTERN,
    RESERVED_AUTHORIZE_PARAMS,
    RESERVED_PARAM_NAMES,
    RESERVED_TOKEN_PARAMS,
    AuthorizeParamName,
    DottedPath,
    ErrorCode,
    HeaderName,
    ParamName,
    ParamPattern,
    ParamValue,
    ProviderName,
    Scope,
    Seconds,
    TokenParamName,
    Url,
    url_json_schema,
)
from .spec import (
    ACCOUNT_ID_SOURCES,
    CLIENT_AUTH_METHODS,
    CLIENT_AUTH_METHODS_REVOCATION,
    MAX_ACCESS_TOKEN_TTL,
    PARAM_SOURCES,
    REVOCATION_STYLES,
    TOKEN_BODY_FORMATS,
    ConnectionParam,
    ErrorShape,
    Problem,
    ProviderSpec,
    SpecError,
    TokenPaths,
)

_SPEC_DEFAULTS = {f.name: f.default for f in fields(ProviderSpec)}
_TOKEN_PATH_DEFAULTS = {f.name: f.default for f in fields(TokenPaths)}


class _Strict(BaseModel):
    # strict: TOML/YAML give real types, so "yes" is not true and 3600.5 is not a whole number
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class ParamEntry(_Strict):
    """A per-connection value that fills ``{name}`` in the provider's URLs."""
    pattern: ParamPattern = Field(description="regular expression the whole value must match")
    source: Literal[PARAM_SOURCES] = Field(  # type: ignore[valid-type]
        "connect", description="connect: a field of POST /connect/start; callback: a query parameter of the "
        "provider's redirect; token_response: a value in the code-exchange response")
    path: str | None = Field(None, description="callback: the query parameter; token_response: a dotted path; "
                                               "default: the param's name")
    required: bool = True
    description: Annotated[str, StringConstraints(max_length=200)] = ""

    @model_validator(mode="after")
    def _path_fits_source(self) -> ParamEntry:
        if self.path is None:
            return self
        if self.source == "connect":
            raise EntryProblem("path", "only callback and token_response params have a path")
        pattern = QUERY_NAME_PATTERN if self.source == "callback" else DOTTED_PATH_PATTERN
        if not re.fullmatch(pattern.strip("^$"), self.path):
            what = "a query parameter name" if self.source == "callback" else "a dotted path"
            raise EntryProblem("path", f"must be {what}, got {url_template.short(self.path)}")
        return self

    def to_param(self, name: str) -> ConnectionParam:
        return ConnectionParam(name=name, **self.model_dump())


class TokenResponseEntry(_Strict):
    """Where each value sits in the token response (dotted paths)."""
    access_token: DottedPath = _TOKEN_PATH_DEFAULTS["access_token"]
    refresh_token: DottedPath = _TOKEN_PATH_DEFAULTS["refresh_token"]
    expires_in: DottedPath = _TOKEN_PATH_DEFAULTS["expires_in"]
    scope: DottedPath = _TOKEN_PATH_DEFAULTS["scope"]
    token_type: DottedPath = _TOKEN_PATH_DEFAULTS["token_type"]
    refresh_token_expires_in: DottedPath = _TOKEN_PATH_DEFAULTS["refresh_token_expires_in"]


class ErrorShapeEntry(_Strict):
    """How an error answer of the token endpoint is recognised."""
    field: DottedPath = Field("error", description="dotted path of the error code")
    on_http_200: bool = Field(False, description="a 200 answer carrying `field` is an error")
    success_flag: DottedPath | None = Field(None, description="dotted path of a boolean that is false on error")


class AccountIdEntry(_Strict):
    """Where the provider account id comes from."""
    source: Literal[ACCOUNT_ID_SOURCES]  # type: ignore[valid-type]
    url: Url | None = Field(None, json_schema_extra=url_json_schema("userinfo URL (source = userinfo)"))
    field: DottedPath | None = Field(None, description="dotted path of the id, or the param name (source = "
                                                       "param); default: sub")

    @model_validator(mode="after")
    def _url_only_for_userinfo(self) -> AccountIdEntry:
        if self.url is not None and self.source != "userinfo":
            raise EntryProblem("url", "is only used with source = userinfo")
        return self


def _reserved(names: tuple[str, ...]) -> dict:
    return {"propertyNames": {"not": {"enum": list(names)}}}


def _url(description: str) -> Any:
    return Field(None, json_schema_extra=url_json_schema(description))


class ProviderEntry(_Strict):
    """One provider in the catalog or a providers file (credentials come from the environment only)."""
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"\S")] | None = Field(
        None, description="default: the name, capitalised")
    authorize_url: Url | None = _url("authorization endpoint; may use {connect params} and {client_id}")
    token_url: Url | None = _url("token endpoint; may use {connect or callback params}")
    refresh_url: Url | None = _url("refresh endpoint; default: token_url")
    api_base_url: Url | None = _url("the API the proxy forwards to (stays confined to it)")
    issuer: Url | None = _url("OpenID/RFC 8414 issuer: discovery fills missing URLs")
    sends_iss: bool = Field(_SPEC_DEFAULTS["sends_iss"], description="the provider sends RFC 9207 iss")
    pkce: bool = _SPEC_DEFAULTS["pkce"]
    client_auth: Literal[CLIENT_AUTH_METHODS] = _SPEC_DEFAULTS["client_auth"]  # type: ignore[valid-type]
    params: dict[ParamName, ParamEntry] = Field({}, max_length=8, description="per-connection parameters",
                                                json_schema_extra=_reserved(RESERVED_PARAM_NAMES))
    scopes: list[Scope] = Field([], max_length=100, description="scopes requested by default")
    allowed_scopes: list[Scope] = Field([], max_length=500, description="scopes a connect may ask; empty: any")
    scope_separator: Literal[" ", ","] = _SPEC_DEFAULTS["scope_separator"]
    scope_param: Annotated[str, StringConstraints(pattern=QUERY_NAME_PATTERN)] = _SPEC_DEFAULTS["scope_param"]
    include_granted_scopes: bool = _SPEC_DEFAULTS["include_granted_scopes"]
    extra_authorize_params: dict[AuthorizeParamName, ParamValue] = Field(
        {}, max_length=32, json_schema_extra=_reserved(RESERVED_AUTHORIZE_PARAMS))
    token_body_format: Literal[TOKEN_BODY_FORMATS] = _SPEC_DEFAULTS["token_body_format"]  # type: ignore[valid-type]
    token_request_headers: dict[HeaderName, ParamValue] = Field({}, max_length=16)
    token_params: dict[TokenParamName, ParamValue] = Field({}, max_length=32,
                                                           json_schema_extra=_reserved(RESERVED_TOKEN_PARAMS))
    refresh_params: dict[TokenParamName, ParamValue] = Field({}, max_length=32,
                                                             json_schema_extra=_reserved(RESERVED_TOKEN_PARAMS))
    refresh_sends_redirect_uri: bool = _SPEC_DEFAULTS["refresh_sends_redirect_uri"]
    token_response: TokenResponseEntry = TokenResponseEntry()
    refresh_token_response: TokenResponseEntry | None = Field(
        None, description="where each value sits in a refresh answer (dotted paths; a key left out is at its own "
                          "name, not inherited from token_response); default: token_response")
    error_shape: ErrorShapeEntry = ErrorShapeEntry()
    reauth_error_codes: list[ErrorCode] = Field(list(_SPEC_DEFAULTS["reauth_error_codes"]), min_length=1,
                                                max_length=32)
    non_expiring_access_tokens: bool = _SPEC_DEFAULTS["non_expiring_access_tokens"]
    default_access_token_ttl: Annotated[int, Field(gt=0, le=MAX_ACCESS_TOKEN_TTL)] = Field(
        _SPEC_DEFAULTS["default_access_token_ttl"], description="seconds, when the token response has no expires_in")
    refresh_token_absolute_lifetime: Seconds | None = None
    refresh_token_idle_lifetime: Seconds | None = None
    revocation_url: Url | None = _url("revocation endpoint; {token} only with revocation_style = delete_token_url")
    revocation_style: Literal[REVOCATION_STYLES] | None = Field(  # type: ignore[valid-type]
        None, description="default: rfc7009 with a revocation_url, else none")
    revocation_method: Literal["POST", "DELETE"] = _SPEC_DEFAULTS["revocation_method"]
    revocation_auth: Literal[CLIENT_AUTH_METHODS_REVOCATION] | None = Field(  # type: ignore[valid-type]
        None, description="default: client_auth")
    revocation_token: Literal["refresh", "access"] = _SPEC_DEFAULTS["revocation_token"]
    revocation_revokes_grant: bool = _SPEC_DEFAULTS["revocation_revokes_grant"]
    account_id: AccountIdEntry | None = Field(None, description="default: userinfo from discovery with an issuer")

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("client_id", "client_secret"):
                if key in data:
                    raise EntryProblem(key, "credentials are never read from files: set <NAME>_CLIENT_ID and "
                                            "<NAME>_CLIENT_SECRET in the environment")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ProviderEntry:
        check_entry(self)
        return self

    @property
    def effective_revocation_style(self) -> str:
        return self.revocation_style or ("rfc7009" if self.revocation_url else "none")

    def to_spec(self, name: str) -> ProviderSpec:
        """The frozen spec this entry describes (keys of the same name and meaning are copied as they are)."""
        values = {key: _spec_value(getattr(self, key)) for key in _SIMPLE_KEYS}
        account = self.account_id or AccountIdEntry(source="userinfo" if self.issuer else "none")
        return ProviderSpec(
            name=name, display_name=self.display_name or name.title(), entry=self, **values,
            params=tuple(param.to_param(key) for key, param in self.params.items()),
            token_response=TokenPaths(**self.token_response.model_dump()),
            refresh_token_response=TokenPaths(**(self.refresh_token_response or self.token_response).model_dump()),
            error_shape=ErrorShape(**self.error_shape.model_dump()),
            revocation_style=self.effective_revocation_style,
            account_id_source=account.source, account_id_url=account.url,
            account_id_field=account.field or _SPEC_DEFAULTS["account_id_field"],
        )


# Entry keys that are the spec's field of the same name (a list becomes a tuple, a table sorted pairs).
_SIMPLE_KEYS = frozenset(ProviderEntry.model_fields) - {"display_name", "params", "token_response", "error_shape",
                                                        "refresh_token_response", "revocation_style", "account_id"}


def _spec_value(value: object) -> object:
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    return value


def spec_from_entry(name: object, entry: object) -> ProviderSpec:
    """Validate one entry; a ``SpecError`` names the provider and each key that is wrong."""
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN.strip("^$"), name):
        raise SpecError(f"provider name {url_template.short(name)} must match {NAME_PATTERN}")
    if not isinstance(entry, dict):
        problem = Problem("", "entry must be a table/mapping")
        raise SpecError(f"provider {name!r}: {problem}", name, (problem,))
    try:
        model = ProviderEntry.model_validate(entry)
    except ValidationError as exc:
        problems = tuple(_problem(error) for error in exc.errors(include_url=False, include_input=False))
        shown = "; ".join(str(problem) for problem in problems[:MAX_PROBLEMS_SHOWN])
        more = f" (and {len(problems) - MAX_PROBLEMS_SHOWN} more)" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        raise SpecError(f"provider {name!r}: {shown}{more}", name, problems) from None
    return model.to_spec(name)


MAX_PROBLEMS_SHOWN = 5
_KEY_PART = re.compile(r"[A-Za-z0-9_.\[\]-]{1,40}")


def _problem(error: dict) -> Problem:
    loc = [_key_part(part) for part in error["loc"]]
    what = ""
    if loc and loc[-1] == "[key]":  # a table's key (a param, parameter or header name) is wrong
        loc, what = loc[:-1], "name: "
    if error["type"] == "extra_forbidden":
        return Problem(".".join(loc), "unknown key")
    if error["type"] == "value_error":
        cause = error["ctx"]["error"]
        if isinstance(cause, EntryProblem):
            loc.append(cause.key)
        return Problem(".".join(loc), what + str(cause))
    if error["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return Problem(".".join(loc), "must be a table/mapping")
    if error["type"] == "string_pattern_mismatch" and error["ctx"]["pattern"] in PATTERN_MEANINGS:
        return Problem(".".join(loc), what + "must be " + PATTERN_MEANINGS[error["ctx"]["pattern"]])
    return Problem(".".join(loc), what + error["msg"])


def _key_part(part: object) -> str:
    text = str(part)
    return text if _KEY_PART.fullmatch(text) else url_template.short(text, 24)


def providers_file_json_schema() -> dict:
    """The JSON Schema of a providers file: provider name → entry."""
    schema = TypeAdapter(dict[ProviderName, ProviderEntry]).json_schema()
    _close_tables(schema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Providers file (CONNECTOR_PROVIDERS_FILE)",
            "description": "Provider name -> entry. The connector checks more at start-up: placeholders name "
                           "declared params, settings do not contradict each other.", **schema}


def _close_tables(schema: object) -> None:
    """A table whose keys have a pattern (provider and param names) allows no key outside it: pydantic
    refuses those keys, so the exported schema must too."""
    if isinstance(schema, dict):
        if "patternProperties" in schema:
            schema.setdefault("additionalProperties", False)
        for value in schema.values():
            _close_tables(value)
    elif isinstance(schema, list):
        for value in schema:
            _close_tables(value)
