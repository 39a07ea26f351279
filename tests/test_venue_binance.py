"""BinanceVenue over real HTTP against the loopback Binance fake serving bundled candles."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import requests

import pt_ohlcv
from pt_candles import find_gaps
from pt_errors import PermanentExchangeError, TemporaryExchangeError
from pt_http import HttpClient, RateLimiter, RetryPolicy
from pt_types import HOUR, WEEK, WEEK_ANCHOR, Candles, Gap, Timeframe
from pt_venue_binance import BinanceVenue
from tests.fake_binance import FakeBinance
from tests.fake_http import Fault, Reply, html_429_page

KLINES = "/api/v3/klines"
TICKER = "/api/v3/ticker/24hr"


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


JAN1 = ts("2024-01-01 00:00")
NOW = JAN1 + 1800  # inside the 2024-01-01 00:00 hourly candle


def window(c: Candles, start: int, end: int) -> Candles:
    lo, hi = np.searchsorted(c.time, start), np.searchsorted(c.time, end)
    return c.slice(int(lo), int(hi))


def same(a: Candles, b: Candles) -> bool:
    cols = ("time", "open", "high", "low", "close", "volume")
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in cols)


@pytest.fixture(scope="module")
def btc() -> Candles:
    return pt_ohlcv.load_bundled("BTC")


@pytest.fixture(scope="module")
def recent(btc: Candles) -> dict[str, Candles]:
    """A few months of BTC and ETH: enough for weekly candles, small enough to be fast."""
    start, end = ts("2023-06-01 00:00"), ts("2024-03-01 00:00")
    return {coin: window(pt_ohlcv.load_bundled(coin), start, end) for coin in ("BTC", "ETH")}


@pytest.fixture
def fake(recent: dict[str, Candles]) -> Iterator[FakeBinance]:
    with FakeBinance(recent, now=NOW) as server:
        yield server


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_venue(
    fake: FakeBinance,
    *,
    now: float = NOW,
    attempts: int = 3,
    timeout: float = 2.0,
    sleeps: Sleeps | None = None,
    session: requests.Session | None = None,
) -> BinanceVenue:
    sleep = sleeps if sleeps is not None else Sleeps()
    http = HttpClient(
        "binance",
        fake.base_url,
        timeout=timeout,
        limiter=RateLimiter(1000, 1000),
        retry=RetryPolicy(attempts=attempts, base_delay=0.001, max_delay=5.0),
        session=session,
        sleep=sleep,
    )
    return BinanceVenue(fake.base_url, clock=lambda: now, http=http, sleep=sleep)


# ---------------------------------------------------------------------- candles


def test_known_candle_is_parsed_exactly_and_asked_for_in_milliseconds(fake: FakeBinance) -> None:
    c = make_venue(fake).candles("btc", Timeframe.H1, JAN1 - 3 * HOUR, JAN1 + HOUR)
    assert c.time.tolist() == [JAN1 - 3 * HOUR, JAN1 - 2 * HOUR, JAN1 - HOUR, JAN1]
    assert (c.open[-1], c.high[-1], c.low[-1], c.close[-1], c.volume[-1]) == (
        42283.58,
        42554.57,
        42261.02,
        42475.23,
        1271.68108,
    )
    (request,) = fake.requests_to(KLINES)
    assert {k: v[0] for k, v in request.query.items()} == {
        "symbol": "BTCUSDT",
        "interval": "1h",
        "startTime": str((JAN1 - 3 * HOUR) * 1000),
        "endTime": str((JAN1 + HOUR) * 1000 - 1),
        "limit": "1000",
    }


@pytest.mark.parametrize("tf", list(Timeframe))
def test_every_timeframe_matches_the_bundled_resample(fake: FakeBinance, tf: Timeframe) -> None:
    start, end = ts("2023-07-03 00:00"), JAN1
    c = make_venue(fake, now=end).candles("BTC", tf, start, end)
    expected = window(pt_ohlcv.load_bundled("BTC", tf), start, end)
    assert same(c, expected) and len(c) > 0
    assert not c.forming
    assert fake.requests_to(KLINES)[0].param("interval") == tf.value
    if tf is Timeframe.W1:  # Binance weeks open on Monday 00:00 UTC, like ours
        assert np.all((c.time - WEEK_ANCHOR) % WEEK == 0)
        assert datetime.fromtimestamp(int(c.time[0]), UTC).weekday() == 0


def test_multi_year_history_is_paged_with_the_fewest_requests(btc: Candles) -> None:
    start, end = ts("2019-01-01 00:00"), JAN1
    expected = window(btc, start, end)
    with FakeBinance({"BTC": btc}, now=end) as fake:
        c = make_venue(fake, now=end).candles("BTC", Timeframe.H1, start, end)
        requests_made = fake.requests_to(KLINES)
    assert len(expected) % 1000 != 0  # else one more (empty) request would be the minimum
    assert len(requests_made) == math.ceil(len(expected) / 1000) == 44
    assert same(c, expected)
    assert np.all(np.diff(c.time) > 0)
    starts = [int(r.param("startTime") or 0) // 1000 for r in requests_made]
    assert starts[0] == start
    for i, page_start in enumerate(starts[1:], 1):  # each page follows the previous one's last
        assert page_start == int(expected.time[i * 1000 - 1]) + HOUR
    assert all(r.param("limit") == "1000" for r in requests_made)


def test_forming_candle_is_marked_and_the_future_is_not_served(fake: FakeBinance) -> None:
    c = make_venue(fake).candles("BTC", Timeframe.H1, JAN1 - 2 * HOUR, JAN1 + 10 * HOUR)
    assert c.time[-1] == JAN1 and c.forming
    day = make_venue(fake).candles("BTC", Timeframe.D1, JAN1 - 86400, JAN1 + 86400)
    assert day.time.tolist() == [JAN1 - 86400, JAN1] and day.forming
    assert day.close[-1] == 42475.23  # only the hour that has opened so far
    closed = make_venue(fake, now=JAN1 + HOUR).candles("BTC", Timeframe.H1, JAN1, JAN1 + HOUR)
    assert len(closed) == 1 and not closed.forming


def test_gaps_are_left_as_gaps(fake: FakeBinance, recent: dict[str, Candles]) -> None:
    fake.drop_times = {JAN1 - 5 * HOUR, JAN1 - 4 * HOUR}
    c = make_venue(fake).candles("BTC", Timeframe.H1, JAN1 - 10 * HOUR, JAN1)
    assert len(c) == 8
    assert find_gaps(c, HOUR) == (Gap(JAN1 - 5 * HOUR, 2),)
    full = window(recent["BTC"], JAN1 - 10 * HOUR, JAN1)
    kept = ~np.isin(full.time, list(fake.drop_times))
    assert np.array_equal(c.time, full.time[kept]) and np.array_equal(c.close, full.close[kept])


def test_empty_page_gives_an_empty_table(fake: FakeBinance) -> None:
    fake.empty_pages = True
    c = make_venue(fake).candles("BTC", Timeframe.H1, JAN1 - 10 * HOUR, JAN1)
    assert len(c) == 0 and not c.forming
    assert len(fake.requests_to(KLINES)) == 1


def test_garbage_rows_are_dropped_with_a_logged_reason(
    fake: FakeBinance, caplog: pytest.LogCaptureFixture
) -> None:
    rows = fake.rows("BTCUSDT", Timeframe.H1, (JAN1 - 10 * HOUR) * 1000, JAN1 * 1000 - 1)
    good = [rows[i] for i in (0, 1, 2, 9)]
    bad = [list(r) for r in rows[3:9]]
    bad[0][2] = "nan"  # high
    bad[1][4] = "0.00000000"  # close
    bad[2][3] = "-1.00000000"  # low
    bad[3][1] = "abc"  # open
    bad[4][2], bad[4][3] = bad[4][3], bad[4][2]  # high < low
    bad[5][0] = "not a time"
    served = [good[3], *bad, good[1], good[0], list(good[1]), good[2], ["short"], None]
    fake.fail(Fault(KLINES, reply=Reply.json(served)))
    with caplog.at_level(logging.WARNING, logger="pt_venue_binance"):
        c = make_venue(fake).candles("BTC", Timeframe.H1, JAN1 - 10 * HOUR, JAN1)
    assert c.time.tolist() == [int(r[0]) // 1000 for r in good]
    assert c.open.tolist() == [float(r[1]) for r in good]
    log = "\n".join(r.getMessage() for r in caplog.records)
    for reason in (
        "not a kline array",
        "open time is not a number",
        "not in ascending time order",
        "duplicate",
        "price is not a finite number",
        "price is zero or negative",
        "high below",
    ):
        assert reason in log
    assert all(r.getMessage().startswith("binance BTCUSDT 1h: ") for r in caplog.records)


def test_microsecond_timestamps_are_converted(
    fake: FakeBinance, recent: dict[str, Candles], caplog: pytest.LogCaptureFixture
) -> None:
    """Binance answers in µs when asked with ``X-MBX-TIME-UNIT``: the rows still come out right."""
    start = JAN1 - 5 * HOUR
    rows = fake.rows("BTCUSDT", Timeframe.H1, start * 10**6, JAN1 * 10**6, scale=10**6)
    assert rows[0][0] == start * 10**6
    fake.fail(Fault(KLINES, reply=Reply.json(rows)))
    with caplog.at_level(logging.WARNING, logger="pt_venue_binance"):
        c = make_venue(fake).candles("BTC", Timeframe.H1, start, JAN1 + HOUR)
    assert same(c, window(recent["BTC"], start, JAN1 + HOUR)) and c.forming
    assert "converted to seconds" in caplog.text


# ---------------------------------------------------------------------- errors


def test_429_with_retry_after_is_waited_out_then_succeeds(fake: FakeBinance) -> None:
    sleeps = Sleeps()
    fake.fail(Fault(KLINES, times=2, reply=fake.rate_limited_reply(retry_after=2)))
    c = make_venue(fake, sleeps=sleeps).candles("BTC", Timeframe.H1, JAN1 - HOUR, JAN1)
    assert len(c) == 1
    assert sleeps[-2:] == [2.0, 2.0]
    assert len(fake.requests_to(KLINES)) == 3


def test_429_gives_up_after_the_attempts(fake: FakeBinance) -> None:
    fake.fail(Fault(KLINES, times=3, reply=fake.rate_limited_reply(retry_after=1)))
    with pytest.raises(TemporaryExchangeError, match="gave up after 3 attempts") as info:
        make_venue(fake).candles("BTC", Timeframe.H1, JAN1 - HOUR, JAN1)
    assert "Too much request weight used" in str(info.value) and "-1003" in str(info.value)
    assert info.value.retry_after == 1.0


def test_weight_limit_gives_429_then_an_ip_ban(fake: FakeBinance) -> None:
    fake.weight_limit = 2
    venue = make_venue(fake)
    venue.quote("BTC")
    with pytest.raises(TemporaryExchangeError, match="HTTP 429") as first:
        venue.quote("BTC")  # Retry-After (up to 60 s) is beyond the cap: no sleeping through it
    assert first.value.retry_after is not None and first.value.retry_after > 5
    with pytest.raises(TemporaryExchangeError, match=r"HTTP 418.*IP banned") as banned:
        venue.quote("BTC")
    assert banned.value.retry_after == 120
    assert len(fake.requests_to(TICKER)) == 3  # each refusal was raised at once


def test_500_is_retried(fake: FakeBinance) -> None:
    fake.fail(Fault(KLINES, reply=Reply.json({"code": -1000, "msg": "An unknown error"}, 500)))
    assert len(make_venue(fake).candles("BTC", Timeframe.H1, JAN1 - HOUR, JAN1)) == 1
    assert len(fake.requests_to(KLINES)) == 2


def test_slow_answer_beyond_the_timeout_is_temporary(fake: FakeBinance) -> None:
    fake.fail(Fault(KLINES, times=2, delay=0.4))
    with pytest.raises(TemporaryExchangeError, match=r"no answer within 0\.1 s"):
        make_venue(fake, timeout=0.1, attempts=2).candles("BTC", Timeframe.H1, JAN1 - HOUR, JAN1)


def test_truncated_body_is_temporary_and_retried(fake: FakeBinance) -> None:
    fake.fail(Fault(KLINES, truncate=50))  # the connection drops mid-body
    c = make_venue(fake).candles("BTC", Timeframe.H1, JAN1 - 3 * HOUR, JAN1)
    assert len(c) == 3 and len(fake.requests_to(KLINES)) == 2
    cut = Reply(200, b'[[1704067200000,"42283.58000000","4255', fake.weight_header())
    fake.fail(Fault(TICKER, times=2, reply=cut))  # a complete answer that is cut-off JSON
    with pytest.raises(TemporaryExchangeError, match="not JSON"):
        make_venue(fake, attempts=2).quote("BTC")


def test_html_429_page_does_not_crash(fake: FakeBinance) -> None:
    fake.fail(Fault(KLINES, times=2, reply=html_429_page()))
    with pytest.raises(TemporaryExchangeError, match="HTTP 429: <html>"):
        make_venue(fake, attempts=2).candles("BTC", Timeframe.H1, JAN1 - HOUR, JAN1)


def test_bad_symbol_is_permanent_with_the_venues_message(fake: FakeBinance) -> None:
    with pytest.raises(PermanentExchangeError, match=r"HTTP 400: Invalid symbol\. \(code -1121\)"):
        make_venue(fake).candles("DOGE", Timeframe.H1, JAN1 - HOUR, JAN1)
    with pytest.raises(PermanentExchangeError, match="Invalid symbol"):
        make_venue(fake).quote("DOGE")
    assert len(fake.requests_to("/")) == 2  # no retries
    with pytest.raises(PermanentExchangeError, match="not a coin symbol"):
        make_venue(fake).quote("BTC/USD")
    assert len(fake.requests_to("/")) == 2  # refused before asking


def test_geo_block_and_waf_are_permanent(fake: FakeBinance) -> None:
    fake.geo_blocked = True
    with pytest.raises(PermanentExchangeError, match="HTTP 451: Service unavailable from a restr"):
        make_venue(fake).candles("BTC", Timeframe.H1, JAN1 - HOUR, JAN1)
    fake.geo_blocked = False
    waf = Reply(403, b"<html><body>403 Forbidden</body></html>", {}, "text/html")
    fake.fail(Fault(TICKER, reply=waf))
    with pytest.raises(PermanentExchangeError, match="HTTP 403"):
        make_venue(fake).quote("BTC")


def test_error_object_or_wrong_shape_in_a_200(fake: FakeBinance) -> None:
    fake.fail(Fault(KLINES, reply=Reply.json({"code": -1121, "msg": "Invalid symbol."})))
    with pytest.raises(PermanentExchangeError, match="Invalid symbol"):
        make_venue(fake).candles("BTC", Timeframe.H1, JAN1 - HOUR, JAN1)
    fake.fail(Fault(KLINES, times=2, reply=Reply.json({"rows": []})))
    with pytest.raises(TemporaryExchangeError, match="expected a JSON list"):
        make_venue(fake, attempts=2).candles("BTC", Timeframe.H1, JAN1 - HOUR, JAN1)


# ---------------------------------------------------------------------- quotes


def test_quote_is_parsed_from_the_24h_ticker(fake: FakeBinance) -> None:
    q = make_venue(fake).quote("BTC")
    ticker = fake.ticker("BTCUSDT")
    assert (q.symbol, q.venue) == ("BTC", "binance")
    assert q.bid == float(ticker["bidPrice"]) and q.ask == float(ticker["askPrice"])
    assert q.last == 42475.23 and q.bid < q.last < q.ask
    assert q.time == NOW
    assert q.base_volume_24h == float(ticker["volume"]) > 0
    assert q.quote_volume_24h == float(ticker["quoteVolume"]) > 0
    assert fake.requests_to(TICKER)[0].param("symbol") == "BTCUSDT"


def test_book_ticker_and_batch_quotes(fake: FakeBinance) -> None:
    venue = make_venue(fake)
    bid, ask = venue.book_ticker("BTC")
    assert (bid, ask) == (
        float(fake.ticker("BTCUSDT")["bidPrice"]),
        float(fake.ticker("BTCUSDT")["askPrice"]),
    )
    quotes = venue.quotes(["eth", "BTC"])
    assert sorted(quotes) == ["BTC", "ETH"]
    assert quotes["BTC"] == venue.quote("BTC")
    batch = fake.requests_to(TICKER)[0]
    assert batch.param("symbols") == '["BTCUSDT","ETHUSDT"]'
    assert venue.quotes([]) == {}
    fake.ticker_patch = {"askPrice": "abc"}
    with pytest.raises(TemporaryExchangeError, match="binance BTCUSDT: bad askPrice 'abc'"):
        venue.book_ticker("BTC")


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("bidPrice", "0.00000000", "bad bidPrice '0.00000000'"),
        ("askPrice", "NaN", "bad askPrice 'NaN'"),
        ("bidPrice", "-42000.00000000", "bad bidPrice '-42000.00000000'"),
        ("askPrice", "abc", "bad askPrice 'abc'"),
        ("lastPrice", None, "bad lastPrice None"),
        ("bidPrice", "99999.00000000", "bid 99999.0 is above ask 42477.35"),
    ],
)
def test_bad_quote_is_rejected_as_temporary(
    fake: FakeBinance, field: str, value: object, said: str
) -> None:
    fake.ticker_patch = {field: value}
    with pytest.raises(TemporaryExchangeError, match=re.escape(f"binance BTCUSDT: {said}")):
        make_venue(fake).quote("BTC")


def test_batch_quotes_leave_out_a_bad_ticker(
    fake: FakeBinance, caplog: pytest.LogCaptureFixture
) -> None:
    fake.ticker_patch = {"askPrice": "0.00000000"}
    with caplog.at_level(logging.WARNING, logger="pt_venue_binance"):
        assert make_venue(fake).quotes(["BTC", "ETH"]) == {}
    assert "bad askPrice '0.00000000'" in caplog.text


def test_price_factor_is_visible(recent: dict[str, Candles]) -> None:
    with FakeBinance(recent, now=NOW, price_factor=1.2) as fake:
        venue = make_venue(fake)
        q = venue.quote("BTC")
        c = venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + HOUR)
    assert q.last == pytest.approx(42475.23 * 1.2, abs=1e-8)
    assert c.close[0] == pytest.approx(42475.23 * 1.2, abs=1e-8)


def test_defaults() -> None:
    venue = BinanceVenue()
    assert (venue.name, venue.quote_currency, venue.taker_fee_pct) == ("binance", "USDT", 0.1)
    assert venue.http.base_url == "https://api.binance.com"
    assert venue.http.limiter is not None
    assert (venue.http.limiter.rate, venue.http.limiter.burst) == (10.0, 10.0)
    assert BinanceVenue(taker_fee_pct=0.075).taker_fee_pct == 0.075


# ---------------------------------------------------------------------- the fake itself


def get(fake: FakeBinance, path: str, **params: Any) -> requests.Response:
    return requests.get(fake.base_url + path, params=params, timeout=5)


def test_fake_klines_time_semantics(fake: FakeBinance) -> None:
    def times(**params: object) -> list[int]:
        response = get(fake, KLINES, symbol="BTCUSDT", interval="1h", **params)
        assert response.status_code == 200
        assert int(response.headers["X-MBX-USED-WEIGHT-1M"]) > 0
        rows = response.json()
        assert all(len(r) == 12 and r[6] == r[0] + 3_599_999 for r in rows)
        return [r[0] // 1000 for r in rows]

    assert times() == [JAN1 - (499 - i) * HOUR for i in range(500)]  # newest 500 up to now
    assert times(limit=3, startTime=JAN1 * 1000 - 1) == [JAN1]
    assert times(limit=3, endTime=(JAN1 - HOUR) * 1000) == [JAN1 - h * HOUR for h in (3, 2, 1)]
    both = times(limit=5, startTime=(JAN1 - 10 * HOUR) * 1000, endTime=(JAN1 - 8 * HOUR) * 1000)
    assert both == [JAN1 - h * HOUR for h in (10, 9, 8)]
    assert times(startTime=(JAN1 + HOUR) * 1000) == []  # never past now


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "BTCUSDT", "interval": "1H"}, -1120),
        ({"symbol": "XYZUSDT", "interval": "1h"}, -1121),
        ({"symbol": "BTCUSDT", "interval": "1h", "limit": 1001}, -1130),
        ({"symbol": "BTCUSDT", "interval": "1h", "startTime": "yesterday"}, -1100),
        ({"interval": "1h"}, -1102),
    ],
)
def test_fake_rejects_bad_parameters_like_binance(
    fake: FakeBinance, params: dict[str, object], code: int
) -> None:
    response = get(fake, KLINES, **params)
    assert response.status_code == 400
    assert response.json()["code"] == code and response.json()["msg"]
    assert "X-MBX-USED-WEIGHT-1M" in response.headers


def test_fake_ticker_formats(fake: FakeBinance) -> None:
    one = get(fake, TICKER, symbol="BTCUSDT")
    assert one.text.startswith('{"symbol":"BTCUSDT","priceChange":')
    assert isinstance(one.json()["closeTime"], int) and isinstance(one.json()["count"], int)
    many = get(fake, TICKER, symbols=json.dumps(["ETHUSDT", "BTCUSDT"], separators=(",", ":")))
    assert [t["symbol"] for t in many.json()] == ["ETHUSDT", "BTCUSDT"]
    book = get(fake, "/api/v3/ticker/bookTicker", symbol="ETHUSDT").json()
    assert list(book) == ["symbol", "bidPrice", "bidQty", "askPrice", "askQty"]
    assert get(fake, TICKER, symbol="BTCUSDT", symbols='["BTCUSDT"]').status_code == 400
