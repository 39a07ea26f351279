"""Time loading the bundled hourly candles and resampling them into every coarser timeframe.

Run from anywhere: ``python benchmarks/bench_bundled_data.py [--runs N]``. Each run starts cold
(the in-process cache is cleared), loads all five hourly files, then resamples each into the six
coarser timeframes; a last row times the warm (cached) load every later caller gets.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pt_candles import resample  # noqa: E402
from pt_ohlcv import bundled_coins, clear_cache, load_bundled  # noqa: E402
from pt_types import Candles, Timeframe  # noqa: E402

COARSER = [tf for tf in Timeframe if tf is not Timeframe.H1]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def resample_all(hourly: Candles) -> list[Candles]:
    return [resample(hourly, tf) for tf in COARSER]


def run_once(coins: list[str]) -> dict[str, float]:
    """One cold pass; returns seconds per phase."""
    clear_cache()
    times: dict[str, float] = {}
    hourly: dict[str, Candles] = {}
    for coin in coins:
        start = time.perf_counter()
        hourly[coin] = load_bundled(coin)
        times[f"load {coin} 1h (cold)"] = time.perf_counter() - start
    times["load all five (cold)"] = sum(times.values())
    resample_total = 0.0
    for coin in coins:
        t = timed(functools.partial(resample_all, hourly[coin]))
        times[f"resample {coin} -> 6 tf"] = t
        resample_total += t
    times["resample all five -> 6 tf"] = resample_total
    times["load cached (all five)"] = timed(lambda: [load_bundled(c) for c in coins])
    times["TOTAL cold load + resample"] = times["load all five (cold)"] + resample_total
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    coins = bundled_coins()
    runs = [run_once(coins) for _ in range(args.runs)]

    rows = [(name, [r[name] for r in runs]) for name in runs[0]]
    width = max(len(name) for name, _ in rows)
    print(f"bundled candles: {', '.join(coins)}; {args.runs} runs; numpy {np.__version__}")
    print(f"{'phase':<{width}}  {'median ms':>10}  {'min ms':>8}")
    print("-" * (width + 22))
    for name, values in rows:
        median = statistics.median(values) * 1000
        print(f"{name:<{width}}  {median:>10.1f}  {min(values) * 1000:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
