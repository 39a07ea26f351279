"""pt_venue_coinbase over real HTTP against the fake Coinbase on 127.0.0.1 (bundled candles)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import requests

from pt_candles import find_gaps, resample
from pt_errors import PermanentExchangeError, TemporaryExchangeError
from pt_exchanges import page_windows
from pt_http import HttpClient, RateLimiter, RetryPolicy
from pt_ohlcv import load_bundled
from pt_types import DAY, HOUR, Candles, Gap, Timeframe
from pt_venue_coinbase import CoinbaseVenue
from tests.fake_coinbase import PRODUCTS, FakeCoinbase, error_body
from tests.fake_http import Fault, Reply

MON = 1_704_067_200  # 2024-01-01 00:00 UTC, a Monday
LATER = MON + 60 * DAY  # a "now" after every span asked for below, unless a test says otherwise
BTC_CANDLES = f"{PRODUCTS}BTC-USD/candles"
BTC_TICKER = f"{PRODUCTS}BTC-USD/ticker"
ATTEMPTS = 3


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def btc(start: int = MON - 90 * DAY, stop: int = MON + 70 * DAY) -> Candles:
    hourly = load_bundled("BTC")
    lo, hi = np.searchsorted(hourly.time, [start, stop])
    return hourly.slice(int(lo), int(hi))


def between(c: Candles, start: int, end: int) -> Candles:
    lo, hi = np.searchsorted(c.time, [start, end])
    return c.slice(int(lo), int(hi))


def assert_same(got: Candles, want: Candles) -> None:
    for field in ("time", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
    assert got.forming == want.forming


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeCoinbase]:
    with FakeCoinbase({"BTC": btc()}, now=LATER) as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_venue(
    fake: FakeCoinbase, sleeps: list[float], *, timeout: float = 2.0
) -> tuple[CoinbaseVenue, Clock]:
    """The real adapter, with a fast retry policy and a clock that follows the fake's ``now``."""
    clock = Clock(fake.now)
    http = HttpClient(
        "coinbase",
        fake.base_url,
        timeout=timeout,
        limiter=RateLimiter(10_000, 10_000),
        retry=RetryPolicy(attempts=ATTEMPTS, base_delay=0.001, max_delay=1.0),
        sleep=sleeps.append,
    )
    return CoinbaseVenue(clock=clock, http=http), clock


@pytest.fixture
def venue(fake: FakeCoinbase, sleeps: list[float]) -> CoinbaseVenue:
    return make_venue(fake, sleeps)[0]


# ---------------------------------------------------------------- candles: formats and paging


def test_known_hourly_candle_is_parsed_exactly(fake: FakeCoinbase, venue: CoinbaseVenue) -> None:
    got = venue.candles("btc", Timeframe.H1, MON, MON + 3 * HOUR)

    assert got.time.tolist() == [MON, MON + HOUR, MON + 2 * HOUR]
    row = [float(getattr(got, f)[0]) for f in ("open", "high", "low", "close", "volume")]
    assert row == [42283.58, 42554.57, 42261.02, 42475.23, 1271.68108]
    assert not got.forming
    (request,) = fake.candle_requests()
    assert request.path == BTC_CANDLES
    assert {k: v[0] for k, v in request.query.items()} == {
        "start": str(MON),
        "end": str(MON + 3 * HOUR - 1),
        "granularity": "ONE_HOUR",
        "limit": "350",
    }


def test_the_fake_answers_newest_first_and_the_adapter_ascends(
    fake: FakeCoinbase, venue: CoinbaseVenue
) -> None:
    raw = requests.get(
        fake.base_url + BTC_CANDLES,
        params={"start": str(MON), "end": str(MON + 2 * HOUR), "granularity": "ONE_HOUR"},
        timeout=5,
    ).json()
    assert [r["start"] for r in raw["candles"]] == [str(MON + 2 * HOUR), str(MON + HOUR), str(MON)]
    assert raw["candles"][-1] == {
        "start": str(MON), "low": "42261.02", "high": "42554.57",
        "open": "42283.58", "close": "42475.23", "volume": "1271.68108",
    }  # fmt: skip
    got = venue.candles("BTC", Timeframe.H1, MON - 400 * HOUR, MON + 400 * HOUR)
    assert np.all(np.diff(got.time) > 0)


@pytest.mark.parametrize(
    ("timeframe", "granularity"),
    [
        (Timeframe.H1, "ONE_HOUR"),
        (Timeframe.H2, "TWO_HOUR"),
        (Timeframe.H4, "ONE_HOUR"),
        (Timeframe.H8, "ONE_HOUR"),
        (Timeframe.H12, "ONE_HOUR"),
        (Timeframe.D1, "ONE_DAY"),
        (Timeframe.W1, "ONE_DAY"),
    ],
)
def test_every_timeframe_equals_the_bundled_history_resampled(
    fake: FakeCoinbase, venue: CoinbaseVenue, timeframe: Timeframe, granularity: str
) -> None:
    start, end = MON - 40 * DAY + 5 * HOUR, MON + 40 * DAY + 5 * HOUR  # not on any boundary
    got = venue.candles("BTC", timeframe, start, end)

    want = between(resample(btc(), timeframe, base_step=HOUR), start, end)
    assert len(want) > 10
    assert_same(got, want)
    asked = {r.param("granularity") for r in fake.candle_requests()}
    assert asked == {granularity}
    if timeframe is Timeframe.W1:
        assert all(datetime.fromtimestamp(int(t), UTC).weekday() == 0 for t in got.time)


def test_multi_year_history_is_paged_in_windows_of_at_most_300_buckets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    start, end = utc("2019-01-01"), utc("2024-01-01")
    hourly = btc(start - DAY, end + DAY)
    with FakeCoinbase({"BTC": hourly}, now=end + 30 * DAY) as fake:
        venue, _ = make_venue(fake, [])
        with caplog.at_level(logging.WARNING):
            got = venue.candles("BTC", Timeframe.H1, start, end)
        requests_made = fake.candle_requests()

    windows = page_windows(start, end, HOUR, 300)
    assert len(requests_made) == len(windows) == 147
    for (lo, hi), request in zip(windows, requests_made, strict=True):
        assert (request.param("start"), request.param("end")) == (str(lo), str(hi - 1))
        assert (hi - lo) // HOUR <= 300
    assert_same(got, between(hourly, start, end))
    # Outages in the history stay outages: the same gaps as the bundled file, none invented.
    assert find_gaps(got, HOUR) == find_gaps(between(hourly, start, end), HOUR)
    assert len(find_gaps(got, HOUR)) > 5
    assert caplog.records == []  # clean newest-first pages need no repair


def test_nothing_is_asked_for_after_now(fake: FakeCoinbase, sleeps: list[float]) -> None:
    fake.now = MON + 10 * HOUR + 60
    venue, _ = make_venue(fake, sleeps)
    got = venue.candles("BTC", Timeframe.H1, MON, MON + 30 * DAY)
    assert got.time[-1] == MON + 10 * HOUR
    assert len(fake.candle_requests()) == 1
    assert len(venue.candles("BTC", Timeframe.H1, MON + DAY, MON + 2 * DAY)) == 0
    assert len(fake.candle_requests()) == 1


# ---------------------------------------------------------------- forming candles and gaps


def test_last_hourly_candle_is_forming_while_now_is_inside_it(
    fake: FakeCoinbase, sleeps: list[float]
) -> None:
    fake.now = MON + 30 * 60
    venue, clock = make_venue(fake, sleeps)
    got = venue.candles("BTC", Timeframe.H1, MON - 5 * HOUR, MON + 5 * HOUR)
    assert got.time[-1] == MON
    assert got.forming

    clock.now = MON + HOUR  # the candle has closed; the venue has nothing newer yet
    assert not venue.candles("BTC", Timeframe.H1, MON - 5 * HOUR, MON + 5 * HOUR).forming


@pytest.mark.parametrize("timeframe", [Timeframe.H4, Timeframe.H12, Timeframe.D1, Timeframe.W1])
def test_resampled_last_bucket_is_forming_and_holds_only_what_has_happened(
    fake: FakeCoinbase, sleeps: list[float], timeframe: Timeframe
) -> None:
    now = MON + 2 * DAY + 5 * HOUR + 1800  # Wednesday 05:30
    fake.now = now
    venue, _ = make_venue(fake, sleeps)
    got = venue.candles("BTC", timeframe, MON - 30 * DAY, MON + 30 * DAY)

    bucket = timeframe.candle_open(now)
    assert got.time[-1] == bucket and got.forming
    base = btc().until(now)
    if timeframe in (Timeframe.D1, Timeframe.W1):
        base = resample(base, Timeframe.D1, now=now, base_step=HOUR)
    so_far = base.slice(int(np.searchsorted(base.time, bucket)))
    assert got.high[-1] == so_far.high.max()
    assert got.low[-1] == so_far.low.min()
    assert got.close[-1] == so_far.close[-1]


def test_missing_candles_are_reported_as_gaps_not_invented(
    fake: FakeCoinbase, venue: CoinbaseVenue
) -> None:
    fake.drop_times = {MON + 2 * HOUR, MON + 3 * HOUR}
    got = venue.candles("BTC", Timeframe.H1, MON, MON + 8 * HOUR)
    assert got.time.tolist() == [MON + h * HOUR for h in (0, 1, 4, 5, 6, 7)]
    assert find_gaps(got, HOUR) == (Gap(MON + 2 * HOUR, 2),)


def test_empty_pages_give_an_empty_table(fake: FakeCoinbase, venue: CoinbaseVenue) -> None:
    fake.empty_pages = True
    got = venue.candles("BTC", Timeframe.H1, MON, MON + 700 * HOUR)
    assert len(got) == 0 and not got.forming
    assert len(fake.candle_requests()) == 3


# ---------------------------------------------------------------- errors


def test_429_with_rate_limit_headers_is_retried_then_succeeds(
    fake: FakeCoinbase, venue: CoinbaseVenue, sleeps: list[float]
) -> None:
    fake.fail(Fault(BTC_CANDLES, times=2, reply=fake.rate_limited()))
    got = venue.candles("BTC", Timeframe.H1, MON, MON + 3 * HOUR)
    assert len(got) == 3
    assert len(fake.candle_requests()) == 3
    assert len(sleeps) == 2


def test_429_with_retry_after_waits_that_long(
    fake: FakeCoinbase, venue: CoinbaseVenue, sleeps: list[float]
) -> None:
    fake.fail(Fault(BTC_CANDLES, times=1, reply=fake.rate_limited(retry_after=0.5)))
    assert len(venue.candles("BTC", Timeframe.H1, MON, MON + 3 * HOUR)) == 3
    assert sleeps == [0.5]


def test_429_headers_are_the_venues(fake: FakeCoinbase) -> None:
    reply = fake.rate_limited()
    assert reply.status == 429
    assert set(reply.headers) == {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"}
    answer = requests.get(fake.base_url + f"{PRODUCTS}BTC-USD", timeout=5)
    assert answer.headers["x-ratelimit-limit"] == "10"


def test_persistent_429_gives_up_with_a_temporary_error(
    fake: FakeCoinbase, venue: CoinbaseVenue
) -> None:
    fake.fail(Fault(BTC_CANDLES, times=10, reply=fake.rate_limited()))
    with pytest.raises(TemporaryExchangeError, match=r"429.*Too many requests.*gave up after 3"):
        venue.candles("BTC", Timeframe.H1, MON, MON + 3 * HOUR)
    assert len(fake.candle_requests()) == ATTEMPTS


def test_html_429_page_does_not_crash_and_is_retried(
    fake: FakeCoinbase, venue: CoinbaseVenue
) -> None:
    fake.fail(Fault(BTC_CANDLES, times=1, reply=fake.rate_limited(html=True)))
    assert len(venue.candles("BTC", Timeframe.H1, MON, MON + 3 * HOUR)) == 3
    fake.fail(Fault(BTC_CANDLES, times=10, reply=fake.rate_limited(html=True)))
    with pytest.raises(TemporaryExchangeError, match=r"429.*Too Many Requests"):
        venue.candles("BTC", Timeframe.H1, MON, MON + 3 * HOUR)


def test_500_is_retried_then_reported_as_temporary(
    fake: FakeCoinbase, venue: CoinbaseVenue
) -> None:
    fake.fail(Fault(BTC_TICKER, times=1, reply=Reply.json({"error": "INTERNAL"}, 500)))
    assert venue.quote("BTC").bid > 0
    fake.fail(Fault(BTC_CANDLES, times=10, reply=Reply.json({"error": "INTERNAL"}, 500)))
    with pytest.raises(TemporaryExchangeError, match="HTTP 500"):
        venue.candles("BTC", Timeframe.H1, MON, MON + 3 * HOUR)


def test_slow_answer_beyond_the_timeout_is_temporary(
    fake: FakeCoinbase, sleeps: list[float]
) -> None:
    venue, _ = make_venue(fake, sleeps, timeout=0.2)
    fake.fail(Fault(BTC_CANDLES, times=ATTEMPTS, delay=0.6))
    with pytest.raises(TemporaryExchangeError, match=r"no answer within 0\.2 s"):
        venue.candles("BTC", Timeframe.H1, MON, MON + 3 * HOUR)


def test_truncated_body_is_temporary(fake: FakeCoinbase, venue: CoinbaseVenue) -> None:
    fake.fail(Fault(BTC_CANDLES, times=ATTEMPTS, truncate=40))
    with pytest.raises(TemporaryExchangeError):
        venue.candles("BTC", Timeframe.H1, MON, MON + 3 * HOUR)
    fake.fail(Fault(BTC_CANDLES, times=1, truncate=40))
    assert len(venue.candles("BTC", Timeframe.H1, MON, MON + 3 * HOUR)) == 3


@pytest.mark.parametrize("status", [404, 400])
def test_unknown_product_is_permanent_with_the_venues_message(
    fake: FakeCoinbase, venue: CoinbaseVenue, status: int
) -> None:
    fake.unknown_product_status = status
    with pytest.raises(PermanentExchangeError, match="ProductID NOPE-USD could not be found"):
        venue.candles("NOPE", Timeframe.H1, MON, MON + 3 * HOUR)
    with pytest.raises(PermanentExchangeError, match="ProductID NOPE-USD could not be found"):
        venue.quote("NOPE")
    assert len(fake.server.requests_to(f"{PRODUCTS}NOPE-USD")) == 2  # not retried


def test_invalid_granularity_answer_is_permanent(fake: FakeCoinbase, venue: CoinbaseVenue) -> None:
    body = error_body("INVALID_ARGUMENT", "granularity argument is invalid", 3)
    fake.fail(Fault(BTC_CANDLES, times=1, reply=Reply.json(body, 400)))
    with pytest.raises(PermanentExchangeError, match="granularity argument is invalid"):
        venue.candles("BTC", Timeframe.H1, MON, MON + 3 * HOUR)
    assert len(fake.candle_requests()) == 1


def test_errors_list_body_and_error_inside_a_200_are_permanent(
    fake: FakeCoinbase, venue: CoinbaseVenue
) -> None:
    errors = {"errors": [{"id": "not_found", "message": "Product is delisted"}]}
    fake.fail(Fault(BTC_CANDLES, times=1, reply=Reply.json(errors, 400)))
    with pytest.raises(PermanentExchangeError, match="Product is delisted"):
        venue.candles("BTC", Timeframe.H1, MON, MON + 3 * HOUR)
    fake.fail(Fault(BTC_CANDLES, times=1, reply=Reply.json(errors, 200)))
    with pytest.raises(PermanentExchangeError, match="Product is delisted"):
        venue.candles("BTC", Timeframe.H1, MON, MON + 3 * HOUR)


def test_wrong_envelope_is_temporary(fake: FakeCoinbase, venue: CoinbaseVenue) -> None:
    fake.fail(Fault(BTC_CANDLES, times=ATTEMPTS, reply=Reply.json({"candle": []})))
    with pytest.raises(TemporaryExchangeError, match=r"no 'candles' list.*gave up after 3"):
        venue.candles("BTC", Timeframe.H1, MON, MON + 3 * HOUR)


def test_a_coin_that_is_not_a_symbol_is_refused_without_a_request(
    fake: FakeCoinbase, venue: CoinbaseVenue
) -> None:
    with pytest.raises(PermanentExchangeError, match="not a coin symbol"):
        venue.candles("BTC/../x", Timeframe.H1, MON, MON + HOUR)
    assert fake.server.requests == []


# ---------------------------------------------------------------- the fake rejects like Coinbase


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"end": "1704078000", "granularity": "ONE_HOUR"}, "start and end argument is invalid"),
        ({"start": "1704067200", "granularity": "ONE_HOUR"}, "start and end argument is invalid"),
        (
            {"start": str(MON), "end": str(MON + 351 * HOUR), "granularity": "ONE_HOUR"},
            "number of candles requested should be less than 350",
        ),
        ({"start": str(MON), "end": str(MON + HOUR), "granularity": "FOUR_HOUR"}, "granularity"),
        ({"start": str(MON), "end": str(MON + HOUR)}, "granularity argument is invalid"),
    ],
)
def test_fake_rejects_bad_parameters_with_400(
    fake: FakeCoinbase, params: dict[str, str], message: str
) -> None:
    answer = requests.get(fake.base_url + BTC_CANDLES, params=params, timeout=5)
    assert answer.status_code == 400
    assert message in answer.json()["message"]
    assert answer.json()["error"] == "INVALID_ARGUMENT"


def test_fake_serves_exactly_350_buckets_and_honours_limit(fake: FakeCoinbase) -> None:
    params = {"start": str(MON), "end": str(MON + 350 * HOUR), "granularity": "ONE_HOUR"}
    answer = requests.get(fake.base_url + BTC_CANDLES, params=params, timeout=5)
    assert len(answer.json()["candles"]) == 350  # 351 buckets in [start, end], newest 350 kept
    answer = requests.get(fake.base_url + BTC_CANDLES, params={**params, "limit": "5"}, timeout=5)
    starts = [r["start"] for r in answer.json()["candles"]]
    assert starts == [str(MON + h * HOUR) for h in (350, 349, 348, 347, 346)]


# ---------------------------------------------------------------- garbage rows


def set_field(index: int, field: str, value: Any) -> Callable[[list[Any]], list[Any]]:
    """Set one field of the row opening at ``MON + index h`` (the page is newest first)."""

    def edit(rows: list[dict[str, Any]]) -> list[Any]:
        for row in rows:
            if row["start"] == str(MON + index * HOUR):
                row[field] = value
        return rows

    return edit


@pytest.mark.parametrize(
    "case",
    [
        ("close", "NaN", "price is not a finite number"),
        ("open", "abc", "price is not a finite number"),
        ("low", None, "price is not a finite number"),
        ("low", "0", "price is zero or negative"),
        ("open", "-42000", "price is zero or negative"),
        ("high", "42000", "high below"),
        ("volume", "-1", "volume is negative"),
        ("volume", "lots", "volume is not a finite number"),
        ("start", "soon", "time"),
    ],
)
def test_a_garbage_row_is_dropped_with_a_logged_reason(
    fake: FakeCoinbase,
    venue: CoinbaseVenue,
    caplog: pytest.LogCaptureFixture,
    case: tuple[str, Any, str],
) -> None:
    field, value, reason = case
    fake.mangle_rows = set_field(2, field, value)
    with caplog.at_level(logging.WARNING, logger="pt_venue_coinbase"):
        got = venue.candles("BTC", Timeframe.H1, MON, MON + 5 * HOUR)
    assert got.time.tolist() == [MON + h * HOUR for h in (0, 1, 3, 4)]
    assert_same(got, _without(between(btc(), MON, MON + 5 * HOUR), 2))
    assert any("BTC-USD" in r.getMessage() and reason in r.getMessage() for r in caplog.records)


def _without(c: Candles, row: int) -> Candles:
    keep = np.arange(len(c)) != row
    return Candles(c.time[keep], c.open[keep], c.high[keep], c.low[keep], c.close[keep],
                   c.volume[keep])  # fmt: skip


def test_unsorted_duplicate_and_millisecond_rows_are_repaired(
    fake: FakeCoinbase, venue: CoinbaseVenue, caplog: pytest.LogCaptureFixture
) -> None:
    def shuffle_and_repeat(rows: list[dict[str, Any]]) -> list[Any]:
        rows = [dict(r, start=str(int(r["start"]) * 1000)) for r in rows]
        return [rows[2], rows[0], rows[1], rows[1], *rows[3:], "not a row"]

    fake.mangle_rows = shuffle_and_repeat
    with caplog.at_level(logging.WARNING, logger="pt_venue_coinbase"):
        got = venue.candles("BTC", Timeframe.H1, MON, MON + 5 * HOUR)
    assert_same(got, between(btc(), MON, MON + 5 * HOUR))
    logged = " | ".join(r.getMessage() for r in caplog.records)
    for reason in ("milliseconds", "not in ascending time order", "duplicate row", "dropped"):
        assert reason in logged


# ---------------------------------------------------------------- quotes


def test_quote_is_parsed_from_ticker_and_product(fake: FakeCoinbase, venue: CoinbaseVenue) -> None:
    fake.now = MON + 1800
    quote = venue.quote("btc")

    close = 42475.23  # the bundled 2024-01-01 00:00 candle, the last one opened by now
    assert (quote.symbol, quote.venue) == ("BTC", "coinbase")
    assert quote.last == close
    assert quote.bid == close * (1 - 0.0001) and quote.ask == close * (1 + 0.0001)
    assert quote.time == MON + 1800 - 1.5
    volume = fake.volume_24h("BTC")
    assert volume > 1000
    assert quote.base_volume_24h == volume
    assert quote.quote_volume_24h == pytest.approx(volume * close)
    (ticker,) = fake.server.requests_to(BTC_TICKER)
    assert ticker.param("limit") == "1"


def test_quote_stands_without_volumes_when_the_product_call_fails(
    fake: FakeCoinbase, venue: CoinbaseVenue, caplog: pytest.LogCaptureFixture
) -> None:
    fake.product_reply = Reply.json({"error": "INTERNAL", "message": "boom"}, 503)
    with caplog.at_level(logging.WARNING, logger="pt_venue_coinbase"):
        quote = venue.quote("BTC")
    assert quote.bid > 0 and quote.base_volume_24h is None and quote.quote_volume_24h is None
    assert any("no 24 h volume" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("edit", "shown"),
    [
        ({"best_bid": "NaN"}, "'NaN'"),
        ({"best_bid": "0"}, "'0'"),
        ({"best_ask": "-5"}, "'-5'"),
        ({"best_ask": "abc"}, "'abc'"),
        ({"best_bid": None}, "None"),
        ({"best_bid": "50000", "best_ask": "49999"}, "'50000'"),
        ({"trades": []}, "no usable last trade"),
        ({"trades": [{"price": "NaN", "time": "2024-01-01T00:00:00Z"}]}, "'NaN'"),
        ({"trades": [{"price": "42000", "time": "yesterday"}]}, "'yesterday'"),
    ],
)
def test_bad_quote_is_rejected_as_temporary_naming_the_value(
    fake: FakeCoinbase, venue: CoinbaseVenue, edit: dict[str, Any], shown: str
) -> None:
    body = {**fake.ticker_body("BTC"), **edit}
    fake.fail(Fault(BTC_TICKER, times=1, reply=Reply.json(body)))
    with pytest.raises(TemporaryExchangeError, match="coinbase BTC-USD") as caught:
        venue.quote("BTC")
    assert shown in str(caught.value)


def test_rfc3339_times_with_any_fraction_are_read(fake: FakeCoinbase, venue: CoinbaseVenue) -> None:
    for text, want in [
        ("2024-04-04T01:00:03.123456789Z", 1712192403.123456789),
        ("2021-05-31T09:59:59.000Z", 1622455199.0),
        ("2024-04-04T03:00:03+02:00", 1712192403.0),
    ]:
        body = fake.ticker_body("BTC")
        body["trades"][0]["time"] = text
        fake.fail(Fault(BTC_TICKER, times=1, reply=Reply.json(body)))
        assert venue.quote("BTC").time == pytest.approx(want, abs=1e-6)


def test_a_venue_20_percent_off_shows_in_quote_and_candles(sleeps: list[float]) -> None:
    with FakeCoinbase({"BTC": btc()}, now=MON + 1800, price_factor=1.2) as fake:
        venue, _ = make_venue(fake, sleeps)
        quote = venue.quote("BTC")
        got = venue.candles("BTC", Timeframe.H1, MON, MON + HOUR)
    assert quote.last == pytest.approx(42475.23 * 1.2)
    assert quote.mid / 42475.23 == pytest.approx(1.2, rel=1e-6)
    assert got.open[0] == pytest.approx(42283.58 * 1.2) and got.volume[0] == 1271.68108


def test_venue_identity_and_default_client() -> None:
    venue = CoinbaseVenue()
    assert (venue.name, venue.quote_currency, venue.taker_fee_pct) == ("coinbase", "USD", 0.6)
    assert venue.http.base_url == "https://api.coinbase.com"
    assert venue.http.limiter is not None
    assert (venue.http.limiter.rate, venue.http.limiter.burst) == (8.0, 8.0)
    assert CoinbaseVenue(taker_fee_pct=0.4).taker_fee_pct == 0.4
