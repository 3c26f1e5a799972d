"""Link header parsing, the token bucket, the Response model."""

import threading

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.http import Response, TokenBucket
from dictamesh_connectors.http.pagination import parse_link_header


@pytest.mark.parametrize(
    "value,expected",
    [
        (None, []),
        ("", []),
        ('<https://x/?page=2>; rel="next"', [("https://x/?page=2", {"rel": "next"})]),
        (
            '<https://x/?a=1,2>; rel="next last"; title="a, b; c", <https://x/p>;rel=prev',
            [
                ("https://x/?a=1,2", {"rel": "next last", "title": "a, b; c"}),
                ("https://x/p", {"rel": "prev"}),
            ],
        ),
        ("garbage, <https://x/2>; REL=Next", [("https://x/2", {"rel": "Next"})]),
        ('<https://x/2>; rel="ne\\"xt"', [("https://x/2", {"rel": 'ne"xt'})]),
        ("<unterminated", []),
    ],
)
def test_parse_link_header(value, expected):
    assert parse_link_header(value) == expected


class Clock:
    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.slept.append(s)


def test_token_bucket_burst_then_rate():
    clock = Clock()
    bucket = TokenBucket(10, burst=3, clock=clock, sleep=clock.sleep)
    waits = [bucket.reserve() for _ in range(5)]
    assert waits[:3] == [0, 0, 0]
    assert waits[3] == pytest.approx(0.1) and waits[4] == pytest.approx(0.2)
    clock.now = 10.0  # refills, capped at the burst
    assert [bucket.reserve() for _ in range(3)] == [0, 0, 0]
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_token_bucket_is_shared_fairly_by_threads():
    clock = Clock()
    bucket = TokenBucket(100, burst=1, clock=clock, sleep=clock.sleep)
    waits = []
    lock = threading.Lock()

    def take():
        for _ in range(50):
            w = bucket.reserve()
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 400 reservations at 100/s with no time passing: waits 0, 0.01, ..., 3.99 exactly once.
    assert sorted(round(w, 6) for w in waits) == [round(i / 100, 6) for i in range(400)]


def test_response_text_json_and_encoding():
    r = Response(200, {"Content-Type": "text/plain; charset=latin-1"}, "café".encode("latin-1"))
    assert r.text == "café" and r.encoding == "iso8859-1"
    assert Response(200, {}, b"\xff").text == "\ufffd"
    assert Response(200, {"content-type": "text/plain; charset=nope"}, b"a").encoding == "utf-8"
    with pytest.raises(ConnectorError) as info:
        Response(200, {}, b"{not json").json()
    assert info.value.code is ErrorCode.SERIALIZATION_ERROR
    assert list(Response(204, {}, b"")) == []
    assert "200" in repr(r) and r.content == r.body
