"""Training a coin's pattern memories from its hourly candles (pure: no disk, no clock).

The trainer process wraps :func:`train_coin` with settings, files and progress; the backtester
and the tests call it directly. Each of the seven timeframes is walked **on its own candles**,
resampled from the closed hourly ones (the original trained every timeframe on 1-hour candles
first and never used the newer half of intraday history, spec §6.6), doing exactly the thinker's
online procedure, so every prediction scored on the way was made before its candle was seen.

At least :data:`MIN_HOURLY_CANDLES` closed hourly candles (about three weeks) are required:
fewer leave the hourly memory too few patterns to match anything. Coarser timeframes need
proportionally longer (a weekly memory takes months) and simply stay inactive until then.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pt_accuracy import ReportRow, TimeframeAccuracy, score_walk
from pt_candles import drop_forming, repair_candles, resample
from pt_errors import PowerTraderError
from pt_patterns import Memory, MemoryArrays, PatternConfig, WalkResult, walk_forward
from pt_types import HOUR, Candles, Timeframe

MIN_HOURLY_CANDLES = 500  # ~3 weeks; see the module docstring
CHUNK_ROWS = 2048  # candles walked between two stop checks (well under 0.1 s of work)


class TrainingError(PowerTraderError):
    """Training cannot run; the message says why and what would fix it."""


class InsufficientHistoryError(TrainingError):
    """Too few closed candles to train on."""


class TrainingStoppedError(TrainingError):
    """A stop was requested; nothing was produced."""


# --------------------------------------------------------------------------- the core


@dataclass(frozen=True)
class TrainProgress:
    coin: str
    timeframe: Timeframe
    done: int  # candles walked so far, over all timeframes
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0


@dataclass(frozen=True)
class TimeframeResult:
    candles: int  # closed candles of this timeframe the walk went through
    memory: MemoryArrays
    accuracy: TimeframeAccuracy


@dataclass(frozen=True)
class TrainResult:
    coin: str
    config: PatternConfig
    now: float
    data_from: int  # open time of the first and last hourly candle used
    data_to: int
    hourly_candles: int
    timeframes: dict[Timeframe, TimeframeResult]
    repairs: tuple[str, ...] = ()  # what had to be dropped from the input, and why (to log)

    @property
    def memories(self) -> dict[Timeframe, MemoryArrays]:
        return {tf: r.memory for tf, r in self.timeframes.items()}

    def accuracy(self) -> dict[str, dict[str, float]]:
        """Per timeframe, for ``meta.json``: the scoreboard plus candles, memories, threshold."""
        return {
            tf.value: {
                "candles": float(r.candles),
                "memories": float(len(r.memory.patterns)),
                "threshold": r.memory.threshold,
                **r.accuracy.as_dict(),
            }
            for tf, r in self.timeframes.items()
        }

    def report_rows(self) -> list[ReportRow]:
        return [
            ReportRow(tf.value, len(r.memory.patterns), r.accuracy)
            for tf, r in self.timeframes.items()
        ]


def closed_hourly(hourly: Candles, now: float) -> tuple[Candles, list[str]]:
    """The hourly candles that had closed by ``now``, with bad rows dropped (and named).

    A NaN or inconsistent candle would otherwise become a memory: dropped, it is an outage.
    """
    repaired, reasons = repair_candles(drop_forming(hourly), HOUR)
    stop = int(np.searchsorted(repaired.time, math.floor(now) - HOUR, side="right"))
    return dataclasses.replace(repaired.slice(0, stop), forming=False), reasons


def timeframe_candles(hourly: Candles, tf: Timeframe, now: float) -> Candles:
    """Closed ``tf`` candles built from closed hourly ones (the bucket ``now`` is in is dropped)."""
    if tf is Timeframe.H1:
        return hourly
    return drop_forming(resample(hourly, tf, now=math.floor(now), base_step=HOUR))


def walk_in_chunks(
    memory: Memory,
    candles: Candles,
    step: int,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    advanced: Callable[[int], None] = lambda rows: None,
) -> WalkResult:
    """``walk_forward`` over ``candles`` in slices of :data:`CHUNK_ROWS`, checking for a stop
    between them. Each slice starts ``pattern_length + 1`` rows early so its first pattern and
    gap check see the rows before it; the result equals one walk over the whole table."""
    n = len(candles)
    predicted, actual = np.full((n, 3), np.nan), np.full((n, 3), np.nan)
    stepped = np.zeros(n, dtype=bool)
    lead = memory.config.pattern_length + 1
    for start in range(0, n, CHUNK_ROWS):
        if should_stop():
            raise TrainingStoppedError("stop requested")
        stop = min(n, start + CHUNK_ROWS)
        first = max(0, start - lead)
        part = walk_forward(memory, candles.slice(first, stop), step, start=start - first)
        predicted[start:stop] = part.predicted[start - first :]
        actual[start:stop] = part.actual[start - first :]
        stepped[start:stop] = part.stepped[start - first :]
        advanced(stop - start)
    return WalkResult(predicted, actual, stepped)


def utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def train_coin(
    coin: str,
    hourly: Candles,
    config: PatternConfig,
    *,
    now: float,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[TrainProgress], None] | None = None,
) -> TrainResult:
    """Train all seven timeframes on the hourly candles closed by ``now`` (no disk, no clock).

    Raises :class:`InsufficientHistoryError` below :data:`MIN_HOURLY_CANDLES` closed candles
    and :class:`TrainingStoppedError` as soon as ``should_stop`` says so.
    """
    closed, repairs = closed_hourly(hourly, now)
    if len(closed) < MIN_HOURLY_CANDLES:
        span = f" ({utc(closed.time[0])} .. {utc(closed.time[-1])})" if len(closed) else ""
        raise InsufficientHistoryError(
            f"{coin}: {len(closed)} closed hourly candles before {utc(now)}{span}; training "
            f"needs at least {MIN_HOURLY_CANDLES} (about {round(MIN_HOURLY_CANDLES / 24)} days)"
        )
    tables = {tf: timeframe_candles(closed, tf, now) for tf in Timeframe}
    total, done = sum(len(t) for t in tables.values()), 0
    results: dict[Timeframe, TimeframeResult] = {}
    for tf, candles in tables.items():

        def advanced(rows: int, tf: Timeframe = tf) -> None:
            nonlocal done
            done += rows
            if progress is not None:
                progress(TrainProgress(coin, tf, done, total))

        advanced(0)
        memory = Memory(config)
        walk = walk_in_chunks(
            memory, candles, tf.seconds, should_stop=should_stop, advanced=advanced
        )
        results[tf] = TimeframeResult(
            len(candles), memory.arrays(), score_walk(walk, config.bound_pct)
        )
    if should_stop():
        raise TrainingStoppedError("stop requested")
    return TrainResult(
        coin,
        config,
        now,
        int(closed.time[0]),
        int(closed.time[-1]),
        len(closed),
        results,
        tuple(repairs),
    )
