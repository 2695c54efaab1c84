"""How a connect that did not succeed is reported: the stable ``error`` codes sent back to the app,
the plain-words page shown when there is no checked return URL, and the record an operator sees.

Every code here is part of the API an SPA integrates against (``connector_status=error&error=…``);
add codes, never rename them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import ConnectorError, InvalidState
from ..extensions import db
from ..models import record_audit

log = logging.getLogger("app.connect")

# Codes the service itself sends (a provider's own OAuth error code, e.g. access_denied, is passed on).
EXPIRED = "expired"  # the attempt is older than 10 minutes
ALREADY_USED = "already_used"  # this authorization response was used before (Back, then Allow again)
OTHER_BROWSER = "other_browser"  # the response came back to a browser that did not start the attempt
INVALID_CALLBACK = "invalid_callback"  # wrong callback path for the provider, or a wrong/missing iss
INVALID_REQUEST = "invalid_request"  # repeated or oversized parameters, a machine token, a bad form
LOGIN_REQUIRED = "login_required"  # the app's Auth0 token was missing, expired or invalid
UNKNOWN_PROVIDER = "unknown_provider"  # the provider is not (or no longer) enabled
PROVIDER_UNAVAILABLE = "provider_unavailable"  # the provider's discovery or token endpoint did not answer
TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"  # this service could not finish; try again shortly
# A per-connection parameter (a subdomain, a tenant, a realm id, an instance URL) is missing or does not
# have the form the provider entry declares: from the connect form, the provider's redirect or its token.
INVALID_CONNECTION_PARAM = "invalid_connection_param"
SCOPE_NOT_ALLOWED = "scope_not_allowed"  # the form's scopes are malformed or outside the entry's allowed_scopes


@dataclass(frozen=True)
class Page:
    heading: str
    detail: str


START_AGAIN = "Go back to the application and press Connect again."
PAGES = {
    "invalid_state": Page(
        "This connect link is not valid",
        "The address the provider sent you back to does not belong to a connect attempt started here, it "
        "was changed on the way, or it is more than 10 minutes old. Nothing was connected. " + START_AGAIN),
    INVALID_REQUEST: Page(
        "This connect link is not valid",
        "The address the provider sent you back to has repeated or oversized parameters, so this service "
        "cannot tell which connect attempt it belongs to. Nothing was connected. " + START_AGAIN),
}


START_PAGES = {
    "cross_site_request": Page(
        "This connect did not come from the application",
        "The Connect form was sent from a page this service does not know (its Origin is not an allowed "
        "application origin), so it was refused to protect your accounts. Nothing was connected. Open the "
        "application itself and press Connect there."),
    "invalid_start_form": Page(
        "This connect request is malformed",
        "The Connect form sent repeated or oversized fields, so this service cannot tell what was asked. "
        "Nothing was connected. Reload the application's page and press Connect again."),
    "invalid_return_url": Page(
        "This connect request has a return address this service does not allow",
        "The application asked to be sent back to an address that is not on this service's list of "
        "allowed return URLs (CONNECT_ALLOWED_RETURN_URLS), so you were not sent anywhere. Nothing was "
        "connected. Tell the application's operator; the reason: {reason}."),
}
PAGES.update(START_PAGES)
CODES = {"invalid_state", INVALID_REQUEST, "cross_site_request", "invalid_return_url"}  # keys that are codes


def page(key: str, status_error: type[ConnectorError] = InvalidState, reason: str = "") -> ConnectorError:
    """The error to raise when no checked return URL exists: heading and detail in plain words (the
    problem ``code`` stays the error class's own, e.g. invalid_request)."""
    text = PAGES[key]
    error = status_error(text.detail.format(reason=reason), code=key if key in CODES else None)
    error.title = text.heading
    return error


def record_rejection(code: str, *, provider: str | None, user_id: str | None = None,
                     request_id: str | None = None, stage: str = "callback") -> None:
    """An audit row for a refused connect step (committed here); like every audit event it is also
    one warning log line (``app.observability.audit``). Never a state, code, token or cookie: the
    reason, the provider and the pending request's id."""
    detail = {"reason": code, "stage": stage}
    if request_id:
        detail["request"] = request_id
    record_audit("connect", "rejected", actor_type="user", actor_id=user_id, user_id=user_id, provider=provider,
                 **detail)
    db.session.commit()
