"""Keep codes, state and tokens out of access logs.

The dev server (werkzeug) and gunicorn's access and error logs print the request line;
an OAuth callback's query string carries the authorization code and state, so every
query string in their messages is replaced. (A custom gunicorn access-log format that
prints the query on its own, ``%(q)s``, defeats this: do not use it.)
"""
from __future__ import annotations

import logging
import re

# In a request line the query runs up to " HTTP/" (werkzeug decodes %22 and %20 into the path it logs,
# so a quote or a space does not end it); elsewhere (a Referer, an error message) up to whitespace.
QUERY_RE = re.compile(r"\?(?:(?! HTTP/).)*(?= HTTP/\d)|\?\S*")


class RedactQueryStrings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            message = QUERY_RE.sub("?[redacted]", message)
        # The message as read here is the one printed: the handler's formatter does not format it again
        # (gunicorn's access line is one ``%`` substitution of some twenty fields per request).
        record.msg, record.args = message, ()
        return True


def install() -> None:
    for name in ("werkzeug", "gunicorn.access", "gunicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQueryStrings) for f in logger.filters):
            logger.addFilter(RedactQueryStrings())
