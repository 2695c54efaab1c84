import logging

import pytest

from app import log_redaction


@pytest.mark.parametrize("line", [
    # werkzeug's request line: it decodes %22 and %20, so a quote or a space may sit inside the query
    '127.0.0.1 - - [28/Nov/2026 10:00:00] "GET /connect/callback?code=SECRETCODE&state=SECRETSTATE HTTP/1.1" 303 -',
    '127.0.0.1 - - [28/Nov/2026 10:00:00] "GET /connect/callback?x="&code=SECRETCODE&state=SECRETSTATE HTTP/1.1" 400 -',
    '127.0.0.1 - - [28/Nov/2026 10:00:00] "GET /connect/callback?x= y&code=SECRETCODE&state=SECRETSTATE '
    'HTTP/1.1" 400 -',
    # gunicorn's default access format, with a Referer that carries a query too
    '127.0.0.1 - - [28/Nov/2026:10:00:00 +0000] "GET /connect/callback?code=SECRETCODE&state=SECRETSTATE HTTP/1.1" '
    '303 0 "https://app.example.com/cb?code=SECRETCODE" "Mozilla/5.0"',
    # gunicorn.error's "Error handling request" line
    "Error handling request /connect/callback?code=SECRETCODE&state=SECRETSTATE",
])
@pytest.mark.parametrize("logger", ["werkzeug", "gunicorn.access", "gunicorn.error"])
def test_query_strings_are_redacted(caplog, logger, line):
    log_redaction.install()
    with caplog.at_level(logging.INFO, logger=logger):
        logging.getLogger(logger).info("%s", line)
    text = caplog.text
    assert "SECRETCODE" not in text and "SECRETSTATE" not in text
    assert "?[redacted]" in text and "/connect/callback" in text


def test_lines_without_a_query_are_untouched(caplog):
    log_redaction.install()
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        logging.getLogger("werkzeug").info('"%s %s %s" %s', "GET", "/healthz", "HTTP/1.1", 200)
    assert '"GET /healthz HTTP/1.1" 200' in caplog.text


def test_a_line_is_formatted_once_and_a_literal_percent_survives(caplog):
    """gunicorn logs its access line as a format and a dict of fields; the printed line is that
    substitution, made once (a path's own ``%`` is not read as a format again)."""
    log_redaction.install()
    fields = {"h": "127.0.0.1", "U": "/api/proxy/stub/100%25done", "s": "200"}
    with caplog.at_level(logging.INFO, logger="gunicorn.access"):
        logging.getLogger("gunicorn.access").info('%(h)s "%(U)s" %(s)s', fields)
    record = caplog.records[-1]
    assert record.args == () and record.getMessage() == '127.0.0.1 "/api/proxy/stub/100%25done" 200'
    assert '127.0.0.1 "/api/proxy/stub/100%25done" 200' in caplog.text
