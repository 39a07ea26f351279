"""The thinker's signal logic (pure: numpy and the pure pt_* modules only).

Per coin, one :class:`TimeframeTracker` per timeframe follows the candles as they close: it
learns from each closed candle with the pattern that predicted it (``Memory.step`` over
``candle_moves``/``pattern_windows``: the walk-forward's own maths, so training and live
learning cannot drift apart), then predicts the candle that is forming. A :class:`CoinPredictor`
turns the seven predictions and a price into a :class:`CoinSignal`: spaced bounds, LONG/SHORT
levels and a side per timeframe, recomputed for every price, never once per slow sweep.

Nothing here guesses. A timeframe without a usable prediction is ``inactive`` with its reason;
a coin without a price has no levels (``None``, not 0/0 pretending to be a signal), so a reader
can never mistake "no data" for "no trade signal". :func:`snapshot_from_data` is the tolerant
parser for ``state/signals.json`` that the trader and the hub use through ``pt_thinker``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np

from pt_candles import repair_candles
from pt_correlation import CorrelationMatrix
from pt_market_state import (
    MarketState,
    market_from_data,
    market_to_data,
    matrix_from_data,
    matrix_to_data,
)
from pt_patterns import Memory, MemoryArrays, candle_moves, levels, pattern_windows, spaced_bounds
from pt_types import Candles, Signal, Timeframe, TimeframeSignal

SIGNALS_SCHEMA = "signals/1"
MAX_CATCHUP = 168  # closed candles learned after a pause; older ones are skipped
RETRY_FIRST, RETRY_MAX = 10.0, 300.0  # seconds (mode's time) between failed candle fetches
PRICE_MAX_AGE = 300.0  # a quote older than this (mode's seconds) is no price


class CoinStatus(StrEnum):
    READY = "ready"
    WARMING_UP = "warming_up"
    NOT_TRAINED = "not_trained"
    TRAINING = "training"  # a trainer is running for the coin: no new trades until it ends
    STALE_MODEL = "stale_model"
    DAMAGED_MODEL = "damaged_model"
    NO_PRICE = "no_price"
    NO_CANDLES = "no_candles"
    INACTIVE = "inactive"
    ERROR = "error"


# Statuses only a (re)training fixes: they put the whole thinker in stage "training_required".
TRAINING_STATUSES = frozenset(
    {CoinStatus.NOT_TRAINED, CoinStatus.STALE_MODEL, CoinStatus.DAMAGED_MODEL}
)


class Stage(StrEnum):
    STARTING = "starting"
    WAITING_FOR_CLOCK = "waiting_for_clock"
    TRAINING_REQUIRED = "training_required"
    WARMING_UP = "warming_up"
    READY = "ready"


class TfSide(StrEnum):
    LONG = "long"  # price below the low bound
    SHORT = "short"  # price above the high bound
    WITHIN = "within"
    INACTIVE = "inactive"


@dataclass(frozen=True)
class TimeframeView:
    """One timeframe's prediction for the forming candle, its side at the price, and why not."""

    signal: TimeframeSignal
    side: TfSide
    reason: str = ""


@dataclass(frozen=True)
class CoinSignal:
    """A coin as the thinker sees it; levels and price are None whenever they cannot be trusted."""

    coin: str
    status: CoinStatus
    reason: str
    time: float  # the mode's now (simulated in demo)
    model_id: str = ""
    price: float | None = None
    long_level: int | None = None
    short_level: int | None = None
    timeframes: tuple[TimeframeView, ...] = ()
    market: MarketState | None = None  # volume and ATR % (None until the thinker has them)

    def to_signal(self) -> Signal | None:
        """The trader's :class:`pt_types.Signal`, only for a ready coin."""
        if self.status is not CoinStatus.READY or self.price is None:
            return None
        return Signal(
            self.coin,
            self.price,
            self.long_level or 0,
            self.short_level or 0,
            self.time,
            tuple(v.signal for v in self.timeframes),
            self.model_id,
            self.market.atr_pct if self.market is not None else None,
        )


@dataclass(frozen=True)
class SignalsSnapshot:
    """The whole of ``state/signals.json``; ``written_at``/``seq`` come from its envelope."""

    stage: Stage
    reason: str
    time: float
    coins: tuple[CoinSignal, ...]
    written_at: float = 0.0
    seq: int = 0
    correlations: tuple[CorrelationMatrix, ...] = ()  # daily returns over 7, 30 and 90 days

    def correlation(self, days: int) -> CorrelationMatrix | None:
        return next((m for m in self.correlations if m.periods == days), None)

    @property
    def ready_coins(self) -> tuple[str, ...]:
        return tuple(sorted(c.coin for c in self.coins if c.status is CoinStatus.READY))

    @property
    def total_coins(self) -> int:
        return len(self.coins)

    def coin(self, coin: str) -> CoinSignal | None:
        return next((c for c in self.coins if c.coin == coin.upper()), None)

    def signal(self, coin: str) -> Signal | None:
        found = self.coin(coin)
        return None if found is None else found.to_signal()

    def age(self, wall_now: float) -> float:
        """Wall seconds since it was written: a paused or dead thinker leaves old levels."""
        return max(0.0, wall_now - self.written_at)


def stage_of(coins: Sequence[CoinSignal]) -> tuple[Stage, str]:
    """Ready means every configured coin is ready (coins added later count too)."""
    if not coins:
        return Stage.STARTING, "no coin processed yet"
    untrained = [c for c in coins if c.status in TRAINING_STATUSES]
    if untrained:
        return Stage.TRAINING_REQUIRED, "; ".join(_named(c) for c in untrained)
    waiting = [c for c in coins if c.status is not CoinStatus.READY]
    if waiting:
        return Stage.WARMING_UP, "; ".join(_named(c) for c in waiting)
    return Stage.READY, f"all {len(coins)} coin(s) ready"


def _named(c: CoinSignal) -> str:
    return c.reason if c.reason.startswith(f"{c.coin}:") else f"{c.coin}: {c.reason}"


# --------------------------------------------------------------------------- one timeframe


@dataclass(frozen=True)
class TfPrediction:
    candle_time: int
    predicted_high: float  # NaN when inactive
    predicted_low: float
    reason: str


class TimeframeTracker:
    """Learn-then-predict for one coin and timeframe as candles close (mutable, no I/O)."""

    def __init__(self, timeframe: Timeframe, memory: Memory) -> None:
        self.tf = timeframe
        self.memory = memory
        self.learned_until: int | None = None  # open time of the newest closed candle seen
        self.forming_time: int | None = None  # open time of the candle predicted
        self.high = self.low = math.nan
        self.reason = "waiting for candles"
        self._retry_at = -math.inf
        self._failures = 0  # consecutive failed fetches (0: the last one worked or none yet)
        self.tried = False

    @property
    def _length(self) -> int:
        return self.memory.config.pattern_length

    @property
    def failing(self) -> bool:
        return self._failures > 0

    def fetch_limit(self, now: float) -> int:
        """How many candles (forming one included) to fetch now; 0 while none can have closed."""
        current = self.tf.candle_open(math.floor(now))
        backing_off = 0 < self._retry_at - now <= RETRY_MAX  # (beyond: the clock went back)
        if self.forming_time == current or backing_off:
            return 0
        base = self._length + 3
        if self.learned_until is None or current <= self.learned_until:
            return base
        missed = (current - self.learned_until) // self.tf.seconds - 1
        return max(base, min(missed, MAX_CATCHUP) + self._length + 2)

    def fail(self, reason: str, now: float) -> None:
        """The candles could not be had: no prediction (the old one's candle has closed)."""
        self.tried = True
        self._failures += 1
        self._retry_at = now + min(RETRY_FIRST * 2 ** (self._failures - 1), RETRY_MAX)
        self.high = self.low = math.nan
        self.forming_time = None
        self.reason = reason

    def feed(self, candles: Candles, now: float) -> int:
        """Learn from every newly closed candle, then predict the forming one; returns the
        number of candles learned from."""
        self.tried = True
        step, length = self.tf.seconds, self._length
        current = self.tf.candle_open(math.floor(now))
        if self.learned_until is not None and current <= self.learned_until:
            self.learned_until = None  # time went backwards (demo clock restarted): start afresh
        table, repairs = repair_candles(candles.until(math.floor(now)), step)
        has_forming = bool(len(table)) and int(table.time[-1]) == current
        closed = len(table) - 1 if has_forming else len(table)
        moves = candle_moves(table, step)
        patterns, usable = pattern_windows(moves, length)
        learned = 0
        if self.learned_until is not None:
            fresh = (table.time[:closed] > self.learned_until) & usable[:closed]
            fresh &= np.isfinite(moves.outcome_pct[:closed]).all(axis=1)
            for row in np.flatnonzero(fresh).tolist():
                self.memory.step(patterns[row], moves.outcome_pct[row])
                learned += 1
        if closed:
            last = int(table.time[closed - 1])
            self.learned_until = max(last, self.learned_until or last)
        self.high = self.low = math.nan
        bad = f" (bad candles: {'; '.join(repairs)})" if repairs else ""
        if not has_forming:
            self.fail(f"no {self.tf.value} candle for the current period yet{bad}", now)
            return learned
        self._failures, self._retry_at = 0, -math.inf
        self.forming_time = current
        row = len(table) - 1
        if not usable[row]:
            self.reason = f"the last {length} closed candle(s) have a gap or bad data{bad}"
            return learned
        prediction = self.memory.predict(patterns[row])
        if prediction is None:
            self.reason = f"no similar pattern in memory (threshold {self.memory.threshold:.3g})"
            return learned
        base = float(table.close[row - 1])
        self.high = base * (1 + prediction.high_pct / 100)
        self.low = base * (1 + prediction.low_pct / 100)
        self.reason = ""
        return learned

    def current(self, now: float) -> TfPrediction:
        """The prediction for the candle forming at ``now`` (inactive once that one closed)."""
        open_now = self.tf.candle_open(math.floor(now))
        if self.forming_time != open_now:
            reason = self.reason if self.forming_time is None else "waiting for the new candle"
            return TfPrediction(open_now, math.nan, math.nan, reason)
        return TfPrediction(open_now, self.high, self.low, self.reason)


# --------------------------------------------------------------------------- one coin


class CoinPredictor:
    """A coin's seven trackers over its model's memories, and its signal at a price."""

    def __init__(self, coin: str, model_id: str, memories: Mapping[Timeframe, Memory]) -> None:
        self.coin = coin.upper()
        self.model_id = model_id
        self.trackers = {tf: TimeframeTracker(tf, memories[tf]) for tf in Timeframe}

    def memory_arrays(self) -> dict[Timeframe, MemoryArrays]:
        return {tf: t.memory.arrays() for tf, t in self.trackers.items()}

    def signal(
        self, now: float, price: float | None, no_price: str = "", bound_pct: float = 0.5
    ) -> CoinSignal:
        """Bounds from the current predictions and levels at ``price`` (None: ``no_price`` says
        why); cheap enough to run for every price."""
        predictions = [t.current(now) for t in self.trackers.values()]
        lows = np.array([p.predicted_low for p in predictions])
        highs = np.array([p.predicted_high for p in predictions])
        low_b, high_b = spaced_bounds(lows, highs, bound_pct)
        views = tuple(
            TimeframeView(
                TimeframeSignal(tf, p.candle_time, p.predicted_high, p.predicted_low, hb, lb),
                _side(price, lb, hb),
                p.reason,
            )
            for tf, p, lb, hb in zip(
                self.trackers, predictions, low_b.tolist(), high_b.tolist(), strict=True
            )
        )
        base = CoinSignal(
            self.coin, CoinStatus.WARMING_UP, "", now, self.model_id, None, None, None, views
        )
        if price is None or not math.isfinite(price) or price <= 0:
            why = no_price or f"bad price {price!r}"
            return replace(base, status=CoinStatus.NO_PRICE, reason=f"no price: {why}")
        long_level, short_level = levels(price, low_b, high_b)
        active = [v for v in views if v.side is not TfSide.INACTIVE]
        if not active:
            trackers = self.trackers.values()
            status = CoinStatus.INACTIVE
            if not all(t.tried for t in trackers):
                status = CoinStatus.WARMING_UP
            elif all(t.failing for t in trackers):
                status = CoinStatus.NO_CANDLES
            why = "; ".join(f"{v.signal.timeframe.value}: {v.reason}" for v in views)
            return replace(
                base, status=status, reason=f"no timeframe can predict ({why})", price=price
            )
        return replace(
            base,
            status=CoinStatus.READY,
            reason=f"{len(active)} of 7 timeframes active",
            price=price,
            long_level=long_level,
            short_level=short_level,
        )


def _side(price: float | None, low_bound: float, high_bound: float) -> TfSide:
    if not (math.isfinite(low_bound) and math.isfinite(high_bound)):
        return TfSide.INACTIVE
    if price is None or not math.isfinite(price):
        return TfSide.WITHIN
    if low_bound > price:
        return TfSide.LONG
    if high_bound < price:
        return TfSide.SHORT
    return TfSide.WITHIN


def price_problem(price: float, newest_quote: float, now: float) -> str:
    """Why ``price`` cannot be used (empty when it can): not a positive number, or too old."""
    if not math.isfinite(price) or price <= 0:
        return f"venues gave an unusable price {price!r}"
    age = now - newest_quote
    if age > PRICE_MAX_AGE:
        return f"the newest quote is {age:.0f} s old (limit {PRICE_MAX_AGE:.0f} s)"
    return ""


# --------------------------------------------------------------------------- JSON edge


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def snapshot_to_data(snapshot: SignalsSnapshot) -> dict[str, Any]:
    """JSON-ready data of ``state/signals.json`` (NaN becomes null)."""
    coins: dict[str, Any] = {}
    for c in snapshot.coins:
        coins[c.coin] = {
            "status": c.status.value,
            "reason": c.reason,
            "time": c.time,
            "model_id": c.model_id,
            "price": _num(c.price),
            "long": c.long_level,
            "short": c.short_level,
            "timeframes": [
                {
                    "timeframe": v.signal.timeframe.value,
                    "candle_time": v.signal.candle_time,
                    "predicted_high": _num(v.signal.predicted_high),
                    "predicted_low": _num(v.signal.predicted_low),
                    "high_bound": _num(v.signal.high_bound),
                    "low_bound": _num(v.signal.low_bound),
                    "side": v.side.value,
                    "reason": v.reason,
                }
                for v in c.timeframes
            ],
            "market": market_to_data(c.market),
        }
    return {
        "stage": snapshot.stage.value,
        "reason": snapshot.reason,
        "time": snapshot.time,
        "ready_coins": list(snapshot.ready_coins),
        "total_coins": snapshot.total_coins,
        "coins": coins,
        "correlations": [matrix_to_data(m) for m in snapshot.correlations],
    }


def _float(value: Any, *, optional: bool = False) -> float:
    if value is None and optional:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _level(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 7:
        raise ValueError(f"a level is a whole number 0..7, got {value!r}")
    return value


def _view(raw: Mapping[str, Any]) -> TimeframeView:
    signal = TimeframeSignal(
        Timeframe(raw["timeframe"]),
        int(_float(raw["candle_time"])),
        _float(raw["predicted_high"], optional=True),
        _float(raw["predicted_low"], optional=True),
        _float(raw["high_bound"], optional=True),
        _float(raw["low_bound"], optional=True),
    )
    return TimeframeView(signal, TfSide(raw["side"]), str(raw.get("reason", "")))


def _coin(name: str, raw: Mapping[str, Any]) -> CoinSignal:
    price = raw.get("price")
    return CoinSignal(
        coin=name,
        status=CoinStatus(raw["status"]),
        reason=str(raw["reason"]),
        time=_float(raw["time"]),
        model_id=str(raw.get("model_id", "")),
        price=None if price is None else _float(price),
        long_level=_level(raw.get("long")),
        short_level=_level(raw.get("short")),
        timeframes=tuple(_view(v) for v in raw.get("timeframes", ())),
        market=market_from_data(raw.get("market")),
    )


def snapshot_from_data(data: Any, *, written_at: float = 0.0, seq: int = 0) -> SignalsSnapshot:
    """Parse the data of ``state/signals.json``; ValueError/KeyError/TypeError when malformed."""
    if not isinstance(data, Mapping) or not isinstance(data.get("coins"), Mapping):
        raise ValueError("signals data must be an object with a 'coins' object")
    return SignalsSnapshot(
        stage=Stage(data["stage"]),
        reason=str(data.get("reason", "")),
        time=_float(data["time"]),
        coins=tuple(_coin(str(k), v) for k, v in data["coins"].items()),
        written_at=written_at,
        seq=seq,
        correlations=tuple(matrix_from_data(m) for m in data.get("correlations", ())),
    )
