"""Per-connection parameters on their way in: from the connect form, from the provider's redirect,
from the code-exchange response. Each is checked against the provider entry's declared pattern
(``app.providers.templates``) before anything uses it; a failure is ``InvalidConnectionParam``."""
from __future__ import annotations

from collections.abc import Mapping

from ..oauth_client import TokenResponse, get_path
from ..providers.spec import ProviderSpec
from ..providers.templates import ParamValues, bind


def from_form(spec: ProviderSpec, form: Mapping[str, str]) -> dict[str, str]:
    """The connect-source params: fields of POST /connect/start named after them."""
    wanted = {p.name for p in spec.params if p.source == "connect"}
    return bind(spec.params, {k: v for k, v in form.items() if k in wanted}, sources=("connect",)).as_dict()


def from_callback(spec: ProviderSpec, query: Mapping[str, str]) -> dict[str, str]:
    """The callback-source params: query parameters of the provider's redirect (QuickBooks' realmId)."""
    found = {p.name: query.get(p.path or p.name) for p in spec.params if p.source == "callback"}
    return bind(spec.params, found, sources=("callback",)).as_dict()


def from_token(spec: ProviderSpec, token: TokenResponse) -> dict[str, str]:
    """The token_response-source params: dotted paths in the code-exchange response (instance_url)."""
    found = {p.name: get_path(token.raw, p.path or p.name) for p in spec.params if p.source == "token_response"}
    return bind(spec.params, found, sources=("token_response",)).as_dict()


def complete(spec: ProviderSpec, values: Mapping[str, str]) -> ParamValues:
    """All of a connection's params, checked together: what is stored on the connection."""
    return bind(spec.params, values)
