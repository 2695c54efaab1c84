"""The connect flow as a service: no Flask globals, every input passed in.

``start_connect`` records a pending ``AuthorizationRequest`` and builds the
provider's authorize URL; ``finish_connect`` checks the authorization response
(state, browser binding, the provider's own callback path, RFC 9207 ``iss``),
consumes the request exactly once, exchanges the code and stores the connection.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from itsdangerous import BadSignature, Signer
from joserfc import jws
from joserfc.errors import JoseError
from sqlalchemy import select, update

from .. import clock, oauth_client
from ..connections import upsert_connection
from ..crypto import Keyring
from ..errors import InvalidState, ProviderError, ProviderUnavailable, UnknownProvider
from ..events import outbox as events
from ..extensions import db
from ..identity import Principal
from ..models import AuthorizationRequest, new_id, record_audit
from ..providers import ProviderRegistry, ProviderSpec
from ..providers.spec import NAME_RE
from ..providers.templates import InvalidConnectionParam
from ..refresh_expiry import note_refresh_token_expiry
from . import outcomes
from . import params as connection_params

log = logging.getLogger(__name__)

REQUEST_TTL = timedelta(minutes=10)
ERROR_CODE_RE = re.compile(r"^[a-z0-9_]{1,64}$")
MAX_PARAM_LENGTH = 4096


@dataclass(frozen=True)
class ConnectContext:
    registry: ProviderRegistry
    keyring: Keyring
    signer: Signer
    redirect_uri: str  # {PUBLIC_BASE_URL}/connect/callback; each provider's is below it
    timeout: tuple[float, float]
    secure_cookies: bool

    def redirect_uri_for(self, provider: str) -> str:
        """Each provider its own redirect URI (RFC 9700 4.4.2 mix-up defence, with or without iss)."""
        return f"{self.redirect_uri}/{provider}"

    def cookie_name(self, state_hash: str) -> str:
        # One cookie per pending request, so two tabs connecting at once do not collide.
        return ("__Host-" if self.secure_cookies else "") + f"connector_bind_{state_hash[:16]}"


@dataclass(frozen=True)
class StartedConnect:
    authorize_url: str
    cookie_name: str
    cookie_value: str


@dataclass(frozen=True)
class CallbackResult:
    redirect_to: str
    provider: str
    error: str | None = None
    cookie_name: str | None = None


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def start_connect(ctx: ConnectContext, principal: Principal, spec: ProviderSpec, return_to: str,
                  params: Mapping[str, str] | None = None) -> StartedConnect:
    """Create the pending request (caller commits) and the redirect to the provider.

    ``params``: the connect-source params, already checked (``app.connect.params.from_form``)."""
    params = dict(params or {})
    state = ctx.signer.sign(secrets.token_urlsafe(32)).decode()
    browser_secret = secrets.token_urlsafe(32)
    verifier = oauth_client.new_pkce_verifier() if spec.pkce else None
    nonce = secrets.token_urlsafe(24) if spec.uses_openid else None
    now = clock.now()
    request = AuthorizationRequest(
        id=new_id(), state_hash=_digest(state), browser_hash=_digest(browser_secret),
        user_id=principal.sub, provider=spec.name, return_to=return_to, nonce=nonce,
        created_at=now, expires_at=now + REQUEST_TTL, params=params or None,
    )
    if verifier:
        request.code_verifier_enc = ctx.keyring.encrypt(verifier, request.aad("code_verifier"))
    db.session.add(request)
    url = oauth_client.authorize_url(spec, redirect_uri=ctx.redirect_uri_for(spec.name), state=state,
                                     code_verifier=verifier, nonce=nonce, params=params)
    return StartedConnect(url, ctx.cookie_name(request.state_hash), browser_secret)


def with_outcome(return_to: str, **params: str) -> str:
    """``return_to`` with connector_status & co. added to its query (existing keys replaced)."""
    parts = urlsplit(return_to)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode(query + list(params.items()))))


def single_params(params: Mapping[str, list[str]]) -> dict[str, str]:
    """Reject duplicated or oversized query parameters (parameter pollution)."""
    single: dict[str, str] = {}
    for key, values in params.items():
        if len(values) != 1:
            raise InvalidState(f"query parameter {key[:32]!r} appears more than once")
        if len(values[0]) > MAX_PARAM_LENGTH:
            raise InvalidState(f"query parameter {key[:32]!r} is too long")
        single[key] = values[0]
    return single


def _path_name(path_provider: str | None) -> str | None:
    """The provider named by the callback path, if it is a well-formed name (it is untrusted input)."""
    return path_provider if path_provider and NAME_RE.fullmatch(path_provider) else None


def _find_request(ctx: ConnectContext, params: Mapping[str, list[str]],
                  path_provider: str | None) -> AuthorizationRequest:
    """The pending request named by ``state``. Without one there is no checked return URL: the
    rejection is recorded and a plain-words page raised."""
    states = params.get("state") or []
    code = "invalid_state"
    if len(states) > 1 or any(len(value) > MAX_PARAM_LENGTH for value in states):
        code = outcomes.INVALID_REQUEST
    elif states and states[0]:
        try:
            ctx.signer.unsign(states[0])
        except BadSignature:
            pass
        else:
            request = db.session.scalar(select(AuthorizationRequest)
                                        .where(AuthorizationRequest.state_hash == _digest(states[0])))
            if request is not None:
                return request
    outcomes.record_rejection(code, provider=_path_name(path_provider))
    raise outcomes.page(code)


def _check_request(ctx: ConnectContext, request: AuthorizationRequest, path_provider: str | None,
                   cookies: Mapping[str, str]) -> str | None:
    """Why this pending request cannot take this response (a stable code), or None."""
    if request.used_at is not None:
        return outcomes.ALREADY_USED
    if request.expires_at <= clock.now():
        return outcomes.EXPIRED
    secret = cookies.get(ctx.cookie_name(request.state_hash), "")
    if not hmac.compare_digest(_digest(secret), request.browser_hash):
        return outcomes.OTHER_BROWSER
    if path_provider != request.provider:
        # RFC 9700 4.4.2: each provider has its own redirect URI, so a response sent to another
        # provider's callback (a mix-up) never reaches this provider's token endpoint.
        return outcomes.INVALID_CALLBACK
    return None


def _check_issuer(spec: ProviderSpec, iss: str | None) -> bool:
    """RFC 9207: a known issuer must match; a provider known to send it must send it."""
    if iss is None:
        return not spec.sends_iss
    return spec.issuer is None or iss == spec.issuer


def _consume(request: AuthorizationRequest) -> bool:
    """Mark used in its own committed transaction: one winner even under concurrent callbacks."""
    result = db.session.execute(
        update(AuthorizationRequest)
        .where(AuthorizationRequest.id == request.id, AuthorizationRequest.used_at.is_(None))
        .values(used_at=clock.now())
    )
    if result.rowcount != 1:
        db.session.rollback()
        return False
    db.session.commit()
    return True


def _rejected(request: AuthorizationRequest, code: str, cookie: str | None = None) -> CallbackResult:
    outcomes.record_rejection(code, provider=request.provider, user_id=request.user_id, request_id=request.id)
    url = with_outcome(request.return_to, connector_status="error", provider=request.provider, error=code)
    return CallbackResult(url, request.provider, code, cookie)


def finish_connect(ctx: ConnectContext, path_provider: str | None, params: Mapping[str, list[str]],
                   cookies: Mapping[str, str]) -> CallbackResult:
    """Handle the provider's redirect to ``/connect/callback/<path_provider>``.

    Without a pending request for ``state`` this raises a plain-words 400 page. Otherwise every
    outcome is a redirect to the request's return URL (checked when the connect started) with
    ``connector_status`` and, on failure, a stable ``error`` code. Checks that fail before the
    request is consumed leave it pending, so a forged response cannot cancel the real one.
    """
    request = _find_request(ctx, params, path_provider)
    cookie = ctx.cookie_name(request.state_hash)
    code = _check_request(ctx, request, path_provider, cookies)
    if code is not None:
        # A spent or expired attempt's binding cookie is of no further use.
        return _rejected(request, code, cookie if code in (outcomes.ALREADY_USED, outcomes.EXPIRED) else None)
    try:
        query = single_params(params)
        spec = ctx.registry.get(request.provider)
    except InvalidState:
        return _rejected(request, outcomes.INVALID_REQUEST)
    except UnknownProvider:
        return _rejected(request, outcomes.UNKNOWN_PROVIDER)
    except ProviderUnavailable:
        return _rejected(request, outcomes.PROVIDER_UNAVAILABLE)
    if not _check_issuer(spec, query.get("iss")):
        return _rejected(request, outcomes.INVALID_CALLBACK)
    if not _consume(request):
        return _rejected(request, outcomes.ALREADY_USED, cookie)

    def fail(error: str) -> CallbackResult:
        record_audit("connect", "error", actor_type="user", actor_id=request.user_id,
                     user_id=request.user_id, provider=spec.name, error=error)
        db.session.commit()
        url = with_outcome(request.return_to, connector_status="error", provider=spec.name, error=error)
        return CallbackResult(url, spec.name, error, cookie)

    if "error" in query:
        code = query["error"] if ERROR_CODE_RE.match(query["error"]) else "provider_error"
        return fail(code)
    if not query.get("code"):
        return fail("invalid_response")
    verifier = (ctx.keyring.decrypt(request.code_verifier_enc, request.aad("code_verifier"))
                if request.code_verifier_enc else None)
    try:
        # The connect-source params the start checked, the callback's own: the token URL may use both.
        params = {**(request.params or {}), **connection_params.from_callback(spec, query)}
        token = oauth_client.exchange_code(spec, code=query["code"], code_verifier=verifier,
                                           redirect_uri=ctx.redirect_uri_for(spec.name), timeout=ctx.timeout,
                                           params=params)
        if token.refresh_token is None and not spec.non_expiring_access_tokens:
            return fail("no_refresh_token")
        _check_id_token(spec, token.id_token, request.nonce)
        params = connection_params.complete(spec, {**params, **connection_params.from_token(spec, token)}).as_dict()
        account_id = oauth_client.fetch_account_id(spec, token, ctx.timeout, params)
    except InvalidConnectionParam as exc:
        log.warning("connect %s: %s", spec.name, exc.description)
        return fail(outcomes.INVALID_CONNECTION_PARAM)
    except ProviderUnavailable as exc:
        log.warning("connect %s: %s", spec.name, exc.description)
        return fail("provider_unavailable")
    except ProviderError as exc:
        log.warning("connect %s: %s", spec.name, exc.description)
        return fail("token_exchange_failed" if exc.code == "provider_error" else exc.code)

    previous_status = events.status_before_connect(request.user_id, spec.name)
    connection = upsert_connection(request.user_id, spec.name, token, ctx.keyring, account_id, params=params)
    note_refresh_token_expiry(connection, spec, token, new_grant=True)
    record_audit("connect", "success", actor_type="user", actor_id=request.user_id,
                 user_id=request.user_id, provider=spec.name)
    events.on_connected(connection, previous_status)  # in the same transaction
    db.session.commit()
    url = with_outcome(request.return_to, connector_status="connected", provider=spec.name)
    return CallbackResult(url, spec.name, None, cookie)


def _check_id_token(spec: ProviderSpec, id_token: str | None, nonce: str | None) -> None:
    """OIDC Core 3.1.3.7: the ID token came straight from the token endpoint over TLS, so
    TLS stands in for its signature; its issuer, audience and nonce must still match."""
    if nonce is None or id_token is None:
        return
    try:
        claims = json.loads(jws.extract_compact(id_token.encode()).payload)
    except (JoseError, ValueError, RecursionError):  # RecursionError: a payload nested too deeply
        raise ProviderError("the ID token is malformed", code="invalid_id_token") from None
    if not isinstance(claims, dict):  # a JSON list, string or number is no claims set
        raise ProviderError("the ID token is malformed", code="invalid_id_token")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if (claims.get("nonce") != nonce or spec.client_id not in audiences
            or (spec.issuer is not None and claims.get("iss") != spec.issuer)):
        raise ProviderError("the ID token does not match this request", code="invalid_id_token")
