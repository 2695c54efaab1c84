"""Keep codes, state and tokens out of access logs.

The dev server (werkzeug) and gunicorn's access log print the request line; an
OAuth callback's query string carries the authorization code and state, so the
query string of every logged request line is replaced.
"""
from __future__ import annotations

import logging
import re

QUERY_RE = re.compile(r"\?[^\s\"]*")


class RedactQueryStrings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = QUERY_RE.sub("?[redacted]", message), ()
        return True


def install() -> None:
    for name in ("werkzeug", "gunicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQueryStrings) for f in logger.filters):
            logger.addFilter(RedactQueryStrings())
