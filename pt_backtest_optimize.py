"""Parameter optimisation: many real backtests of the settings with a few values changed.

A parameter space names settings (dotted keys) and the values to try: lists for a grid search,
``{"min": a, "max": b}`` or ``{"choices": [...]}`` for a random one; every value is checked
against the settings schema before anything runs. Each trial is a full backtest, journalled
and summarised as ``pt_backtester.py run`` does, in worker processes or on a dask cluster.
Each finished trial is appended at once (synced) to a JSON Lines file, keyed by its point, span,
coins and base settings: an interrupted optimisation started again resumes where it stopped.

Most of a trial's time is the predictor's warm-up on all history before the span, and its
tables depend on the predictor settings and the entry level only, not on the rest of the
strategy: every process keeps the last few tables (:class:`TableCache`) and the trials run
grouped by the tables they need, so a grid over DCA levels or trailing margins warms up once.
"""

from __future__ import annotations

import contextlib
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
    HoursKey,
    HoursStore,
    run_backtest,
)
from pt_backtest_journal import summarize, write_journal
from pt_backtest_summary import buy_and_hold
from pt_backtest_tables import TABLES_PER_COIN, TableCache
from pt_errors import PowerTraderError
from pt_types import Candles

log = logging.getLogger(__name__)

# Settings that change what a backtest does (varying anything else gives identical trials).
TUNABLE_KEYS: tuple[str, ...] = (
    "trade_start_level", "start_allocation_pct", "dca_levels", "dca_multiplier",
    "max_dca_buys_per_24h", "pm_start_pct_no_dca", "pm_start_pct_with_dca", "trailing_gap_pct",
    "predictor.pattern_length", "predictor.target_matches", "predictor.distance",
    "predictor.bound_pct", "sizing.method", "sizing.base_pct", "sizing.min_pct",
    "sizing.max_pct", "sizing.target_atr_pct", "sizing.atr_period", "risk.max_exposure_pct",
    "risk.max_coin_pct", "risk.volatility_position_pct", "risk.drawdown_stop_pct",
    "risk.drawdown_pause_all",
)  # fmt: skip
# Figures a trial can be ranked by: the highest value is the best, except where lower is.
OBJECTIVES = frozenset(
    {"sharpe", "sortino", "calmar", "total_return", "cagr", "max_drawdown", "win_rate"}
)
LOWER_IS_BETTER = frozenset({"max_drawdown"})


class OptimizeError(PowerTraderError):
    """The optimisation cannot run as asked; the message says what to change."""


class GridError(OptimizeError):
    """A parameter space that names an unknown setting or a value the schema refuses."""


# -- the parameter space ------------------------------------------------------------------------


@dataclass(frozen=True)
class Dimension:
    """One setting to vary: ``values`` (a grid or choices) or a ``low``..``high`` range."""

    key: str
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    integer: bool = False


@dataclass(frozen=True)
class ParamSpace:
    """Settings to vary and their candidate values, every one valid under the schema."""

    dimensions: tuple[Dimension, ...]

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], base_settings_data: Mapping[str, Any] | None = None
    ) -> ParamSpace:
        """Read ``{"key": [values] | {"min": a, "max": b} | {"choices": [...]}}``, each value
        tried on ``base_settings_data`` (default: the default settings); :class:`GridError`
        names the key, the value and the schema's reason for the first one refused."""
        if not isinstance(data, Mapping) or not data:
            raise GridError("grid: the parameter space is empty; name at least one setting")
        base = _canonical(base_settings_data or {}, "the base settings")
        return cls(tuple(_dimension(str(key), spec, base) for key, spec in data.items()))


def _dimension(key: str, spec: Any, base: dict[str, Any]) -> Dimension:
    if key not in TUNABLE_KEYS:
        raise GridError(f"grid: {key!r} cannot be tuned; tunable: {', '.join(TUNABLE_KEYS)}")
    if isinstance(spec, Mapping) and set(spec) == {"min", "max"}:
        low, high = spec["min"], spec["max"]
        for bound in (low, high):
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                raise GridError(f"grid: {key} range bound {bound!r} is not a number")
            check_value(base, key, bound)
        if low > high:
            raise GridError(f"grid: {key} range {low!r}..{high!r}: min is above max")
        return Dimension(key, (), low, high, isinstance(low, int) and isinstance(high, int))
    if isinstance(spec, Mapping) and set(spec) == {"choices"}:
        spec = spec["choices"]
    if not isinstance(spec, list | tuple):
        raise GridError(f"grid: {key} = {spec!r}: give a list, {{min, max}} or {{choices}}")
    if not spec:
        raise GridError(f"grid: {key} has an empty list of values: give at least one")
    for value in spec:
        check_value(base, key, value)
    return Dimension(key, tuple(_json(v) for v in spec))


def check_value(base: Mapping[str, Any], key: str, value: Any) -> None:
    """:class:`GridError` unless ``key = value`` on ``base`` passes the settings schema."""
    problems = pt_config.validate(_apply(base, {key: value}))
    if problems:
        why = (p.message + (f" (allowed: {p.allowed})" if p.allowed else "") for p in problems)
        raise GridError(f"grid: {key} = {value!r}: {'; '.join(why)}")


def grid_points(space: ParamSpace) -> list[dict[str, Any]]:
    """Every combination, in order: the first dimension varies slowest, the last fastest."""
    ranges = [d.key for d in space.dimensions if d.low is not None]
    if ranges:
        raise GridError(f"grid: {', '.join(ranges)} given as a range; a grid needs value lists")
    keys = [d.key for d in space.dimensions]
    combos = itertools.product(*(d.values for d in space.dimensions))
    return [dict(zip(keys, map(copy.deepcopy, combo), strict=True)) for combo in combos]


def random_points(space: ParamSpace, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` points drawn at random, the same ones for the same seed: a range uniformly (whole
    numbers when both bounds are; others rounded to 6 decimals), a list one of its values."""
    rng = random.Random(seed)
    return [{d.key: _draw(d, rng) for d in space.dimensions} for _ in range(max(n, 0))]


def _draw(dim: Dimension, rng: random.Random) -> Any:
    if dim.low is None or dim.high is None:
        return copy.deepcopy(rng.choice(dim.values))
    if dim.integer:
        return rng.randint(int(dim.low), int(dim.high))
    return min(max(round(rng.uniform(dim.low, dim.high), 6), dim.low), dim.high)


def best_settings_data(
    base_settings_data: Mapping[str, Any], best_point: Mapping[str, Any]
) -> dict[str, Any]:
    """Complete, validated settings data with ``best_point`` applied (for the settings writer);
    :class:`GridError` if the combination is invalid."""
    return _canonical(_apply(base_settings_data, best_point), f"the point {dict(best_point)}")


def _apply(base: Mapping[str, Any], point: Mapping[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(dict(base))
    for key, value in point.items():
        try:
            pt_config.set_path(data, key, _json(value))
        except KeyError as exc:
            raise GridError(f"grid: {key} = {value!r}: {exc.args[0]}") from None
    return data


def _canonical(data: Mapping[str, Any], what: str) -> dict[str, Any]:
    try:
        return pt_config.to_data(pt_config.parse(data))
    except pt_config.SettingsError as exc:
        reasons = "; ".join(p.describe(with_source=False) for p in exc.problems)
        raise GridError(f"grid: {what} give invalid settings: {reasons}") from None


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
    span: tuple[int, int, int]  # start, end, step_seconds


def _tables_of(job: _Job) -> tuple[HoursKey, ...]:
    """The predictor tables a trial needs (equal for trials that can share them)."""
    return tuple(HoursKey.of(_spec(job), coin) for coin in job.coins)


def _by_tables(jobs: Sequence[_Job]) -> list[_Job]:
    """The jobs grouped by the tables they need, each group in the jobs' order: a process
    takes its trials in this order, so it needs a group's tables while it is in that group."""
    groups: dict[tuple[HoursKey, ...], list[_Job]] = {}
    for job in jobs:
        groups.setdefault(_tables_of(job), []).append(job)
    return [job for group in groups.values() for job in group]


def _spec(job: _Job) -> BacktestSpec:
    start, end, step = job.span
    settings = pt_config.parse(job.settings_data)
    return BacktestSpec.from_settings(
        settings, start=start, end=end, coins=job.coins, step_seconds=step
    )


def _run_trial(
    job: _Job,
    history: Mapping[str, Candles],
    should_stop: Callable[[], bool] = lambda: False,
    tables: HoursStore | None = None,
) -> tuple[dict[str, Any], float]:
    """One backtest, journalled in a temporary folder and summarised: (figures, seconds).
    ``tables`` (this process's cache) serves the predictor tables an earlier trial built."""
    started = time.perf_counter()
    spec = _spec(job)
    result = run_backtest(spec, history, should_stop=should_stop, tables=tables)
    with tempfile.TemporaryDirectory(prefix="pt-optimize-") as folder:
        journal = write_journal(result, Path(folder) / "journal.sqlite3")
        try:
            s = summarize(result, journal, buy_and_hold(spec, history))
        finally:
            journal.close()
    figures = {**s.figures(), "buy_and_hold_return": s.buy_and_hold.total_return}
    return figures, time.perf_counter() - started


_WORKER_HISTORY: dict[str, Candles] = {}
_WORKER_TABLES = TableCache(0)  # a worker process's (or dask worker's) tables, for its trials


def _init_worker(history: dict[str, Candles], capacity: int = 0) -> None:
    """Pool initializer: the candles arrive once per worker process, not once per trial."""
    _WORKER_HISTORY.clear()
    _WORKER_HISTORY.update(history)
    _WORKER_TABLES.resize(0)  # tables of other candles are of no use
    _WORKER_TABLES.resize(capacity)


def _pool_trial(job: _Job) -> tuple[dict[str, Any], float]:
    return _run_trial(job, _WORKER_HISTORY, tables=_WORKER_TABLES)


def _dask_trial(
    job: _Job, history: Mapping[str, Candles], capacity: int
) -> tuple[dict[str, Any], float]:
    """A trial on a dask worker: its process keeps tables across trials (and optimisations,
    bounded by ``capacity``; the scattered candles are one object per worker)."""
    _WORKER_TABLES.resize(capacity)
    return _run_trial(job, history, tables=_WORKER_TABLES)


def _read(path: Path) -> tuple[list[TrialResult], int]:
    """The trials in ``path`` and the length in bytes of its intact part."""
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return [], 0
    results: list[TrialResult] = []
    intact = 0
    for number, line in enumerate(lines, 1):
        try:
            if line.strip():
                if number == len(lines):
                    raise ValueError("no line end: its write was interrupted")
                d = json.loads(line)
                results.append(TrialResult(d["point"], d["figures"], d["seconds"], d["key"]))
        except (ValueError, KeyError, TypeError) as exc:
            if any(rest.strip() for rest in lines[number:]):
                raise OptimizeError(
                    f"{path} line {number} is not a trial ({exc}); fix or delete the file"
                ) from None
            log.warning("%s: ignored its damaged last line %d (%s)", path, number, exc)
            break
        intact += len(line) + (number < len(lines))
    return results, intact


def load_results(path: Path) -> list[TrialResult]:
    """The trials in a results file; a damaged last line (a write cut short) is ignored."""
    return _read(path)[0]


def rank(results: Iterable[TrialResult], objective: str) -> list[TrialResult]:
    """Best first by ``objective`` (stable); trials where it is undefined (None, NaN) last."""
    if objective not in OBJECTIVES:
        known = ", ".join(sorted(OBJECTIVES))
        raise OptimizeError(f"unknown objective {objective!r}; one of {known}")
    sign = 1.0 if objective in LOWER_IS_BETTER else -1.0

    def order(r: TrialResult) -> tuple[bool, float]:
        value = r.figures.get(objective)
        if isinstance(value, int | float) and not math.isnan(value):
            return False, sign * value
        return True, 0.0

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
    tables_per_coin: int = TABLES_PER_COIN,
) -> list[TrialResult]:
    """Backtest every point; the trials ranked by ``objective``, best first.

    Trials already in ``results_path`` (same key) are not run again. ``workers`` processes run
    the trials (default: one per CPU; 1 runs them in this process). ``scheduler``, a dask
    scheduler address (``"tcp://host:8786"``) or a ``distributed.Client``, runs them on that
    cluster instead (its workers must be able to import this project). ``progress(done,
    total)`` is called at the start and after each trial. Once ``should_stop()`` is true no
    trial starts (running ones finish and are kept) and the trials done so far are returned.
    Each process keeps ``tables_per_coin`` predictor tables per coin for the next trials (0:
    none, every trial warms up its own; the figures are the same either way).
    """
    rank((), objective)  # an unknown objective fails before any work
    base = _canonical(base_settings_data, "the base settings")
    chosen = tuple(c.upper() for c in coins) if coins else tuple(base["coins"])
    missing = [c for c in chosen if c not in history]
    if missing:
        raise OptimizeError(f"no candles given for {', '.join(missing)}")
    span = (start, end, step_seconds)
    jobs: dict[str, _Job] = {}
    for point in points:
        plain = _json(dict(point))
        ident = json.dumps([plain, base, chosen, span], sort_keys=True)  # a trial's identity
        key = hashlib.sha256(ident.encode()).hexdigest()[:32]
        jobs.setdefault(key, _Job(plain, best_settings_data(base, plain), key, chosen, span))
    results_path.parent.mkdir(parents=True, exist_ok=True)
    stored, intact = _read(results_path)
    if results_path.exists() and intact < results_path.stat().st_size:
        with results_path.open("r+b") as f:
            f.truncate(intact)  # drop the damaged last line before appending
    done = {r.key: r for r in stored if r.key in jobs}
    todo = _by_tables([job for key, job in jobs.items() if key not in done])
    log.info("optimisation: %d trials, %d already in %s", len(jobs), len(done), results_path)
    if progress is not None:
        progress(len(done), len(jobs))
    with results_path.open("a", encoding="utf-8") as out:

        def finished(job: _Job, figures: dict[str, Any], seconds: float) -> None:
            line = {"key": job.key, "point": job.point, "figures": figures, "seconds": seconds}
            out.write(json.dumps(line, sort_keys=True) + "\n")
            out.flush()
            os.fsync(out.fileno())
            done[job.key] = TrialResult(job.point, figures, seconds, job.key)
            if progress is not None:
                progress(len(done), len(jobs))

        capacity = tables_per_coin * len(chosen)
        runner = _Runner(todo, dict(history), finished, should_stop, capacity)
        count = workers if workers is not None else os.cpu_count() or 1
        if scheduler is not None:
            runner.on_dask(scheduler)
        elif count <= 1 or len(todo) <= 1:
            runner.in_process()
        else:
            runner.on_pool(min(count, len(todo)))
    return rank([done[key] for key in jobs if key in done], objective)  # ties: points order


@dataclass
class _Runner:
    jobs: list[_Job]
    history: dict[str, Candles]
    finished: Callable[[_Job, dict[str, Any], float], None]
    should_stop: Callable[[], bool]
    tables: int  # predictor tables each process keeps (TableCache)

    def in_process(self) -> None:
        cache = TableCache(self.tables)
        try:
            with contextlib.suppress(BacktestStoppedError):  # a stop asked for mid-trial
                for job in self.jobs:
                    if self.should_stop():
                        return
                    figures, seconds = _run_trial(job, self.history, self.should_stop, cache)
                    self.finished(job, figures, seconds)
        finally:
            log.info("predictor tables: %d built, %d reused", cache.misses, cache.hits)

    def drive(self, submit: Callable[..., Any], first_done: Callable[..., Any], n: int) -> None:
        """Keep ``n`` trials in flight until all are done or a stop is asked for."""
        queue = iter(self.jobs)
        running: dict[Any, _Job] = {}
        stopping = False
        try:
            while True:
                while not stopping and len(running) < n:
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
                    self.finished(job, figures, seconds)
                stopping = stopping or self.should_stop()
        finally:
            for future in running:
                future.cancel()

    def on_pool(self, workers: int) -> None:
        # spawn, not fork: a fork of a process with threads (the hub's) can deadlock.
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(workers, context, _init_worker, (self.history, self.tables))
        try:
            self.drive(
                lambda job: pool.submit(_pool_trial, job),
                lambda fs: wait(fs, return_when=FIRST_COMPLETED).done,
                2 * workers,
            )
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def on_dask(self, scheduler: Any) -> None:
        try:
            import distributed  # noqa: PLC0415  (optional: only for a cluster)
        except ImportError:
            raise OptimizeError("a dask cluster needs: pip install 'dask[distributed]'") from None
        dist: Any = distributed  # its API is only partly typed
        client = dist.Client(scheduler) if isinstance(scheduler, str) else scheduler
        if not isinstance(client, dist.Client):
            raise OptimizeError("scheduler must be an address (tcp://host:8786) or a dask Client")
        try:
            if self.jobs:
                [candles] = client.scatter([self.history], broadcast=True)
                self.drive(
                    lambda job: client.submit(_dask_trial, job, candles, self.tables, pure=False),
                    lambda fs: dist.wait(list(fs), return_when="FIRST_COMPLETED").done,
                    2 * max(sum(client.nthreads().values()), 1),
                )
        finally:
            if client is not scheduler:
                client.close()
