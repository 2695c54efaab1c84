"""Benchmark 2: ``POST /connect/start`` (valid user token, allowed return URL, Origin header: the attempt
is sealed into ``state`` and a cookie, nothing is written, and a 303 to the provider comes back) vs the
bare app's ``POST /redirect`` (a 303 and nothing else), the same form body and headers, on the same
gunicorn configuration, on every database of the run."""
from __future__ import annotations

from urllib.parse import urlencode

from .common import APP_ORIGIN, RETURN_URL, http_figures, load_table

GOAL = 0.60


def run(ctx) -> None:
    bare = ctx.baseline()
    body = urlencode({"access_token": ctx.issuer.token("auth0|bench-connect"), "provider": "stub",
                      "return_to": RETURN_URL})
    headers = {"Origin": APP_ORIGIN, "Content-Type": "application/x-www-form-urlencoded"}
    kwargs = {"expect": 303, "headers": headers, "body": body}
    bare.warm("/redirect", data=body, headers=headers)
    for db in ctx.databases:
        service = ctx.service(db)
        service.warm("/connect/start", data=body, headers=headers)
        ours, base = ctx.compare((service, service.url + "/connect/start", kwargs),
                                 (bare, bare.url + "/redirect", kwargs))
        if db == ctx.primary_db:
            ctx.rss["service after connect load"] = service.worker_rss_mb()
            ctx.rss["bare app after redirect load"] = bare.worker_rss_mb()
        ratio, figures = http_figures("2 connect start", db, ours, base, "bare Flask 303", GOAL)
        ctx.add(*figures)
        ctx.section(f"""## 2. Connect start (HTTP, {db})

`POST /connect/start` (form: user token, provider, allowed `return_to`; `Origin` of the SPA): verify the JWT,
check origin and return URL, seal the attempt (AES-GCM: `state` and a per-attempt cookie; no database
write), answer 303 with the cookie. Baseline: a bare Flask endpoint answering 303 to the same request.

{load_table(ours, base)}

Ratio: **{ratio:.0%}** (goal ≥ {GOAL:.0%}). The bare 303 does no RS256 signature check; benchmark 1's
baseline (`/verify`) shows what the signature check alone costs on this box.""")
