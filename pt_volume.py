"""Volume analysis: moving averages of volume, VWAP, relative volume, anomalies and the trend.

Pure: candles in, frozen results out (``python pt_volume.py COIN`` is the only I/O, in
:func:`main`). The series functions follow the definitions of the widely used ``ta`` library,
so their values can be checked against it (tests/test_indicators.py does, on the bundled
history, within 1e-9 relative):

- SMA(n): the mean of the last n values;
- EMA(n): ``e[i] = a·x[i] + (1-a)·e[i-1]`` with ``a = 2/(n+1)``, started at the first value
  (pandas' ``ewm(span=n, adjust=False)``), shown from the n-th value on;
- VWAP(n): Σ typical price × volume / Σ volume over the last n candles, the typical price being
  (high + low + close) / 3.

Warm-up positions of a series are NaN; the :class:`VolumeMetrics` a caller sees hold None
instead, with the reason, so NaN never reaches a decision. Too little history, zero volume and
constant volume each give a defined answer ("not enough data", no relative volume, no z-score).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from pt_types import Candles

FloatArray = npt.NDArray[np.float64]

SMA_SHORT, SMA_LONG, EMA_SPAN, VWAP_WINDOW = 10, 50, 12, 20
ANOMALY_WINDOW, ANOMALY_Z = 50, 3.0
TREND_LOOKBACK, TREND_THRESHOLD_PCT = 10, 10.0


# -- series ---------------------------------------------------------------------------------------


def _checked(n: int) -> int:
    if n < 1:
        raise ValueError(f"a window must be at least 1 value, got {n}")
    return n


def sma(values: FloatArray, n: int) -> FloatArray:
    """Simple moving average; NaN until n values exist."""
    return rolling_sum(values, n) / n


def ema(values: FloatArray, n: int) -> FloatArray:
    """Exponential moving average, a = 2/(n+1), started at the first value; NaN before the
    n-th value (as ``ta``: pandas ``ewm(span=n, adjust=False, min_periods=n)``)."""
    x = np.asarray(values, dtype=np.float64)
    a = 2.0 / (_checked(n) + 1.0)
    out = np.empty(len(x))
    level = x[0] if len(x) else 0.0
    for i, v in enumerate(x):
        level = v if i == 0 else a * v + (1.0 - a) * level
        out[i] = level
    out[: n - 1] = np.nan
    return out


def rolling_sum(values: FloatArray, n: int) -> FloatArray:
    x = np.asarray(values, dtype=np.float64)
    out = np.full(len(x), np.nan)
    if len(x) >= _checked(n):
        sums = np.cumsum(np.concatenate(([0.0], x)))
        out[n - 1 :] = sums[n:] - sums[:-n]
    return out


def vwap(candles: Candles, n: int) -> FloatArray:
    """Rolling VWAP over n candles; NaN in warm-up and where the window traded nothing."""
    typical = (candles.high + candles.low + candles.close) / 3.0
    volume = rolling_sum(candles.volume, n)
    traded = rolling_sum(typical * candles.volume, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(volume > 0, traded / volume, np.nan)


# -- the newest candle's figures ----------------------------------------------------------------


def _last(series: FloatArray) -> float | None:
    if not len(series):
        return None
    value = float(series[-1])
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class VolumeMetrics:
    """The newest candle's volume and its averages; None where there is not enough history
    (``note`` says which) or no volume to divide by."""

    time: int
    volume: float
    sma_10: float | None
    sma_50: float | None
    ema_12: float | None
    vwap: float | None
    relative_volume: float | None  # volume / SMA 50: 2.0 is twice the usual
    note: str = ""


def volume_metrics(candles: Candles, *, vwap_window: int = VWAP_WINDOW) -> VolumeMetrics | None:
    """Figures for the newest candle; None for a coin without candles."""
    if not len(candles):
        return None
    v = candles.volume
    short, long_ = _last(sma(v, SMA_SHORT)), _last(sma(v, SMA_LONG))
    relative = float(v[-1]) / long_ if long_ else None
    missing = [f"{name} needs {n} candles" for name, n in
               (("SMA 10", SMA_SHORT), ("SMA 50", SMA_LONG), ("EMA 12", EMA_SPAN),
                ("VWAP", vwap_window)) if len(v) < n]  # fmt: skip
    note = f"not enough data ({len(v)} candles): " + ", ".join(missing) if missing else ""
    if long_ == 0.0:
        note = "no volume traded in the last 50 candles: no relative volume"
    return VolumeMetrics(int(candles.time[-1]), float(v[-1]), short, long_,
                         _last(ema(v, EMA_SPAN)), _last(vwap(candles, vwap_window)), relative,
                         note)  # fmt: skip


# -- anomaly and trend -------------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeAnomaly:
    """Whether the newest volume is unusual: its z-score against the ``window`` candles before
    it (population standard deviation). ``z`` None: no score could be given, ``reason`` why."""

    anomalous: bool
    z: float | None
    reason: str


class Trend(StrEnum):
    INCREASING = "increasing"
    DECREASING = "decreasing"
    STABLE = "stable"
    UNKNOWN = "unknown"  # not enough data


@dataclass(frozen=True)
class VolumeTrend:
    trend: Trend
    change_pct: float | None  # the SMA's fitted change over the lookback, in percent
    reason: str


class VolumeAnalyzer:
    """Anomaly and trend rules with their thresholds (from the settings)."""

    def __init__(
        self,
        *,
        window: int = ANOMALY_WINDOW,
        z_threshold: float = ANOMALY_Z,
        sma_period: int = SMA_SHORT,
        lookback: int = TREND_LOOKBACK,
        trend_threshold_pct: float = TREND_THRESHOLD_PCT,
    ) -> None:
        if window < 2 or z_threshold <= 0 or lookback < 2 or trend_threshold_pct < 0:
            raise ValueError("volume analysis needs window >= 2, z > 0, lookback >= 2")
        self.window, self.z_threshold = window, z_threshold
        self.sma_period, self.lookback = _checked(sma_period), lookback
        self.trend_threshold_pct = trend_threshold_pct

    def detect_anomaly(self, volumes: FloatArray) -> VolumeAnomaly:
        v = np.asarray(volumes, dtype=np.float64)
        if len(v) < self.window + 1:
            need = self.window + 1
            return VolumeAnomaly(False, None, f"not enough data: {len(v)} candles, need {need}")
        before, now = v[-self.window - 1 : -1], float(v[-1])
        mean, std = float(before.mean()), float(before.std())
        if std == 0.0:
            return VolumeAnomaly(False, None, f"volume was constant ({mean:g}) over the window")
        z = (now - mean) / std
        anomalous = abs(z) >= self.z_threshold
        side = "above" if z > 0 else "below"
        verdict = "anomaly" if anomalous else "normal"
        return VolumeAnomaly(anomalous, z, f"{verdict}: {abs(z):.1f} σ {side} the mean of the "
                                           f"last {self.window} candles")  # fmt: skip

    def calculate_trend(self, volumes: FloatArray) -> VolumeTrend:
        """Increasing, decreasing or stable by the least-squares slope of the volume SMA over
        the last ``lookback`` candles, as a percent change of its mean over that span."""
        average = sma(np.asarray(volumes, dtype=np.float64), self.sma_period)
        recent = average[-self.lookback :]
        if len(recent) < self.lookback or not np.isfinite(recent).all():
            need = self.sma_period + self.lookback - 1
            return VolumeTrend(Trend.UNKNOWN, None, f"not enough data: need {need} candles")
        level = float(recent.mean())
        if level == 0.0:
            return VolumeTrend(Trend.STABLE, 0.0, "no volume traded")
        slope = float(np.polyfit(np.arange(self.lookback, dtype=np.float64), recent, 1)[0])
        change = slope * (self.lookback - 1) / level * 100.0
        if change > self.trend_threshold_pct:
            trend = Trend.INCREASING
        elif change < -self.trend_threshold_pct:
            trend = Trend.DECREASING
        else:
            trend = Trend.STABLE
        return VolumeTrend(trend, change, f"SMA {self.sma_period} of volume {change:+.1f}% over "
                                          f"{self.lookback} candles")  # fmt: skip


if __name__ == "__main__":  # the command line (I/O) lives in pt_indicators_cli
    from pt_indicators_cli import volume_main

    raise SystemExit(volume_main())
