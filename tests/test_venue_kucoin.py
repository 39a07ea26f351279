"""The KuCoin adapter over real HTTP against the loopback fake serving real bundled candles."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import requests

from pt_candles import find_gaps
from pt_errors import ExchangeAuthError, PermanentExchangeError, TemporaryExchangeError
from pt_exchanges import page_windows
from pt_http import HttpClient, RateLimiter, RetryPolicy
from pt_ohlcv import load_bundled
from pt_types import DAY, HOUR, WEEK, Candles, Gap, Timeframe
from pt_venue_kucoin import KucoinVenue
from tests.fake_http import Fault, Reply, html_429_page
from tests.fake_kucoin import ALL_TICKERS_PATH, CANDLES_PATH, LEVEL1_PATH, FakeKucoin

JAN1 = 1_704_067_200  # 2024-01-01 00:00 UTC, a Monday
NOW = JAN1 + 40 * DAY + 30 * 60  # 2024-02-10 00:30 UTC: inside an hour, a 4h bucket, a day
LOGGER = "pt_venue_kucoin"


def hourly(coin: str, start: int, end: int) -> Candles:
    table = load_bundled(coin)
    lo, hi = np.searchsorted(table.time, [start, end])
    return table.slice(int(lo), int(hi))


def bundled(coin: str, tf: Timeframe, start: int, end: int) -> Candles:
    table = load_bundled(coin, tf)
    lo, hi = np.searchsorted(table.time, [start, end])
    return table.slice(int(lo), int(hi))


def rows_of(c: Candles) -> list[tuple[float, ...]]:
    cols = (c.time, c.open, c.high, c.low, c.close, c.volume)
    return [tuple(float(x) for x in row) for row in zip(*cols, strict=True)]


def get_candles(fake: FakeKucoin, **params: str | int) -> requests.Response:
    """Ask the fake directly, to pin down its own wire format."""
    return requests.get(fake.base_url + CANDLES_PATH, params=params, timeout=5)


@pytest.fixture
def fake() -> Iterator[FakeKucoin]:
    span = {coin: hourly(coin, JAN1 - 120 * DAY, JAN1 + 60 * DAY) for coin in ("BTC", "ETH")}
    with FakeKucoin(span, now=NOW) as server:
        yield server


class Sleeps(list[float]):
    """A recording ``sleep``: tests see the waits without waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_venue(
    fake: FakeKucoin, *, attempts: int = 3, timeout: float = 2.0
) -> tuple[KucoinVenue, Sleeps]:
    sleeps = Sleeps()
    http = HttpClient(
        "kucoin",
        fake.base_url,
        timeout=timeout,
        limiter=RateLimiter(1000.0, 1000.0),
        retry=RetryPolicy(attempts=attempts, base_delay=0.001, max_delay=5.0, jitter=0.0),
        sleep=sleeps,
    )
    return KucoinVenue(fake.base_url, clock=lambda: float(fake.now), http=http), sleeps


# ------------------------------------------------------------------ formats


def test_known_candle_is_parsed_exactly_from_kucoin_column_order(fake: FakeKucoin) -> None:
    venue, _ = make_venue(fake)
    c = venue.candles("btc", Timeframe.H1, JAN1, JAN1 + HOUR)
    assert rows_of(c) == [(JAN1, 42283.58, 42554.57, 42261.02, 42475.23, 1271.68108)]
    assert not c.forming
    (req,) = fake.requests_to(CANDLES_PATH)
    assert req.query == {
        "symbol": ["BTC-USDT"],
        "type": ["1hour"],
        "startAt": [str(JAN1)],
        "endAt": [str(JAN1 + HOUR - 1)],
    }


def test_fake_answers_newest_first_strings_in_kucoin_order(fake: FakeKucoin) -> None:
    answer = get_candles(fake, symbol="BTC-USDT", type="1hour", startAt=JAN1, endAt=JAN1 + HOUR)
    body = answer.json()
    assert body["code"] == "200000"
    row = [str(JAN1), "42283.58", "42475.23", "42554.57", "42261.02", "1271.68108"]
    assert body["data"][1][:6] == row
    assert int(body["data"][0][0]) == JAN1 + HOUR  # inclusive endAt in this run: newest first


@pytest.mark.parametrize("tf", [Timeframe.H1, Timeframe.H2, Timeframe.H4, Timeframe.H8,
                                Timeframe.H12, Timeframe.D1])  # fmt: skip
def test_each_timeframe_ascending_and_equal_to_the_bundled_candles(
    fake: FakeKucoin, tf: Timeframe
) -> None:
    venue, _ = make_venue(fake)
    start, end = JAN1 - 20 * DAY, JAN1 + 10 * DAY
    c = venue.candles("BTC", tf, start, end)
    assert np.all(np.diff(c.time) > 0)
    assert rows_of(c) == rows_of(bundled("BTC", tf, start, end))
    assert not c.forming
    names = {"1h": "1hour", "2h": "2hour", "4h": "4hour", "8h": "8hour", "12h": "12hour"}
    assert {r.param("type") for r in fake.requests_to(CANDLES_PATH)} == {
        names.get(tf.value, "1day")
    }


def test_weekly_candles_open_on_monday_built_from_days(fake: FakeKucoin) -> None:
    """KuCoin's own 1week rows open on Thursdays, so the adapter builds weeks from days."""
    answer = get_candles(fake, symbol="BTC-USDT", type="1week", startAt=JAN1, endAt=JAN1 + 5 * WEEK)
    raw = answer.json()["data"]
    assert {(int(row[0]) // DAY + 3) % 7 for row in raw} == {3}  # Thursday (Monday = 0)

    venue, _ = make_venue(fake)
    start, end = JAN1 - 10 * WEEK + DAY, JAN1 + 3 * WEEK  # starts on a Tuesday
    c = venue.candles("BTC", Timeframe.W1, start, end)
    expected = bundled("BTC", Timeframe.W1, start, end)
    assert c.time[0] == JAN1 - 9 * WEEK and {(int(t) // DAY + 3) % 7 for t in c.time} == {0}
    assert rows_of(c) == rows_of(expected)
    assert {r.param("type") for r in fake.requests_to(CANDLES_PATH)[1:]} == {"1day"}


@pytest.mark.parametrize("end_inclusive", [True, False])
def test_multi_year_history_is_paged_within_the_row_limit(end_inclusive: bool) -> None:
    start, end = 1_546_300_800, JAN1  # 2019-01-01 .. 2024-01-01
    with FakeKucoin({"BTC": load_bundled("BTC")}, now=NOW, end_inclusive=end_inclusive) as fake:
        venue, _ = make_venue(fake)
        c = venue.candles("BTC", Timeframe.H1, start, end)
        reqs = fake.requests_to(CANDLES_PATH)
    windows = page_windows(start, end, HOUR, 1500)
    assert len(windows) == 30 and len(reqs) == len(windows)
    asked = [(int(r.param("startAt") or 0), int(r.param("endAt") or 0)) for r in reqs]
    assert asked == [(lo, hi - 1) for lo, hi in windows]
    assert all((hi - lo) // HOUR + 1 <= 1500 for lo, hi in asked)
    expected = bundled("BTC", Timeframe.H1, start, end)
    assert len(c) == len(expected) == 43_764  # five years of hours minus 60 lost in real outages
    assert sum(g.missing for g in find_gaps(c, HOUR)) == 43_824 - 43_764
    assert rows_of(c) == rows_of(expected)
    assert not c.forming


# ------------------------------------------------------------------ forming, gaps, empty


def test_last_candle_is_forming_while_now_is_inside_it(fake: FakeKucoin) -> None:
    venue, _ = make_venue(fake)
    hours = venue.candles("BTC", Timeframe.H1, NOW - 5 * HOUR, NOW + 5 * HOUR)
    assert hours.time[-1] == NOW - 30 * 60 and hours.forming
    four = venue.candles("BTC", Timeframe.H4, NOW - DAY, NOW + DAY)
    assert four.time[-1] == NOW - 30 * 60 and four.forming
    one_hour = hourly("BTC", NOW - 30 * 60, NOW + 1)
    assert rows_of(four.slice(len(four) - 1)) == rows_of(one_hour)  # the partial bucket so far
    fake.now = NOW + 3 * HOUR + 30 * 60  # the 4h candle has closed, the next has not started
    closed = venue.candles("BTC", Timeframe.H4, NOW - DAY, NOW + 3 * HOUR)
    assert closed.time[-1] == NOW - 30 * 60 and not closed.forming


def test_gaps_are_reported_not_invented(fake: FakeKucoin) -> None:
    fake.drop_times = {JAN1 + 2 * HOUR, JAN1 + 3 * HOUR}
    venue, _ = make_venue(fake)
    c = venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + 10 * HOUR)
    assert len(c) == 8
    assert find_gaps(c, HOUR) == (Gap(JAN1 + 2 * HOUR, 2),)


def test_empty_pages_give_an_empty_table(fake: FakeKucoin) -> None:
    fake.empty_pages = True
    venue, _ = make_venue(fake)
    c = venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + 10 * HOUR)
    assert len(c) == 0 and not c.forming
    assert len(venue.candles("BTC", Timeframe.W1, JAN1, JAN1 + 3 * WEEK)) == 0


def test_fake_returns_nothing_without_both_time_params(fake: FakeKucoin) -> None:
    body = get_candles(fake, symbol="BTC-USDT", type="1hour", startAt=JAN1).json()
    assert body == {"code": "200000", "data": []}


# ------------------------------------------------------------------ errors


def test_429_with_kucoin_headers_is_retried_after_the_reset_then_succeeds(
    fake: FakeKucoin,
) -> None:
    fake.fail(Fault(CANDLES_PATH, times=2, reply=FakeKucoin.rate_limit_reply(1500)))
    venue, sleeps = make_venue(fake)
    c = venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + HOUR)
    assert len(c) == 1 and len(fake.requests_to(CANDLES_PATH)) == 3
    assert sleeps == [1.5, 1.5]


def test_429_gives_up_after_the_attempts(fake: FakeKucoin) -> None:
    fake.fail(Fault(CANDLES_PATH, times=3, reply=FakeKucoin.rate_limit_reply(800)))
    venue, _ = make_venue(fake)
    with pytest.raises(TemporaryExchangeError, match=r"Too Many Requests.*gave up") as err:
        venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + HOUR)
    assert err.value.retry_after == 0.8
    assert len(fake.requests_to(CANDLES_PATH)) == 3


def test_429000_code_with_http_200_is_temporary_and_honours_the_reset(fake: FakeKucoin) -> None:
    fake.fail(Fault(CANDLES_PATH, times=1, reply=FakeKucoin.rate_limit_reply(700, status=200)))
    venue, sleeps = make_venue(fake)
    assert len(venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + HOUR)) == 1
    assert list(sleeps) == pytest.approx([0.7])


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("400100", PermanentExchangeError),
        ("900001", PermanentExchangeError),
        ("404000", PermanentExchangeError),
        ("400001", ExchangeAuthError),
        ("400007", ExchangeAuthError),
        ("500000", TemporaryExchangeError),
    ],
)
def test_error_codes_with_http_200_map_to_our_errors(
    fake: FakeKucoin, code: str, error: type[Exception]
) -> None:
    body = {"code": code, "msg": f"venue says {code}"}
    fake.fail(Fault(CANDLES_PATH, times=3, reply=Reply.json(body, 200)))
    venue, _ = make_venue(fake)
    with pytest.raises(error, match=f"venue says {code}"):
        venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + HOUR)
    retried = error is TemporaryExchangeError
    assert len(fake.requests_to(CANDLES_PATH)) == (3 if retried else 1)


def test_500_is_retried_then_gives_up(fake: FakeKucoin) -> None:
    reply = Reply.json({"code": "500000", "msg": "Internal Server Error"}, 500)
    fake.fail(Fault(CANDLES_PATH, times=1, reply=reply))
    venue, _ = make_venue(fake)
    assert len(venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + HOUR)) == 1
    fake.fail(Fault(CANDLES_PATH, times=3, reply=reply))
    with pytest.raises(TemporaryExchangeError, match="HTTP 500"):
        venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + HOUR)


def test_slow_answer_beyond_the_timeout_is_temporary(fake: FakeKucoin) -> None:
    fake.fail(Fault(CANDLES_PATH, times=2, delay=0.6))
    venue, _ = make_venue(fake, attempts=2, timeout=0.2)
    with pytest.raises(TemporaryExchangeError, match=r"no answer within 0\.2 s"):
        venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + HOUR)


def test_truncated_body_is_temporary(fake: FakeKucoin) -> None:
    fake.fail(Fault(CANDLES_PATH, times=1, truncate=40))
    venue, _ = make_venue(fake)
    assert len(venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + HOUR)) == 1
    fake.fail(Fault(CANDLES_PATH, times=3, truncate=40))
    with pytest.raises(TemporaryExchangeError, match="IncompleteRead"):
        venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + HOUR)
    cut = Reply(200, b'{"code":"200000","data":[["1704067200","42283.5')  # cut, length agrees
    fake.fail(Fault(CANDLES_PATH, times=3, reply=cut))
    with pytest.raises(TemporaryExchangeError, match="not JSON"):
        venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + HOUR)


def test_html_429_page_does_not_crash(fake: FakeKucoin) -> None:
    fake.fail(Fault(CANDLES_PATH, times=1, reply=html_429_page()))
    venue, _ = make_venue(fake)
    assert len(venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + HOUR)) == 1
    fake.fail(Fault(CANDLES_PATH, times=3, reply=html_429_page()))
    with pytest.raises(TemporaryExchangeError, match="HTTP 429"):
        venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + HOUR)


@pytest.mark.parametrize(
    "body",
    [[], {"data": []}, {"code": "200000", "data": {"rows": []}}, {"code": "200000"}],
    ids=["bare-list", "no-code", "data-object", "no-data"],
)
def test_wrong_envelope_is_a_temporary_glitch(fake: FakeKucoin, body: Any) -> None:
    fake.fail(Fault(CANDLES_PATH, times=3, reply=Reply.json(body)))
    venue, _ = make_venue(fake)
    with pytest.raises(TemporaryExchangeError, match="garbled"):
        venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + HOUR)


def test_unknown_symbol_is_permanent_with_the_venue_message(fake: FakeKucoin) -> None:
    venue, _ = make_venue(fake)
    with pytest.raises(PermanentExchangeError, match=r"Symbol \[NOPE-USDT\] not exists"):
        venue.candles("NOPE", Timeframe.H1, JAN1, JAN1 + HOUR)
    with pytest.raises(PermanentExchangeError, match="no market NOPE-USDT"):
        venue.quote("NOPE")
    assert len(fake.requests_to("/api")) == 2  # neither was retried


def test_bad_type_is_refused_by_the_fake_as_kucoin_does(fake: FakeKucoin) -> None:
    answer = get_candles(fake, symbol="BTC-USDT", type="7hour", startAt=JAN1, endAt=JAN1 + HOUR)
    assert answer.status_code == 400
    assert answer.json() == {
        "code": "400100",
        "msg": "This type of Candlestick is currently not provided.",
    }


# ------------------------------------------------------------------ garbage rows


def _set(row: int, column: int, value: Any) -> Callable[[list[list[Any]]], list[list[Any]]]:
    def mangle(rows: list[list[Any]]) -> list[list[Any]]:
        rows[row][column] = value
        return rows

    return mangle


def test_garbage_rows_are_dropped_with_a_logged_reason(
    fake: FakeKucoin, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows are newest first: row 0 is hour 11 ... row 11 is hour 0."""

    def mangle(rows: list[list[Any]]) -> list[Any]:
        rows[0][1] = "NaN"  # hour 11: open
        rows[1][2] = "0"  # hour 10: close
        rows[2][4] = "-5"  # hour 9: low
        rows[3][3] = "abc"  # hour 8: high
        rows[4][3] = str(float(rows[4][4]) - 1)  # hour 7: high below low
        rows[5][0] = "soon"  # hour 6: time
        rows[6][5] = "-1"  # hour 5: volume
        rows[7] = ["1704081600"]  # hour 4: too short
        rows[8], rows[9] = rows[9], rows[8]  # hours 3 and 2 swapped
        return [*rows, rows[10], "junk"]  # hour 1 again, and a row that is not a list

    fake.mangle_rows = mangle
    venue, _ = make_venue(fake)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    c = venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + 12 * HOUR)
    good = hourly("BTC", JAN1, JAN1 + 4 * HOUR)
    assert rows_of(c) == rows_of(good)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == LOGGER)
    assert all(line.startswith("kucoin BTC-USDT 1hour candles: ") for line in text.splitlines()), (
        text
    )
    for reason in (
        "2 row(s) dropped: not a list of 7 fields",
        "1 row(s) dropped: time is not a whole number",
        "not in ascending time order; sorted",
        "1 duplicate row(s); kept the last of each",
        "2 row(s) dropped: price is not a finite number",
        "2 row(s) dropped: price is zero or negative",
        "high below max(open, close, low)",
        "1 row(s) dropped: volume is negative",
    ):
        assert reason in text


def test_millisecond_times_are_converted(
    fake: FakeKucoin, caplog: pytest.LogCaptureFixture
) -> None:
    def to_ms(rows: list[list[Any]]) -> list[list[Any]]:
        return [[row[0] + "000", *row[1:]] for row in rows]

    fake.mangle_rows = to_ms
    venue, _ = make_venue(fake)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    c = venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + 6 * HOUR)
    assert rows_of(c) == rows_of(hourly("BTC", JAN1, JAN1 + 6 * HOUR))
    assert "milliseconds" in caplog.text


def test_a_bad_last_row_loses_the_forming_flag_with_the_row(fake: FakeKucoin) -> None:
    fake.mangle_rows = _set(0, 1, "-1")
    venue, _ = make_venue(fake)
    c = venue.candles("BTC", Timeframe.H1, NOW - 3 * HOUR, NOW + HOUR)
    assert c.time[-1] == NOW - 30 * 60 - HOUR and not c.forming


# ------------------------------------------------------------------ quotes


def test_quote_is_parsed_exactly(fake: FakeKucoin) -> None:
    fake.ticker_overrides["BTC"] = {
        "time": 1729172965609,
        "price": "67269",
        "bestBid": "67267.5",
        "bestAsk": "67267.6",
    }
    venue, _ = make_venue(fake)
    q = venue.quote("btc")
    assert (q.symbol, q.venue, q.bid, q.ask, q.last) == ("BTC", "kucoin", 67267.5, 67267.6, 67269)
    assert q.time == 1729172965.609
    assert q.base_volume_24h is None and q.quote_volume_24h is None
    (req,) = fake.requests_to(LEVEL1_PATH)
    assert req.query == {"symbol": ["BTC-USDT"]}


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"bestBid": "NaN"}, "'NaN'"),
        ({"bestBid": "0"}, "'0'"),
        ({"bestAsk": "-3"}, "'-3'"),
        ({"bestAsk": "abc"}, "'abc'"),
        ({"price": None}, "None"),
        ({"bestBid": "101", "bestAsk": "100"}, "bid 101.0 above ask 100.0"),
        ({"time": "later"}, "'later'"),
    ],
)
def test_bad_quote_is_rejected_as_a_glitch(
    fake: FakeKucoin, fields: dict[str, Any], bad: str
) -> None:
    fake.ticker_overrides["BTC"] = fields
    venue, _ = make_venue(fake)
    with pytest.raises(TemporaryExchangeError, match="kucoin BTC-USDT") as err:
        venue.quote("BTC")
    assert bad in str(err.value)


def test_price_factor_is_visible_in_the_quote_and_candles(fake: FakeKucoin) -> None:
    venue, _ = make_venue(fake)
    close = float(hourly("BTC", NOW - 30 * 60, NOW).close[-1])
    plain = venue.quote("BTC")
    assert plain.last == close and plain.bid < close < plain.ask
    fake.price_factor = 1.2
    off = venue.quote("BTC")
    assert off.last == pytest.approx(1.2 * close, rel=1e-12)
    assert off.mid / plain.mid == pytest.approx(1.2, rel=1e-9)
    c = venue.candles("BTC", Timeframe.H1, JAN1, JAN1 + HOUR)
    assert c.open[0] == pytest.approx(1.2 * 42283.58, rel=1e-12)


def test_quotes_from_all_tickers(fake: FakeKucoin, caplog: pytest.LogCaptureFixture) -> None:
    venue, _ = make_venue(fake)
    quotes = venue.quotes(["btc", "ETH", "NOPE"])
    assert set(quotes) == {"BTC", "ETH"}
    day = hourly("BTC", NOW - DAY + 30 * 60, NOW + 1)
    btc = quotes["BTC"]
    assert btc.last == float(day.close[-1]) and btc.bid < btc.last < btc.ask
    assert btc.base_volume_24h == pytest.approx(float(day.volume.sum()), rel=1e-12)
    assert btc.quote_volume_24h == pytest.approx(float((day.volume * day.close).sum()), rel=1e-9)
    assert btc.time == NOW and btc.venue == "kucoin"
    assert len(fake.requests_to(ALL_TICKERS_PATH)) == 1

    fake.ticker_overrides["ETH"] = {"sell": "NaN", "vol": "x"}
    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert set(venue.quotes(["BTC", "ETH"])) == {"BTC"}
    assert "ETH left out" in caplog.text and "bad sell 'NaN'" in caplog.text


def test_default_construction_reaches_the_venue(fake: FakeKucoin) -> None:
    venue = KucoinVenue(fake.base_url, clock=lambda: float(fake.now))
    assert (venue.name, venue.quote_currency, venue.taker_fee_pct) == ("kucoin", "USDT", 0.1)
    assert KucoinVenue(fake.base_url, taker_fee_pct=0.08).taker_fee_pct == 0.08
    assert len(venue.candles("ETH", Timeframe.H1, JAN1, JAN1 + 3 * HOUR)) == 3
