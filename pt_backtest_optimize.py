"""Parameter optimisation: many real backtests of the settings with a few values changed.

A parameter space names settings (dotted keys, e.g. ``predictor.pattern_length``) and the values
to try: a list for a grid search, ``{"min": a, "max": b}`` or ``{"choices": [...]}`` for a
random search. Every value is checked against the settings schema before anything runs, so a
typo costs a message, not an hour of backtests.

Each trial is a full backtest (:func:`pt_backtest_engine.run_backtest`), journalled into a
temporary file and summarised exactly like ``pt_backtester.py run``. Trials run in worker
processes (the candles are sent once to each worker), or on a dask cluster. Every finished
trial is appended to a JSON Lines results file at once (flushed and synced), keyed by a hash of
its point, the span, the coins and the base settings: an interrupted optimisation started again
skips what is already there and resumes where it stopped.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import math
import multiprocessing
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pt_config
from pt_backtest_engine import (
    DEFAULT_STEP_SECONDS,
    BacktestSpec,
    BacktestStoppedError,
    run_backtest,
)
from pt_backtest_journal import summarize, write_journal
from pt_backtest_summary import buy_and_hold
from pt_errors import PowerTraderError
from pt_types import Candles

log = logging.getLogger(__name__)

# Settings that change what a backtest does (anything else would give identical trials).
TUNABLE_KEYS: tuple[str, ...] = (
    "trade_start_level", "start_allocation_pct", "dca_levels", "dca_multiplier",
    "max_dca_buys_per_24h", "pm_start_pct_no_dca", "pm_start_pct_with_dca", "trailing_gap_pct",
    "predictor.pattern_length", "predictor.target_matches", "predictor.distance",
    "predictor.bound_pct",
    "sizing.method", "sizing.base_pct", "sizing.min_pct", "sizing.max_pct",
    "sizing.target_atr_pct", "sizing.atr_period",
    "risk.max_exposure_pct", "risk.max_coin_pct", "risk.volatility_position_pct",
    "risk.drawdown_stop_pct", "risk.drawdown_pause_all",
)  # fmt: skip
# Figures a trial can be ranked by; the best has the highest value, except where noted.
OBJECTIVES = frozenset(
    {"sharpe", "sortino", "calmar", "total_return", "cagr", "max_drawdown", "win_rate"}
)
LOWER_IS_BETTER = frozenset({"max_drawdown"})
DASK_HINT = "pip install 'dask[distributed]'"


class OptimizeError(PowerTraderError):
    """The optimisation cannot run as asked; the message says what to change."""


class GridError(OptimizeError):
    """A parameter space that names an unknown setting or a value the schema refuses."""


# -- the parameter space ------------------------------------------------------------------------


@dataclass(frozen=True)
class Dimension:
    """One setting to vary: ``values`` (a grid, or random choices) or a ``low``..``high`` range
    (whole numbers when ``integer``)."""

    key: str
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    integer: bool = False

    @property
    def is_range(self) -> bool:
        return self.low is not None


@dataclass(frozen=True)
class ParamSpace:
    """Settings to vary and their candidate values, every one valid under the schema."""

    dimensions: tuple[Dimension, ...]

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], base_settings_data: Mapping[str, Any] | None = None
    ) -> ParamSpace:
        """Read and validate ``{"key": [values]}`` / ``{"key": {"min": a, "max": b}}`` /
        ``{"key": {"choices": [...]}}``; each value is tried on ``base_settings_data`` (default:
        the default settings). Raises :class:`GridError` naming the key, value and reason."""
        if not isinstance(data, Mapping) or not data:
            raise GridError("grid: the parameter space is empty; name at least one setting")
        base = _canonical(base_settings_data or {}, "base settings")
        dims = tuple(_dimension(str(key), spec, base) for key, spec in data.items())
        return cls(dims)

    @property
    def is_grid(self) -> bool:
        return not any(d.is_range for d in self.dimensions)

    @property
    def size(self) -> int:
        """Points in the grid (0 when a dimension is a range: no grid)."""
        return math.prod(len(d.values) for d in self.dimensions) if self.is_grid else 0


def _dimension(key: str, spec: Any, base: dict[str, Any]) -> Dimension:
    if key not in TUNABLE_KEYS:
        raise GridError(
            f"grid: {key!r} is not a setting that can be tuned; tunable: {', '.join(TUNABLE_KEYS)}"
        )
    if isinstance(spec, list | tuple):
        values = tuple(spec)
    elif isinstance(spec, Mapping) and set(spec) == {"choices"}:
        values = tuple(spec["choices"]) if isinstance(spec["choices"], list | tuple) else ()
    elif isinstance(spec, Mapping) and set(spec) == {"min", "max"}:
        return _range(key, spec["min"], spec["max"], base)
    else:
        raise GridError(
            f"grid: {key} = {spec!r}: give a list of values, {{'min': a, 'max': b}} or "
            "{'choices': [...]}"
        )
    if not values:
        raise GridError(f"grid: {key} has no values: give at least one")
    for value in values:
        check_value(base, key, value)
    return Dimension(key, tuple(_json(v) for v in values))


def _range(key: str, low: Any, high: Any, base: dict[str, Any]) -> Dimension:
    for bound in (low, high):
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            raise GridError(f"grid: {key} range bound {bound!r} is not a number")
    if low > high:
        raise GridError(f"grid: {key} range {low!r}..{high!r}: min is above max")
    for bound in (low, high):
        check_value(base, key, bound)
    integer = isinstance(low, int) and isinstance(high, int)
    return Dimension(key, (), low, high, integer)


def check_value(base: Mapping[str, Any], key: str, value: Any) -> None:
    """:class:`GridError` unless ``key = value`` on ``base`` passes the settings schema."""
    candidate = copy.deepcopy(dict(base))
    try:
        pt_config.set_path(candidate, key, _json(value))
    except KeyError as exc:
        raise GridError(f"grid: {key} = {value!r}: {exc.args[0]}") from None
    problems = pt_config.validate(candidate)
    if problems:
        reasons = "; ".join(
            ("" if p.key == key else f"{p.key}: ")
            + p.message
            + (f" (allowed: {p.allowed})" if p.allowed else "")
            for p in problems
        )
        raise GridError(f"grid: {key} = {value!r}: {reasons}")


def grid_points(space: ParamSpace) -> list[dict[str, Any]]:
    """Every combination, in order: the last dimension varies fastest."""
    ranges = [d.key for d in space.dimensions if d.is_range]
    if ranges:
        raise GridError(
            f"grid: {', '.join(ranges)} given as a range; a grid search needs lists of values "
            "(a range is for a random search)"
        )
    keys = [d.key for d in space.dimensions]
    return [
        dict(zip(keys, map(copy.deepcopy, combo), strict=True))
        for combo in itertools.product(*(d.values for d in space.dimensions))
    ]


def random_points(space: ParamSpace, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` points drawn at random (the same ones for the same seed): a range uniformly
    (whole numbers when both bounds are), a list or ``choices`` one of its values."""
    rng = random.Random(seed)
    return [{d.key: _draw(d, rng) for d in space.dimensions} for _ in range(max(n, 0))]


def _draw(dim: Dimension, rng: random.Random) -> Any:
    if dim.low is None or dim.high is None:
        return copy.deepcopy(rng.choice(dim.values))
    if dim.integer:
        return rng.randint(int(dim.low), int(dim.high))
    return min(max(round(rng.uniform(dim.low, dim.high), 6), dim.low), dim.high)


def apply_point(base_settings_data: Mapping[str, Any], point: Mapping[str, Any]) -> dict[str, Any]:
    """The settings data with the point's values set (not validated)."""
    data = copy.deepcopy(dict(base_settings_data))
    for key, value in point.items():
        pt_config.set_path(data, key, _json(value))
    return data


def best_settings_data(
    base_settings_data: Mapping[str, Any], best_point: Mapping[str, Any]
) -> dict[str, Any]:
    """Complete, validated settings data with ``best_point`` applied, ready for the settings
    writer; :class:`GridError` if the combination is invalid."""
    return _canonical(apply_point(base_settings_data, best_point), f"point {dict(best_point)}")


def _canonical(data: Mapping[str, Any], what: str) -> dict[str, Any]:
    try:
        return pt_config.to_data(pt_config.parse(data))
    except pt_config.SettingsError as exc:
        reasons = "; ".join(p.describe(with_source=False) for p in exc.problems)
        raise GridError(f"grid: {what} are not valid settings: {reasons}") from None
    except KeyError as exc:
        raise GridError(f"grid: {what}: {exc.args[0]}") from None


def _json(value: Any) -> Any:
    """The value as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


# -- one trial -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialResult:
    """A finished trial: its point, the run's figures, the seconds it took and its key."""

    point: dict[str, Any]
    figures: dict[str, Any]
    seconds: float
    key: str


@dataclass(frozen=True)
class _Job:
    point: dict[str, Any]
    settings_data: dict[str, Any]
    key: str
    coins: tuple[str, ...]
    start: int
    end: int
    step_seconds: int


def _run_trial(
    job: _Job, history: Mapping[str, Candles], should_stop: Callable[[], bool] = lambda: False
) -> tuple[dict[str, Any], float]:
    """One backtest, journalled in a temporary folder and summarised: (figures, seconds)."""
    started = time.perf_counter()
    settings = pt_config.parse(job.settings_data)
    spec = BacktestSpec.from_settings(
        settings, start=job.start, end=job.end, coins=job.coins, step_seconds=job.step_seconds
    )
    result = run_backtest(spec, history, should_stop=should_stop)
    with tempfile.TemporaryDirectory(prefix="pt-optimize-") as folder:
        journal = write_journal(result, Path(folder) / "journal.sqlite3")
        try:
            summary = summarize(result, journal, buy_and_hold(spec, history))
        finally:
            journal.close()
    m, a, t = summary.metrics, summary.metrics.account, summary.metrics.trades
    figures = {
        "final_equity_usd": a.end_equity,
        "total_return": a.total_return,
        "cagr": a.cagr,
        "max_drawdown": a.max_drawdown,
        "sharpe": a.sharpe,
        "sortino": a.sortino,
        "calmar": a.calmar,
        "max_floating_drawdown": m.max_floating_drawdown,
        "trades": t.trades,
        "win_rate": t.win_rate,
        "avg_hold_s": t.avg_hold_s,
        "realized_pnl_usd": t.realized_pnl_usd,
        "deepest_dca": summary.deepest_dca,
        "cash_needed_usd": m.capital_deployed_usd,
        "buys_refused_by_risk_limits": summary.refused,
        "orders_rejected": summary.rejected,
        "buy_and_hold_return": summary.buy_and_hold.total_return,
    }
    return figures, time.perf_counter() - started


_WORKER_HISTORY: dict[str, Candles] = {}


def _init_worker(history: dict[str, Candles]) -> None:
    """Pool initializer: the candles arrive once per worker process, not once per trial."""
    _WORKER_HISTORY.clear()
    _WORKER_HISTORY.update(history)


def _pool_trial(job: _Job) -> tuple[dict[str, Any], float]:
    return _run_trial(job, _WORKER_HISTORY)


def _dask_trial(job: _Job, history: dict[str, Candles]) -> tuple[dict[str, Any], float]:
    return _run_trial(job, history)


def trial_key(
    point: Mapping[str, Any],
    settings_data: Mapping[str, Any],
    coins: Sequence[str],
    start: int,
    end: int,
    step_seconds: int,
) -> str:
    """What identifies a trial in the results file (same inputs, same backtest)."""
    ident = {"point": point, "settings": settings_data, "coins": list(coins)}
    ident |= {"start": start, "end": end, "step_seconds": step_seconds}
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# -- the results file ----------------------------------------------------------------------------


def _read(path: Path) -> tuple[list[TrialResult], int]:
    """The trials in ``path`` and the length in bytes of its intact part."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    results: list[TrialResult] = []
    good = 0
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            good += len(line) + (number < len(lines))
            continue
        try:
            if number == len(lines):
                raise ValueError("no line end (the write was interrupted)")
            d = json.loads(line)
            results.append(TrialResult(d["point"], d["figures"], float(d["seconds"]), d["key"]))
        except (ValueError, KeyError, TypeError) as exc:
            if any(rest.strip() for rest in lines[number:]):
                raise OptimizeError(
                    f"{path} line {number} is not a trial ({exc}); fix or delete the file"
                ) from None
            log.warning("%s: ignored its damaged last line %d (%s)", path, number, exc)
            break
        good += len(line) + 1
    return results, good


def load_results(path: Path) -> list[TrialResult]:
    """Every trial in a results file (a damaged last line, from an interrupted write, is
    ignored with a warning)."""
    return _read(path)[0]


def _append(f: Any, r: TrialResult) -> None:
    line = {"key": r.key, "point": r.point, "figures": r.figures, "seconds": r.seconds}
    f.write(json.dumps(line, sort_keys=True) + "\n")
    f.flush()
    os.fsync(f.fileno())


def rank(results: Iterable[TrialResult], objective: str) -> list[TrialResult]:
    """Best first by ``objective``; trials where it is undefined (None, NaN) come last."""
    if objective not in OBJECTIVES:
        raise OptimizeError(
            f"unknown objective {objective!r}; one of {', '.join(sorted(OBJECTIVES))}"
        )
    sign = 1.0 if objective in LOWER_IS_BETTER else -1.0

    def order(r: TrialResult) -> tuple[bool, float]:
        value = r.figures.get(objective)
        ok = isinstance(value, int | float) and not math.isnan(value)
        return (not ok, sign * float(value) if ok else 0.0)

    return sorted(results, key=order)


# -- the optimisation ----------------------------------------------------------------------------


def optimize(
    base_settings_data: Mapping[str, Any],
    points: Sequence[Mapping[str, Any]],
    *,
    coins: Sequence[str] | None,
    start: int,
    end: int,
    history: Mapping[str, Candles],
    results_path: Path,
    step_seconds: int = DEFAULT_STEP_SECONDS,
    workers: int | None = None,
    scheduler: Any = None,
    objective: str = "sharpe",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[TrialResult]:
    """Backtest every point and return the trials ranked by ``objective`` (best first).

    Trials already in ``results_path`` (same key) are not run again. ``workers`` processes run
    the trials (default: one per CPU; 1 runs them here, in this process); ``scheduler``, a dask
    scheduler address (``"tcp://host:8786"``) or a ``distributed.Client``, runs them on that
    cluster instead (its workers must be able to import this project). ``progress(done, total)``
    is called at the start and after each trial. When ``should_stop()`` turns true no new trial
    starts; those running finish and are kept; the trials finished so far are returned.
    """
    if objective not in OBJECTIVES:
        raise OptimizeError(
            f"unknown objective {objective!r}; one of {', '.join(sorted(OBJECTIVES))}"
        )
    base = _canonical(base_settings_data, "base settings")
    chosen = tuple(c.upper() for c in coins) if coins else tuple(base["coins"])
    missing = [c for c in chosen if c not in history]
    if missing:
        raise OptimizeError(f"no candles given for {', '.join(missing)}")
    jobs: dict[str, _Job] = {}
    for point in points:
        plain = _json(dict(point))
        data = best_settings_data(base, plain)
        key = trial_key(plain, base, chosen, start, end, step_seconds)
        jobs.setdefault(key, _Job(plain, data, key, chosen, start, end, step_seconds))
    results_path.parent.mkdir(parents=True, exist_ok=True)
    stored, intact = _read(results_path)
    if results_path.exists() and intact < results_path.stat().st_size:
        with results_path.open("r+b") as f:
            f.truncate(intact)
    done = {r.key: r for r in stored if r.key in jobs}
    todo = [job for key, job in jobs.items() if key not in done]
    total = len(jobs)
    if progress is not None:
        progress(len(done), total)
    log.info("optimisation: %d trials, %d already in %s", total, len(done), results_path)
    with results_path.open("a", encoding="utf-8") as out:

        def finished(job: _Job, figures: dict[str, Any], seconds: float) -> None:
            result = TrialResult(job.point, figures, seconds, job.key)
            _append(out, result)
            done[job.key] = result
            if progress is not None:
                progress(len(done), total)

        if scheduler is not None:
            _on_dask(scheduler, todo, dict(history), finished, should_stop)
        elif (workers or os.cpu_count() or 1) <= 1 or len(todo) <= 1:
            _in_process(todo, history, finished, should_stop)
        else:
            _on_pool(workers or os.cpu_count() or 1, todo, dict(history), finished, should_stop)
    return rank(done.values(), objective)


Finished = Callable[[_Job, dict[str, Any], float], None]


def _in_process(
    jobs: list[_Job], history: Mapping[str, Candles], finished: Finished, stop: Callable[[], bool]
) -> None:
    for job in jobs:
        if stop():
            return
        try:
            figures, seconds = _run_trial(job, history, stop)
        except BacktestStoppedError:
            return
        finished(job, figures, seconds)


def _drive(
    jobs: list[_Job],
    submit: Callable[[_Job], Any],
    first_done: Callable[[set[Any]], Iterable[Any]],
    window: int,
    finished: Finished,
    stop: Callable[[], bool],
) -> None:
    """Keep ``window`` trials in flight until all are done or a stop is asked for."""
    queue = iter(jobs)
    running: dict[Any, _Job] = {}
    stopping = False
    try:
        while True:
            while not stopping and len(running) < window:
                job = next(queue, None)
                if job is None:
                    break
                running[submit(job)] = job
            if not running:
                return
            for future in first_done(set(running)):
                job = running.pop(future)
                try:
                    figures, seconds = future.result()
                except Exception as exc:
                    raise OptimizeError(f"trial {job.point} failed: {exc}") from exc
                finished(job, figures, seconds)
            stopping = stopping or stop()
    finally:
        for future in running:
            future.cancel()


def _on_pool(
    workers: int,
    jobs: list[_Job],
    history: dict[str, Candles],
    finished: Finished,
    stop: Callable[[], bool],
) -> None:
    # spawn: a fork of a process with threads (the hub's) may deadlock in the child.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, context, initializer=_init_worker, initargs=(history,))
    try:
        _drive(
            jobs,
            lambda job: pool.submit(_pool_trial, job),
            lambda fs: wait(fs, return_when=FIRST_COMPLETED).done,
            2 * workers,
            finished,
            stop,
        )
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _on_dask(
    scheduler: Any,
    jobs: list[_Job],
    history: dict[str, Candles],
    finished: Finished,
    stop: Callable[[], bool],
) -> None:
    try:
        import distributed  # noqa: PLC0415  (optional: only for a cluster)
    except ImportError:
        raise OptimizeError(f"running on a dask cluster needs dask: {DASK_HINT}") from None
    own = isinstance(scheduler, str)
    client = distributed.Client(scheduler) if own else scheduler
    if not isinstance(client, distributed.Client):
        raise OptimizeError("scheduler must be an address (tcp://host:8786) or a dask Client")
    try:
        if not jobs:
            return
        [candles] = client.scatter([history], broadcast=True)
        threads = sum(client.nthreads().values()) or 1
        _drive(
            jobs,
            lambda job: client.submit(_dask_trial, job, candles, pure=False),
            lambda fs: distributed.wait(list(fs), return_when="FIRST_COMPLETED").done,
            2 * threads,
            finished,
            stop,
        )
    finally:
        if own:
            client.close()
