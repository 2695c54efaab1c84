"""Who may call an API view. Every view under ``/api/`` declares it, or it is refused.

    @bp.get("/connections")
    @user_access                          # an Auth0 user's token
    def connections(): ...

    @bp.post("/<user_id>/token")
    @machine_access("read:tokens")         # a client-credentials token carrying this permission
    def user_token(user_id): ...

``check_declared`` runs in ``create_app``: a view without a declaration stops the start-up. Should one
slip through anyway (a route added later), ``enforce`` answers it 401 at request time. ``enforce`` also
does the declared check before the view runs, so a view cannot forget to call it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, current_app, request

from ..errors import InvalidToken
from .auth import require_machine, require_user

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
ATTRIBUTE = "connector_access"


@dataclass(frozen=True)
class Access:
    kind: str  # "user", "machine" or "public"
    permission: str | None = None


def _declare(view: Callable, access: Access) -> Callable:
    setattr(view, ATTRIBUTE, access)
    return view


def user_access(view: Callable) -> Callable:
    """The view serves a signed-in user (an Auth0 user access token)."""
    return _declare(view, Access("user"))


def machine_access(permission: str) -> Callable[[Callable], Callable]:
    """The view serves a machine-to-machine client whose token carries ``permission``."""
    return lambda view: _declare(view, Access("machine", permission))


def public_access(view: Callable) -> Callable:
    """The view needs no token (the OpenAPI document)."""
    return _declare(view, Access("public"))


def declared_access(view: Callable) -> Access | None:
    return getattr(view, ATTRIBUTE, None)


def check_declared(app: Flask) -> None:
    """At start-up: every view under /api/ declares who may call it."""
    missing = sorted({rule.endpoint for rule in app.url_map.iter_rules() if rule.rule.startswith(API_PREFIX)
                      and declared_access(app.view_functions[rule.endpoint]) is None})
    if missing:
        raise RuntimeError("API views without an access declaration (user_access, machine_access or "
                           f"public_access): {', '.join(missing)}")


def enforce() -> None:
    """Before every request: an API view runs only for the callers it declares."""
    rule = request.url_rule
    if rule is None or not rule.rule.startswith(API_PREFIX) or request.method == "OPTIONS":
        return  # routing errors answer for themselves; CORS preflights carry no token
    access = declared_access(current_app.view_functions[request.endpoint])
    if access is None:
        log.error("API view %s declares no access; refused", request.endpoint)
        raise InvalidToken("this endpoint is not available")
    if access.kind == "user":
        require_user()
    elif access.kind == "machine":
        require_machine(access.permission)


def init_app(app: Flask) -> None:
    check_declared(app)
    app.before_request(enforce)
