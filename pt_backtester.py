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
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pt_config
from pt_backtest_cli import (
    Candidate,
    UsageError,
    check_span,
    coins_arg,
    compare_runs,
    comparison_table,
    day,
    load_history,
    new_folder,
    open_data,
    point_text,
    positive,
    progress_bar,
    run_one,
    step_arg,
    tty,
    utc_day,
)
from pt_backtest_engine import DEFAULT_STEP_SECONDS, BacktestSpec
from pt_backtest_montecarlo import monte_carlo_paths, shuffle_trades
from pt_backtest_optimize import (
    OBJECTIVES,
    GridError,
    OptimizeError,
    ParamSpace,
    best_settings_data,
    grid_points,
    load_results,
    optimize,
    random_points,
    rank,
)
from pt_backtest_optreport import write_optimization_report
from pt_backtest_summary import summary_lines
from pt_backtest_walkforward import WalkForwardError, walk_forward, walk_windows
from pt_backtest_wfreport import walkforward_lines, write_walkforward
from pt_config_schema import Settings
from pt_errors import PowerTraderError
from pt_state import DataLayout
from pt_types import Candles

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _run(args: argparse.Namespace) -> int:
    layout, _, spec, history = _prepare(args)
    coins = spec.coins
    out = args.out or new_folder(layout.root / "backtests", "run")
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
    out = args.out or new_folder(layout.root / "backtests", "montecarlo")
    result, _ = run_one(spec, history, out, label="backtest")
    paths = monte_carlo_paths(
        spec,
        history,
        runs=args.runs,
        block_hours=args.block_hours,
        seed=args.seed,
        progress=progress_bar("resampled paths", tty()),
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
    points = read_points(args, base)
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
        progress=progress_bar("trials", tty()),
    )
    print(f"{len(ranked)} trials ranked by {args.objective} (results: {results}):")  # noqa: T201
    for trial in ranked[:10]:
        figure = trial.figures.get(args.objective)
        shown = "n/a" if figure is None else f"{figure:.4g}"
        print(f"  {args.objective} {shown:>9}  {json.dumps(trial.point)}")  # noqa: T201
    span = f"{utc_day(spec.start)} .. {utc_day(spec.end)}"
    report = write_optimization_report(
        out / (args.name + ".html"),
        ranked,
        objective=args.objective,
        title=f"Optimisation {args.name}: {', '.join(spec.coins)} {span}",
        note=f"Coins {', '.join(spec.coins)}, {span} (UTC, end exclusive), "
        f"step {spec.step_seconds} s; every trial is in {results.name}.",
    )
    print(f"report: {report}")  # noqa: T201
    return EXIT_OK


def read_points(args: argparse.Namespace, base: dict[str, Any]) -> list[dict[str, Any]]:
    """The points of ``--grid`` (all, or ``--random`` N of them), checked by the schema."""
    try:
        grid = json.loads(args.grid.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the parameter grid {args.grid}: {exc}") from None
    try:
        space = ParamSpace.from_mapping(grid, base)
        return random_points(space, args.random, args.seed) if args.random else grid_points(space)
    except GridError as exc:
        raise UsageError(str(exc)) from None


def _walk_forward(args: argparse.Namespace) -> int:
    layout, settings, spec, history = _prepare(args)
    base = pt_config.to_data(settings)
    points = read_points(args, base)
    try:
        windows = walk_windows(
            spec.start, spec.end, train_days=args.train_days, test_days=args.test_days
        )
    except WalkForwardError as exc:
        raise UsageError(str(exc)) from None
    out = (args.out or layout.root / "backtests") / args.name
    result = walk_forward(
        base, points, windows=windows, coins=spec.coins, history=history, results_dir=out,
        step_seconds=spec.step_seconds, workers=args.workers, scheduler=args.scheduler,
        objective=args.objective, progress=progress_bar("trials", tty()),
    )  # fmt: skip
    write_walkforward(result, out)
    print("\n".join(walkforward_lines(result)))  # noqa: T201
    print(f"results in {out}")  # noqa: T201
    return EXIT_OK


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


def _compare(args: argparse.Namespace) -> int:
    layout, settings, spec, history = _prepare(args)
    candidates = [Candidate("current settings", settings)]
    for path in args.settings:
        try:
            candidates.append(Candidate(path.stem, pt_config.load(path, env={})))
        except (OSError, pt_config.SettingsError) as exc:
            raise UsageError(f"cannot use the settings file {path}: {exc}") from None
    legend: list[str] = []  # what each trial changed
    if args.results is not None:
        base = pt_config.to_data(settings)
        try:
            ranked = rank(load_results(args.results), args.objective)
            for i, trial in enumerate(ranked[: args.top], 1):
                name = f"{args.results.stem} #{i}"
                chosen = pt_config.parse(best_settings_data(base, trial.point))
                candidates.append(Candidate(name, chosen))
                legend.append(f"  {name}: {point_text(trial.point)}")
        except (OptimizeError, pt_config.SettingsError) as exc:
            raise UsageError(f"cannot use the results {args.results}: {exc}") from None
        if not ranked:
            raise UsageError(f"{args.results} holds no trials; run the optimize command first")
    if len(candidates) < 2:
        raise UsageError(
            "nothing to compare the current settings with: name settings files "
            "(--settings a.json b.json) or optimisation results (--results)"
        )
    out = args.out or new_folder(layout.root / "backtests", "compare")
    runs = compare_runs(
        candidates, history, out, coins=spec.coins, start=spec.start, end=spec.end,
        step_seconds=spec.step_seconds, progress=progress_bar("comparison", tty()),
    )  # fmt: skip
    span = f"{', '.join(spec.coins)} {utc_day(spec.start)} .. {utc_day(spec.end)}"
    print(f"comparison {span}:", *comparison_table(runs), *legend, sep="\n")  # noqa: T201
    print(f"results in {out}")  # noqa: T201
    return EXIT_OK


def _search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grid", type=Path, required=True, help="JSON file: settings key -> values")
    p.add_argument("--random", type=positive, help="draw this many random points instead")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--objective", choices=sorted(OBJECTIVES), default="sharpe")
    p.add_argument("--workers", type=positive, help="local processes (default: all cores)")
    p.add_argument("--scheduler", help="a dask scheduler address, e.g. tcp://10.0.0.5:8786")


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
    _search_args(opt)
    opt.add_argument(
        "--name", default="optimize", help="results file name under --out (resumes if present)"
    )
    wf = sub.add_parser(
        "walk-forward", help="optimise on rolling train windows, score on the test after each"
    )
    _span_args(wf)
    _search_args(wf)
    wf.add_argument("--train-days", type=positive, default=180, help="train length (default 180)")
    wf.add_argument("--test-days", type=positive, default=30, help="test length (default 30)")
    wf.add_argument(
        "--name", default="walkforward", help="results folder under --out (resumes if present)"
    )
    cmp = sub.add_parser("compare", help="the current settings beside others on the same span")
    _span_args(cmp)
    cmp.add_argument("--settings", type=Path, nargs="*", default=[], metavar="FILE",
                     help="settings files (settings.json format) to compare")  # fmt: skip
    cmp.add_argument("--results", type=Path, help="an optimisation's results (.jsonl)")
    cmp.add_argument("--top", type=positive, default=3, help="its best N trials (default 3)")
    cmp.add_argument("--objective", choices=sorted(OBJECTIVES), default="sharpe",
                     help="what 'best' means for --results (default sharpe)")  # fmt: skip
    return p


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run,
    "monte-carlo": _monte_carlo,
    "optimize": _optimize,
    "walk-forward": _walk_forward,
    "compare": _compare,
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
