"""Templated provider URLs: ``https://{subdomain}.zendesk.com/oauth/tokens`` filled with a connection's
validated parameters.

A value reaches a URL only after it full-matches the pattern its provider entry declares for it
(``bind``), and the rendered URL is checked again: still https (http only on loopback), no user
info or fragment, and every placeholder stayed within the part of the URL it was written in (a
host placeholder yields host characters only, a path placeholder one path segment, a placeholder
at the very start a bare origin). Built-ins: ``{client_id}`` and ``{token}``, percent-encoded.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from string import Formatter
from urllib.parse import quote

from ..errors import InvalidRequest
from .spec import ConnectionParam, ProviderSpec
from .url_template import is_secure_url

BUILT_INS = ("client_id", "token")
MAX_VALUE_LENGTH = 255
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"{_LABEL}(?:\.{_LABEL})*"  # a DNS name or an IPv4 address, nothing else (no ":", "@", "/")
_ORIGIN = rf"https?://{_HOST}(?::[0-9]{{1,5}})?"
_SEGMENT = r"(?!\.\.?(?:[/?#]|$))[^/?#\\\s]+"  # one path segment, not "." or ".."
_QUERY_VALUE = r"[^&#\\\s]+"


class InvalidConnectionParam(InvalidRequest):
    """A per-connection parameter is missing, or does not match what its provider entry declares.
    The message names the parameter, never its value (it is untrusted input)."""

    code, title = "invalid_connection_param", "A connection parameter is missing or invalid"


class TemplateError(ValueError):
    """A URL template is malformed (a format spec, a conversion, an indexed field, an unknown name)."""


def placeholders(template: str) -> tuple[str, ...]:
    """The ``{name}`` fields of ``template``, in order; ``{{`` and ``}}`` are literal braces."""
    names = []
    try:
        parsed = list(Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"malformed URL template ({exc})") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion or not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name):
            raise TemplateError(f"a URL placeholder must be a plain {{name}}, got {{{name[:40]}}}")
        names.append(name)
    return tuple(names)


class ParamValues(Mapping[str, str]):
    """Per-connection values that each full-matched their declared pattern (built by ``bind``)."""

    def __init__(self, checked: dict[str, tuple[str, str]]):
        self._checked = dict(checked)  # name -> (value, pattern)

    def __getitem__(self, name: str) -> str:
        return self._checked[name][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._checked)

    def __len__(self) -> int:
        return len(self._checked)

    def pattern(self, name: str) -> str:
        return self._checked[name][1]

    def as_dict(self) -> dict[str, str]:
        return {name: value for name, (value, _) in self._checked.items()}


def check_value(param: ConnectionParam, value: object) -> str:
    """``value`` if it is a string that full-matches ``param.pattern``; else ``InvalidConnectionParam``."""
    if not isinstance(value, str) or not value or len(value) > MAX_VALUE_LENGTH:
        raise InvalidConnectionParam(f"the connection parameter {param.name!r} is missing or not a short string")
    if not re.fullmatch(param.pattern, value):
        raise InvalidConnectionParam(f"the connection parameter {param.name!r} does not have the expected form"
                                     + (f" ({param.description})" if param.description else ""))
    return value


def bind(declared: tuple[ConnectionParam, ...], values: Mapping[str, object] | None, *,
         sources: tuple[str, ...] | None = None, partial: bool = False) -> ParamValues:
    """Check ``values`` against the ``declared`` params (of the given ``sources``; default all):
    a required one must be there (unless ``partial``: some are not known yet), an optional one may
    be absent, an undeclared one is refused."""
    values = values or {}
    wanted = {p.name: p for p in declared if sources is None or p.source in sources}
    unknown = sorted(name for name in values if name not in wanted)
    if unknown:
        raise InvalidConnectionParam(f"unknown connection parameter {str(unknown[0])[:32]!r}")
    checked = {}
    for name, param in wanted.items():
        if values.get(name) in (None, ""):
            if param.required and not partial:
                raise InvalidConnectionParam(f"the connection parameter {name!r} is required")
            continue
        checked[name] = (check_value(param, values[name]), param.pattern)
    return ParamValues(checked)


def render(template: str, values: ParamValues, *, client_id: str | None = None, token: str | None = None) -> str:
    """``template`` with its placeholders filled; ``InvalidConnectionParam`` when a value is missing or
    no longer matches its pattern, or when the result would leave the template's shape."""
    names = placeholders(template)
    if not names:
        return template
    if not isinstance(values, ParamValues):
        raise TypeError("render takes ParamValues from bind(), not raw values")
    filled: dict[str, str] = {}
    for name in dict.fromkeys(names):
        if name in BUILT_INS:
            builtin = client_id if name == "client_id" else token
            if builtin is None:
                raise TemplateError(f"the URL template needs {{{name}}}, which is not available here")
            filled[name] = quote(builtin, safe="")
        elif name in values:
            if not re.fullmatch(values.pattern(name), values[name]):
                raise InvalidConnectionParam(f"the connection parameter {name!r} does not have the expected form")
            filled[name] = values[name]
        else:
            raise InvalidConnectionParam(f"the connection parameter {name!r} is required")
    url = template.format(**filled)
    if not re.fullmatch(_shape(template), url) or not is_secure_url(url):
        raise InvalidConnectionParam("a connection parameter takes the provider's URL out of its declared shape")
    return url


def _shape(template: str) -> str:
    """A regex of the URLs ``template`` may render to: literals as written, each placeholder limited
    to the part of the URL it sits in."""
    pattern, text = [], ""
    for literal, name, _spec, _conversion in Formatter().parse(template):
        pattern.append(re.escape(literal))
        text += literal
        if name is None:
            continue
        if "://" not in text:
            pattern.append(_ORIGIN)  # "{instance_url}/services/data/": a bare origin
            text += "https://x"
            continue
        if "/" not in text.split("://", 1)[1]:
            pattern.append(_HOST)  # in the authority
        elif "?" not in text:
            pattern.append(_SEGMENT)
        else:
            pattern.append(_QUERY_VALUE)
        text += "x"
    return "".join(pattern)


def stored(spec: ProviderSpec, values: Mapping[str, object] | None) -> ParamValues:
    """A connection's (or a connect in progress') params, each checked again against what the entry
    declares now; one a URL needs but that is absent fails in ``render``."""
    declared = {p.name for p in spec.params}
    return bind(spec.params, {k: v for k, v in (values or {}).items() if k in declared}, partial=True)


def url(spec: ProviderSpec, template: str | None, values: Mapping[str, object] | None, *,
        token: str | None = None) -> str | None:
    """``template`` (one of ``spec``'s URLs) rendered for a connection with ``values``."""
    if template is None:
        return None
    if not placeholders(template):
        return template
    bound = values if isinstance(values, ParamValues) else stored(spec, values)
    return render(template, bound, client_id=spec.client_id, token=token)
