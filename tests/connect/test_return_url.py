import pytest

from app.connect.return_url import ReturnUrlPolicy
from app.errors import ReturnUrlRejected

POLICY = ReturnUrlPolicy(["https://app.test/settings/integrations", "http://127.0.0.1:3000/"])


@pytest.mark.parametrize("url", [
    "https://app.test/settings/integrations",
    "https://app.test/settings/integrations/",
    "https://app.test/settings/integrations/github",
    "https://app.test/settings/integrations?tab=1",
    "https://APP.test/settings/integrations",
    "HTTPS://app.test/settings/integrations",
    "https://app.test:443/settings/integrations",
    "http://127.0.0.1:3000/",
    "http://127.0.0.1:3000",
    "http://127.0.0.1:3000/anything/below",
])
def test_allowed_urls_pass(url):
    assert POLICY.check(url) == url


@pytest.mark.parametrize("url,reason", [
    ("https://evil.test/settings/integrations", "allowlist"),
    ("https://app.test@evil.test/settings/integrations", "user information"),
    ("https://user:pw@app.test/settings/integrations", "user information"),
    ("https://app.test\\@evil.test/settings/integrations", "backslash"),
    ("https:\\\\evil.test", "backslash"),
    ("//evil.test/settings/integrations", "protocol-relative"),
    ("https:evil.test", "absolute"),
    ("https:/evil.test", "absolute"),
    ("/settings/integrations", "http or https"),
    ("https://app.test/settings/integrations/%2f%2fevil.test", "encoded slashes"),
    ("https://app.test/settings/integrations%2F..%2Fadmin", "encoded slashes"),
    ("https://app.test/settings/integrations/../../admin", "dot segments"),
    ("https://app.test/settings/integrations/%2e%2e/admin", "dot segments"),
    ("https://app.test/settings/integrations/%2E%2E/admin", "dot segments"),
    ("https://app.test/settings/integrations/%252e%252e/admin", "dot segments"),
    ("https://app.test/settings/integrations/./x", "dot segments"),
    ("https://app\u3002test/settings/integrations", "ASCII"),
    ("https://app\uff0etest/settings/integrations", "ASCII"),
    ("https://app.test:8443/settings/integrations", "allowlist"),
    ("http://app.test/settings/integrations", "allowlist"),
    ("javascript:alert(1)//https://app.test/settings/integrations", "http or https"),
    ("JaVaScRiPt:alert(1)", "http or https"),
    ("data:text/html,hi", "http or https"),
    ("https://app.test/settings/integrationsevil", "allowlist"),
    ("https://app.test/settings", "allowlist"),
    ("https://app.test/settings/integrations#frag", "fragment"),
    ("https://app.test/settings/integrations\n", "control"),
    ("https://app.test/settings/integrations\t", "control"),
    (" https://app.test/settings/integrations", "control"),
    ("https://app.test/settings/integrations/" + "a" * 2100, "longer than 2048"),
    ("https://app.test:99999/settings/integrations", "invalid port"),
    ("https://app.test./settings/integrations", "allowlist"),
    ("https://app.test.evil.test/settings/integrations", "allowlist"),
    ("", "required"),
    ("https://[app.test/x", "not a valid URL"),
    ("https://app.test]/settings/integrations", "not a valid URL"),
    ("https://[::1/settings/integrations", "not a valid URL"),
])
def test_hostile_urls_are_rejected_with_reason(url, reason):
    with pytest.raises(ReturnUrlRejected) as info:
        POLICY.check(url)
    assert reason in info.value.description


def test_origin_check_uses_allowed_origins():
    assert POLICY.origin_allowed("https://app.test")
    assert POLICY.origin_allowed("http://127.0.0.1:3000")
    for origin in ("https://evil.test", "null", None, "", "http://app.test", "https://app.test:444",
                   "https://app.test/path", "http://127.0.0.1:3001", "https://app.test@evil.test",
                   "https://[x", "https://[app.test", "https://app.test]"):
        assert not POLICY.origin_allowed(origin)


@pytest.mark.parametrize("bad", ["ftp://x.test/", "https://x.test/#f", "https://x.test/?q=1", "//x.test/"])
def test_invalid_allowlist_entries_fail_at_start(bad):
    with pytest.raises(ValueError):
        ReturnUrlPolicy([bad])


def test_kept_answers_are_the_same_answers_and_per_policy():
    """A repeated check (answered from the policy's kept answers) decides as the first one did."""
    other = ReturnUrlPolicy(["https://evil.test/"])
    for _ in range(2):
        assert POLICY.check("https://app.test/settings/integrations/x") == "https://app.test/settings/integrations/x"
        with pytest.raises(ReturnUrlRejected, match="allowlist"):
            POLICY.check("https://evil.test/settings/integrations")
        with pytest.raises(ReturnUrlRejected, match="backslash"):
            POLICY.check("https:\\\\evil.test")
        assert other.check("https://evil.test/settings/integrations") == "https://evil.test/settings/integrations"
        assert POLICY.origin_allowed("https://app.test") and not other.origin_allowed("https://app.test")
        assert other.origin_allowed("https://evil.test") and not POLICY.origin_allowed("https://evil.test")
