import time

import pytest
import requests

from app import http
from tests.drip_server import DripServer


@pytest.fixture
def drip():
    with DripServer(body_bytes=200, interval=0.05) as server:  # 10 s in all, 50 ms per byte
        yield server


def test_a_whole_answer_must_arrive_within_connect_plus_read_time(drip):
    started = time.monotonic()
    with pytest.raises(requests.Timeout, match="did not arrive in time"):
        http.new_session().get(drip.url, timeout=(0.5, 1.0))  # each read is quick; the whole is not
    assert time.monotonic() - started < 5


def test_a_streamed_answer_is_left_to_its_reader(drip):
    response = http.new_session().get(drip.url, timeout=(0.5, 1.0), stream=True)
    assert response.status_code == 200
    with pytest.raises(http.BodyTooLarge):
        http.read_body(response, deadline=None, limit=3)
    assert response.raw.closed


def test_a_prompt_answer_reads_as_usual(stub):
    response = http.new_session().get(stub.url + "/nothing-here", timeout=(1, 2))
    assert (response.status_code, response.text) == (404, "not found")


def test_post_is_held_to_the_whole_exchange_deadline(drip):
    started = time.monotonic()
    with pytest.raises(requests.Timeout, match="did not arrive in time"):
        http.post(drip.url, "a=1", {}, (0.5, 1.0))
    assert time.monotonic() - started < 5


def test_post_keeps_no_cookie_from_one_call_to_the_next():
    """The session ``post`` sends through is shared by every user's token requests: a cookie one
    answer sets must never reach the next call."""
    import responses

    with responses.RequestsMock() as mock:
        mock.post("https://provider.test/token", json={}, headers={"Set-Cookie": "sid=alice; Path=/"})
        for _ in range(2):
            http.post("https://provider.test/token", "a=1", {"Content-Type": "application/x-www-form-urlencoded"},
                      (1, 1))
        sent = [call.request for call in mock.calls]
    assert [r.headers.get("Cookie") for r in sent] == [None, None] and len(http._SHARED.cookies) == 0
    assert sent[0].headers["User-Agent"] == http.USER_AGENT and sent[0].body == "a=1"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_post_does_not_follow_a_redirect(status):
    """A token request's body holds credentials: a redirect is answered as it came, nothing is sent on."""
    import responses

    with responses.RequestsMock() as mock:
        mock.post("https://provider.test/token", status=status, headers={"Location": "https://elsewhere.test/steal"})
        response = http.post("https://provider.test/token", "client_secret=s3cret",
                             {"Content-Type": "application/x-www-form-urlencoded"}, (1, 1))
        assert [call.request.url for call in mock.calls] == ["https://provider.test/token"]
    assert response.status_code == status
