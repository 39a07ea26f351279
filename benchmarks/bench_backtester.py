"""Time the backtester: one coin over 8 years, five coins sharing a wallet, optimisation scaling.

Run from anywhere: ``python benchmarks/bench_backtester.py [--runs N] [--skip-optimize]``.
Each figure is the median of ``--runs`` runs, in-process, one thread for numpy, candles loaded
beforehand (the figure is the replay: predictor warm-up, online learning, decisions, fills).
Targets from the issue: one coin, 8 years of 1h candles, under 30 s on one core; five coins
over the bundled history under 2 minutes; the optimiser's speed-up at 1 and 2 workers.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import multiprocessing  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pt_config  # noqa: E402
from pt_backtest_cli import run_parallel  # noqa: E402
from pt_backtest_engine import BacktestSpec  # noqa: E402
from pt_config_schema import Settings  # noqa: E402
from pt_ohlcv import load_bundled  # noqa: E402
from pt_types import Candles  # noqa: E402

SETTINGS = Settings().model_copy(update={"start_allocation_pct": 2.0})


def utc(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp())


def median_of(runs: int, work: Callable[[], object]) -> tuple[float, object]:
    seconds, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = work()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), out


def one_run(coins: tuple[str, ...], start: str, end: str, history: dict[str, Candles]) -> str:
    spec = BacktestSpec.from_settings(SETTINGS, start=utc(start), end=utc(end), coins=coins)
    result = run_parallel(spec, history)
    final = float(result.equity.equity[-1])
    return f"{len(result.fills)} fills, final equity ${final:,.2f}"


def _spin(_: int) -> float:
    started, total = time.perf_counter(), 0
    for i in range(40_000_000):
        total += i * i
    return time.perf_counter() - started


def machine_speedup() -> float:
    """What two processes give over one on this machine for pure CPU work (no data, no I/O),
    pool start-up included: the ceiling an optimisation's speed-up can be read against."""
    one = _spin(0)
    spawn = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with ProcessPoolExecutor(2, mp_context=spawn) as pool:
        list(pool.map(_spin, (0, 1)))
    return 2 * one / (time.perf_counter() - started)


def optimisation(runs: int) -> None:
    """Speed-up with workers (trials that share nothing: each has its own predictor table), and
    what sharing the tables saves when only strategy keys vary."""
    from pt_backtest_optimize import ParamSpace, grid_points, optimize  # noqa: PLC0415

    history = {"BTC": load_bundled("BTC")}
    base = pt_config.to_data(SETTINGS.model_copy(update={"coins": ("BTC",)}))

    def timed(grid: dict[str, list[Any]], **options: Any) -> float:
        points = grid_points(ParamSpace.from_mapping(grid, base))

        def work() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                optimize(base, points, coins=("BTC",), start=utc("2022-01-01"),
                         end=utc("2022-04-01"), history=history,
                         results_path=Path(tmp) / "results.jsonl", **options)  # fmt: skip

        return median_of(runs, work)[0]

    apart = {"trade_start_level": [1, 2, 3, 4], "predictor.pattern_length": [1, 2]}
    figures = {workers: timed(apart, workers=workers) for workers in (1, 2)}
    for workers, took in figures.items():
        print(f"optimise 8 trials with 8 different predictor tables (BTC, 3 months each), "
              f"{workers} worker(s), {runs} runs: median {took:.1f} s")  # fmt: skip
    print(
        f"speed-up at 2 workers: {figures[1] / figures[2]:.2f}x (cores: {os.cpu_count()}; "
        f"this machine's own: {machine_speedup():.2f}x for pure-Python work on 2 processes)"
    )
    shared = {"trailing_gap_pct": [0.3, 0.5, 0.8, 1.2]}
    alone, kept = (timed(shared, workers=1, tables_per_coin=n) for n in (0, 2))
    print(f"optimise 4 trials varying trailing_gap_pct (one predictor table), 1 worker, "
          f"{runs} runs: median {alone:.1f} s each warming up, "
          f"{kept:.1f} s sharing it")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-optimize", action="store_true")
    args = parser.parse_args()
    btc = {"BTC": load_bundled("BTC")}
    took, said = median_of(args.runs, lambda: one_run(("BTC",), "2017-09-01", "2025-09-01", btc))
    print(f"BTC 2017-09-01 .. 2025-09-01 (8 years, 1h), one core, {args.runs} runs: "
          f"median {took:.1f} s (target < 30 s); {said}")  # fmt: skip
    five = ("BTC", "ETH", "XRP", "BNB", "DOGE")
    history = {c: load_bundled(c) for c in five}
    took, said = median_of(args.runs, lambda: one_run(five, "2019-07-06", "2026-03-01", history))
    print(f"five coins sharing a wallet, 2019-07-06 .. 2026-03-01 (all five have data), "
          f"predictors in parallel on {os.cpu_count()} cores, "
          f"{args.runs} runs: median {took:.1f} s (target < 120 s); {said}")  # fmt: skip
    if not args.skip_optimize:
        optimisation(args.runs)


if __name__ == "__main__":
    main()
