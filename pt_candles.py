"""Candle-table checks, gap finding and resampling (pure: numpy and pt_types only).

Every market-data path ends in a ``Candles`` table, and the predictor trains on seven timeframes
while most sources only give a finer one (the bundled history is hourly, Coinbase has no 8h/12h/1w).
So the coarser timeframes are built here, once, the same way for the demo replay, the live feeds
and the backtester. Everything is vectorised with numpy because the thinker and the backtester
resample years of hourly candles for several coins on every start.

Volume sums are rounded to 8 decimals. Exchanges report base-asset volume in at most 8 decimals,
so the exact sum of a bucket has at most 8 decimals too; a float sum drifts off that value in the
last bits (only ~46 % of BTC days match the raw sum) and rounding snaps it back. For coins whose
daily volume reaches 1e9..1e11 units (XRP, DOGE) 8 decimals are below float resolution and the
result depends on the summation order: ``np.add.reduceat`` reproduces the bundled daily files on
every day of all five coins, whereas a plain sequential sum or ``math.fsum`` does not (XRP: 2354
and 2264 of 2934 days). That is why the reduction below must stay ``reduceat``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pt_types import HOUR, WEEK, WEEK_ANCHOR, Candles, FloatArray, Gap, IntArray, Timeframe

VOLUME_DECIMALS = 8
# 9999-12-31 23:59:59 UTC: anything later is almost surely a millisecond timestamp.
_MAX_TIME = 253_402_300_799


@dataclass(frozen=True)
class CandleProblem:
    """One kind of defect in a candle table: what, the first row that has it, and how many do.

    One entry per kind (not per row) so a broken file of 70 000 rows yields a short, readable
    message; ``row`` lets a file reader translate it into a line number.
    """

    what: str
    row: int
    count: int
    time: int

    def __str__(self) -> str:
        more = f" (and {self.count - 1} more rows)" if self.count > 1 else ""
        return f"row {self.row} ({_utc(self.time)}): {self.what}{more}"


def _utc(t: int) -> str:
    """``2024-01-01 00:00 UTC``; numpy's datetime64 keeps this module free of the clock API."""
    return str(np.datetime64(t, "s")).replace("T", " ")[:16] + " UTC"


def _anchor_for(step: int) -> int:
    """Weekly candles start on Monday; every other step divides a day and starts at midnight."""
    return WEEK_ANCHOR if step == WEEK else 0


def find_gaps(candles: Candles, step: int) -> tuple[Gap, ...]:
    """Runs of missing candles between consecutive rows (outages are not filled, only reported).

    The loop runs over the gaps found, never over rows: the bundled hourly files have under 30.
    """
    if step <= 0:
        raise ValueError(f"candle step must be positive, got {step}")
    t = candles.time
    if len(t) < 2:
        return ()
    diff = np.diff(t)
    idx = np.flatnonzero(diff > step)
    starts = t[idx] + step
    missing = diff[idx] // step - 1
    keep = missing > 0
    return tuple(
        Gap(start=int(s), missing=int(m)) for s, m in zip(starts[keep], missing[keep], strict=True)
    )


Check = tuple[str, npt.NDArray[np.bool_]]


def _order_checks(t: IntArray) -> list[Check]:
    """Checks on the order of rows: fixable by sorting, so ``repair_candles`` skips them."""
    diff = np.diff(t)
    first_row = np.zeros(1, dtype=bool)
    return [
        ("time goes backwards (rows not sorted)", np.concatenate([first_row, diff < 0])),
        ("duplicate time", np.concatenate([first_row, diff == 0])),
    ]


def _row_checks(candles: Candles, step: int) -> list[Check]:
    """Checks of each row on its own: a failing row can only be dropped."""
    t = candles.time
    o, h, lo, c, v = candles.open, candles.high, candles.low, candles.close, candles.volume
    finite = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c)
    return [
        (f"time not aligned to {step} s candles", (t - _anchor_for(step)) % step != 0),
        ("time outside 1970..9999 (milliseconds?)", (t < 0) | (t > _MAX_TIME)),
        ("price is not a finite number", ~finite),
        ("price is zero or negative", (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0)),
        ("high below max(open, close, low)", h < np.maximum(np.maximum(o, c), lo)),
        ("low above min(open, close)", lo > np.minimum(o, c)),
        ("volume is not a finite number", ~np.isfinite(v)),
        ("volume is negative", v < 0),
    ]


def candle_problems(candles: Candles, step: int) -> list[CandleProblem]:
    """Every kind of defect in ``candles`` as structured entries (empty when the table is sound).

    The checks are the candle-table contract from pt_types: ascending unique open times aligned to
    ``step`` (weeks to Monday 00:00 UTC), consistent OHLC, positive finite prices and finite
    non-negative volume. NaN fails every comparison, so finiteness is checked on its own.
    """
    t = candles.time
    if len(t) == 0:
        return []
    problems = []
    for what, bad in _order_checks(t) + _row_checks(candles, step):
        rows = np.flatnonzero(bad)
        if len(rows):
            first = int(rows[0])
            problems.append(CandleProblem(what, first, len(rows), int(t[first])))
    return problems


def check_candles(candles: Candles, step: int) -> list[str]:
    """Human-readable problems of ``candles`` (see ``candle_problems``); empty when fine."""
    return [str(p) for p in candle_problems(candles, step)]


def _base_step(times: IntArray) -> int:
    """The source's candle length: its smallest spacing (gaps only ever make spacings larger).

    A single candle carries no spacing; it is taken as hourly, the project's base timeframe.
    """
    if len(times) < 2:
        return HOUR
    return int(np.diff(times).min())


def resample(
    candles: Candles,
    tf: Timeframe,
    *,
    now: int | None = None,
    base_step: int | None = None,
) -> Candles:
    """Aggregate a finer series into ``tf`` candles on UTC boundaries (weeks start on Monday).

    open = first, high = max, low = min, close = last, volume = sum rounded to 8 decimals (see
    the module docstring). Buckets without any source candle are not invented: an outage of a
    whole day leaves no daily candle, exactly as an exchange reports it.

    The last bucket is marked forming while its period has not ended: with ``now``, when
    ``now < bucket open + tf.seconds``; without it, when the last source candle ends before the
    bucket does. A forming source candle always makes its bucket forming.

    ``base_step`` is the source's candle length in seconds; it defaults to the smallest spacing
    of the source times. Resampling to that same length returns ``candles`` unchanged. With
    ``now``, pass only candles that have opened by then (``Candles.until``): this function does
    not cut the input, so it cannot see whether a row lies in the future.
    """
    t = candles.time
    step = _base_step(t) if base_step is None else base_step
    target = tf.seconds
    if step <= 0:
        raise ValueError(f"source candles are not strictly ascending (spacing {step} s)")
    if step == target:
        return candles
    if target < step or target % step:
        raise ValueError(f"cannot resample {step} s candles into {tf.value} candles")
    if len(t) == 0:
        return candles
    if np.any(t % step):
        raise ValueError(f"source candle times are not aligned to {step} s")

    bucket = t - (t - tf.anchor) % target
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    ends = np.concatenate((starts[1:], [len(t)])) - 1
    out_time = bucket[starts]

    last_open = int(out_time[-1])
    if now is not None:
        forming = now < last_open + target
    else:
        forming = int(t[-1]) + step < last_open + target
    forming = forming or candles.forming

    volume: FloatArray = np.add.reduceat(candles.volume, starts)
    return Candles(
        time=out_time.astype(np.int64, copy=False),
        open=candles.open[starts],
        high=np.maximum.reduceat(candles.high, starts),
        low=np.minimum.reduceat(candles.low, starts),
        close=candles.close[ends],
        volume=np.round(volume, VOLUME_DECIMALS),
        forming=forming,
    )


def drop_forming(candles: Candles) -> Candles:
    """Closed candles only: what a model may learn from and a backtest may act on."""
    if not candles.forming:
        return candles
    return candles.slice(0, len(candles) - 1)


def numbers(values: Sequence[object]) -> FloatArray:
    """Venue fields (usually strings) as floats; anything that is not a number becomes NaN.

    NaN then fails ``repair_candles``' checks, so one garbled field drops its row with a reason
    instead of failing the whole response.
    """
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return np.array([_number(v) for v in values], dtype=np.float64)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return float("nan")
    try:
        return float(value)
    except ValueError:
        return float("nan")


def repair_candles(candles: Candles, step: int) -> tuple[Candles, list[str]]:
    """Make a venue's rows fit the candle-table contract, and say what had to be done.

    Millisecond times become seconds; rows are sorted and a repeated time keeps its last row;
    rows with a non-finite, zero or negative price, inconsistent high/low, bad volume or a time
    off the candle grid are dropped. Nothing is invented: a dropped row leaves a gap.
    """
    reasons: list[str] = []
    t = candles.time
    if len(t) and int(t.max()) > _MAX_TIME:
        t = t // 1000
        reasons.append("times were in milliseconds; converted to seconds")
    order = np.argsort(t, kind="stable")
    if np.any(np.diff(order) < 0):
        reasons.append("rows were not in ascending time order; sorted")
    table = Candles(
        t[order],
        candles.open[order],
        candles.high[order],
        candles.low[order],
        candles.close[order],
        candles.volume[order],
        forming=candles.forming,
    )
    last_of_time = np.concatenate([table.time[1:] != table.time[:-1], [True]])
    keep = last_of_time.copy()
    if not np.all(last_of_time):
        reasons.append(f"{int((~last_of_time).sum())} duplicate row(s); kept the last of each")
    for what, bad in _row_checks(table, step):
        if np.any(bad):
            keep &= ~bad
            reasons.append(f"{int(bad.sum())} row(s) dropped: {what}")
    if np.all(keep):
        return table, reasons
    kept = np.flatnonzero(keep)
    dropped_last = not keep[-1]
    return (
        Candles(
            table.time[kept],
            table.open[kept],
            table.high[kept],
            table.low[kept],
            table.close[kept],
            table.volume[kept],
            forming=table.forming and not dropped_last,
        ),
        reasons,
    )
