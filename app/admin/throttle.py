"""Admin sign-in throttling, kept in the database so every worker agrees.

Attempts are counted per *throttle key*: a browser in which an administrator has signed in before
carries a signed device cookie and is counted on its own (OWASP's "device cookies"), so strangers,
however many and whatever address they share with the administrators, cannot lock those browsers
out. Everyone else is counted per client address: the TCP peer unless TRUSTED_PROXY_HOPS says how
many proxies to believe (ProxyFix in create_app), so a forged X-Forwarded-For cannot reset the count.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import Response, current_app, request
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import delete, func, select

from .. import clock
from ..errors import TooManyAttempts
from ..extensions import db
from ..models import AdminLoginAttempt

log = logging.getLogger(__name__)

STARTED, SUCCEEDED, FAILED = "started", "succeeded", "failed"
DEVICE_COOKIE = "connector_admin_device"
DEVICE_LIFETIME = timedelta(days=90)
_DEVICE_PREFIX = "device:"
_proxy_warning_given = False


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="connector-admin-device")


def device_cookie_name() -> str:
    return ("__Host-" if current_app.config["SESSION_COOKIE_SECURE"] else "") + DEVICE_COOKIE


def throttle_key() -> str:
    """Whose attempts these are: this browser's, when an administrator signed in here before (a
    valid signed device cookie), else the client address's."""
    value = request.cookies.get(device_cookie_name())
    if value and len(value) < 256:
        try:
            device = _signer().loads(value, max_age=DEVICE_LIFETIME.total_seconds())
        except BadData:  # forged, tampered with or expired: as if there were none
            device = None
        if isinstance(device, str) and 0 < len(device) <= 48:
            return _DEVICE_PREFIX + device
    _warn_about_an_unconfigured_proxy()
    return (request.remote_addr or "unknown")[:64]


def remember_device(response: Response) -> None:
    """After a successful sign-in: this browser gets its own throttle count from now on."""
    response.set_cookie(device_cookie_name(), _signer().dumps(secrets.token_urlsafe(24)),
                        max_age=int(DEVICE_LIFETIME.total_seconds()), httponly=True, samesite="Lax", path="/",
                        secure=current_app.config["SESSION_COOKIE_SECURE"])


def _warn_about_an_unconfigured_proxy() -> None:
    global _proxy_warning_given
    if _proxy_warning_given or current_app.config["TRUSTED_PROXY_HOPS"] or "X-Forwarded-For" not in request.headers:
        return
    _proxy_warning_given = True
    log.warning("admin sign-in: requests carry X-Forwarded-For but TRUSTED_PROXY_HOPS is 0, so every client counts "
                "as the proxy's address for throttling; set TRUSTED_PROXY_HOPS to the number of proxies in front")


@dataclass(frozen=True)
class LoginThrottle:
    max_failures: int
    window: timedelta = timedelta(minutes=15)

    @property
    def max_starts(self) -> int:
        return self.max_failures * 3

    def check(self, client: str) -> None:
        """Raise TooManyAttempts when the client (a throttle key) used up its failures or sign-in starts."""
        since = clock.now() - self.window
        rows = db.session.execute(
            select(AdminLoginAttempt.outcome, func.count())
            .where(AdminLoginAttempt.client == client[:64], AdminLoginAttempt.at >= since)
            .group_by(AdminLoginAttempt.outcome)
        ).all()
        counts = dict(rows)
        if counts.get(FAILED, 0) >= self.max_failures or counts.get(STARTED, 0) >= self.max_starts:
            raise TooManyAttempts("too many sign-in attempts from this browser or address; try again later",
                                  retry_after=self.window.total_seconds())

    def record(self, client: str, outcome: str) -> None:
        now = clock.now()
        db.session.add(AdminLoginAttempt(client=client[:64], at=now, outcome=outcome))
        db.session.execute(delete(AdminLoginAttempt).where(AdminLoginAttempt.client == client[:64],
                                                           AdminLoginAttempt.at < now - self.window))
        db.session.commit()
