"""pt_http against a real HTTP server on 127.0.0.1: rate limits, retries, error translation."""

from __future__ import annotations

import random
import socket

import pytest

from pt_errors import ExchangeAuthError, PermanentExchangeError, TemporaryExchangeError
from pt_http import HttpClient, RateLimiter, RetryPolicy, retry_after_seconds
from tests.fake_http import FakeServer, Fault, Reply, html_429_page


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def server():
    with FakeServer() as srv:
        srv.route("GET", "/ok", lambda r: Reply.json({"value": r.param("x", "none")}))
        yield srv


def client(server: FakeServer, clock: FakeClock, **kw) -> HttpClient:
    return HttpClient(
        "testvenue",
        server.base_url,
        timeout=kw.pop("timeout", 2.0),
        retry=kw.pop("retry", RetryPolicy(attempts=3, base_delay=0.5, max_delay=10, jitter=0)),
        sleep=clock.sleep,
        rng=random.Random(1),
        **kw,
    )


def test_plain_get_with_params(server: FakeServer) -> None:
    assert client(server, FakeClock()).get_json("/ok", {"x": "1"}) == {"value": "1"}
    assert server.requests_to("/ok")[0].param("x") == "1"


def test_429_with_retry_after_waits_what_the_venue_asked(server: FakeServer) -> None:
    clock = FakeClock()
    server.fail(Fault("/ok", reply=Reply.json({"code": -1003}, 429, {"Retry-After": "3"})))
    assert client(server, clock).get_json("/ok") == {"value": "none"}
    assert clock.slept == [3.0]  # more than the 0.5 s backoff: the venue's hint wins


def test_kucoin_reset_header_is_milliseconds(server: FakeServer) -> None:
    clock = FakeClock()
    headers = {"gw-ratelimit-reset": "1500", "gw-ratelimit-remaining": "0"}
    server.fail(Fault("/ok", reply=Reply.json({"code": "429000"}, 429, headers)))
    client(server, clock).get_json("/ok")
    assert clock.slept == [1.5]


def test_a_ban_longer_than_the_cap_is_not_slept_through(server: FakeServer) -> None:
    clock = FakeClock()
    server.fail(Fault("/ok", reply=Reply.json({"code": -1003}, 418, {"Retry-After": "7200"})))
    with pytest.raises(TemporaryExchangeError, match="HTTP 418") as info:
        client(server, clock).get_json("/ok")
    assert info.value.retry_after == 7200
    assert clock.slept == []  # raised at once: the manager can ask another venue


def test_5xx_backs_off_exponentially_then_gives_up(server: FakeServer) -> None:
    clock = FakeClock()
    server.fail(Fault("/ok", times=5, reply=Reply.json({"msg": "boom"}, 500)))
    with pytest.raises(TemporaryExchangeError, match="gave up after 3 attempts") as info:
        client(server, clock).get_json("/ok")
    assert "HTTP 500: boom" in str(info.value)
    assert clock.slept == [0.5, 1.0]
    assert len(server.requests_to("/ok")) == 3


def test_jitter_stays_within_its_band() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=100, jitter=0.25)
    rng = random.Random(7)
    delays = [policy.delay(3, None, rng) for _ in range(200)]
    assert min(delays) >= 6.0 and max(delays) <= 10.0 and len(set(delays)) > 100


def test_html_429_body_is_a_temporary_error_not_a_crash(server: FakeServer) -> None:
    server.fail(Fault("/ok", times=3, reply=html_429_page()))
    with pytest.raises(TemporaryExchangeError, match="HTTP 429: <html>"):
        client(server, FakeClock()).get_json("/ok")


def test_truncated_and_non_json_bodies_are_retried(server: FakeServer) -> None:
    server.fail(Fault("/ok", reply=Reply(200, b"<html>maintenance</html>", {}, "text/html")))
    server.fail(Fault("/ok", truncate=5))
    clock = FakeClock()
    assert client(server, clock).get_json("/ok") == {"value": "none"}
    assert len(clock.slept) == 2


def test_slow_answer_times_out(server: FakeServer) -> None:
    server.fail(Fault("/ok", times=2, delay=0.6))
    c = client(server, FakeClock(), timeout=0.2, retry=RetryPolicy(attempts=2, base_delay=0.01))
    with pytest.raises(TemporaryExchangeError, match=r"no answer within 0\.2 s"):
        c.get_json("/ok")


@pytest.mark.parametrize(
    ("status", "body", "error", "words"),
    [
        (401, {"message": "bad key"}, ExchangeAuthError, "check the API key"),
        (451, {"code": 0, "msg": "restricted location"}, PermanentExchangeError, "refuses this"),
        (400, {"code": -1121, "msg": "Invalid symbol."}, PermanentExchangeError, "Invalid symbol."),
        (404, {"error": "NOT_FOUND"}, PermanentExchangeError, "HTTP 404: NOT_FOUND"),
        (
            400,
            {"errors": [{"id": "invalid_request", "message": "bad granularity"}]},
            PermanentExchangeError,
            "HTTP 400: bad granularity",
        ),
    ],
)
def test_permanent_and_auth_errors_are_not_retried(
    server: FakeServer, status: int, body: dict[str, object], error: type[Exception], words: str
) -> None:
    clock = FakeClock()
    server.fail(Fault("/ok", reply=Reply.json(body, status)))
    with pytest.raises(error, match=words):
        client(server, clock).get_json("/ok")
    assert clock.slept == [] and len(server.requests_to("/ok")) == 1


def test_connection_refused_is_temporary() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = HttpClient("gone", f"http://127.0.0.1:{port}", retry=RetryPolicy(attempts=1))
    with pytest.raises(TemporaryExchangeError, match="connection failed"):
        c.get_json("/x")


def test_venue_check_can_reject_a_200_answer(server: FakeServer) -> None:
    def check(body: object, response: object) -> None:
        raise PermanentExchangeError("venue said no")

    with pytest.raises(PermanentExchangeError, match="venue said no"):
        client(server, FakeClock()).get_json("/ok", check=check)


def test_token_bucket_allows_a_burst_then_paces() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire() for _ in range(5)]
    assert waits[:3] == [0, 0, 0]
    assert waits[3:] == pytest.approx([0.5, 0.5])
    clock.now += 10  # idle time refills the bucket, but only up to the burst
    assert [limiter.acquire() for _ in range(4)] == pytest.approx([0, 0, 0, 0.5])


def test_rate_limiter_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        RateLimiter(rate=0, burst=1)


def test_retry_after_parsing() -> None:
    assert retry_after_seconds({"Retry-After": "2"}) == 2.0
    assert retry_after_seconds({"gw-ratelimit-reset": "250"}) == 0.25
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None
