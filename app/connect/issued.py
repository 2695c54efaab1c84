"""Tokens a provider issued to a connect that then failed (no refresh token, a bad token-response
param, an ID token that does not match, a failed account lookup): no connection holds them, so
they are queued for revocation at the provider (``retry-revocations`` sends them) rather than
left live there until they expire."""
from __future__ import annotations

from sqlalchemy import exists, select

from ..crypto import Keyring
from ..extensions import db
from ..models import REVOKED, Connection
from ..oauth_client import TokenResponse
from ..providers import ProviderSpec
from .attempt import ConnectAttempt


def discard_issued(keyring: Keyring, spec: ProviderSpec, attempt: ConnectAttempt, token: TokenResponse,
                   params: dict[str, str] | None) -> None:
    """Queue ``token`` (what the failed ``attempt`` was issued) for revocation; the caller commits.

    Revoking is safe, the connection was never stored, with one exception: when the user already
    holds a connection to this provider and the provider's revocation ends the whole grant
    (``revocation_revokes_grant``: Google; GitHub's grant API), the tokens just issued may belong to
    the grant that connection holds (the same account authorised the same client again), and
    revoking them would end that connection too. Then nothing is revoked and the tokens expire.
    The provider offering no revocation (``revocation_style = "none"``) queues nothing either.
    ``params`` are the connection params validated so far (a revocation URL may use them)."""
    from ..revocation import Actor, queue_revocation  # revocation -> runtime -> connect.flow -> here

    holds_grant = db.session.scalar(select(exists().where(
        Connection.user_id == attempt.user_id, Connection.provider == spec.name, Connection.status != REVOKED)))
    # No connection row exists for these tokens: the task is keyed by the attempt's id.
    queue_revocation(keyring, spec, attempt.id, attempt.user_id, spec.name, access=token.access_token,
                     refresh=token.refresh_token, actor=Actor("system", None), reason="connect_failed",
                     same_grant=bool(holds_grant), params=params)
