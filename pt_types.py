"""Shared value types: the vocabulary that crosses module and process boundaries.

Everything here is a frozen dataclass or an enum so that a value handed from the thinker to the
trader, or from the journal to the hub, cannot be changed on the way. No I/O, no clock.

Candle table convention (used by every market-data source, the predictor and the backtester):
``time`` is the UTC Unix second of the candle's *open*, rows ascend by time with no duplicates,
prices are floats in the quote currency, ``volume`` is base-asset volume. ``forming`` marks a
table whose last row is the candle still being built.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

HOUR = 3600
DAY = 24 * HOUR
WEEK = 7 * DAY
# 1970-01-01 was a Thursday; Monday 1970-01-05 00:00 UTC anchors weekly candles.
WEEK_ANCHOR = 4 * DAY


class Timeframe(StrEnum):
    """The seven trading timeframes, in the order the predictor and the GUI use."""

    H1 = "1h"
    H2 = "2h"
    H4 = "4h"
    H8 = "8h"
    H12 = "12h"
    D1 = "1d"
    W1 = "1w"

    @property
    def seconds(self) -> int:
        return _TIMEFRAME_SECONDS[self]

    @property
    def anchor(self) -> int:
        """Epoch second one candle boundary falls on (weeks start on Monday 00:00 UTC)."""
        return WEEK_ANCHOR if self is Timeframe.W1 else 0

    def candle_open(self, t: int) -> int:
        """Open time of the candle of this timeframe that contains second ``t``."""
        return t - (t - self.anchor) % self.seconds

    @classmethod
    def parse(cls, text: str) -> Timeframe:
        """Accept our names (``1h``) and the original program's (``1hour``, ``1day``, ``1week``)."""
        key = text.strip().lower()
        key = ORIGINAL_TIMEFRAME_NAMES.get(key, key)
        try:
            return cls(key)
        except ValueError:
            allowed = ", ".join(tf.value for tf in cls)
            raise ValueError(f"unknown timeframe {text!r}; use one of {allowed}") from None


_TIMEFRAME_SECONDS = {
    Timeframe.H1: HOUR,
    Timeframe.H2: 2 * HOUR,
    Timeframe.H4: 4 * HOUR,
    Timeframe.H8: 8 * HOUR,
    Timeframe.H12: 12 * HOUR,
    Timeframe.D1: DAY,
    Timeframe.W1: WEEK,
}
# The original program's timeframe names (its KuCoin names) -> ours, chart timeframes included.
ORIGINAL_TIMEFRAME_NAMES = {
    "1min": "1m",
    "5min": "5m",
    "15min": "15m",
    "30min": "30m",
    "1hour": "1h",
    "2hour": "2h",
    "4hour": "4h",
    "8hour": "8h",
    "12hour": "12h",
    "1day": "1d",
    "1week": "1w",
}
TRADING_TIMEFRAMES: tuple[Timeframe, ...] = tuple(Timeframe)


class Mode(StrEnum):
    """Where prices come from and where orders go (DESIGN.md §2)."""

    DEMO = "demo"
    PAPER = "paper"
    LIVE = "live"


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderTag(StrEnum):
    """Why an order exists; stored with every order in the journal."""

    ENTRY = "ENTRY"
    DCA = "DCA"
    TRAIL_SELL = "TRAIL_SELL"
    MANUAL = "MANUAL"


class WorkerState(StrEnum):
    """A supervised process as the hub shows it."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STALE = "stale"
    CRASHED = "crashed"
    GAVE_UP = "gave_up"


class ControlCommand(StrEnum):
    """What the hub wants a worker to do (``control/<proc>.json``)."""

    RUN = "run"
    PAUSE = "pause"
    STOP = "stop"


@dataclass(frozen=True)
class Candles:
    """A candle table: parallel arrays, one row per candle (see the module docstring)."""

    time: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    forming: bool = False

    def __post_init__(self) -> None:
        n = len(self.time)
        for name in ("open", "high", "low", "close", "volume"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"candle column {name!r} has {len(getattr(self, name))} rows, time has {n}"
                )

    def __len__(self) -> int:
        return len(self.time)

    @classmethod
    def empty(cls) -> Candles:
        f = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype=np.int64), f, f, f, f, f)

    def slice(self, start: int, stop: int | None = None) -> Candles:
        """Rows ``start:stop``; the forming flag survives only if the last row is kept."""
        keeps_last = stop is None or stop >= len(self)
        return Candles(
            self.time[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
            forming=self.forming and keeps_last,
        )

    def until(self, now: int) -> Candles:
        """Only candles that have opened at or before ``now`` (no look-ahead)."""
        stop = int(np.searchsorted(self.time, now, side="right"))
        return self.slice(0, stop)


@dataclass(frozen=True)
class Gap:
    """Missing candles in a series: ``missing`` candles from ``start`` (their open time)."""

    start: int
    missing: int


@dataclass(frozen=True)
class Quote:
    """Best bid/ask and last price of one coin at one venue. ``symbol`` is the coin (``BTC``),
    the same at every venue; the venue's own pair name stays inside its adapter."""

    symbol: str
    venue: str
    bid: float
    ask: float
    last: float
    time: float
    base_volume_24h: float | None = None
    quote_volume_24h: float | None = None

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True)
class TimeframeSignal:
    """One timeframe's prediction for the forming candle."""

    timeframe: Timeframe
    candle_time: int
    predicted_high: float
    predicted_low: float
    high_bound: float
    low_bound: float


@dataclass(frozen=True)
class Signal:
    """The thinker's view of one coin: LONG/SHORT levels 0..7 and what produced them."""

    coin: str
    price: float
    long_level: int
    short_level: int
    time: float
    timeframes: tuple[TimeframeSignal, ...] = ()
    model_version: str = ""
    atr_pct: float | None = None  # daily ATR as % of the price (None: not known yet)


@dataclass(frozen=True)
class OrderIntent:
    """A decision to trade, before it reaches a broker. ``reason`` is shown to the user."""

    coin: str
    side: Side
    tag: OrderTag
    reason: str
    usd_amount: float | None = None
    quantity: float | None = None
    client_order_id: str = ""


@dataclass(frozen=True)
class Fill:
    """An executed (part of an) order."""

    client_order_id: str
    coin: str
    side: Side
    quantity: float
    price: float
    fee_usd: float
    time: float


@dataclass(frozen=True)
class Position:
    """What the bot holds in one coin, from its own lots (fees included in the cost)."""

    coin: str
    quantity: float
    cost_usd: float
    dca_stage: int = 0
    opened_at: float = 0.0

    @property
    def avg_cost(self) -> float:
        return self.cost_usd / self.quantity if self.quantity > 0 else 0.0


@dataclass(frozen=True)
class WorkerStatus:
    """A supervised worker as the hub shows it."""

    name: str
    state: WorkerState
    pid: int | None = None
    heartbeat_age: float | None = None
    restarts: int = 0
    detail: str = ""
