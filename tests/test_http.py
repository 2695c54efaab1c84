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
