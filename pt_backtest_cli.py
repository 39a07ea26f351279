"""The backtester's inputs, data and result files, shared by ``pt_backtester.py`` and the
BACKTEST tab: dates and coins checked at the boundary, each coin's candles (bundled, else the
candle cache), the run with its predictors on parallel processes, and the files a run writes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pt_config
import pt_ohlcv
from pt_backtest_engine import (
    LEG_SECONDS,
    BacktestResult,
    BacktestSpec,
    HoursStore,
    run_backtest,
)
from pt_backtest_journal import Summary, summarize, write_journal
from pt_backtest_report import ReportRun, write_report
from pt_backtest_summary import buy_and_hold, comparison_lines
from pt_backtest_tables import TABLES_PER_COIN, TableCache
from pt_candle_cache import CandleCache, CandleCacheError
from pt_config_schema import Settings
from pt_errors import PowerTraderError
from pt_state import DataDirError, DataLayout, resolve_data_dir
from pt_types import HOUR, Candles, Timeframe

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


def tty() -> TextIO | None:
    return sys.stderr if sys.stderr is not None and sys.stderr.isatty() else None


# -- run ---------------------------------------------------------------------------------------


def backtest_into(
    spec: BacktestSpec,
    history: Mapping[str, Candles],
    out: Path,
    *,
    label: str = "backtest",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    parallel: bool = True,
    tables: HoursStore | None = None,
) -> ReportRun:
    """Run (the predictors on parallel processes unless ``parallel`` is false; tables kept in
    ``tables`` reused), journal, summarise and write the run's files into ``out``."""
    options: dict[str, Any] = {"progress": progress, "should_stop": should_stop, "tables": tables}
    result = (run_parallel(spec, dict(history), **options) if parallel
              else run_backtest(spec, history, **options))  # fmt: skip
    hold = buy_and_hold(spec, history)
    journal = write_journal(result, out / "journal.sqlite3")
    try:
        summary = summarize(result, journal, hold)
    finally:
        journal.close()
    write_files(result, summary, out)
    return ReportRun(label, result, summary, hold)


def run_one(
    spec: BacktestSpec, history: dict[str, Candles], out: Path, *, label: str = "backtest"
) -> tuple[BacktestResult, Summary]:
    """:func:`backtest_into` with a progress bar, and its report."""
    run = backtest_into(spec, history, out, label=label, progress=progress_bar(label, tty()))
    title = f"Backtest {', '.join(spec.coins)} {utc_day(spec.start)} .. {utc_day(spec.end)}"
    write_report(out / "report.html", title=title, runs=[run], prices=history)
    return run.result, run.summary


@dataclass(frozen=True)
class Candidate:
    """One settings set of a comparison, by the name the table and charts give it."""

    name: str
    settings: Settings


def compare_runs(
    candidates: Sequence[Candidate],
    history: Mapping[str, Candles],
    out: Path,
    *,
    coins: Sequence[str],
    start: int,
    end: int,
    step_seconds: int,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    parallel: bool = True,
) -> list[ReportRun]:
    """Backtest each candidate on the same coins and span (their own coin lists are not used:
    a comparison is of settings, on equal terms), each into ``out/NN-name/``; then one report
    (``out/report.html``: one table, one equity chart) and ``out/compare.json``. ``progress``
    counts per mille of the whole comparison."""
    specs = [
        BacktestSpec.from_settings(
            c.settings, start=start, end=end, coins=tuple(coins), step_seconds=step_seconds
        )
        for c in candidates
    ]  # every candidate is checked before the first one runs
    runs: list[ReportRun] = []
    tables = TableCache(TABLES_PER_COIN * len(coins))  # candidates differing only in trading
    for i, (candidate, spec) in enumerate(zip(candidates, specs, strict=True)):

        def part(done: int, total: int, i: int = i) -> None:
            if progress is not None:
                progress((1000 * i + 1000 * done // max(total, 1)) // len(specs), 1000)

        folder = out / f"{i + 1:02d}-{_slug(candidate.name)}"
        run = backtest_into(spec, history, folder, label=candidate.name, progress=part,
                            should_stop=should_stop, parallel=parallel, tables=tables)  # fmt: skip
        runs.append(run)
    span = f"{', '.join(coins)} {utc_day(start)} .. {utc_day(end)}"
    write_report(out / "report.html", title=f"Comparison {span}", runs=runs, prices=history)
    data = [{"name": r.name, **summary_data(r.result, r.summary)} for r in runs]
    (out / "compare.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return runs


def comparison_table(runs: Sequence[ReportRun]) -> list[str]:
    """:func:`pt_backtest_summary.comparison_lines` of ``runs`` (buy-and-hold: the first's)."""
    hold = ("buy & hold", runs[0].summary.buy_and_hold)
    return comparison_lines([(r.name, r.summary.metrics) for r in runs], hold)


def point_text(point: Mapping[str, Any] | None) -> str:
    """A trial's settings as a person reads them: ``key = value, ...``."""
    if point is None:
        return "nothing chosen (no trial had the objective defined)"
    return ", ".join(f"{k} = {json.dumps(v)}" for k, v in point.items())


def new_folder(parent: Path, kind: str) -> Path:
    """``parent/kind-YYYYmmdd-HHMMSS`` (local time), made now; ``-2``, ``-3`` … when a run in
    the same second already took the name, so no run ever writes into another's folder."""
    stamp = time.strftime(f"{kind}-%Y%m%d-%H%M%S")
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        folder = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise OSError(f"{parent}: no free folder name for {stamp}")


def _slug(name: str) -> str:
    """A folder name from a run's name: letters, digits, dots and single dashes."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", name)[:40].strip("-") or "run"


def run_parallel(
    spec: BacktestSpec,
    history: dict[str, Candles],
    *,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    tables: HoursStore | None = None,
) -> BacktestResult:
    """The backtest with each coin's predictor in its own process (one per core, at most one
    per coin); a single coin runs in this process."""
    workers = min(os.cpu_count() or 1, len(spec.coins))
    options: dict[str, Any] = {"progress": progress, "should_stop": should_stop, "tables": tables}
    if workers <= 1:
        return run_backtest(spec, history, **options)
    spawn = multiprocessing.get_context("spawn")  # no fork of a threaded hub
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
        return run_backtest(spec, history, mapper=pool.map, **options)


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


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value
