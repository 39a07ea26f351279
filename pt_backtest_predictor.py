"""The thinker's predictor replayed over history, one closed candle at a time (pure, no I/O).

The backtester cannot afford the thinker's per-step candle fetch and repair over eight years,
so it prepares each timeframe's candle table once and then does, candle by candle, exactly what
:class:`pt_signals.TimeframeTracker` does live with the same :class:`pt_patterns.Memory`:

- when a timeframe's candle **opens**, predict it from the memory (the pattern is the bodies of
  the candles before it; the bounds are % of the last close), keeping the matched memories;
- when it **closes**, learn from it with those same matches (the memory has not changed in
  between, so this is :meth:`Memory.step` split in two, not a different rule).

Nothing reads a candle before it has closed, except the open time of the forming one (which the
thinker also knows). A test feeds a history whose future is NaN and checks that the run up to
that point is unchanged (tests/test_backtester.py).

Before the backtest's first hour the memories learn from every candle that closed earlier,
exactly the trainer's walk (:func:`pt_patterns.walk_forward`): demo mode trains the models up to
its start date and then learns online, so a backtest from the same date starts from the same
memories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pt_candles import drop_forming, repair_candles, resample
from pt_market_state import closed as closed_candles
from pt_patterns import (
    Memory,
    PatternConfig,
    candle_moves,
    levels,
    pattern_windows,
    spaced_bounds,
    walk_forward,
)
from pt_position_sizing import volatility
from pt_types import HOUR, Candles, FloatArray, Signal, Timeframe, TimeframeSignal

MODEL_ID = "backtest"
D1 = Timeframe.parse("1d")


@dataclass(frozen=True)
class HourView:
    """What the thinker knows during one hour: each timeframe's bounds (NaN: inactive)."""

    low_bounds: FloatArray
    high_bounds: FloatArray
    timeframes: tuple[TimeframeSignal, ...]
    entry_below: float  # a price under this can give LONG ≥ the start level (NaN: none can)
    min_high: float  # SHORT is 0 only at or below this price (inf: no high bound)
    atr_pct: float | None
    active: bool = field(init=False)  # some timeframe predicts: the coin has a signal

    def __post_init__(self) -> None:
        # asked at every step of the hour: decided once here
        finite = np.isfinite(self.low_bounds).any() or np.isfinite(self.high_bounds).any()
        object.__setattr__(self, "active", bool(finite))

    def signal(self, coin: str, price: float, now: float) -> Signal:
        """The trader's signal at ``price`` (what :meth:`CoinSignal.to_signal` gives live)."""
        long_level, short_level = levels(price, self.low_bounds, self.high_bounds)
        return Signal(
            coin, price, long_level, short_level, now, self.timeframes, MODEL_ID, self.atr_pct
        )

    def long_level(self, price: float) -> int:
        return int(np.count_nonzero(self.low_bounds > price))

    def may_enter(self, price: float) -> bool:
        """True when LONG ≥ start level and SHORT 0 at ``price`` (the levels are monotone in
        the price, so this is the entry rule's price condition without building a signal)."""
        return price < self.entry_below and price <= self.min_high


@dataclass(frozen=True, eq=False)
class HourTable:
    """Every hour's :class:`HourView` of one coin over a span, as arrays (cheap to send from a
    worker process: the coins' predictors are independent, so they can run in parallel)."""

    start: int
    low_bounds: FloatArray  # (hours, 7)
    high_bounds: FloatArray
    pred_high: FloatArray
    pred_low: FloatArray
    forming: npt.NDArray[np.int64]
    entry_below: FloatArray  # (hours,)
    min_high: FloatArray
    atr_pct: FloatArray  # NaN: unknown

    def view(self, i: int) -> HourView:
        lows, highs = self.low_bounds[i], self.high_bounds[i]
        tfs = tuple(
            TimeframeSignal(tf, t, ph, pl, hb, lb)
            for tf, t, ph, pl, hb, lb in zip(
                Timeframe,
                self.forming[i].tolist(),
                self.pred_high[i].tolist(),
                self.pred_low[i].tolist(),
                highs.tolist(),
                lows.tolist(),
                strict=True,
            )
        )
        atr = float(self.atr_pct[i])
        return HourView(
            lows,
            highs,
            tfs,
            float(self.entry_below[i]),
            float(self.min_high[i]),
            atr if math.isfinite(atr) else None,
        )


class _Track:
    """One timeframe of one coin: its candle table, memory and the pending prediction."""

    def __init__(self, tf: Timeframe, table: Candles, memory: Memory) -> None:
        self.tf, self.memory, self.table = tf, memory, table
        moves = candle_moves(table, tf.seconds)
        self.patterns, self.usable = pattern_windows(moves, memory.config.pattern_length)
        self.outcome = moves.outcome_pct
        self.learnable = self.usable & np.isfinite(self.outcome).all(axis=1)
        self.closes_at = table.time + tf.seconds
        # Python lists: the loop below reads them one element at a time
        self._times: list[int] = table.time.tolist()
        self._closes: list[float] = table.close.tolist()
        self._closes_at: list[int] = self.closes_at.tolist()
        self._learnable: list[bool] = self.learnable.tolist()
        self._usable: list[bool] = self.usable.tolist()
        self.next_row = 0  # the first row not yet learned from (or skipped)
        self.pending: tuple[int, npt.NDArray[np.intp]] | None = None
        self.forming_time = -1
        self.high = self.low = math.nan

    def warm_up(self, start: int) -> int:
        """Learn from every candle closed by ``start`` (the trainer's walk); returns how many."""
        stop = int(np.searchsorted(self.closes_at, start, side="right"))
        if stop == 0:
            return 0
        walked = walk_forward(self.memory, self.table.slice(0, stop), self.tf.seconds)
        self.next_row = stop
        return int(walked.stepped.sum())

    def advance(self, now: int) -> None:
        """Learn from the candles closed by ``now``, then predict the one forming at ``now``."""
        opened = self.tf.candle_open(now)
        if opened == self.forming_time:
            return
        closes_at, learnable = self._closes_at, self._learnable
        row, pending = self.next_row, self.pending
        while row < len(closes_at) and closes_at[row] <= now:
            if learnable[row]:
                if pending is not None and pending[0] == row:
                    self.memory.learn(self.patterns[row], pending[1], self.outcome[row])
                else:
                    self.memory.step(self.patterns[row], self.outcome[row])
            row += 1
        self.next_row = row
        self.pending = None
        self.forming_time = opened
        self.high = self.low = math.nan
        times = self._times
        while row < len(times) and times[row] < opened:
            row += 1
        if row >= len(times) or times[row] != opened or not self._usable[row]:
            return
        matched = self.memory.match(self.patterns[row])
        self.pending = (row, matched)
        prediction = self.memory.predict_from(matched)
        if prediction is None:
            return
        base = self._closes[row - 1]
        self.high = base * (1 + prediction.high_pct / 100)
        self.low = base * (1 + prediction.low_pct / 100)


class CoinReplay:
    """A coin's seven timeframes over its whole repaired history (module doc)."""

    def __init__(
        self,
        coin: str,
        hourly: Candles,
        config: PatternConfig,
        *,
        start_level: int,
        atr_period: int,
        atr_window: int,
    ) -> None:
        self.coin = coin
        self.hourly, self.repairs = repair_candles(drop_forming(hourly), HOUR)
        self.config = config
        self.start_level = start_level
        self.atr_period, self.atr_window = atr_period, atr_window
        self.tracks: list[_Track] = []
        for tf in Timeframe:
            table = self.hourly if tf.seconds == HOUR else _whole_buckets(self.hourly, tf)
            self.tracks.append(_Track(tf, table, Memory(config)))
        self.daily = _whole_buckets(self.hourly, D1)
        self._atr_day = -1
        self._atr_pct: float | None = None
        self.warmed = 0

    def warm_up(self, start: int) -> int:
        """The memories as the trainer leaves them at ``start``; returns the candles learned."""
        self.warmed = sum(t.warm_up(start) for t in self.tracks)
        return self.warmed

    def hour(self, now: int) -> HourView:
        """Advance every timeframe to ``now`` (an hour's open) and give the hour's bounds."""
        for track in self.tracks:
            track.advance(now)
        lows = np.array([t.low for t in self.tracks])
        highs = np.array([t.high for t in self.tracks])
        low_b, high_b = spaced_bounds(lows, highs, self.config.bound_pct)
        tfs = tuple(
            TimeframeSignal(t.tf, t.forming_time, t.high, t.low, hb, lb)
            for t, lb, hb in zip(self.tracks, low_b.tolist(), high_b.tolist(), strict=True)
        )
        finite_lows = np.sort(low_b[np.isfinite(low_b)])[::-1]
        k = self.start_level
        entry_below = float(finite_lows[k - 1]) if len(finite_lows) >= k else math.nan
        finite_highs = high_b[np.isfinite(high_b)]
        min_high = float(finite_highs.min()) if len(finite_highs) else math.inf
        return HourView(low_b, high_b, tfs, entry_below, min_high, self._atr(now))

    def table(self, start: int, end: int) -> HourTable:
        """:meth:`hour` for every hour of ``[start, end)``, in order, as one table."""
        hours = range(start, end, HOUR)
        n, k = len(hours), len(self.tracks)
        lows, highs, ph, pl = (np.full((n, k), np.nan) for _ in range(4))
        forming = np.zeros((n, k), dtype=np.int64)
        entry, min_high, atr = (np.full(n, np.nan) for _ in range(3))
        for i, t in enumerate(hours):
            view = self.hour(t)
            lows[i], highs[i] = view.low_bounds, view.high_bounds
            ph[i] = [s.predicted_high for s in view.timeframes]
            pl[i] = [s.predicted_low for s in view.timeframes]
            forming[i] = [s.candle_time for s in view.timeframes]
            entry[i], min_high[i] = view.entry_below, view.min_high
            atr[i] = math.nan if view.atr_pct is None else view.atr_pct
        return HourTable(start, lows, highs, ph, pl, forming, entry, min_high, atr)

    def _atr(self, now: int) -> float | None:
        """The daily ATR % the thinker's market watch would show: over the last closed daily
        candles it fetches (``atr_window`` of them), recomputed once a day."""
        day = now // D1.seconds
        if day != self._atr_day:
            self._atr_day = day
            stop = int(np.searchsorted(self.daily.time, now - D1.seconds, side="right"))
            daily = closed_candles(self.daily.slice(max(0, stop - self.atr_window), stop), D1, now)
            vol = volatility(daily, self.atr_period) if len(daily) else None
            pct = None if vol is None else vol.atr_pct
            self._atr_pct = pct if pct is not None and math.isfinite(pct) else None
        return self._atr_pct


def _whole_buckets(hourly: Candles, tf: Timeframe) -> Candles:
    """``tf`` candles from the hourly ones; each row only aggregates the hours in its bucket,
    so a row is read only once its bucket has closed (or for its open time while it forms)."""
    if not len(hourly):
        return hourly
    return resample(hourly, tf, base_step=HOUR)
