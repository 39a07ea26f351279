"""The command lines of the pure analysis modules: ``python pt_volume.py COIN``.

The analysis modules stay pure (no files, no clock); their ``__main__`` blocks hand over to
this module, which finds the candles (the data folder's candle cache when it holds the coin,
else the bundled history), runs the analysis and prints it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from pt_candle_cache import CandleCache, CandleCacheError
from pt_ohlcv import OhlcvError, load_bundled
from pt_state import DataDirError, DataLayout, resolve_data_dir
from pt_types import Candles, Timeframe
from pt_volume import VolumeAnalyzer, VolumeMetrics, volume_metrics

__all__ = ["load_history", "volume_main"]


def load_history(coin: str, timeframe: Timeframe, data_dir: str | None) -> tuple[Candles, str]:
    """The coin's candles and where they came from: the candle cache of the data folder when it
    covers the coin, else the bundled history. Raises ``ValueError`` naming what is missing."""
    try:
        layout = DataLayout(resolve_data_dir(data_dir))
        if layout.candles_db.exists():
            with CandleCache.open_readonly(layout.candles_db) as cache:
                span = cache.covered(coin, timeframe)
                if span is not None:
                    candles = cache.read(coin, timeframe, *span)
                    if len(candles):
                        return candles, f"candle cache {layout.candles_db}"
    except (DataDirError, CandleCacheError) as exc:
        raise ValueError(str(exc)) from None
    try:
        return load_bundled(coin, timeframe), "bundled history"
    except OhlcvError as exc:
        raise ValueError(f"no candles for {coin}: {exc}") from None


def _number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def volume_report(coin: str, candles: Candles, source: str, analyzer: VolumeAnalyzer) -> str:
    metrics: VolumeMetrics | None = volume_metrics(candles)
    if metrics is None:
        return f"{coin}: no candles ({source})"
    when = str(np.datetime64(metrics.time, "s")).replace("T", " ")[:16]
    anomaly = analyzer.detect_anomaly(candles.volume)
    trend = analyzer.calculate_trend(candles.volume)
    lines = [
        f"{coin} volume, candle of {when} UTC ({len(candles)} candles from {source})",
        f"  volume        {_number(metrics.volume)}",
        f"  SMA 10 / 50   {_number(metrics.sma_10)} / {_number(metrics.sma_50)}",
        f"  EMA 12        {_number(metrics.ema_12)}",
        f"  VWAP (20)     {_number(metrics.vwap, 4)}",
        f"  relative      {_number(metrics.relative_volume)}x the SMA 50",
        f"  anomaly       {'YES' if anomaly.anomalous else 'no'}: {anomaly.reason}",
        f"  trend         {trend.trend.value}: {trend.reason}",
    ]
    if metrics.note:
        lines.append(f"  note          {metrics.note}")
    return "\n".join(lines)


def volume_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pt_volume.py",
        description="Volume metrics, anomaly and trend of a coin's newest candle.",
    )
    parser.add_argument("coin", help="e.g. BTC")
    parser.add_argument("--timeframe", default="1h", help="1h (default), 4h, 1d, ...")
    parser.add_argument(
        "--data-dir", help="data folder whose candle cache to read (default: bundled)"
    )
    parser.add_argument("--window", type=int, default=50, help="anomaly window in candles")
    parser.add_argument("--z", type=float, default=3.0, help="anomaly z-score threshold")
    args = parser.parse_args(argv)
    coin = args.coin.upper()
    try:
        timeframe = Timeframe(args.timeframe)
        analyzer = VolumeAnalyzer(window=args.window, z_threshold=args.z)
        candles, source = load_history(coin, timeframe, args.data_dir)
    except ValueError as exc:
        print(f"pt_volume: {exc}", file=sys.stderr)  # noqa: T201  (CLI)
        return 2
    print(volume_report(coin, candles, source, analyzer))  # noqa: T201  (CLI)
    return 0
