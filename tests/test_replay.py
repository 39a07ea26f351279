"""Demo mode's replay market and simulated clock: above all, nothing from after "now" leaks."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

import pt_ohlcv
from pt_errors import PermanentExchangeError, TemporaryExchangeError
from pt_price_path import partial_candle, price_at
from pt_replay import (
    CLOCK_SCHEMA,
    DemoClockError,
    DemoClockState,
    ReplayMarket,
    SimClock,
    change_speed,
    read_clock,
    sim_time,
    start_clock,
)
from pt_state import DataLayout
from pt_types import HOUR, Candles, Timeframe

BTC = pt_ohlcv.load_bundled("BTC")
GAP_HOUR = int(np.datetime64("2023-03-24T13:00", "s").astype(np.int64))  # missing in BTC


def at(t: float) -> ReplayMarket:
    return ReplayMarket(lambda: t)


def hour_row(t: int) -> tuple[float, float, float, float, float]:
    i = int(np.searchsorted(BTC.time, t))
    assert BTC.time[i] == t
    return (
        float(BTC.open[i]),
        float(BTC.high[i]),
        float(BTC.low[i]),
        float(BTC.close[i]),
        float(BTC.volume[i]),
    )


# ---------------------------------------------------------------------------------------------
# The simulated clock


class WallClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_sim_time_runs_at_speed_from_its_anchor() -> None:
    state = DemoClockState(sim_start=1_000_000.0, wall_start=500.0, speed=60.0)
    assert sim_time(state, 500.0) == 1_000_000.0
    assert sim_time(state, 510.0) == 1_000_600.0
    with pytest.raises(ValueError, match="speed"):
        DemoClockState(0.0, 0.0, -1.0)


def test_the_clock_file_round_trips(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    wall = WallClock(1000.0)
    state = start_clock(layout, 1_700_000_000.0, 120.0, wall_clock=wall)
    assert state == DemoClockState(1_700_000_000.0, 1000.0, 120.0)
    envelope = json.loads(layout.clock_file.read_text())
    assert envelope["schema"] == CLOCK_SCHEMA == "clock/1"
    assert envelope["data"] == {"sim_start": 1_700_000_000.0, "wall_start": 1000.0, "speed": 120.0}
    assert read_clock(layout) == state
    clock = SimClock(layout, wall_clock=wall)
    wall.t = 1030.0
    assert clock.now() == 1_700_000_000.0 + 30 * 120.0


def test_changing_speed_does_not_make_time_jump(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    wall = WallClock(1000.0)
    start_clock(layout, 1_700_000_000.0, 60.0, wall_clock=wall)
    clock = SimClock(layout, wall_clock=wall)
    wall.t = 1100.0
    before = clock.now()
    assert before == 1_700_000_000.0 + 100 * 60.0
    new = change_speed(layout, 3600.0, wall_clock=wall)
    assert new == DemoClockState(before, 1100.0, 3600.0)
    assert clock.now() == before
    wall.t = 1102.0
    assert clock.now() == before + 2 * 3600.0
    assert change_speed(layout, 0.0, wall_clock=wall).speed == 0.0  # paused
    wall.t = 2000.0
    assert clock.now() == before + 2 * 3600.0


def test_a_missing_clock_file_says_the_hub_starts_it(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    with pytest.raises(DemoClockError) as info:
        SimClock(layout).now()
    message = str(info.value)
    assert "demo clock has not been started" in message and "hub" in message
    assert str(layout.clock_file) in message
    with pytest.raises(DemoClockError, match="has not been started"):
        change_speed(layout, 10.0)


def test_a_replay_market_runs_on_the_sim_clock(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    wall = WallClock(0.0)
    start_clock(layout, float(GAP_HOUR - 10 * HOUR), 3600.0, wall_clock=wall)
    market = ReplayMarket(SimClock(layout, wall_clock=wall).now)
    assert market.quote("BTC").time == GAP_HOUR - 10 * HOUR
    wall.t = 10.5  # ten and a half simulated hours later: inside the outage hour
    with pytest.raises(TemporaryExchangeError):
        market.quote("BTC")


# ---------------------------------------------------------------------------------------------
# No look-ahead


def expected_forming(tf: Timeframe, now: float) -> tuple[float, float, float, float]:
    """What the forming candle of ``tf`` may show at ``now``, built from the hourly rows."""
    hour = Timeframe.H1.candle_open(int(now))
    bucket = tf.candle_open(int(now))
    lo, hi = np.searchsorted(BTC.time, [bucket, hour])
    highs, lows = list(BTC.high[lo:hi]), list(BTC.low[lo:hi])
    opens, closes = list(BTC.open[lo:hi]), list(BTC.close[lo:hi])
    if hi < len(BTC) and BTC.time[hi] == hour:
        o, h, low, c, _ = hour_row(hour)
        po, ph, pl, pc = partial_candle(o, h, low, c, (now - hour) / HOUR)
        highs.append(ph)
        lows.append(pl)
        opens.append(po)
        closes.append(pc)
    return (opens[0], max(highs), min(lows), closes[-1])


def test_no_candle_or_price_from_after_now_for_random_times() -> None:
    rng = np.random.default_rng(20240101)
    nows = rng.uniform(BTC.time[0] + 10 * 86400, BTC.time[-1] + HOUR, size=120)
    nows = np.concatenate([nows, [GAP_HOUR + 1800.0, float(BTC.time[-1] + 3599)]])
    hid_later_extreme = 0
    for now in nows.tolist():
        market = at(now)
        for tf in Timeframe:
            got = market.candles("BTC", tf, int(now) - 40 * tf.seconds, int(now) + 5 * tf.seconds)
            assert len(got) > 0
            assert np.all(got.time <= now) and np.all(np.diff(got.time) > 0)
            reference = pt_ohlcv.load_bundled("BTC", tf)
            closed = got.slice(0, len(got) - 1) if got.forming else got
            idx = np.searchsorted(reference.time, closed.time)
            for key in ("time", "open", "high", "low", "close", "volume"):
                np.testing.assert_array_equal(getattr(closed, key), getattr(reference, key)[idx])
            bucket = tf.candle_open(int(now))
            assert got.forming == (got.time[-1] == bucket), (now, tf)
            if got.forming:
                last = (got.open[-1], got.high[-1], got.low[-1], got.close[-1])
                assert last == expected_forming(tf, now), (now, tf)
                full = reference.high[np.searchsorted(reference.time, bucket)]
                hid_later_extreme += bool(got.high[-1] < full)
    assert hid_later_extreme > 50  # the test did meet forming candles whose high was still ahead


def write_csv(path: Path, candles: Candles) -> None:
    table = np.column_stack(
        [candles.time, candles.open, candles.high, candles.low, candles.close, candles.volume]
    )
    lines = [pt_ohlcv.HEADER] + [
        f"{int(r[0])},{r[1]!r},{r[2]!r},{r[3]!r},{r[4]!r},{r[5]!r}" for r in table.tolist()
    ]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=1))


def poisoned(candles: Candles, now: float) -> Candles:
    """The same history with every candle opening after ``now`` made absurd (prices ×1000)."""
    future = candles.time > now
    factor = np.where(future, 1000.0, 1.0)
    return Candles(
        candles.time,
        candles.open * factor,
        candles.high * factor,
        candles.low * factor,
        candles.close * factor,
        candles.volume * factor,
    )


@pytest.mark.parametrize(
    "now",
    [
        1_686_000_000.0 + 1234.5,  # 2023-06-05, inside an hour
        float(GAP_HOUR + 1800),  # inside the outage hour
        float(GAP_HOUR - 1),  # one second before the outage
        1_704_067_200.0,  # 2024-01-01 00:00: the start of an hour, a day and a year
        1_704_067_200.0 + 3 * 86400 + 7 * 3600 + 59 * 60,  # Thursday, near an hour's end
    ],
)
def test_results_do_not_change_when_the_future_is_poisoned(tmp_path: Path, now: float) -> None:
    part = BTC.slice(
        int(np.searchsorted(BTC.time, 1_672_531_200)),  # 2023-01-01
        int(np.searchsorted(BTC.time, 1_717_200_000)),  # 2024-06-01
    )
    clean_dir, bad_dir = tmp_path / "clean", tmp_path / "poisoned"
    for folder, table in ((clean_dir, part), (bad_dir, poisoned(part, now))):
        folder.mkdir()
        write_csv(folder / "BTC-USDT-1h.csv.gz", table)
    clean = ReplayMarket(lambda: now, directory=clean_dir)
    bad = ReplayMarket(lambda: now, directory=bad_dir)
    assert not np.array_equal(
        pt_ohlcv.load_bundled("BTC", directory=clean_dir).close,
        pt_ohlcv.load_bundled("BTC", directory=bad_dir).close,
    )
    for tf in Timeframe:
        for start, end in ((0, 2**40), (int(now) - 100 * tf.seconds, int(now) + 100 * tf.seconds)):
            a, b = clean.candles("BTC", tf, start, end), bad.candles("BTC", tf, start, end)
            assert a.forming == b.forming
            for key in ("time", "open", "high", "low", "close", "volume"):
                np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    try:
        expected = clean.quote("BTC")
    except TemporaryExchangeError as exc:
        with pytest.raises(TemporaryExchangeError) as info:
            bad.quote("BTC")
        assert str(info.value) == str(exc)
    else:
        assert bad.quote("BTC") == expected


# ---------------------------------------------------------------------------------------------
# Quotes and errors


def test_the_quote_follows_the_path_with_the_spread_applied() -> None:
    hour = 1_704_067_200  # 2024-01-01 00:00 UTC: 42283.58/42554.57/42261.02/42475.23/1271.68108
    o, h, low, c, v = hour_row(hour)
    assert (o, h, low, c, v) == (42283.58, 42554.57, 42261.02, 42475.23, 1271.68108)
    market = ReplayMarket(lambda: hour + 1800.0, spread_pct=0.2)
    quote = market.quote("btc")
    mid = price_at(o, h, low, c, 0.5)
    assert quote.last == mid and low <= mid <= h
    assert quote.bid == pytest.approx(mid * 0.999, rel=1e-12)
    assert quote.ask == pytest.approx(mid * 1.001, rel=1e-12)
    assert quote.mid == pytest.approx(mid, rel=1e-12)
    assert (quote.symbol, quote.venue, quote.time) == ("BTC", "replay", hour + 1800.0)
    day = BTC.slice(*(int(i) for i in np.searchsorted(BTC.time, [hour - 86400, hour])))
    assert len(day) == 24
    assert quote.base_volume_24h == pytest.approx(day.volume.sum() + v * 0.5, rel=1e-12)
    quote_volume = (day.volume * day.close).sum() + v * 0.5 * mid
    assert quote.quote_volume_24h == pytest.approx(quote_volume, rel=1e-12)
    assert (market.name, market.quote_currency, market.taker_fee_pct) == ("replay", "USDT", 0.0)


def test_quotes_stay_inside_each_hours_range() -> None:
    rng = np.random.default_rng(5)
    for now in rng.uniform(BTC.time[0], BTC.time[-1] + HOUR, size=300).tolist():
        hour = Timeframe.H1.candle_open(int(now))
        if hour not in BTC.time:
            continue
        o, h, low, c, _ = hour_row(hour)
        quote = at(now).quote("BTC")
        assert low <= quote.last <= h
        assert quote.last == price_at(o, h, low, c, (now - hour) / HOUR)
        assert quote.bid < quote.last < quote.ask


def test_an_outage_hour_is_a_temporary_error() -> None:
    with pytest.raises(TemporaryExchangeError) as info:
        at(GAP_HOUR + 600.0).quote("BTC")
    assert str(info.value) == (
        "replay: no candle at 2023-03-24 13:00:00 UTC: exchange outage in the bundled data"
    )
    hourly = at(GAP_HOUR + 600.0).candles("BTC", Timeframe.H1, GAP_HOUR - 3 * HOUR, GAP_HOUR + HOUR)
    assert list(hourly.time) == [GAP_HOUR - 3 * HOUR, GAP_HOUR - 2 * HOUR, GAP_HOUR - HOUR]
    assert not hourly.forming  # a gap is not invented, and the last hour shown has closed
    daily = at(GAP_HOUR + 600.0).candles("BTC", Timeframe.D1, GAP_HOUR - 86400, GAP_HOUR)
    assert daily.forming and daily.time[-1] == Timeframe.D1.candle_open(GAP_HOUR)


@pytest.mark.parametrize(
    ("now", "shown"),
    [
        (float(BTC.time[0] - 1), "2017-08-17 03:59:59 UTC"),
        (float(BTC.time[-1] + HOUR), "2026-05-16 19:00:00 UTC"),
        (2_000_000_000.0, "2033-05-18 03:33:20 UTC"),
    ],
)
def test_a_time_outside_the_data_is_a_permanent_error(now: float, shown: str) -> None:
    with pytest.raises(PermanentExchangeError) as info:
        at(now).quote("BTC")
    message = str(info.value)
    assert "BTC" in message and shown in message
    assert "2017-08-17 04:00:00 UTC .. 2026-05-16 19:00:00 UTC" in message


def test_the_last_bundled_hour_is_still_quoted() -> None:
    quote = at(float(BTC.time[-1]) + 3599).quote("BTC")
    assert quote.last == pytest.approx(float(BTC.close[-1]), rel=1e-3)


def test_an_unknown_coin_lists_the_bundled_coins() -> None:
    for call in (
        lambda m: m.quote("NOPE"),
        lambda m: m.candles("NOPE", Timeframe.H1, 0, 10),
    ):
        with pytest.raises(PermanentExchangeError) as info:
            call(at(1_704_067_200.0))
        assert "NOPE" in str(info.value) and "BNB, BTC, DOGE, ETH, XRP" in str(info.value)


def test_an_empty_or_future_request_returns_nothing() -> None:
    market = at(1_704_067_200.0 + 1800)
    assert len(market.candles("BTC", Timeframe.H1, 100, 100)) == 0
    assert len(market.candles("BTC", Timeframe.H4, 1_704_067_200 + HOUR, 2**40)) == 0
    assert len(market.candles("BTC", Timeframe.W1, 0, int(BTC.time[0]) - 7 * 86400)) == 0


def test_a_partial_candle_at_the_hours_first_second_is_flat() -> None:
    hour = 1_704_067_200
    got = at(float(hour)).candles("BTC", Timeframe.H1, hour - HOUR, hour + HOUR)
    o = hour_row(hour)[0]
    assert got.forming and got.time[-1] == hour
    assert (got.open[-1], got.high[-1], got.low[-1], got.close[-1], got.volume[-1]) == (
        o,
        o,
        o,
        o,
        0.0,
    )
