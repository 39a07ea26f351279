"""Backtest the bot's own predictor and strategy over history: ``python pt_backtester.py run``.

Commands (each prints its results and writes them under ``--out``):

- ``run``: one backtest of the settings over a span; a journal of its own
  (``journal.sqlite3``), ``summary.json``, ``fills.csv``, ``equity.csv`` and ``report.html``.
- ``walk-forward``, ``monte-carlo``, ``optimize``, ``compare``: see ``--help`` of each.

Candles come from the bundled history (BTC, ETH, XRP, BNB, DOGE) or, for other coins, from the
data folder's candle cache (filled by paper/live mode and the trainer). Exit codes: 0 done,
1 the run failed (the message says why), 2 bad input (unknown coin, span outside the data,
invalid settings or parameter grid).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TextIO

import pt_config
import pt_ohlcv
from pt_backtest_engine import (
    DEFAULT_STEP_SECONDS,
    LEG_SECONDS,
    BacktestResult,
    BacktestSpec,
    run_backtest,
)
from pt_backtest_journal import Summary, summarize, write_journal
from pt_backtest_montecarlo import monte_carlo_paths, shuffle_trades
from pt_backtest_optimize import (
    OBJECTIVES,
    GridError,
    ParamSpace,
    grid_points,
    optimize,
    random_points,
)
from pt_backtest_report import ReportRun, write_report
from pt_backtest_summary import buy_and_hold, summary_lines
from pt_candle_cache import CandleCache, CandleCacheError
from pt_config_schema import Settings
from pt_errors import PowerTraderError
from pt_state import DataDirError, DataLayout, resolve_data_dir
from pt_types import HOUR, Candles, Timeframe

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
H1 = Timeframe.parse("1h")


class UsageError(PowerTraderError):
    """Bad input on the command line or in a file it names (exit 2)."""


# -- inputs ------------------------------------------------------------------------------------


def day(text: str) -> int:
    """``YYYY-MM-DD`` → that day's UTC midnight (epoch seconds)."""
    try:
        d = dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp())


def utc_day(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d")


def load_history(layout: DataLayout, coins: Sequence[str]) -> dict[str, Candles]:
    """Each coin's hourly candles: the bundled history, else the candle cache."""
    bundled = set(pt_ohlcv.bundled_coins())
    found: dict[str, Candles] = {}
    for coin in coins:
        if coin in bundled:
            found[coin] = pt_ohlcv.load_bundled(coin, cache_dir=layout.history_cache_dir)
            continue
        cached = _cached(layout, coin)
        if cached is None or not len(cached):
            raise UsageError(
                f"unknown coin {coin}: no bundled history (bundled: {', '.join(sorted(bundled))})"
                f" and no cached hourly candles in {layout.candles_db}; run the trainer for it in"
                " paper mode first (python pt_trainer.py " + coin + ") to download its history"
            )
        found[coin] = cached
    return found


def _cached(layout: DataLayout, coin: str) -> Candles | None:
    if not layout.candles_db.exists():
        return None
    try:
        with CandleCache.open_readonly(layout.candles_db) as cache:
            span = cache.covered(coin, H1)
            return None if span is None else cache.read(coin, H1, span[0], span[1] + HOUR)
    except CandleCacheError:
        return None


def check_span(history: dict[str, Candles], start: int, end: int) -> None:
    """The span must lie within every coin's data (else: which coin, and what it has)."""
    if end <= start:
        raise UsageError(f"--end {utc_day(end)} must be after --start {utc_day(start)}")
    for coin, candles in history.items():
        first, last = int(candles.time[0]), int(candles.time[-1]) + HOUR
        if start < first or end > last:
            raise UsageError(
                f"the span {utc_day(start)} .. {utc_day(end)} is outside {coin}'s data, which "
                f"runs {utc_day(first)} .. {utc_day(last)}; pick dates within it"
            )


def open_data(data_dir: str | None) -> tuple[DataLayout, Settings]:
    try:
        layout = DataLayout(resolve_data_dir(data_dir)).ensure()
        return layout, pt_config.load(layout.settings_file)
    except (DataDirError, pt_config.SettingsError) as exc:
        raise UsageError(str(exc)) from None


def coins_arg(text: str) -> tuple[str, ...]:
    coins = tuple(dict.fromkeys(c.strip().upper() for c in text.split(",") if c.strip()))
    if not coins:
        raise argparse.ArgumentTypeError("name at least one coin, e.g. BTC or BTC,ETH")
    return coins


def step_arg(text: str) -> int:
    try:
        step = int(text)
    except ValueError:
        step = 0
    if step <= 0 or LEG_SECONDS % step:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the step must divide {LEG_SECONDS} s (60, 120, 300, 600 or 1200) so the "
            "hour's highs and lows are always visited"
        )
    return step


# -- progress ----------------------------------------------------------------------------------


def progress_bar(label: str, out: TextIO | None) -> Callable[[int, int], None]:
    """A text progress bar on a terminal (one line redrawn), nothing otherwise."""
    started = time.monotonic()

    def show(done: int, total: int) -> None:
        if out is None or total <= 0:
            return
        width = 30
        filled = int(width * done / total)
        took = time.monotonic() - started
        bar = "#" * filled + "-" * (width - filled)
        out.write(f"\r{label} [{bar}] {100 * done / total:5.1f}%  {took:5.1f} s")
        if done >= total:
            out.write("\n")
        out.flush()

    return show


def _tty() -> TextIO | None:
    return sys.stderr if sys.stderr is not None and sys.stderr.isatty() else None


# -- run ---------------------------------------------------------------------------------------


def run_one(
    spec: BacktestSpec, history: dict[str, Candles], out: Path, *, label: str = "backtest"
) -> tuple[BacktestResult, Summary]:
    """Run, journal, summarise and write the result files into ``out``."""
    result = run_parallel(spec, history, progress=progress_bar(label, _tty()))
    journal = write_journal(result, out / "journal.sqlite3")
    hold = buy_and_hold(spec, history)
    summary = summarize(result, journal, hold)
    journal.close()
    write_files(result, summary, out)
    title = f"Backtest {', '.join(spec.coins)} {utc_day(spec.start)} .. {utc_day(spec.end)}"
    write_report(
        out / "report.html",
        title=title,
        runs=[ReportRun(label, result, summary, hold)],
        prices=history,
    )
    return result, summary


def run_parallel(
    spec: BacktestSpec,
    history: dict[str, Candles],
    *,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> BacktestResult:
    """The backtest with each coin's predictor in its own process (one per core, at most one
    per coin); a single coin runs in this process."""
    workers = min(os.cpu_count() or 1, len(spec.coins))
    if workers <= 1:
        return run_backtest(spec, history, progress=progress, should_stop=should_stop)
    spawn = multiprocessing.get_context("spawn")  # no fork of a threaded hub
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
        return run_backtest(
            spec, history, progress=progress, should_stop=should_stop, mapper=pool.map
        )


def write_files(result: BacktestResult, summary: Summary, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(
        json.dumps(summary_data(result, summary), indent=2) + "\n", encoding="utf-8"
    )
    with (out / "fills.csv").open("w", encoding="utf-8") as f:
        f.write("time_utc,coin,side,tag,quantity,price,fee_usd,reason\n")
        for o in result.fills:
            assert o.fill is not None
            reason = o.intent.reason.replace('"', "'")
            f.write(
                f"{dt.datetime.fromtimestamp(o.time, dt.UTC).isoformat()},{o.fill.coin},"
                f"{o.fill.side.value},{o.intent.tag.value},{o.fill.quantity!r},"
                f'{o.fill.price!r},{o.fill.fee_usd!r},"{reason}"\n'
            )
    eq = result.equity
    with (out / "equity.csv").open("w", encoding="utf-8") as f:
        f.write("time_utc,equity_usd,cash_usd\n")
        for t, e, c in zip(eq.time.tolist(), eq.equity.tolist(), eq.cash.tolist(), strict=True):
            f.write(f"{dt.datetime.fromtimestamp(t, dt.UTC).isoformat()},{e!r},{c!r}\n")


def summary_data(result: BacktestResult, summary: Summary) -> dict[str, Any]:
    """The summary as JSON-ready data (None where a figure is undefined)."""
    spec, h = result.spec, summary.buy_and_hold
    return {
        "coins": list(spec.coins),
        "start": utc_day(spec.start),
        "end": utc_day(spec.end),
        "step_seconds": spec.step_seconds,
        "starting_cash_usd": spec.starting_cash,
        **summary.figures(),
        "buy_and_hold": {
            "total_return": h.total_return,
            "cagr": h.cagr,
            "max_drawdown": h.max_drawdown,
            "sharpe": h.sharpe,
            "sortino": h.sortino,
            "calmar": h.calmar,
        },
        "notes": list(result.notes),
    }


def _run(args: argparse.Namespace) -> int:
    layout, _, spec, history = _prepare(args)
    coins = spec.coins
    out = args.out or layout.root / "backtests" / time.strftime("run-%Y%m%d-%H%M%S")
    _, summary = run_one(spec, history, out)
    print(f"backtest {', '.join(coins)} {utc_day(args.start)} .. {utc_day(args.end)}")  # noqa: T201
    for line in summary_lines(
        summary.metrics,
        summary.buy_and_hold,
        deepest_dca=summary.deepest_dca,
        starting_cash=spec.starting_cash,
    ):
        print(line)  # noqa: T201
    print(f"results in {out}")  # noqa: T201
    return EXIT_OK


Prepared = tuple[DataLayout, Settings, BacktestSpec, dict[str, Candles]]


def _prepare(args: argparse.Namespace) -> Prepared:
    """The data folder, its settings, the run they describe and the coins' history."""
    layout, settings = open_data(args.data_dir)
    coins = args.coins or tuple(settings.coins)
    history = load_history(layout, coins)
    check_span(history, args.start, args.end)
    spec = BacktestSpec.from_settings(
        settings, start=args.start, end=args.end, coins=coins, step_seconds=args.step
    )
    return layout, settings, spec, history


def _monte_carlo(args: argparse.Namespace) -> int:
    layout, _, spec, history = _prepare(args)
    out = args.out or layout.root / "backtests" / time.strftime("montecarlo-%Y%m%d-%H%M%S")
    result, _ = run_one(spec, history, out, label="backtest")
    paths = monte_carlo_paths(
        spec,
        history,
        runs=args.runs,
        block_hours=args.block_hours,
        seed=args.seed,
        progress=progress_bar("resampled paths", _tty()),
    )
    shuffled = shuffle_trades(result, runs=max(args.runs, 100), seed=args.seed)
    pct = "5th / 50th / 95th percentile"
    lines = [
        f"block bootstrap, {args.runs} paths of {args.block_hours} h blocks (seed {args.seed}):",
        f"  final return   {pct}: " + " / ".join(f"{x:+.1%}" for x in paths.return_percentiles),
        f"  max drawdown   {pct}: " + " / ".join(f"{x:.1%}" for x in paths.drawdown_percentiles),
        f"  P(the DCA ladder runs out of cash): {paths.probability_out_of_cash:.0%}",
        f"trade order shuffled, {len(shuffled.final_return)} orders of "
        f"{len(shuffled.trades)} closed trades:",
        f"  max drawdown   {pct}: " + " / ".join(f"{x:.1%}" for x in shuffled.drawdown_percentiles),
    ]
    data = {
        "paths": {
            "runs": args.runs,
            "block_hours": args.block_hours,
            "seed": args.seed,
            "final_return": paths.final_return.tolist(),
            "max_drawdown": paths.max_drawdown.tolist(),
            "out_of_cash": paths.out_of_cash.tolist(),
            "probability_out_of_cash": paths.probability_out_of_cash,
        },
        "trade_shuffle": {
            "runs": len(shuffled.final_return),
            "trades": len(shuffled.trades),
            "max_drawdown": shuffled.max_drawdown.tolist(),
        },
    }
    (out / "montecarlo.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print("\n".join(lines))  # noqa: T201
    print(f"results in {out}")  # noqa: T201
    return EXIT_OK


def _optimize(args: argparse.Namespace) -> int:
    layout, settings, spec, history = _prepare(args)
    base = pt_config.to_data(settings)
    try:
        grid = json.loads(args.grid.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the parameter grid {args.grid}: {exc}") from None
    try:
        space = ParamSpace.from_mapping(grid, base)
        points = random_points(space, args.random, args.seed) if args.random else grid_points(space)
    except GridError as exc:
        raise UsageError(str(exc)) from None
    out = args.out or layout.root / "backtests"
    results = out / (args.name + ".jsonl")
    ranked = optimize(
        base,
        points,
        coins=spec.coins,
        start=spec.start,
        end=spec.end,
        history=history,
        results_path=results,
        step_seconds=spec.step_seconds,
        workers=args.workers,
        scheduler=args.scheduler,
        objective=args.objective,
        progress=progress_bar("trials", _tty()),
    )
    print(f"{len(ranked)} trials ranked by {args.objective} (results: {results}):")  # noqa: T201
    for trial in ranked[:10]:
        figure = trial.figures.get(args.objective)
        shown = "n/a" if figure is None else f"{figure:.4g}"
        print(f"  {args.objective} {shown:>9}  {json.dumps(trial.point)}")  # noqa: T201
    return EXIT_OK


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


# -- command line ------------------------------------------------------------------------------


def _span_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="the data folder (default: $POWERTRADER_HOME or ./user_data)")
    p.add_argument("--coins", type=coins_arg, help="comma-separated coins (default: the settings')")
    p.add_argument("--start", type=day, required=True, help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--end", type=day, required=True, help="day after the last, YYYY-MM-DD (UTC)")
    p.add_argument(
        "--step",
        type=step_arg,
        default=DEFAULT_STEP_SECONDS,
        help="simulated seconds between trader ticks; must divide 1200 (default 600)",
    )
    p.add_argument("--out", type=Path, help="folder for the results (default: under backtests/)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pt_backtester.py", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="one backtest of the settings over a span")
    _span_args(run)
    mc = sub.add_parser(
        "monte-carlo", help="the run, then resampled price paths and shuffled trade orders"
    )
    _span_args(mc)
    mc.add_argument("--runs", type=positive, default=20, help="resampled paths (default 20)")
    mc.add_argument(
        "--block-hours", type=positive, default=168, help="bootstrap block length (default 168)"
    )
    mc.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    opt = sub.add_parser("optimize", help="grid or random search over settings, resumable")
    _span_args(opt)
    opt.add_argument("--grid", type=Path, required=True, help="JSON file: settings key -> values")
    opt.add_argument("--random", type=positive, help="draw this many random points instead")
    opt.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    opt.add_argument("--objective", choices=sorted(OBJECTIVES), default="sharpe")
    opt.add_argument("--workers", type=positive, help="local processes (default: all cores)")
    opt.add_argument("--scheduler", help="a dask scheduler address, e.g. tcp://10.0.0.5:8786")
    opt.add_argument(
        "--name", default="optimize", help="results file name under --out (resumes if present)"
    )
    return p


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run,
    "monte-carlo": _monte_carlo,
    "optimize": _optimize,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"pt_backtester: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_USAGE
    except (PowerTraderError, OSError) as exc:
        print(f"pt_backtester: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
