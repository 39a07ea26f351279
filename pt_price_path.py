"""How price moves inside one candle: the path model shared by the demo replay and the backtester.

A candle only records four prices, but demo mode has to show a price at every moment of the
hour and the backtester has to decide whether a trailing stop or a DCA level was touched before
or after a new high. Both need one agreed, deterministic answer, and it must be *conservative*
for a long-only bot, so a simulation never looks better than the market could have been.

The model: the price goes **open → the nearer extreme → the other extreme → close**, each leg
taking one third of the candle's time, moving linearly within a leg::

    fraction   0        1/3            2/3            1
    price      open  →  nearer   →     farther    →   close
                        extreme        extreme

When open is exactly as far from the high as from the low, the low comes first: a dip before
the rally is the worse order for a bot that buys and then sells into strength (a buy fills
lower only if the path really went there, and the trailing sell sees the high last).

``partial_candle`` is what the candle looks like while it forms: the open, the highest and
lowest price on the path so far, and the price now. At fraction 1 it is the full candle.

Pure: floats and numpy only, no clock (the caller passes the fraction of the candle elapsed).
"""

from __future__ import annotations

import math

import numpy as np

from pt_types import FloatArray

LEGS = 3


def _check_fraction(fraction: float) -> None:
    if not 0.0 <= fraction <= 1.0:  # also refuses NaN
        raise ValueError(f"fraction of the candle elapsed must be within [0, 1], got {fraction}")


def path_points(o: float, h: float, lo: float, c: float) -> tuple[float, float, float, float]:
    """The four corners of the path: open, nearer extreme, other extreme, close."""
    if o - lo <= h - o:
        return (o, lo, h, c)
    return (o, h, lo, c)


def price_at(o: float, h: float, lo: float, c: float, fraction: float) -> float:
    """Price on the path after ``fraction`` (0..1) of the candle's time."""
    _check_fraction(fraction)
    points = path_points(o, h, lo, c)
    leg = min(math.floor(fraction * LEGS), LEGS - 1)
    within = fraction * LEGS - leg
    start, stop = points[leg], points[leg + 1]
    if within == 0.0:
        return start
    if within == 1.0:
        return stop
    return start + (stop - start) * within


def partial_candle(
    o: float, h: float, lo: float, c: float, fraction: float
) -> tuple[float, float, float, float]:
    """``(open, highest so far, lowest so far, price now)`` after ``fraction`` of the candle.

    The path is piecewise linear, so the extremes so far are among the corners already passed
    and the price now.
    """
    now = price_at(o, h, lo, c, fraction)
    points = path_points(o, h, lo, c)
    passed = [p for i, p in enumerate(points) if i <= fraction * LEGS]
    passed.append(now)
    return (o, max(passed), min(passed), now)


def prices_at(
    o: FloatArray, h: FloatArray, lo: FloatArray, c: FloatArray, fraction: FloatArray | float
) -> FloatArray:
    """Vectorised ``price_at`` over candle arrays (one fraction, or one per candle)."""
    f = np.broadcast_to(np.asarray(fraction, dtype=np.float64), np.shape(o))
    if not np.all((f >= 0.0) & (f <= 1.0)):
        raise ValueError("fractions of the candle elapsed must be within [0, 1]")
    low_first = o - lo <= h - o
    first = np.where(low_first, lo, h)
    second = np.where(low_first, h, lo)
    corners = np.stack([o, first, second, c])  # (4, n)
    leg = np.minimum(np.floor(f * LEGS).astype(np.int64), LEGS - 1)
    within = f * LEGS - leg
    cols = np.arange(np.shape(o)[0])
    start = corners[leg, cols]
    stop = corners[leg + 1, cols]
    out: FloatArray = np.where(within >= 1.0, stop, start + (stop - start) * within)
    return out
