"""Revoking a connection: at the provider where possible, always locally at once.

One function serves every entry point (user, M2M, admin). The connection's tokens
are wiped and its status set to ``revoked`` in the same transaction; the one token
the provider needs for remote revocation moves into a ``RevocationTask`` that is
tried at once and, if the provider fails, again later by
``flask connector retry-revocations`` with bounded attempts and backoff.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from sqlalchemy import select

from . import clock
from .crypto import Keyring
from .errors import DecryptionError, ProviderUnavailable, UnknownProvider
from .events import outbox as events
from .extensions import db
from .http import configure, new_session
from .models import REVOKED, Connection, RevocationTask, new_id, record_audit
from .oauth_client import MAX_BODY, error_code
from .providers import ProviderSpec, templates
from .runtime import Runtime, runtime
from .token_store import TokenStore

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
WIPE_ATTEMPTS = 5
RETRY_BASE = timedelta(minutes=1)
# What one attempt at a remote revocation can end in (``retry_revocations`` counts each).
OUTCOMES = ("done", "pending", "failed", "not_supported")


@dataclass(frozen=True)
class Actor:
    type: str  # user | m2m | admin | system
    id: str | None


@dataclass(frozen=True)
class RevocationResult:
    provider: str
    remote: str  # done | pending | failed | not_supported | none (nothing to revoke)

    def as_json(self) -> dict:
        return {"provider": self.provider, "status": REVOKED, "remote_revocation": self.remote}


def revoke_connection(connection: Connection, actor: Actor) -> RevocationResult:
    """Revoke locally now (committed), then try the provider once."""
    rt = runtime()
    spec = rt.registry.spec(connection.provider)
    task = _wipe(rt, connection, spec, actor)
    remote = _attempt(rt, task, spec) if task else (connection.remote_revocation or "none")
    return RevocationResult(connection.provider, remote)


def revoke_user_connections(user_id: str, actor: Actor) -> list[RevocationResult]:
    rows = db.session.scalars(
        select(Connection).where(Connection.user_id == user_id, Connection.status != REVOKED)
        .order_by(Connection.provider)
    ).all()
    return [revoke_connection(row, actor) for row in rows]


def _wipe(rt: Runtime, connection: Connection, spec: ProviderSpec | None, actor: Actor) -> RevocationTask | None:
    """Wipe the tokens and mark revoked; keep only what remote revocation needs, in a task.

    Through the token store, over the version read: a refresh or a reconnect that wrote the row
    since is read again, so the tokens wiped are the ones revoked. Tokens that cannot be
    decrypted (their key was removed) are wiped all the same: the connection is revoked locally
    and the remote revocation is ``failed``, with no task, since there is no token left to send.
    """
    store = TokenStore(rt.keyring)
    for _ in range(WIPE_ATTEMPTS):
        if connection.status == REVOKED:
            return None  # a concurrent revocation did it (and reports on it)
        seen = connection.version or 0
        try:
            opened = store.open_all(connection)
            refresh, access, undecryptable = opened.refresh, opened.access, False
        except DecryptionError:
            refresh = access = None
            undecryptable = True
        now = clock.now()
        values = {"status": REVOKED, "revoked_at": now, "lease_owner": None, "lease_expires_at": None}
        had_access, expires_at = connection.access_token_enc is not None, connection.access_token_expires_at
        style = _style(spec)
        task = None
        if undecryptable and style != "none":
            values["remote_revocation"] = "failed"
            detail = {"remote": "failed", "error": DecryptionError.code}
        elif style == "none" or not (refresh or access):
            values["remote_revocation"] = "not_supported" if style == "none" else None
            detail = {"remote": values["remote_revocation"] or "none"}
            if style == "none" and had_access and expires_at:
                detail["access_token_valid_until"] = expires_at.isoformat() + "Z"
        else:
            values["remote_revocation"] = "pending"
            detail = {"remote": "pending"}
        if store.wipe(connection, seen, values):
            break
        db.session.rollback()  # written since we read it (a refresh stored, a reconnect): again
        db.session.refresh(connection)
    else:
        raise ProviderUnavailable("the connection kept changing while it was being revoked; try again",
                                  retry_after=1, code="busy")
    if undecryptable and style != "none":
        log.warning("revoking %s/%s: its tokens cannot be decrypted; wiped, not revoked at the provider",
                    connection.provider, connection.id)
    if values["remote_revocation"] == "pending":
        task = _new_task(rt.keyring, spec, connection.id, connection.user_id, connection.provider,
                         access=access, refresh=refresh, actor=actor, created_at=now, params=connection.params)
    events.on_revoked(connection, actor.type, values["remote_revocation"] or "none")
    record_audit("revoke", "revoked", actor_type=actor.type, actor_id=actor.id, user_id=connection.user_id,
                 provider=connection.provider, **detail)
    db.session.commit()
    return task


ACCESS_TOKEN_STYLES = ("github_grant", "bearer")  # these send the access token whatever the entry says


def _new_task(keyring: Keyring, spec: ProviderSpec | None, connection_id: str, user_id: str, provider: str, *,
              access: str | None, refresh: str | None, actor: Actor, created_at,
              params: dict | None = None) -> RevocationTask:
    # The entry's revocation_token (default: the refresh token, which ends the grant under RFC 7009);
    # GitHub's grant API and Bearer revocation take the access token. Either falls back to the other.
    style = _style(spec)
    wants_access = style in ACCESS_TOKEN_STYLES or (spec is not None and spec.revocation_token == "access")
    if (wants_access and access) or not refresh:
        token, hint = access, "access_token"
    else:
        token, hint = refresh, "refresh_token"
    task = RevocationTask(connection_id=connection_id, user_id=user_id, provider=provider, token_type_hint=hint,
                          actor_type=actor.type, actor_id=actor.id, id=new_id(), created_at=created_at,
                          next_attempt_at=created_at, params=dict(params) if params else None)
    task.token_enc = keyring.encrypt(token, task.aad())
    db.session.add(task)
    return task


def queue_revocation(keyring: Keyring, spec: ProviderSpec | None, connection_id: str, user_id: str,
                     provider: str, *, access: str | None, refresh: str | None, actor: Actor, reason: str,
                     same_grant: bool, params: dict | None = None) -> RevocationTask | None:
    """Queue tokens that no connection holds any more (replaced by a reconnect, or received by a
    refresh that lost its row) for ``retry-revocations``; the caller commits.

    ``spec`` None: the configured provider. Nothing is queued when the provider offers no
    revocation, or when revoking would end the grant a connection still holds (``same_grant`` at
    a provider whose revocation ends the whole grant: GitHub's grant API, Google)."""
    if spec is None:
        spec = runtime().registry.spec(provider)
    style = _style(spec)
    grant_wide = style == "github_grant" or (spec is not None and spec.revocation_revokes_grant)
    if style == "none" or not (access or refresh) or (same_grant and grant_wide):
        return None
    task = _new_task(keyring, spec, connection_id, user_id, provider, access=access, refresh=refresh,
                     actor=actor, created_at=clock.now(), params=params)
    record_audit("revoke_remote", "queued", actor_type=actor.type, actor_id=actor.id, user_id=user_id,
                 provider=provider, reason=reason)
    log.info("tokens of %s/%s %s: queued for revocation at the provider", provider, connection_id, reason)
    return task


def _style(spec: ProviderSpec | None) -> str:
    if spec is None:
        return "none"
    # Discovery not resolved yet (provider down): assume RFC 7009 and find out on the retry.
    return "rfc7009" if spec.needs_discovery else spec.revocation_style


def _attempt(rt: Runtime, task: RevocationTask, spec: ProviderSpec | None) -> str:
    """One try at the provider; returns the task's outcome (one of ``OUTCOMES``).

    Transient provider failures are retried with backoff; a provider gone from the
    configuration or a token that cannot be decrypted (its key was removed) will not
    get better, so they end the task at once as ``failed``.
    """
    error = unsupported = None
    final = False
    try:
        if spec is None or not spec.enabled:
            raise UnknownProvider("the provider is no longer configured")
        if spec.needs_discovery:
            raise ProviderUnavailable("provider discovery failed", code="discovery_failed")
        unsupported = spec.revocation_style == "none"
        if not unsupported:
            revoke_remote(spec, rt.keyring.decrypt(task.token_enc, task.aad()), task.token_type_hint, rt.timeout,
                          params=task.params)
    except ProviderUnavailable as exc:
        error = exc.code
    except (UnknownProvider, DecryptionError, templates.InvalidConnectionParam) as exc:
        # None of these gets better by waiting: the provider or key is gone, or the stored params
        # no longer match the entry.
        error, final = exc.code, True
    task.attempts += 1
    connection = db.session.get(Connection, task.connection_id)
    owned = _revoked_by(connection, task)  # read before the task may be deleted
    detail = {"error": error} if error else {}
    if error is None or final or task.attempts >= MAX_ATTEMPTS:
        outcome = "not_supported" if unsupported else ("done" if error is None else "failed")
        if unsupported:
            detail["reason"] = "the provider offers no revocation"
        db.session.delete(task)  # the last copy of the token goes with it
    else:
        outcome = "pending"
        task.last_error = error
        task.next_attempt_at = clock.now() + RETRY_BASE * 2 ** (task.attempts - 1)
    if owned:
        connection.remote_revocation = outcome
        if outcome != "pending":
            events.on_remote_revocation_finished(connection, outcome, error)
    record_audit("revoke_remote", outcome, actor_type=task.actor_type, actor_id=task.actor_id,
                 user_id=task.user_id, provider=task.provider, attempt=str(task.attempts), **detail)
    db.session.commit()
    if error:
        log.warning("remote revocation at %s failed (%s), attempt %d", task.provider, error, task.attempts)
    return outcome


def _revoked_by(connection: Connection | None, task: RevocationTask) -> bool:
    """Is ``connection`` still in the revocation that created ``task``?

    Not when the user has connected again since (the row is active with new tokens),
    nor when it was revoked again later (the newer revocation's task reports on it).
    """
    return (connection is not None and connection.status == REVOKED and connection.revoked_at is not None
            and task.created_at == connection.revoked_at)


def _revocation_auth(spec: ProviderSpec) -> str:
    return spec.revocation_auth or spec.client_auth


def _no_client_auth(client, method, uri, headers, body):
    return uri, headers, body


def _credentials(spec: ProviderSpec) -> tuple[dict, tuple[str, str] | None]:
    """Body fields and Basic credentials for a non-RFC 7009 request, as ``revocation_auth`` says."""
    method = _revocation_auth(spec)
    if method == "client_secret_basic":
        return {}, (spec.client_id, spec.client_secret)
    if method == "client_secret_post":
        return {"client_id": spec.client_id, "client_secret": spec.client_secret}, None
    if method == "client_id_post":
        return {"client_id": spec.client_id}, None
    return {}, None


def _send(spec: ProviderSpec, url: str, token: str, hint: str, timeout: tuple[float, float]) -> requests.Response:
    """One revocation request in the entry's style (see REVOCATION_STYLES in app/providers/spec.py)."""
    style = spec.revocation_style
    request = dict(timeout=timeout, allow_redirects=False)
    if style == "github_grant":
        return new_session().delete(url, json={"access_token": token}, auth=(spec.client_id, spec.client_secret),
                                    headers={"Accept": "application/vnd.github+json"}, **request)
    if style == "bearer":
        return new_session().request(spec.revocation_method, url, headers={"Authorization": f"Bearer {token}"},
                                     **request)
    if style == "delete_token_url":  # the token is in the URL ({token}); nothing else is sent
        return new_session().delete(url, **request)
    if style == "json_token":
        fields, basic = _credentials(spec)
        return new_session().request(spec.revocation_method, url, json={"token": token, **fields}, auth=basic,
                                     headers={"Accept": "application/json"}, **request)
    # rfc7009 through Authlib: POST (RFC 7009 §2.1, whatever revocation_method says) form
    # token=…&token_type_hint=…, with the client authentication (client_id_post: Authlib's "none").
    method = _revocation_auth(spec)
    auth = {"client_id_post": "none", "none": _no_client_auth}.get(method, method)
    client = configure(OAuth2Session(spec.client_id, spec.client_secret, revocation_endpoint_auth_method=auth))
    return client.revoke_token(url, token=token, token_type_hint=hint, **request)


def _done(style: str, status: int) -> bool:
    if 200 <= status < 300:  # RFC 7009: 200 even for an unknown token; 204 from DELETE-style APIs
        return True
    # 404: the grant or token is already gone. GitHub documents 422 as "validation failed, or the
    # endpoint has been spammed": not a proof of revocation, so it is retried like a 5xx.
    if style in ("github_grant", "delete_token_url") and status == 404:
        return True
    return style == "bearer" and status == 401  # the token itself no longer works


def revoke_remote(spec: ProviderSpec, token: str, hint: str, timeout: tuple[float, float],
                  params: dict | None = None) -> None:
    """Revoke ``token`` at the provider (its revocation_url filled with the connection's ``params``);
    raises ``ProviderUnavailable`` when it should be retried, ``InvalidConnectionParam`` when the
    stored params no longer fit the entry."""
    url = templates.url(spec, spec.revocation_url, params,
                        token=token if spec.revocation_style == "delete_token_url" else None)
    try:
        # The one HTTP client: whole-exchange deadline, shared pool, User-Agent, no proxies from env.
        response = _send(spec, url, token, hint, timeout)
    except requests.Timeout:
        raise ProviderUnavailable("revocation timed out", code="timeout") from None
    except (requests.RequestException, OAuthError):
        raise ProviderUnavailable("revocation request failed", code="unreachable") from None
    if not _done(spec.revocation_style, response.status_code):
        status = response.status_code
        raise ProviderUnavailable(f"revocation answered HTTP {status}", code=f"http_{status}")
    refused = _refused_with_200(spec, response)
    if refused is not None:  # counted like the error status it stands for: retried, then failed
        raise ProviderUnavailable(f"revocation answered HTTP {response.status_code} with an error", code=refused)


def _refused_with_200(spec: ProviderSpec, response: requests.Response) -> str | None:
    """The error code of a 2xx answer the entry's ``error_shape`` says is an error (Slack's auth.revoke:
    ``{"ok": false, "error": "invalid_auth"}``), else None. Only for an entry that declares errors
    answered with HTTP 200 (``success_flag`` or ``on_http_200``); an empty or non-JSON body is the
    status's answer (GitHub's 204)."""
    shape = spec.error_shape
    if not (shape.success_flag or shape.on_http_200) or not 200 <= response.status_code < 300:
        return None
    if not response.content or len(response.content) > MAX_BODY:
        return None
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return None
    return error_code(shape, body, response.status_code) if isinstance(body, dict) else None


def retry_revocations(limit: int = 100) -> dict[str, int]:
    """Retry due remote revocations (``flask connector retry-revocations``); counts per outcome."""
    rt = runtime()
    counts = dict.fromkeys(OUTCOMES, 0)
    now = clock.now()
    # One task at a time, each claimed by its own SKIP LOCKED select: the row lock of a batch
    # would end with the first task's commit and let another copy of the command take the rest.
    for _ in range(limit):
        task = db.session.scalars(
            select(RevocationTask).where(RevocationTask.next_attempt_at <= now)
            .order_by(RevocationTask.next_attempt_at).limit(1).with_for_update(skip_locked=True)
        ).first()
        if task is None:
            break
        counts[_attempt(rt, task, rt.registry.spec(task.provider))] += 1  # commits
    db.session.commit()
    return counts


def attempt_queued(task: RevocationTask) -> str | None:
    """Try a task just queued (and committed) once at the provider; on a database failure it
    stays queued for ``retry-revocations``."""
    from sqlalchemy.exc import DBAPIError

    rt = runtime()
    try:
        return _attempt(rt, task, rt.registry.spec(task.provider))
    except DBAPIError:
        db.session.rollback()
        return None
