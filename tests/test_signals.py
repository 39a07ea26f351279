"""pt_signals: learn-then-predict per timeframe, levels per price, reasons, the JSON edge.

Memories are built by hand (tiny, absolute distance) so every number below is worked out by
hand in the comments.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pt_patterns import Memory, MemoryArrays, PatternConfig, walk_forward
from pt_signals import (
    MAX_CATCHUP,
    PRICE_MAX_AGE,
    RETRY_FIRST,
    CoinPredictor,
    CoinSignal,
    CoinStatus,
    SignalsSnapshot,
    Stage,
    TfSide,
    TimeframeTracker,
    price_problem,
    snapshot_from_data,
    snapshot_to_data,
    stage_of,
)
from pt_types import HOUR, Candles, Timeframe

CONFIG = PatternConfig(pattern_length=1, distance="absolute", start_threshold=0.5)
T0 = 472_222 * HOUR  # an hour boundary in Nov 2023
MONDAY = Timeframe.W1.candle_open(1_700_000_000)  # every timeframe's candle starts here


def memory(patterns: list[float], outcomes: list[list[float]], threshold: float = 0.5) -> Memory:
    n = len(patterns)
    arrays = MemoryArrays(
        np.array(patterns, dtype=float).reshape(n, 1),
        np.array(outcomes, dtype=float).reshape(n, 3),
        np.ones((n, 3)),
        threshold,
    )
    return Memory(CONFIG, arrays)


def table(step: int, start: int, rows: list[tuple[float, float, float, float]]) -> Candles:
    """Rows of (open, high, low, close) from ``start``; the last one is the forming candle."""
    o, h, lo, c = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    times = (start + step * np.arange(len(rows))).astype(np.int64)
    return Candles(times, o, h, lo, c, np.ones(len(rows)), forming=True)


FLAT = (100.0, 101.0, 99.0, 100.0)  # body 0 %


def two_memories() -> Memory:
    # pattern +1 % -> next close +0.5 %, high +2 %, low -1 %; pattern -1 % -> -0.5, +1, -3
    return memory([1.0, -1.0], [[0.5, 2.0, -1.0], [-0.5, 1.0, -3.0]])


def test_it_predicts_the_forming_candle_then_learns_it_when_it_closes() -> None:
    tracker = TimeframeTracker(Timeframe.H1, two_memories())
    now = T0 + 3 * HOUR + 60
    first = table(HOUR, T0, [FLAT, FLAT, (100, 102, 99.5, 101), (101, 101.5, 100.8, 101.2)])
    assert tracker.fetch_limit(now) == 4  # pattern_length + 2 closed + the forming one
    assert tracker.feed(first, now) == 0  # nothing learned from history on the first fetch
    p = tracker.current(now)
    # last closed body +1 % matches memory 0 only: high 101 * 1.02, low 101 * 0.99
    assert (p.candle_time, p.reason) == (T0 + 3 * HOUR, "")
    assert p.predicted_high == pytest.approx(103.02)
    assert p.predicted_low == pytest.approx(99.99)
    assert tracker.fetch_limit(now + 3000) == 0  # no candle can have closed yet

    now = T0 + 4 * HOUR + 60
    assert tracker.fetch_limit(now) == 4
    # the predicted candle closed at 99.99 (-1 %), high 104.03 (+3 %), low 99.485 (-1.5 %)
    closed = (101.0, 104.03, 99.485, 99.99)
    second = table(HOUR, T0 + HOUR, [FLAT, (100, 102, 99.5, 101), closed, (99.99, 100, 99, 99.5)])
    assert tracker.feed(second, now) == 1
    w = tracker.memory.arrays().weights
    # memory 0 said close +0.5 (got -1: -0.25), high +2 (got +3: +0.25), low -1 (got -1.5: +0.25)
    np.testing.assert_allclose(w, [[0.75, 1.25, 1.25], [1.0, 1.0, 1.0]])
    p = tracker.current(now)
    # the new pattern (-1 %) matches memory 1: high 99.99 * 1.01, low 99.99 * 0.97
    assert p.predicted_high == pytest.approx(100.9899)
    assert p.predicted_low == pytest.approx(96.9903)
    assert tracker.current(now + HOUR).reason == "waiting for the new candle"
    assert math.isnan(tracker.current(now + HOUR).predicted_high)


def test_a_pattern_with_no_match_is_inactive_and_becomes_a_memory() -> None:
    tracker = TimeframeTracker(Timeframe.H1, two_memories())
    now = T0 + 3 * HOUR + 60
    tracker.feed(table(HOUR, T0, [FLAT, FLAT, (100, 105, 100, 105), (105, 106, 104, 105)]), now)
    p = tracker.current(now)
    assert math.isnan(p.predicted_high) and "no similar pattern" in p.reason
    after = (105.0, 107.1, 104.0, 106.05)  # +1 %, +2 %, -0.952... % of 105
    now += HOUR
    tracker.feed(table(HOUR, T0 + HOUR, [FLAT, (100, 105, 100, 105), after, after]), now)
    arrays = tracker.memory.arrays()
    assert len(arrays.patterns) == 3 and arrays.patterns[2, 0] == pytest.approx(5.0)
    np.testing.assert_allclose(arrays.outcomes[2], [1.0, 2.0, (104 - 105) / 105 * 100])


def test_live_learning_is_the_walk_forward_even_when_candles_close_between_fetches() -> None:
    rng = np.random.default_rng(7)
    n = 80
    close = 100 * np.cumprod(1 + rng.normal(0, 0.01, n)).astype(np.float64)
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * 1.004
    low = np.minimum(open_, close) * 0.996
    full = Candles(T0 + HOUR * np.arange(n), open_, high, low, close, np.ones(n))
    start = memory(list(np.linspace(-2, 2, 9)), [[0.1, 0.8, -0.7]] * 9, threshold=0.3)
    live = TimeframeTracker(Timeframe.H1, Memory(CONFIG, start.arrays()))
    first_forming = 10
    for forming in [first_forming, 11, 14, 15, 30, 31, 79]:  # several closes between some
        now = int(T0 + forming * HOUR + 5)
        limit = live.fetch_limit(now)
        live.feed(full.slice(max(0, forming + 1 - limit), forming + 1), now)
    reference = Memory(CONFIG, start.arrays())
    walk_forward(reference, full.slice(0, 79), HOUR, start=first_forming)
    got, want = live.memory.arrays(), reference.arrays()
    assert len(got.patterns) > 9 and np.any(got.weights != 1.0)  # it did learn, both ways
    np.testing.assert_allclose(got.patterns, want.patterns)
    np.testing.assert_allclose(got.weights, want.weights)
    assert got.threshold == pytest.approx(want.threshold)


def test_a_long_pause_is_caught_up_only_so_far() -> None:
    tracker = TimeframeTracker(Timeframe.H1, two_memories())
    tracker.feed(table(HOUR, T0, [FLAT, FLAT, FLAT, FLAT]), T0 + 3 * HOUR)
    assert tracker.fetch_limit(T0 + 13 * HOUR) == 10 + 1 + 2  # 10 closed since T0 + 2 h
    far = T0 + 3 * HOUR + 1000 * HOUR
    assert tracker.fetch_limit(far) == MAX_CATCHUP + 1 + 2


def test_nan_candles_give_no_prediction_and_are_not_learned() -> None:
    tracker = TimeframeTracker(Timeframe.H1, two_memories())
    now = T0 + 3 * HOUR + 60
    bad = (100.0, math.nan, 99.0, 101.0)
    tracker.feed(table(HOUR, T0, [FLAT, FLAT, bad, (101, 101.5, 100.8, 101.2)]), now)
    p = tracker.current(now)
    assert math.isnan(p.predicted_low)
    assert "gap or bad data" in p.reason and "not a finite number" in p.reason
    before = tracker.memory.arrays()
    now += HOUR
    tracker.feed(table(HOUR, T0 + HOUR, [FLAT, bad, FLAT, FLAT]), now)  # its pattern was bad
    assert len(tracker.memory.arrays().patterns) == len(before.patterns)
    np.testing.assert_array_equal(tracker.memory.arrays().weights, before.weights)


def test_no_forming_candle_or_a_failed_fetch_backs_off_and_clears_the_prediction() -> None:
    tracker = TimeframeTracker(Timeframe.H1, two_memories())
    now = T0 + 3 * HOUR + 60
    tracker.feed(table(HOUR, T0, [FLAT, FLAT, (100, 102, 99.5, 101)]), now)  # forming missing
    assert "no 1h candle for the current period yet" in tracker.current(now).reason
    assert tracker.fetch_limit(now + 1) == 0
    assert tracker.fetch_limit(now + RETRY_FIRST) > 0
    tracker.fail("candles unavailable: venue down", now + RETRY_FIRST)
    assert tracker.fetch_limit(now + 2 * RETRY_FIRST) == 0  # the wait doubles
    assert tracker.fetch_limit(now + 3 * RETRY_FIRST) > 0
    assert tracker.current(now).reason == "candles unavailable: venue down"
    assert tracker.fetch_limit(now - 100 * HOUR) > 0  # a demo clock set back is not a wait


def test_a_clock_that_goes_back_starts_afresh_without_learning() -> None:
    tracker = TimeframeTracker(Timeframe.H1, two_memories())
    tracker.feed(table(HOUR, T0, [FLAT, FLAT, FLAT, FLAT]), T0 + 3 * HOUR)
    earlier = T0 - 50 * HOUR
    assert tracker.fetch_limit(earlier) == 4
    rows = [FLAT, FLAT, (100, 102, 99.5, 101), (101, 102, 100, 101)]
    assert tracker.feed(table(HOUR, earlier - 3 * HOUR, rows), earlier) == 0
    assert tracker.current(earlier).predicted_high == pytest.approx(103.02)


# --------------------------------------------------------------------------- one coin


def fed_coin(moves: dict[Timeframe, tuple[float, float]]) -> tuple[CoinPredictor, float]:
    """Timeframes in ``moves`` predict high/low = 100 * (1 + pct/100); the rest stay inactive."""
    memories = {
        tf: memory([0.0], [[0.0, *moves[tf]]]) if tf in moves else memory([], [])
        for tf in Timeframe
    }
    coin = CoinPredictor("btc", "BTC-1-abc", memories)
    now = MONDAY + 60.0
    for tf, tracker in coin.trackers.items():
        tracker.feed(table(tf.seconds, MONDAY - 3 * tf.seconds, [FLAT] * 4), now)
    return coin, now


def test_levels_follow_every_price_with_spaced_bounds() -> None:
    coin, now = fed_coin({Timeframe.H1: (1.0, -1.0), Timeframe.H2: (2.0, -2.0)})
    # bounds: lows 99 * 0.995 = 98.505 and 98 * 0.995 = 97.51 (gap 1.0 % >= 0.25, kept);
    # highs 101 * 1.005 = 101.505 and 102 * 1.005 = 102.51
    s = coin.signal(now, 98.0)
    assert (s.status, s.coin, s.model_id) == (CoinStatus.READY, "BTC", "BTC-1-abc")
    h1, h2 = s.timeframes[0].signal, s.timeframes[1].signal
    assert [h1.low_bound, h1.high_bound] == pytest.approx([98.505, 101.505])
    assert [h2.low_bound, h2.high_bound] == pytest.approx([97.51, 102.51])
    assert (s.long_level, s.short_level) == (1, 0)
    assert [v.side for v in s.timeframes[:3]] == [TfSide.LONG, TfSide.WITHIN, TfSide.INACTIVE]
    assert (coin.signal(now, 97.0).long_level, coin.signal(now, 97.0).short_level) == (2, 0)
    assert (coin.signal(now, 100.0).long_level, coin.signal(now, 100.0).short_level) == (0, 0)
    high = coin.signal(now, 103.0)
    assert (high.long_level, high.short_level) == (0, 2)
    assert [v.side for v in high.timeframes[:2]] == [TfSide.SHORT, TfSide.SHORT]
    inactive = s.timeframes[2]
    assert math.isnan(inactive.signal.low_bound) and "no similar pattern" in inactive.reason
    sig = s.to_signal()
    assert sig is not None and (sig.long_level, sig.model_version, sig.price) == (
        1,
        "BTC-1-abc",
        98,
    )


def test_no_price_means_no_levels_not_zero() -> None:
    coin, now = fed_coin({Timeframe.H1: (1.0, -1.0)})
    s = coin.signal(now, None, "all venues failed for BTC quote")
    assert s.status is CoinStatus.NO_PRICE
    assert (s.price, s.long_level, s.short_level) == (None, None, None)
    assert s.reason == "no price: all venues failed for BTC quote"
    assert s.to_signal() is None
    assert coin.signal(now, math.nan).status is CoinStatus.NO_PRICE


def test_a_coin_with_no_active_timeframe_is_not_ready() -> None:
    memories = {tf: memory([], []) for tf in Timeframe}
    coin = CoinPredictor("ETH", "id", memories)
    assert coin.signal(MONDAY + 60.0, 100.0).status is CoinStatus.WARMING_UP
    coin, now = fed_coin({})
    s = coin.signal(now, 100.0)
    assert s.status is CoinStatus.INACTIVE and s.long_level is None
    assert "1w: no similar pattern" in s.reason
    for tracker in coin.trackers.values():
        tracker.fail("candles unavailable: down", now)
    assert coin.signal(now, 100.0).status is CoinStatus.NO_CANDLES


def test_stage_names_the_coins_that_hold_it_back() -> None:
    ready = CoinSignal("BTC", CoinStatus.READY, "7 of 7", 1.0, price=1.0, long_level=0)
    warming = CoinSignal("ETH", CoinStatus.NO_PRICE, "no price: down", 1.0)
    untrained = CoinSignal("XRP", CoinStatus.NOT_TRAINED, "XRP: not trained yet; train it", 1.0)
    assert stage_of([]) == (Stage.STARTING, "no coin processed yet")
    assert stage_of([ready]) == (Stage.READY, "all 1 coin(s) ready")
    assert stage_of([ready, warming]) == (Stage.WARMING_UP, "ETH: no price: down")
    stage, reason = stage_of([ready, warming, untrained])
    assert (stage, reason) == (Stage.TRAINING_REQUIRED, "XRP: not trained yet; train it")


def test_price_problems() -> None:
    assert price_problem(100.0, 1000.0, 1000.0 + PRICE_MAX_AGE) == ""
    assert "s old" in price_problem(100.0, 1000.0, 1001.0 + PRICE_MAX_AGE)
    assert "unusable price" in price_problem(0.0, 1000.0, 1000.0)


# --------------------------------------------------------------------------- JSON edge


def test_the_snapshot_round_trips_through_strict_json() -> None:
    coin, now = fed_coin({Timeframe.H1: (1.0, -1.0), Timeframe.D1: (3.0, -2.5)})
    coins = (coin.signal(now, 98.0), CoinSignal("ETH", CoinStatus.NOT_TRAINED, "ETH: no", now))
    snap = SignalsSnapshot(*stage_of(coins), now, coins)
    data = snapshot_to_data(snap)
    text = json.dumps(data, allow_nan=False)  # NaN became null
    assert data["ready_coins"] == ["BTC"] and data["total_coins"] == 2
    assert data["coins"]["BTC"]["timeframes"][1]["low_bound"] is None
    back = snapshot_from_data(json.loads(text), written_at=5.0, seq=3)
    assert snapshot_to_data(back) == data
    assert (back.written_at, back.seq, back.age(7.5)) == (5.0, 3, 2.5)
    assert back.signal("btc") is not None and back.signal("ETH") is None


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"stage": "ready", "time": 1.0},
        {"stage": "nonsense", "time": 1.0, "coins": {}},
        {
            "stage": "ready",
            "time": 1.0,
            "coins": {"BTC": {"status": "ready", "reason": "", "time": 1.0, "long": 9}},
        },
        {
            "stage": "ready",
            "time": 1.0,
            "coins": {"BTC": {"status": "ready", "reason": "", "time": "1", "long": 1}},
        },
    ],
)
def test_malformed_signals_are_refused(bad: object) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        snapshot_from_data(bad)
