"""The candle cache against a recording fake source serving real bundled candles."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import pt_ohlcv
from pt_candle_cache import SCHEMA_VERSION, CandleCache, CandleCacheError
from pt_candles import resample
from pt_errors import PermanentExchangeError, TemporaryExchangeError
from pt_exchanges import ExchangeManager, mark_forming
from pt_price_path import partial_candle
from pt_types import HOUR, Candles, Quote, Timeframe

H1 = Timeframe.H1
START = 1_704_067_200  # 2024-01-01 00:00 UTC
NOW = START + 9 * 24 * HOUR + 10 * HOUR + 20 * 60  # 2024-01-10 10:20 UTC
HOUR_NOW = NOW - 20 * 60
DAY_S = 24 * HOUR
END = HOUR_NOW + HOUR  # the end of the forming candle


def bundled(start: int, end: int, coin: str = "BTC") -> Candles:
    btc = pt_ohlcv.load_bundled(coin)
    lo, hi = np.searchsorted(btc.time, [start, end])
    return btc.slice(int(lo), int(hi))


class FakeSource:
    """A venue serving bundled candles up to ``now``; the current hour as it looks while forming."""

    quote_currency = "USDT"
    taker_fee_pct = 0.1

    def __init__(self, now: float, *, name: str = "fakevenue", drop_times: tuple[int, ...] = ()):
        self.name = name
        self.now = now
        self.drop_times = set(drop_times)
        self.error: Exception | None = None
        self.calls: list[tuple[str, Timeframe, int, int]] = []

    def _hourly(self, coin: str) -> Candles:
        hour = H1.candle_open(int(self.now))
        rows = bundled(0, hour + HOUR, coin)
        keep = ~np.isin(rows.time, list(self.drop_times))
        o, h, lo, c, v = (
            np.array(getattr(rows, k))[keep] for k in ("open", "high", "low", "close", "volume")
        )
        times = rows.time[keep]
        if len(times) and times[-1] == hour:
            fraction = (self.now - hour) / HOUR
            o[-1], h[-1], lo[-1], c[-1] = partial_candle(o[-1], h[-1], lo[-1], c[-1], fraction)
            v[-1] *= fraction
        return Candles(np.array(times), o, h, lo, c, v)

    def candles(self, coin: str, timeframe: Timeframe, start: int, end: int) -> Candles:
        self.calls.append((coin, timeframe, start, end))
        if self.error is not None:
            raise self.error
        table = self._hourly(coin)
        if timeframe is not H1:
            table = resample(table, timeframe, now=int(self.now), base_step=HOUR)
        lo, hi = np.searchsorted(table.time, [start, end])
        return mark_forming(table.slice(int(lo), int(hi)), timeframe, self.now)

    def quote(self, coin: str) -> Quote:
        raise PermanentExchangeError("quotes are not served by this fake")


@pytest.fixture
def source() -> FakeSource:
    return FakeSource(NOW)


@pytest.fixture
def cache(tmp_path: Path, source: FakeSource) -> Iterator[CandleCache]:
    c = CandleCache(tmp_path / "candles.sqlite3", clock=lambda: source.now)
    yield c
    c.close()


def assert_same(got: Candles, expected: Candles) -> None:
    for key in ("time", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(got, key), getattr(expected, key), err_msg=key)


def test_first_call_fetches_the_span_and_marks_the_forming_candle(cache, source) -> None:
    got = cache.get("BTC", H1, START, END, source)
    assert source.calls == [("BTC", H1, START, HOUR_NOW + HOUR)]
    assert got.forming
    assert_same(got.slice(0, len(got) - 1), bundled(START, HOUR_NOW))
    full = bundled(HOUR_NOW, HOUR_NOW + HOUR)
    o, h, lo, c = partial_candle(
        float(full.open[0]), float(full.high[0]), float(full.low[0]), float(full.close[0]), 1 / 3
    )
    assert got.time[-1] == HOUR_NOW
    assert (got.open[-1], got.high[-1], got.low[-1], got.close[-1]) == (o, h, lo, c)
    assert cache.covered("BTC", H1) == (START, HOUR_NOW)
    assert cache.venues("BTC", H1) == {"fakevenue": len(got) - 1}


def test_second_call_asks_only_for_the_forming_candle(cache, source) -> None:
    first = cache.get("BTC", H1, START, END, source)
    second = cache.get("btc", H1, START, END, source)
    assert source.calls[1:] == [("BTC", H1, HOUR_NOW, HOUR_NOW + HOUR)]
    assert_same(second, first)
    assert second.forming


def test_a_closed_span_is_served_without_asking(cache, source) -> None:
    cache.get("BTC", H1, START, END, source)
    got = cache.get("BTC", H1, START + DAY_S, START + 2 * DAY_S, source)
    assert len(source.calls) == 1
    assert_same(got, bundled(START + DAY_S, START + 2 * DAY_S))
    assert not got.forming


def test_advancing_three_hours_asks_only_for_the_new_candles(cache, source) -> None:
    cache.get("BTC", H1, START, END, source)
    source.now = NOW + 3 * HOUR
    got = cache.get("BTC", H1, START, END + 3 * HOUR, source)
    assert source.calls[1:] == [("BTC", H1, HOUR_NOW, HOUR_NOW + 4 * HOUR)]
    assert cache.covered("BTC", H1) == (START, HOUR_NOW + 3 * HOUR)
    # The hour that was forming is now stored with its final values, not the partial ones.
    assert_same(cache.read("BTC", H1, START, END + 3 * HOUR), bundled(START, HOUR_NOW + 3 * HOUR))
    assert got.forming and got.time[-1] == HOUR_NOW + 3 * HOUR


def test_extending_start_earlier_asks_only_for_the_older_part(cache, source) -> None:
    cache.get("BTC", H1, START, END, source)
    earlier = START - 30 * DAY_S
    got = cache.get("BTC", H1, earlier, END, source)
    assert source.calls[1:] == [
        ("BTC", H1, earlier, START),
        ("BTC", H1, HOUR_NOW, HOUR_NOW + HOUR),
    ]
    assert cache.covered("BTC", H1) == (earlier, HOUR_NOW)
    assert_same(got.slice(0, len(got) - 1), bundled(earlier, HOUR_NOW))


def test_a_request_past_the_covered_span_fills_the_hole_once(cache, source) -> None:
    source.now = START + 5 * DAY_S
    cache.get("BTC", H1, START, START + DAY_S, source)
    cache.get("BTC", H1, START + 3 * DAY_S, START + 4 * DAY_S, source)
    assert source.calls[1] == ("BTC", H1, START + DAY_S, START + 4 * DAY_S)
    assert cache.covered("BTC", H1) == (START, START + 4 * DAY_S)


def test_a_gap_in_the_source_is_not_asked_for_again(tmp_path, source) -> None:
    gap = (START + 5 * HOUR, START + 6 * HOUR, START + 50 * HOUR)
    source.drop_times = set(gap)
    with CandleCache(tmp_path / "c.sqlite3", clock=lambda: source.now) as cache:
        got = cache.get("BTC", H1, START, END, source)
        again = cache.get("BTC", H1, START, END, source)
        assert source.calls[1:] == [("BTC", H1, HOUR_NOW, HOUR_NOW + HOUR)]
        assert not np.isin(list(gap), got.time).any()
        assert_same(again, got)
        stored = cache.read("BTC", H1, START, HOUR_NOW)
        assert len(stored) == len(bundled(START, HOUR_NOW)) - 3


def test_the_forming_candle_is_refreshed_and_never_stored_as_closed(cache, source) -> None:
    early = cache.get("BTC", H1, START, END, source)
    source.now = HOUR_NOW + 40 * 60
    later = cache.get("BTC", H1, START, END, source)
    assert early.time[-1] == later.time[-1] == HOUR_NOW
    assert early.close[-1] != later.close[-1]
    full = bundled(HOUR_NOW, HOUR_NOW + HOUR)
    expected = partial_candle(
        float(full.open[0]), float(full.high[0]), float(full.low[0]), float(full.close[0]), 2 / 3
    )
    assert (later.open[-1], later.high[-1], later.low[-1], later.close[-1]) == expected
    assert HOUR_NOW not in cache.read("BTC", H1, START, NOW + HOUR).time
    source.now = HOUR_NOW + HOUR + 5 * 60
    cache.get("BTC", H1, START, END + HOUR, source)
    assert_same(cache.read("BTC", H1, HOUR_NOW, HOUR_NOW + HOUR), full)


def test_a_source_error_leaves_the_cache_intact(cache, source) -> None:
    cache.get("BTC", H1, START, END, source)
    before = cache.read("BTC", H1, 0, NOW + DAY_S)
    source.now = NOW + 5 * HOUR
    source.error = TemporaryExchangeError("venue down")
    with pytest.raises(TemporaryExchangeError, match="venue down"):
        cache.get("BTC", H1, START - DAY_S, END + 5 * HOUR, source)
    assert_same(cache.read("BTC", H1, 0, NOW + DAY_S), before)
    assert cache.covered("BTC", H1) == (START, HOUR_NOW)
    source.error = None
    got = cache.get("BTC", H1, START, END + 5 * HOUR, source)
    assert_same(got.slice(0, len(got) - 1), bundled(START, HOUR_NOW + 5 * HOUR))


def test_timeframes_are_cached_separately(cache, source) -> None:
    h4 = Timeframe.H4
    got = cache.get("BTC", h4, START, END, source)
    expected = pt_ohlcv.load_bundled("BTC", h4)
    lo = int(np.searchsorted(expected.time, START))
    hi = int(np.searchsorted(expected.time, h4.candle_open(NOW)))
    assert_same(got.slice(0, len(got) - 1), expected.slice(lo, hi))
    assert got.forming and got.time[-1] == h4.candle_open(NOW)
    assert cache.covered("BTC", h4) == (START, h4.candle_open(NOW))
    assert cache.covered("BTC", H1) is None


def test_a_plain_function_source_is_recorded_as_unknown(cache, source) -> None:
    cache.get("ETH", H1, START, START + DAY_S, source.candles)
    assert cache.venues("ETH", H1) == {"unknown": 24}


def test_the_exchange_manager_records_the_venue_that_answered(cache, source) -> None:
    broken = FakeSource(NOW, name="brokenvenue")
    broken.error = PermanentExchangeError("no such symbol")
    manager = ExchangeManager([broken, source], clock=lambda: source.now)
    got = cache.get("BTC", H1, START, START + DAY_S, manager)
    assert len(got) == 24
    assert cache.venues("BTC", H1) == {"fakevenue": 24}


def test_an_empty_file_gets_the_schema(tmp_path) -> None:
    path = tmp_path / "candles.sqlite3"
    sqlite3.connect(path).close()
    path.touch()
    with CandleCache(path) as cache:
        assert cache.covered("BTC", H1) is None
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_newer_schema_is_refused_with_advice(tmp_path) -> None:
    path = tmp_path / "candles.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(CandleCacheError) as info:
        CandleCache(path)
    message = str(info.value)
    assert str(path) in message
    assert "newer" in message and "Update PowerTrader" in message and "delete" in message


def test_a_corrupt_file_is_refused_with_advice(tmp_path) -> None:
    path = tmp_path / "candles.sqlite3"
    garbage = b"\x00\x13garbage, not a database\xff" * 400
    path.write_bytes(garbage)
    with pytest.raises(CandleCacheError) as info:
        CandleCache(path)
    assert str(path) in str(info.value) and "delete it" in str(info.value)
    assert path.read_bytes() == garbage  # a damaged file is reported, not overwritten
    with pytest.raises(CandleCacheError, match="delete it"):
        CandleCache.open_readonly(path)


def test_read_only_mode_reads_but_cannot_write(tmp_path, source) -> None:
    path = tmp_path / "candles.sqlite3"
    with pytest.raises(CandleCacheError, match="cannot open"):
        CandleCache.open_readonly(path)
    with CandleCache(path, clock=lambda: source.now) as writer:
        writer.get("BTC", H1, START, END, source)
        stored = writer.read("BTC", H1, START, NOW)
    size = path.stat().st_size
    with CandleCache.open_readonly(path) as reader:
        assert_same(reader.read("BTC", H1, START, NOW), stored)
        assert reader.covered("BTC", H1) == (START, HOUR_NOW)
        calls = len(source.calls)
        with pytest.raises(CandleCacheError, match="read-only"):
            reader.get("BTC", H1, START - DAY_S, END, source)
        assert len(source.calls) == calls
    assert path.stat().st_size == size


def test_read_only_mode_refuses_a_file_not_set_up(tmp_path) -> None:
    path = tmp_path / "candles.sqlite3"
    sqlite3.connect(path).execute("CREATE TABLE other (x)").connection.close()
    with pytest.raises(CandleCacheError, match="is empty"):
        CandleCache.open_readonly(path)


def test_a_warm_load_of_eight_years_is_fast(tmp_path) -> None:
    btc = pt_ohlcv.load_bundled("BTC")
    source = FakeSource(float(btc.time[-1]) + 1800)
    path = tmp_path / "candles.sqlite3"
    end = int(btc.time[-1]) + HOUR
    with CandleCache(path, clock=lambda: source.now) as cache:
        cache.get("BTC", H1, 0, end, source)
    with CandleCache(path, clock=lambda: source.now) as cache:
        t0 = time.perf_counter()
        got = cache.get("BTC", H1, 0, end, source)
        elapsed = time.perf_counter() - t0
    assert elapsed < 0.5, f"warm load took {elapsed:.3f} s"
    assert len(got) == len(btc) and got.forming
    assert_same(got.slice(0, len(got) - 1), btc.slice(0, len(btc) - 1))


def _write_hour_by_hour(path: str, steps: int) -> None:
    """Child process: a writer advancing the clock an hour at a time."""
    source = FakeSource(START + HOUR)
    with CandleCache(Path(path), clock=lambda: source.now) as cache:
        for _ in range(steps):
            cache.get("BTC", H1, START, int(source.now) + HOUR, source)
            source.now += HOUR


def test_a_reader_process_sees_consistent_data_while_another_writes(tmp_path) -> None:
    path = tmp_path / "candles.sqlite3"
    steps = 300
    CandleCache(path).close()  # the schema exists before the reader opens it
    ctx = multiprocessing.get_context("spawn")
    writer = ctx.Process(target=_write_hour_by_hour, args=(str(path), steps))
    writer.start()
    expected = bundled(START, START + (steps + 1) * HOUR)
    seen: set[int] = set()
    with CandleCache.open_readonly(path) as reader:
        deadline = time.monotonic() + 60
        while writer.is_alive() and time.monotonic() < deadline:
            got = reader.read("BTC", H1, 0, START + 10_000 * HOUR)
            assert_same(got, expected.slice(0, len(got)))
            seen.add(len(got))
        writer.join(timeout=30)
        assert writer.exitcode == 0
        final = reader.read("BTC", H1, 0, START + 10_000 * HOUR)
    assert_same(final, bundled(START, START + steps * HOUR))
    assert len(seen) > 2, "the reader never saw the writer's progress"


def test_candles_a_lagging_source_has_not_shown_yet_are_asked_again(cache, source) -> None:
    source.drop_times = {HOUR_NOW - HOUR, HOUR_NOW}  # neither the last closed nor the forming
    got = cache.get("BTC", H1, START, END, source)
    assert got.time[-1] == HOUR_NOW - 2 * HOUR and not got.forming
    assert cache.covered("BTC", H1) == (START, HOUR_NOW - HOUR)
    source.drop_times = set()
    got = cache.get("BTC", H1, START, END, source)
    assert source.calls[1] == ("BTC", H1, HOUR_NOW - HOUR, END)
    assert list(got.time[-2:]) == [HOUR_NOW - HOUR, HOUR_NOW] and got.forming
