"""URL templates: placeholders in order, the https rule before and after substitution."""
import pytest

from app.providers.url_template import check_url_template, is_secure_url, placeholders, short


def test_placeholders_are_listed_in_order():
    assert placeholders("https://{subdomain}.z.test/{client_id}/x/{subdomain}") == ("subdomain", "client_id",
                                                                                   "subdomain")


@pytest.mark.parametrize("url,secure", [
    ("https://p.test/a", True), ("http://127.0.0.1:9/a", True), ("http://localhost/a", True),
    ("http://[::1]/a", True), ("http://p.test/a", False), ("https://u@p.test/a", False),
    ("https://p.test/a#f", False), ("https://p.test:99999/a", True), ("https://[bad/a", False),
    ("https://p.test/\x00", False), ("javascript:alert(1)", False), ("https://evil.com\\@p.test", False),
])
def test_secure_urls_are_https_or_loopback_http(url, secure):
    assert is_secure_url(url) is secure


def test_a_value_that_adds_a_fragment_or_userinfo_is_not_secure():
    assert not is_secure_url("https://a.zendesk.com#.evil/")
    assert not is_secure_url("https://evil.test@a.zendesk.com/")


def test_a_template_is_checked_with_harmless_values():
    assert check_url_template("{instance_url}/services/data/") == "{instance_url}/services/data/"
    with pytest.raises(ValueError, match="https URL"):
        check_url_template("http://{host}/oauth")
    with pytest.raises(ValueError, match="malformed placeholder"):
        check_url_template("https://p.test/{{x}}")


def test_short_quotes_a_prefix():
    assert short("x" * 100, 5) == "'xxxxx…'" and short("a\nb") == "'a\\nb'"
