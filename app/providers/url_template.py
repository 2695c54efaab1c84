"""Provider URLs with ``{placeholders}``: their syntax and the https rule, before and after substitution."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from .spec import LOOPBACK

PLACEHOLDER_RE = re.compile(r"\{([a-z][a-z0-9_]{0,31})\}")
MAX_URL_LENGTH = 2048
# What a placeholder stands for when a template is checked: a harmless host label or path segment, or a
# whole https origin for a template that starts with one (Salesforce's "{instance_url}/services/data/").
_HARMLESS = "x"
_HARMLESS_ORIGIN = "https://placeholder.invalid"
# JSON Schema hint for editors (the connector checks more: userinfo, fragment, placeholders)
URL_JSON_PATTERN = r"^(https://|http://(127\.0\.0\.1|localhost|\[::1\])([:/]|$)|\{)"


def short(value: object, limit: int = 40) -> str:
    """A quoted prefix of untrusted input, safe to put in an error message."""
    text = str(value)
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


def placeholders(template: str) -> tuple[str, ...]:
    """The names of the ``{placeholders}`` in a URL template, in order."""
    return tuple(PLACEHOLDER_RE.findall(template))


def is_secure_url(url: str) -> bool:
    """https, or http on a loopback host; a host; no userinfo, no fragment, no whitespace or backslash."""
    if len(url) > MAX_URL_LENGTH or re.search(r"[\x00-\x20\x7f\\]", url):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    secure = parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK)
    return bool(secure and host and not parts.fragment and "@" not in parts.netloc)


def check_url_template(template: str) -> str:
    """Refuse a URL template that is not an https URL (http only on loopback) once its placeholders are
    replaced by harmless values, or whose braces are not well-formed placeholders."""
    rest = PLACEHOLDER_RE.sub("", template)
    if "{" in rest or "}" in rest:
        raise ValueError(f"has a malformed placeholder (use {{name}} with a declared param): {short(template)}")
    sample = template
    if sample.startswith("{") and PLACEHOLDER_RE.match(sample):
        sample = PLACEHOLDER_RE.sub(_HARMLESS_ORIGIN, sample, count=1)
    sample = PLACEHOLDER_RE.sub(_HARMLESS, sample)
    if not is_secure_url(sample):
        raise ValueError("must be an https URL (http only on loopback) without userinfo or fragment, got "
                         + short(template))
    return template
