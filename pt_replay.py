"""Demo mode's market: the bundled real history replayed on a simulated clock (DESIGN.md §2).

Demo mode must behave like a live venue with no network and no keys, only faster, so the
strategy, predictor and journal run unchanged. Two pieces make that:

- the **demo clock**: ``state/clock.json`` (schema ``clock/1``, written only by the hub) holds a
  simulated start, the wall-clock moment it was taken and a speed. Every process computes the same
  simulated "now" from it (:func:`sim_time`), so no clock ticks have to be sent around. Changing
  the speed re-anchors the clock at the current simulated time, so time never jumps.
- :class:`ReplayMarket`: a ``MarketSource`` over the bundled hourly candles that never shows
  anything from after "now". Closed hours are served as they are; the current hour is shown as
  a partial candle along :mod:`pt_price_path`'s path at the fraction of the hour elapsed (its
  volume grows linearly over the hour); coarser timeframes are resampled from exactly those
  hourly rows. Outage gaps in the data stay gaps, and a quote inside one fails like a venue
  outage would (temporarily).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import pt_ohlcv
from pt_candles import resample
from pt_errors import PermanentExchangeError, PowerTraderError, TemporaryExchangeError
from pt_exchanges import mark_forming
from pt_price_path import partial_candle
from pt_state import DataLayout, StateReader, StateWriter, parse_envelope
from pt_types import DAY, HOUR, Candles, FloatArray, Quote, Timeframe

log = logging.getLogger(__name__)

CLOCK_SCHEMA = "clock/1"
Clock = Callable[[], float]


class DemoClockError(PowerTraderError):
    """The demo clock cannot be read: not started yet, or its file is unusable."""


@dataclass(frozen=True)
class DemoClockState:
    """A simulated clock anchored at one wall-clock moment: ``sim_start`` at ``wall_start``."""

    sim_start: float
    wall_start: float
    speed: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sim_start) and math.isfinite(self.wall_start)):
            raise ValueError(f"demo clock times must be finite numbers, got {self}")
        if not (math.isfinite(self.speed) and self.speed >= 0):
            raise ValueError(f"demo clock speed must be a finite number >= 0, got {self.speed}")


def sim_time(state: DemoClockState, wall_now: float) -> float:
    """Simulated seconds at wall-clock ``wall_now`` (speed 0 pauses the demo)."""
    return state.sim_start + (wall_now - state.wall_start) * state.speed


def _state_from(data: Any) -> DemoClockState:
    if not isinstance(data, dict):
        raise TypeError("clock data must be an object")
    values = {}
    for key in ("sim_start", "wall_start", "speed"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"clock key {key!r} must be a number, got {value!r}")
        values[key] = float(value)
    return DemoClockState(**values)


def _not_started(path: Path) -> DemoClockError:
    return DemoClockError(
        f"the demo clock has not been started: no readable {path}. The hub starts it when demo "
        "mode starts; start the hub (or press Start All) first."
    )


class SimClock:
    """The demo's "now" for any process, read from the hub's ``state/clock.json``."""

    def __init__(self, layout: DataLayout, *, wall_clock: Clock = time.time) -> None:
        self.path = layout.clock_file
        self._wall_clock = wall_clock
        self._reader = StateReader(self.path, CLOCK_SCHEMA, validate=_state_from, clock=wall_clock)

    def state(self) -> DemoClockState:
        """The current clock anchor (the last good one if the file turned unreadable)."""
        env = self._reader.read()
        if env is None:
            raise _not_started(self.path)
        return _state_from(env.data)

    def now(self) -> float:
        return sim_time(self.state(), self._wall_clock())


def read_clock(layout: DataLayout) -> DemoClockState | None:
    """The clock file as it is on disk now, or None when it is missing or unreadable."""
    path = layout.clock_file
    try:
        env = parse_envelope(path.read_bytes(), path)
        if env.schema != CLOCK_SCHEMA:
            raise ValueError(f"schema {env.schema!r}")
        return _state_from(env.data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.warning("cannot read demo clock %s: %s", path, exc)
        return None


def _write_clock(layout: DataLayout, state: DemoClockState, wall_clock: Clock) -> DemoClockState:
    layout.clock_file.parent.mkdir(parents=True, exist_ok=True)
    data = {"sim_start": state.sim_start, "wall_start": state.wall_start, "speed": state.speed}
    StateWriter(layout.clock_file, CLOCK_SCHEMA, clock=wall_clock).write(data)
    return state


def start_clock(
    layout: DataLayout, sim_start: float, speed: float, *, wall_clock: Clock = time.time
) -> DemoClockState:
    """(Re)start the demo clock at ``sim_start`` now (the hub is the only caller)."""
    state = DemoClockState(float(sim_start), wall_clock(), float(speed))
    log.info("demo clock started at sim time %s, speed %sx", state.sim_start, state.speed)
    return _write_clock(layout, state, wall_clock)


def change_speed(
    layout: DataLayout, speed: float, *, wall_clock: Clock = time.time
) -> DemoClockState:
    """Run the demo clock at ``speed`` from now on, continuing from the current simulated time."""
    current = read_clock(layout)
    if current is None:
        raise _not_started(layout.clock_file)
    wall_now = wall_clock()
    state = DemoClockState(sim_time(current, wall_now), wall_now, float(speed))
    log.info("demo clock speed %sx -> %sx at sim time %s", current.speed, speed, state.sim_start)
    return _write_clock(layout, state, wall_clock)


def _utc(t: float) -> str:
    return str(np.datetime64(math.floor(t), "s")).replace("T", " ") + " UTC"


class ReplayMarket:
    """A ``MarketSource`` replaying the bundled hourly history at the clock's "now"."""

    name = "replay"
    quote_currency = "USDT"
    taker_fee_pct = 0.0

    def __init__(
        self,
        clock: Clock,
        *,
        spread_pct: float = 0.05,
        directory: Path = pt_ohlcv.BUNDLED_DIR,
        cache_dir: Path | None = None,
    ) -> None:
        if not (math.isfinite(spread_pct) and 0 <= spread_pct < 100):
            raise ValueError(f"spread_pct must be within [0, 100), got {spread_pct}")
        self._clock = clock
        self.spread_pct = spread_pct
        self.directory, self.cache_dir = directory, cache_dir

    def _hourly(self, coin: str) -> Candles:
        try:
            return pt_ohlcv.load_bundled(
                coin, Timeframe.H1, directory=self.directory, cache_dir=self.cache_dir
            )
        except pt_ohlcv.OhlcvError as exc:
            raise PermanentExchangeError(f"replay: {exc}") from None

    def _hours_until(self, hourly: Candles, first: int, stop: int, now: float) -> Candles:
        """Hourly rows opening in ``[first, stop)`` as seen at ``now``: the current one partial."""
        hour = Timeframe.H1.candle_open(math.floor(now))
        stop = min(stop, hour + HOUR)
        lo, hi = np.searchsorted(hourly.time, [first, stop], side="left")
        rows = hourly.slice(int(lo), int(hi))
        if not len(rows) or int(rows.time[-1]) != hour:
            return rows
        fraction = (now - hour) / HOUR
        o, h, low, c = partial_candle(
            float(rows.open[-1]),
            float(rows.high[-1]),
            float(rows.low[-1]),
            float(rows.close[-1]),
            fraction,
        )
        n = len(rows) - 1

        def with_last(column: FloatArray, value: float) -> FloatArray:
            out = np.array(column)
            out[n] = value
            return out

        return Candles(
            np.array(rows.time),
            with_last(rows.open, o),
            with_last(rows.high, h),
            with_last(rows.low, low),
            with_last(rows.close, c),
            with_last(rows.volume, float(rows.volume[n]) * fraction),
            forming=True,
        )

    def candles(self, coin: str, timeframe: Timeframe, start: int, end: int) -> Candles:
        """Candles opening in ``[start, end)`` that have opened by now; the current one partial."""
        tf = Timeframe(timeframe)
        now = self._clock()
        hourly = self._hourly(coin)
        if end <= start:
            return Candles.empty()
        first = tf.candle_open(start)
        stop = tf.candle_open(end - 1) + tf.seconds
        hours = self._hours_until(hourly, first, stop, now)
        if tf is Timeframe.H1:
            table = mark_forming(hours, tf, now)
        else:
            table = resample(hours, tf, now=math.floor(now), base_step=HOUR)
        keep = int(np.searchsorted(table.time, start, side="left"))
        return table.slice(keep)

    def quote(self, coin: str) -> Quote:
        """Mid on the path at now, ± half the spread; 24 h volume from the last 24 hours."""
        now = self._clock()
        hourly = self._hourly(coin)
        name = coin.strip().upper()
        if not len(hourly) or now < hourly.time[0] or now >= hourly.time[-1] + HOUR:
            span = "none"
            if len(hourly):
                span = f"{_utc(hourly.time[0])} .. {_utc(hourly.time[-1] + HOUR)}"
            raise PermanentExchangeError(
                f"replay: no {name} data at sim time {_utc(now)}; the bundled history spans {span}"
            )
        hour = Timeframe.H1.candle_open(math.floor(now))
        day = self._hours_until(hourly, hour - DAY, hour + HOUR, now)
        if not len(day) or int(day.time[-1]) != hour:
            raise TemporaryExchangeError(
                f"replay: no candle at {_utc(hour)}: exchange outage in the bundled data"
            )
        mid = float(day.close[-1])  # the partial candle's close is the path price now
        half = self.spread_pct / 200
        base_volume = float(day.volume.sum())
        quote_volume = float((day.volume * day.close).sum())
        return Quote(
            symbol=name,
            venue=self.name,
            bid=mid * (1 - half),
            ask=mid * (1 + half),
            last=mid,
            time=now,
            base_volume_24h=base_volume,
            quote_volume_24h=quote_volume,
        )
