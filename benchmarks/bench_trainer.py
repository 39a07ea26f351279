"""Time training BTC on all bundled history (seven timeframes) and print the accuracy reports.

Run from anywhere: ``python benchmarks/bench_trainer.py [--runs N] [--no-report]``. Training runs
in-process through ``pt_training.train_coin``, on one thread (numpy's thread pools are pinned
to one before numpy is imported); the candles are loaded once beforehand, so the figure is the
training alone. The issue's target is under 10 s on one core; the original took about 33 min.
The accuracy tables for BTC and ETH, for the relative and the absolute distance, are printed
after the timings, ready for the README.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pt_accuracy import format_report  # noqa: E402
from pt_ohlcv import load_bundled  # noqa: E402
from pt_patterns import Distance, PatternConfig  # noqa: E402
from pt_training import TrainResult, train_coin, utc  # noqa: E402
from pt_types import HOUR, Candles  # noqa: E402


def train_all(coin: str, hourly: Candles, distance: Distance = "relative") -> TrainResult:
    """All history: "now" is the end of the last bundled hour."""
    now = float(hourly.time[-1] + HOUR)
    return train_coin(coin, hourly, PatternConfig(distance=distance), now=now)


def timing(runs: int) -> None:
    hourly = load_bundled("BTC")
    seconds: list[float] = []
    result: TrainResult | None = None
    for _ in range(runs):
        start = time.perf_counter()
        result = train_all("BTC", hourly)
        seconds.append(time.perf_counter() - start)
    assert result is not None
    print(f"BTC: {len(hourly):,} hourly candles, {utc(result.data_from)} .. {utc(result.data_to)}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(
        f"train_coin, all seven timeframes, {runs} runs: median "
        f"{statistics.median(seconds):.2f} s, min {min(seconds):.2f} s (target < 10 s)"
    )
    print(f"{'tf':<4} {'candles':>8} {'steps':>8} {'memories':>9} {'threshold':>10}")
    for tf, r in result.timeframes.items():
        print(
            f"{tf.value:<4} {r.candles:>8,} {r.accuracy.steps:>8,} "
            f"{len(r.memory.patterns):>9,} {r.memory.threshold:>10.3f}"
        )


def reports() -> None:
    distances: tuple[Distance, ...] = ("relative", "absolute")
    for coin in ("BTC", "ETH"):
        hourly = load_bundled(coin)
        for distance in distances:
            start = time.perf_counter()
            result = train_all(coin, hourly, distance)
            took = time.perf_counter() - start
            print(
                f"\n=== {coin}, distance {distance}: all bundled history, "
                f"{utc(result.data_from)} .. {utc(result.data_to)} ({took:.1f} s)"
            )
            print(format_report(result.report_rows()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-report", action="store_true", help="timings only")
    args = parser.parse_args(argv)
    timing(args.runs)
    if not args.no_report:
        reports()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
