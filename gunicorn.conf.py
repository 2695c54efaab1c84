"""gunicorn settings for the connector. ``gunicorn wsgi:app`` run from the project root loads this file.

The one guarantee that matters: gunicorn must never kill a worker while a refresh it started may still
finish. A provider that rotates refresh tokens kills the grant when an old one is reused, so a refresh
killed after the provider answered, but before the new token is stored, loses the connection. A worker
is killed (SIGKILL) when it misses ``timeout`` (a sync worker busy with one request; a gthread worker
whose main loop stalls) and when a graceful stop (deploy, HUP, ``max_requests``) outlasts
``graceful_timeout``. Both are therefore at least the longest refresh:

    2 x (PROVIDER_CONNECT_TIMEOUT + PROVIDER_READ_TIMEOUT + 5 s)
                                                       waiting out another caller's refresh lease, then
                                                       holding our own (app.vault.longest_refresh_seconds)
  + 10 s                                               the vault's own margins (lease wait, store overrun)
  + VAULT_STORE_DEADLINE                               how long the vault keeps trying to store its result
  + 5 s                                                margin

At start-up (``on_starting``) a smaller ``--timeout`` or ``--graceful-timeout`` given on the command line
or in GUNICORN_CMD_ARGS is raised to that figure, with a warning naming both values: the service starts,
and never with a setting that can lose grants. ``timeout = 0`` (gunicorn's "never") is left alone.
"""
from __future__ import annotations

import math
import os

from app.observability.logs import gunicorn_logconfig

DEFAULTS = {"PROVIDER_CONNECT_TIMEOUT": 3.05, "PROVIDER_READ_TIMEOUT": 10.0, "VAULT_STORE_DEADLINE": 120.0}
MARGIN = 5


def _seconds(name: str) -> float:
    # Malformed values are the application's to report (it refuses to start); here the default stands.
    try:
        value = float(os.environ.get(name, "").strip() or DEFAULTS[name])
    except ValueError:
        return DEFAULTS[name]
    return value if math.isfinite(value) and value > 0 else DEFAULTS[name]


def longest_refresh() -> int:
    """Seconds, rounded up, that a request doing a refresh may take before its result is stored."""
    exchange = _seconds("PROVIDER_CONNECT_TIMEOUT") + _seconds("PROVIDER_READ_TIMEOUT")
    return math.ceil(2 * (exchange + 5) + 10 + _seconds("VAULT_STORE_DEADLINE")) + MARGIN


worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = longest_refresh()
graceful_timeout = longest_refresh()
keepalive = 5
# LOG_FORMAT=json: gunicorn's own lines (error log, access log) in the same JSON shape as the app's.
logconfig_dict = gunicorn_logconfig(os.environ.get("LOG_FORMAT", "text"))

# The access log never prints a query string: an OAuth callback's carries the authorization code and
# state. %(U)s is the path alone (not %(r)s, the request line, nor %(q)s, the query); the application
# also redacts queries in any gunicorn log message (a Referer's, an error's), see app/log_redaction.py.
accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'
errorlog = "-"


def on_starting(server) -> None:
    """Refuse to run with a worker timeout shorter than a refresh: raise it, and say so."""
    required = longest_refresh()
    for setting in ("timeout", "graceful_timeout"):
        current = getattr(server.cfg, setting)
        if setting == "timeout" and current == 0:
            continue
        if current < required:
            server.cfg.set(setting, required)
            server.log.warning(
                "%s raised from %s to %s seconds: it must exceed the longest refresh (2 x (PROVIDER_CONNECT_TIMEOUT "
                "+ PROVIDER_READ_TIMEOUT + 5) + 10 + VAULT_STORE_DEADLINE + %s), or a killed worker can lose a "
                "rotated refresh token", setting, current, required, MARGIN)
    server.timeout = server.cfg.timeout  # the arbiter copied it before this hook ran
