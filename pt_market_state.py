"""Each coin's market state beside its signal: volume (anomaly, trend, relative volume) from
hourly candles and volatility (ATR %) from daily candles, plus the coins' return correlations.

Pure: closed candles and the settings in, frozen values out; the thinker fetches the candles
once per hour and writes the result into ``state/signals.json``. Only closed candles are used
(the forming one's volume is partial and would look like a collapse), so a state describes the
last full hour and the last full day. Every figure that cannot be known is None with the
reason, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pt_config_schema import SizingSettings, VolumeSettings
from pt_correlation import PERIODS, CorrelationMatrix, correlations_over
from pt_position_sizing import volatility
from pt_types import Candles, Timeframe
from pt_volume import SMA_LONG, Trend, VolumeAnalyzer, volume_metrics


@dataclass(frozen=True)
class VolumeState:
    """The last closed hour's volume against its history."""

    candle_time: int
    volume: float
    relative: float | None  # volume / SMA 50
    z: float | None
    anomalous: bool
    trend: Trend
    trend_change_pct: float | None
    reason: str  # the anomaly verdict, then the trend's

    @property
    def tile_text(self) -> str:
        """The coin tile's short line: ``"vol 2.4× ↑"``; an anomaly ends in ``!``."""
        size = f"vol {self.relative:.1f}×" if self.relative is not None else "vol ?"
        arrow = {Trend.INCREASING: " ↑", Trend.DECREASING: " ↓", Trend.STABLE: " →"}.get(
            self.trend, "")  # fmt: skip
        return f"{size}{arrow}" + (" !" if self.anomalous else "")

    @property
    def summary(self) -> str:
        """What the coin's tile shows: ``"vol 2.4× · z 3.1 · rising"``."""
        parts = [f"vol {self.relative:.1f}×" if self.relative is not None else "vol ?"]
        if self.z is not None:
            parts.append(f"z {self.z:+.1f}")
        if self.trend is not Trend.UNKNOWN:
            parts.append({Trend.INCREASING: "rising", Trend.DECREASING: "falling"}.get(
                self.trend, "steady"))  # fmt: skip
        return " · ".join(parts)


@dataclass(frozen=True)
class MarketState:
    """``volume`` None: ``volume_reason`` says why; ``atr_pct`` None: ``atr_reason`` says why."""

    volume: VolumeState | None
    volume_reason: str
    atr_pct: float | None
    atr_reason: str


def closed(candles: Candles, tf: Timeframe, now: float) -> Candles:
    """The candles that had closed at ``now`` (the forming one dropped)."""
    count = len(candles)
    while count and candles.time[count - 1] + tf.seconds > now:
        count -= 1
    return candles.slice(0, count)


def hourly_needed(cfg: VolumeSettings) -> int:
    """Closed hourly candles the volume state needs (the forming one comes on top)."""
    return max(cfg.anomaly_window + 1, SMA_LONG, 10 + cfg.trend_lookback - 1)


def daily_needed(sizing: SizingSettings) -> int:
    """Closed daily candles for the ATR and the longest correlation period."""
    return max(sizing.atr_period, max(PERIODS) + 1)


def volume_state(hourly: Candles, cfg: VolumeSettings) -> tuple[VolumeState | None, str]:
    if not len(hourly):
        return None, "no hourly candles"
    analyzer = VolumeAnalyzer(
        window=cfg.anomaly_window,
        z_threshold=cfg.anomaly_z,
        lookback=cfg.trend_lookback,
        trend_threshold_pct=cfg.trend_threshold_pct,
    )
    metrics = volume_metrics(hourly)
    assert metrics is not None  # there are candles
    anomaly = analyzer.detect_anomaly(hourly.volume)
    trend = analyzer.calculate_trend(hourly.volume)
    state = VolumeState(
        int(hourly.time[-1]),
        float(hourly.volume[-1]),
        metrics.relative_volume,
        anomaly.z,
        anomaly.anomalous,
        trend.trend,
        trend.change_pct,
        f"{anomaly.reason}; trend {trend.trend.value} ({trend.reason})",
    )
    return state, ""


def market_state(
    hourly: Candles, daily: Candles, volume_cfg: VolumeSettings, sizing: SizingSettings
) -> MarketState:
    """The state from closed candles (see :func:`closed`)."""
    vol, vol_reason = volume_state(hourly, volume_cfg)
    atr = volatility(daily, sizing.atr_period) if len(daily) else None
    if atr is None:
        return MarketState(vol, vol_reason, None, "no daily candles")
    atr_pct = atr.atr_pct if atr.atr_pct is not None and math.isfinite(atr.atr_pct) else None
    return MarketState(vol, vol_reason, atr_pct, atr.reason)


def correlations(daily: Mapping[str, Candles]) -> tuple[CorrelationMatrix, ...]:
    """The coins' daily return correlations over 7, 30 and 90 days."""
    return tuple(correlations_over(daily).values())


# -- the signals file's JSON (NaN never written: null) -----------------------------------------


def _out(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def _in(value: Any, *, optional: bool = True) -> float | None:
    """A number from the file; None for null (when allowed); ValueError for anything else."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value) if math.isfinite(value) else None


def _required(value: Any) -> float:
    number = _in(value, optional=False)
    if number is None:
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def market_to_data(m: MarketState | None) -> dict[str, Any] | None:
    if m is None:
        return None
    v = m.volume
    volume = None if v is None else {
        "candle_time": v.candle_time, "volume": v.volume, "relative": _out(v.relative),
        "z": _out(v.z), "anomalous": v.anomalous, "trend": v.trend.value,
        "trend_change_pct": _out(v.trend_change_pct), "reason": v.reason,
    }  # fmt: skip
    return {"volume": volume, "volume_reason": m.volume_reason, "atr_pct": _out(m.atr_pct),
            "atr_reason": m.atr_reason}  # fmt: skip


def market_from_data(raw: Any) -> MarketState | None:
    if raw is None:
        return None
    v = raw.get("volume")
    volume = None if v is None else VolumeState(
        int(_required(v["candle_time"])), _required(v["volume"]), _in(v.get("relative")),
        _in(v.get("z")), bool(v["anomalous"]), Trend(v["trend"]),
        _in(v.get("trend_change_pct")), str(v.get("reason", "")),
    )  # fmt: skip
    return MarketState(volume, str(raw.get("volume_reason", "")), _in(raw.get("atr_pct")),
                       str(raw.get("atr_reason", "")))  # fmt: skip


def matrix_to_data(m: CorrelationMatrix) -> dict[str, Any]:
    return {"days": m.periods, "coins": list(m.coins), "values": [list(r) for r in m.values],
            "returns_used": m.returns_used, "notes": list(m.notes)}  # fmt: skip


def matrix_from_data(raw: Mapping[str, Any]) -> CorrelationMatrix:
    coins = tuple(str(c) for c in raw["coins"])
    values = tuple(tuple(_in(x) for x in row) for row in raw["values"])
    if len(values) != len(coins) or any(len(r) != len(coins) for r in values):
        raise ValueError("a correlation matrix must be square, one row per coin")
    return CorrelationMatrix(coins, values, int(_required(raw["days"])),
                             int(_required(raw.get("returns_used", 0))),
                             tuple(str(n) for n in raw.get("notes", ())))  # fmt: skip
