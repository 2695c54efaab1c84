"""The connect flow as a service: no Flask globals, every input passed in.

``start_connect`` seals the attempt (``app.connect.attempt``: a ``state`` for the URL and a cookie
for the browser; nothing is written) and builds the provider's authorize URL; ``finish_connect``
checks the authorization response (state, browser binding, the provider's own callback path,
RFC 9207 ``iss``), consumes the attempt exactly once (a unique insert of its id), exchanges the code
and stores the connection.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from joserfc import jws
from joserfc.errors import JoseError
from sqlalchemy import Delete, delete, exists, insert, select
from sqlalchemy.exc import IntegrityError

from .. import clock, oauth_client
from ..connections import granted_scopes, upsert_connection
from ..crypto import Keyring
from ..errors import InvalidState, ProviderError, ProviderUnavailable, UnknownProvider
from ..events import outbox as events
from ..extensions import db
from ..identity import Principal
from ..models import UsedConnectAttempt, new_id, record_audit
from ..providers import ProviderRegistry, ProviderSpec
from ..providers.spec import NAME_RE
from ..providers.templates import InvalidConnectionParam
from ..refresh_expiry import note_refresh_token_expiry
from ..scopes import authorize_scopes, check_allowed
from . import outcomes
from . import params as connection_params
from .attempt import ATTEMPT_TTL, AttemptRef, ConnectAttempt, open_cookie, open_state, seal
from .issued import discard_issued

log = logging.getLogger(__name__)

REQUEST_TTL = ATTEMPT_TTL  # the name views and links use for the binding cookie's lifetime
ERROR_CODE_RE = re.compile(r"^[a-z0-9_]{1,64}$")
MAX_PARAM_LENGTH = 4096
# How long a used attempt's id is kept after the attempt expired: an expired attempt is refused as
# expired anyway, and the margin covers web hosts whose clocks are behind the worker's.
USED_KEPT = timedelta(hours=1)


@dataclass(frozen=True)
class ConnectContext:
    registry: ProviderRegistry
    keyring: Keyring
    redirect_uri: str  # {PUBLIC_BASE_URL}/connect/callback; each provider's is below it
    timeout: tuple[float, float]
    secure_cookies: bool

    def redirect_uri_for(self, provider: str) -> str:
        """Each provider its own redirect URI (RFC 9700 4.4.2 mix-up defence, with or without iss)."""
        return f"{self.redirect_uri}/{provider}"

    def cookie_name(self, attempt_id: str) -> str:
        # One cookie per attempt, so two tabs connecting at once do not collide.
        return ("__Host-" if self.secure_cookies else "") + f"connector_bind_{attempt_id[:16]}"


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


def start_connect(ctx: ConnectContext, principal: Principal, spec: ProviderSpec, return_to: str, *,
                  scopes: tuple[str, ...] = (), params: dict[str, str] | None = None) -> StartedConnect:
    """Seal the attempt (nothing is written) and build the redirect to the provider.

    ``scopes`` and ``params`` travel sealed in the attempt to the callback. ``scopes`` (already
    parsed, see ``app.scopes``) must be within the entry's ``allowed_scopes`` (``ScopeNotAllowed``); the
    attempt asks for them together with the entry's defaults and what the user's connection already
    holds (incremental authorization)."""
    check_allowed(spec, tuple(scopes))
    scopes = authorize_scopes(spec, granted_scopes(principal.sub, spec.name), scopes)
    verifier = oauth_client.new_pkce_verifier() if spec.pkce else None
    nonce = secrets.token_urlsafe(24) if spec.uses_openid else None
    attempt = ConnectAttempt(
        id=new_id(), user_id=principal.sub, provider=spec.name, return_to=return_to,
        expires_at=(clock.now() + ATTEMPT_TTL).replace(microsecond=0),
        code_verifier=verifier, nonce=nonce, scopes=tuple(scopes), params=dict(params or {}),
    )
    state, cookie = seal(ctx.keyring, attempt)
    url = oauth_client.authorize_url(spec, redirect_uri=ctx.redirect_uri_for(spec.name), state=state,
                                     code_verifier=verifier, nonce=nonce, scopes=attempt.scopes,
                                     params=attempt.params)
    return StartedConnect(url, ctx.cookie_name(attempt.id), cookie)


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


def _find_attempt(ctx: ConnectContext, params: Mapping[str, list[str]], path_provider: str | None) -> AttemptRef:
    """The attempt ``state`` names. Without one there is no checked return URL: the rejection is
    recorded and a plain-words page raised."""
    states = params.get("state") or []
    code = "invalid_state"
    if len(states) > 1 or any(len(value) > MAX_PARAM_LENGTH for value in states):
        code = outcomes.INVALID_REQUEST
    elif states and states[0]:
        ref = open_state(ctx.keyring, states[0])
        if ref is not None:
            return ref
    outcomes.record_rejection(code, provider=_path_name(path_provider))
    raise outcomes.page(code)


def _used(ref: AttemptRef) -> bool:
    used = db.session.scalar(select(exists().where(UsedConnectAttempt.id == ref.id)))
    db.session.rollback()  # nothing to keep open until the next step
    return bool(used)


def _check_attempt(ctx: ConnectContext, ref: AttemptRef, path_provider: str | None,
                   cookies: Mapping[str, str]) -> tuple[ConnectAttempt | None, str | None]:
    """The whole attempt, or why it cannot take this response (a stable code).

    A response in the right browser, in time, on the right path goes on without a read: ``_consume``
    proves it unused. Otherwise the most telling reason is given: used before, then expired, then
    another browser, then the wrong callback path."""
    attempt = open_cookie(ctx.keyring, ref, cookies.get(ctx.cookie_name(ref.id)))
    expired = ref.expires_at <= clock.now()
    if attempt is not None and not expired and path_provider == ref.provider:
        return attempt, None
    if _used(ref):
        return None, outcomes.ALREADY_USED
    if expired:
        return None, outcomes.EXPIRED
    if attempt is None:
        return None, outcomes.OTHER_BROWSER
    # RFC 9700 4.4.2: each provider has its own redirect URI, so a response sent to another
    # provider's callback (a mix-up) never reaches this provider's token endpoint.
    return None, outcomes.INVALID_CALLBACK


def _check_issuer(spec: ProviderSpec, iss: str | None) -> bool:
    """RFC 9207: a known issuer must match; a provider known to send it must send it."""
    if iss is None:
        return not spec.sends_iss
    return spec.issuer is None or iss == spec.issuer


def _consume(attempt: ConnectAttempt) -> bool:
    """Record the attempt as used in its own committed transaction: the unique id makes one winner,
    even under concurrent callbacks."""
    try:
        db.session.execute(insert(UsedConnectAttempt).values(id=attempt.id, expires_at=attempt.expires_at))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return False
    return True


def purge_used_attempts_statement(now: datetime) -> Delete:
    """The DELETE that forgets used attempts' ids once they can no longer matter."""
    return delete(UsedConnectAttempt).where(UsedConnectAttempt.expires_at < now - USED_KEPT)


def _rejected(ref: AttemptRef, code: str, cookie: str | None = None) -> CallbackResult:
    outcomes.record_rejection(code, provider=ref.provider, user_id=ref.user_id, request_id=ref.id)
    url = with_outcome(ref.return_to, connector_status="error", provider=ref.provider, error=code)
    return CallbackResult(url, ref.provider, code, cookie)


def finish_connect(ctx: ConnectContext, path_provider: str | None, params: Mapping[str, list[str]],
                   cookies: Mapping[str, str]) -> CallbackResult:
    """Handle the provider's redirect to ``/connect/callback/<path_provider>``.

    Without an attempt sealed in ``state`` this raises a plain-words 400 page. Otherwise every
    outcome is a redirect to the attempt's return URL (checked when the connect started) with
    ``connector_status`` and, on failure, a stable ``error`` code. Checks that fail before the
    attempt is consumed leave it usable, so a forged response cannot cancel the real one.
    """
    ref = _find_attempt(ctx, params, path_provider)
    cookie = ctx.cookie_name(ref.id)
    request, code = _check_attempt(ctx, ref, path_provider, cookies)
    if request is None:
        # A spent or expired attempt's binding cookie is of no further use.
        return _rejected(ref, code, cookie if code in (outcomes.ALREADY_USED, outcomes.EXPIRED) else None)
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

    def fail(error: str, issued: oauth_client.TokenResponse | None = None,
             params: dict[str, str] | None = None) -> CallbackResult:
        if issued is not None:  # the provider issued tokens no connection will hold
            discard_issued(ctx.keyring, spec, request, issued, params)
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
    verifier = request.code_verifier
    token, values = None, {}  # what the provider issued and the params validated, once known
    try:
        # The connect-source params the start checked, the callback's own: the token URL may use both.
        values = {**(request.params or {}), **connection_params.from_callback(spec, query)}
        token = oauth_client.exchange_code(spec, code=query["code"], code_verifier=verifier,
                                           redirect_uri=ctx.redirect_uri_for(spec.name), timeout=ctx.timeout,
                                           scopes=request.scopes or None,  # () in attempts of older versions
                                           params=values)
        if token.refresh_token is None and not spec.non_expiring_access_tokens:
            return fail("no_refresh_token", token, values)
        _check_id_token(spec, token.id_token, request.nonce)
        values = connection_params.complete(spec, {**values, **connection_params.from_token(spec, token)}).as_dict()
        account_id = oauth_client.fetch_account_id(spec, token, ctx.timeout, values)
    except InvalidConnectionParam as exc:
        log.warning("connect %s: %s", spec.name, exc.description)
        return fail(outcomes.INVALID_CONNECTION_PARAM, token, values)
    except ProviderUnavailable as exc:
        log.warning("connect %s: %s", spec.name, exc.description)
        return fail("provider_unavailable", token, values)
    except ProviderError as exc:
        log.warning("connect %s: %s", spec.name, exc.description)
        return fail("token_exchange_failed" if exc.code == "provider_error" else exc.code, token, values)

    previous_status = events.status_before_connect(request.user_id, spec.name)
    connection = upsert_connection(request.user_id, spec.name, token, ctx.keyring, account_id, params=values)
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
