"""Volatility-based position sizing: true range, ATR (Wilder), ATR %, and a recommended size.

Pure: candles in, a frozen recommendation out. The definitions are Wilder's, as the ``ta``
library computes them (tests/test_indicators.py checks both on the bundled history within 1e-9
relative):

- true range ``TR[i] = max(high - low, |high - close[i-1]|, |low - close[i-1]|)``; the first
  candle, with no close before it, has ``high - low``;
- ATR(n): the mean of the first n true ranges, then ``ATR[i] = (ATR[i-1]·(n-1) + TR[i]) / n``;
- ATR % = ATR / close × 100 of the newest candle.

The recommended size scales the base allocation by ``target ATR % / ATR %`` (a coin twice as
volatile as the target gets half the money), kept within the configured bounds (default 1 %
to 10 % of the account). Without enough candles, with no price movement at all, or with a
price of zero there is no recommendation (None, with the reason): the caller keeps its fixed
allocation and says why. NaN never leaves this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pt_types import Candles

FloatArray = npt.NDArray[np.float64]

ATR_PERIOD = 14
MIN_PCT, MAX_PCT = 1.0, 10.0
TARGET_ATR_PCT = 3.0  # a typical daily ATR % of BTC


def true_range(candles: Candles) -> FloatArray:
    high, low, close = candles.high, candles.low, candles.close
    tr = np.asarray(high - low, dtype=np.float64).copy()
    if len(tr) > 1:
        prev = close[:-1]
        tr[1:] = np.maximum.reduce([tr[1:], np.abs(high[1:] - prev), np.abs(low[1:] - prev)])
    return tr


def atr(candles: Candles, period: int = ATR_PERIOD) -> FloatArray:
    """Wilder's ATR; NaN until ``period`` candles exist."""
    if period < 1:
        raise ValueError(f"the ATR period must be at least 1 candle, got {period}")
    tr = true_range(candles)
    out = np.full(len(tr), np.nan)
    if len(tr) < period:
        return out
    level = float(tr[:period].mean())
    out[period - 1] = level
    for i in range(period, len(tr)):
        level = (level * (period - 1) + float(tr[i])) / period
        out[i] = level
    return out


@dataclass(frozen=True)
class Volatility:
    """The newest candle's ATR and ATR %; None with ``reason`` when they cannot be known."""

    atr: float | None
    atr_pct: float | None
    reason: str = ""


def volatility(candles: Candles, period: int = ATR_PERIOD) -> Volatility:
    if len(candles) < period:
        return Volatility(None, None, f"not enough data: ATR {period} needs {period} candles, "
                                      f"have {len(candles)}")  # fmt: skip
    value = float(atr(candles, period)[-1])
    close = float(candles.close[-1])
    if not (math.isfinite(value) and math.isfinite(close)) or close <= 0:
        return Volatility(None, None, f"no usable price (close {close:g})")
    if value == 0.0:
        return Volatility(0.0, 0.0, f"no price movement in the last {period} candles")
    return Volatility(value, value / close * 100.0)


def volatility_factor(atr_pct: float, target_atr_pct: float = TARGET_ATR_PCT) -> float:
    """How much of the base allocation to use: ``target / ATR %`` (above 1 for a calm coin)."""
    if atr_pct <= 0 or target_atr_pct <= 0:
        raise ValueError("the volatility factor needs ATR % > 0 and a target > 0")
    return target_atr_pct / atr_pct


@dataclass(frozen=True)
class SizeRecommendation:
    """Percent of the account for a new position, or None (keep the fixed allocation)."""

    pct: float | None
    atr_pct: float | None
    factor: float | None
    reason: str


@dataclass(frozen=True)
class VolatilitySizing:
    """The ``sizing`` settings when entries are sized by volatility (``method = volatility``)."""

    base_pct: float = 2.0
    min_pct: float = MIN_PCT
    max_pct: float = MAX_PCT
    target_atr_pct: float = TARGET_ATR_PCT
    period: int = ATR_PERIOD

    def __post_init__(self) -> None:
        ok = 0 < self.min_pct <= self.max_pct <= 100 and self.base_pct > 0
        if not ok or self.target_atr_pct <= 0:
            raise ValueError("sizing needs 0 < min_pct <= max_pct <= 100, base and target > 0")


def size_for_atr(atr_pct: float | None, rule: VolatilitySizing, why_unknown: str = "") -> \
        SizeRecommendation:  # fmt: skip
    """``base_pct`` × volatility factor, within ``[min_pct, max_pct]``, with the reason; no
    recommendation for an unknown (``why_unknown``) or zero ATR %."""
    if atr_pct is None or not math.isfinite(atr_pct) or atr_pct <= 0:
        why = why_unknown or ("no price movement" if atr_pct == 0 else "ATR % unknown")
        return SizeRecommendation(None, atr_pct, None, f"no volatility size: {why}")
    factor = volatility_factor(atr_pct, rule.target_atr_pct)
    raw = rule.base_pct * factor
    pct = min(max(raw, rule.min_pct), rule.max_pct)
    bound = ""
    if raw != pct:
        bound = " (at the lower bound)" if raw < rule.min_pct else " (at the upper bound)"
    target = f"target {rule.target_atr_pct:g}%"
    reason = (f"ATR {rule.period} is {atr_pct:.2f}% of the price ({target}): "
              f"{rule.base_pct:g}% × {factor:.2f} = {pct:.2f}% of the account{bound}")  # fmt: skip
    return SizeRecommendation(pct, atr_pct, factor, reason)


def recommend_size(
    candles: Candles,
    *,
    base_pct: float,
    min_pct: float = MIN_PCT,
    max_pct: float = MAX_PCT,
    period: int = ATR_PERIOD,
    target_atr_pct: float = TARGET_ATR_PCT,
) -> SizeRecommendation:
    """:func:`size_for_atr` on the newest candle's ATR % of ``candles``."""
    rule = VolatilitySizing(base_pct, min_pct, max_pct, target_atr_pct, period)
    vol = volatility(candles, period)
    return size_for_atr(vol.atr_pct, rule, vol.reason)
