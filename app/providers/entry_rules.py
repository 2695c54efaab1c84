"""The rules that tie the keys of a provider entry together: placeholders name declared params of a
source the URL can use, and no two settings contradict each other."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .url_template import placeholders

if TYPE_CHECKING:
    from .schema import ProviderEntry

# Which param sources a URL may use: the authorize URL is built before the provider answers, the token
# URL before its response exists; later requests have every value.
_ALL_SOURCES = frozenset({"connect", "callback", "token_response"})
URL_PARAM_SOURCES = {
    "authorize_url": frozenset({"connect"}),
    "token_url": frozenset({"connect", "callback"}),
    "refresh_url": _ALL_SOURCES,
    "revocation_url": _ALL_SOURCES,
    "api_base_url": _ALL_SOURCES,
    "account_id.url": _ALL_SOURCES,
}


def check_entry(entry: ProviderEntry) -> None:
    """Raise ``EntryProblem`` (naming the key) for the first broken rule."""
    _check_endpoints(entry)
    _check_placeholders(entry)
    _check_revocation(entry)
    _check_tokens(entry)
    _check_scopes(entry)
    _check_account_id(entry)


class EntryProblem(ValueError):
    """A rule between keys is broken; ``key`` names the key to point at (dotted, relative to the model)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


_problem = EntryProblem


def _check_endpoints(entry: ProviderEntry) -> None:
    if entry.issuer is None and not (entry.authorize_url and entry.token_url):
        key = "token_url" if entry.authorize_url else "authorize_url"
        raise _problem(key, "needs authorize_url and token_url, or an issuer for discovery")
    if entry.issuer is not None and placeholders(entry.issuer):
        raise _problem("issuer", "cannot have placeholders (discovery needs one issuer)")
    if entry.sends_iss and entry.issuer is None:
        raise _problem("sends_iss", "needs an issuer to compare the RFC 9207 iss with")


def _urls(entry: ProviderEntry) -> dict[str, str]:
    urls = {key: getattr(entry, key) for key in URL_PARAM_SOURCES if "." not in key}
    if entry.account_id is not None:
        urls["account_id.url"] = entry.account_id.url
    return {key: url for key, url in urls.items() if url is not None}


def _check_placeholders(entry: ProviderEntry) -> None:
    for key, url in _urls(entry).items():
        for name in placeholders(url):
            if name == "client_id":
                continue
            if name == "token":
                if key != "revocation_url" or entry.effective_revocation_style != "delete_token_url":
                    raise _problem(key, "{token} is only for revocation_url with revocation_style = "
                                        "delete_token_url")
                continue
            param = entry.params.get(name)
            if param is None:
                raise _problem(key, f"placeholder {{{name}}} names no declared param (declare it under params)")
            if param.source not in URL_PARAM_SOURCES[key]:
                allowed = " or ".join(sorted(URL_PARAM_SOURCES[key]))
                raise _problem(key, f"placeholder {{{name}}} is a {param.source} param; {key} can only use "
                                    f"{allowed} params")
            if not param.required:
                raise _problem(key, f"placeholder {{{name}}} names a param with required = false")
            if url.startswith(f"{{{name}}}") and not param.pattern.lstrip("^").startswith(("https://", "http://")):
                # the value is the URL's origin: its pattern must pin the scheme (http reaches only loopback)
                raise _problem(key, f"starts with {{{name}}}: that param's pattern must start with https://")


def _check_revocation(entry: ProviderEntry) -> None:
    style = entry.effective_revocation_style
    if style != "none" and entry.revocation_url is None and entry.issuer is None:
        raise _problem("revocation_style", f"{style} needs a revocation_url")
    if style == "delete_token_url" and entry.revocation_url and "{token}" not in entry.revocation_url:
        raise _problem("revocation_url", "needs {token} with revocation_style = delete_token_url")
    if style == "rfc7009" and entry.revocation_method != "POST":
        raise _problem("revocation_method", "RFC 7009 revocation is a POST")


def _check_tokens(entry: ProviderEntry) -> None:
    if entry.non_expiring_access_tokens and "default_access_token_ttl" in entry.model_fields_set:
        raise _problem("default_access_token_ttl", "default_access_token_ttl and non_expiring_access_tokens = true "
                                                   "contradict each other; set one")


def _check_scopes(entry: ProviderEntry) -> None:
    if entry.allowed_scopes:
        outside = [scope for scope in entry.scopes if scope not in entry.allowed_scopes]
        if outside:
            raise _problem("scopes", f"{outside[0][:64]!r} is not in allowed_scopes")
    for key in ("scopes", "allowed_scopes"):
        if entry.scope_separator == "," and any("," in scope for scope in getattr(entry, key)):
            raise _problem(key, "a scope cannot contain the scope_separator ','")
    if entry.scope_param in entry.extra_authorize_params:
        raise _problem("extra_authorize_params", f"{entry.scope_param!r} is the scope_param; list scopes instead")


def _check_account_id(entry: ProviderEntry) -> None:
    account = entry.account_id
    if account is None:
        return
    if account.source == "userinfo" and account.url is None and entry.issuer is None:
        raise _problem("account_id.url", "is needed with account_id.source = userinfo (or an issuer)")
    if account.source == "param" and (account.field is None or account.field not in entry.params):
        raise _problem("account_id.field", "must name a declared param with account_id.source = param")
