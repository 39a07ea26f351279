"""Parameter optimisation: the space is checked against the schema, every trial is a real
backtest, the workers (processes or a dask cluster) change nothing in the figures, and an
interrupted optimisation resumes from its results file to the same ranking as a clean run."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pt_backtest_engine
import pt_config
import pt_ohlcv
from pt_backtest_engine import BacktestSpec, CoinHours, HoursKey, run_backtest
from pt_backtest_optimize import (
    OBJECTIVES,
    TUNABLE_KEYS,
    GridError,
    OptimizeError,
    ParamSpace,
    TrialResult,
    best_settings_data,
    grid_points,
    load_results,
    optimize,
    random_points,
    rank,
)
from pt_backtest_tables import TableCache
from pt_config_schema import Settings
from pt_patterns import PatternConfig
from pt_types import DAY, Candles


def utc(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp())


BASE = pt_config.to_data(Settings()) | {"start_allocation_pct": 5.0}
START, END = utc("2022-06-01"), utc("2022-06-15")
GRID = {"trade_start_level": [2, 3, 4], "trailing_gap_pct": [0.3, 0.5]}
Trials = list[tuple[dict[str, Any], dict[str, Any]]]


@pytest.fixture(scope="module")
def history() -> dict[str, Candles]:
    """BTC from 2000 hours before the span: a real warm-up, short enough for a fast test."""
    btc = pt_ohlcv.load_bundled("BTC")
    return {"BTC": btc.slice(int(np.searchsorted(btc.time, START)) - 2000)}


@pytest.fixture(scope="module")
def points() -> list[dict[str, Any]]:
    return grid_points(ParamSpace.from_mapping(GRID, BASE))


def run(
    path: Path,
    points: Sequence[Mapping[str, Any]],
    history: dict[str, Candles],
    **options: Any,
) -> list[TrialResult]:
    return optimize(
        BASE,
        points,
        coins=("BTC",),
        start=START,
        end=END,
        history=history,
        results_path=path,
        objective="sharpe",
        **options,
    )


def trials(results: Sequence[TrialResult]) -> Trials:
    return [(r.point, r.figures) for r in results]


@pytest.fixture(scope="module")
def fresh(
    tmp_path_factory: pytest.TempPathFactory,
    points: list[dict[str, Any]],
    history: dict[str, Candles],
) -> tuple[Path, list[TrialResult]]:
    """One uninterrupted run in this process: the reference for everything else."""
    path = tmp_path_factory.mktemp("fresh") / "results.jsonl"
    return path, run(path, points, history, workers=1)


# -- the parameter space ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({"trade_start_level": [2, 9]}, "grid: trade_start_level = 9: "),
        ({"trade_start_level": [2.5]}, "trade_start_level = 2.5: Input should be a valid integer"),
        ({"dca_levels": [[-5, -10], [-5, -2]]}, "dca_levels = [-5, -2]: DCA levels must go deeper"),
        ({"trailing_gap_pct": {"min": 0.1, "max": 100}}, "trailing_gap_pct = 100: "),
        ({"predictor.distance": {"choices": ["cosine"]}}, "predictor.distance = 'cosine'"),
        ({"sizing.min_pct": [20.0]}, "min_pct 20 is above max_pct 10"),
        ({"trade_start_level": {"min": 5, "max": 2}}, "min is above max"),
        ({"trade_start_level": "3"}, "give a list"),
    ],
)
def test_an_invalid_value_is_refused_naming_key_value_and_reason(
    space: dict[str, Any], expected: str
) -> None:
    with pytest.raises(GridError) as caught:
        ParamSpace.from_mapping(space, BASE)
    assert expected in str(caught.value)


def test_the_schemas_reason_and_allowed_range_are_in_the_message() -> None:
    with pytest.raises(GridError, match=r"less than or equal to 7.*from 1 to 7"):
        ParamSpace.from_mapping({"trade_start_level": [9]})


def test_an_unknown_or_untunable_key_lists_the_tunable_ones() -> None:
    for key in ("trade_start_levle", "coins", "predictor.nope"):
        with pytest.raises(GridError) as caught:
            ParamSpace.from_mapping({key: [1]}, BASE)
        assert repr(key) in str(caught.value)
        assert all(k in str(caught.value) for k in TUNABLE_KEYS)


def test_an_empty_list_or_space_is_refused() -> None:
    with pytest.raises(GridError, match="trade_start_level has an empty list"):
        ParamSpace.from_mapping({"trade_start_level": []}, BASE)
    with pytest.raises(GridError, match="empty list"):
        ParamSpace.from_mapping({"predictor.distance": {"choices": []}}, BASE)
    with pytest.raises(GridError, match="space is empty"):
        ParamSpace.from_mapping({}, BASE)


def test_values_are_checked_on_the_base_settings() -> None:
    base = BASE | {"sizing": BASE["sizing"] | {"max_pct": 30.0}}
    ParamSpace.from_mapping({"sizing.min_pct": [20.0]}, base)  # valid with this base
    with pytest.raises(GridError, match="base settings"):
        ParamSpace.from_mapping(GRID, BASE | {"trade_start_level": 0})


def test_grid_points_are_every_combination_in_order() -> None:
    space = ParamSpace.from_mapping(
        GRID | {"predictor.pattern_length": [1, 2], "dca_levels": [[-2.5, -5, -10]]}, BASE
    )
    got = grid_points(space)
    assert len(got) == 3 * 2 * 2
    assert got[:3] == [
        {"trade_start_level": 2, "trailing_gap_pct": 0.3, "predictor.pattern_length": p,
         "dca_levels": [-2.5, -5, -10]}
        for p in (1, 2)
    ] + [
        {"trade_start_level": 2, "trailing_gap_pct": 0.5, "predictor.pattern_length": 1,
         "dca_levels": [-2.5, -5, -10]}
    ]  # fmt: skip
    assert [p["trade_start_level"] for p in got] == [2] * 4 + [3] * 4 + [4] * 4
    assert grid_points(space) == got
    with pytest.raises(GridError, match="range"):
        grid_points(ParamSpace.from_mapping({"trailing_gap_pct": {"min": 0.1, "max": 1}}, BASE))


def test_random_points_are_repeatable_and_within_the_space() -> None:
    space = ParamSpace.from_mapping(
        {
            "trade_start_level": {"min": 1, "max": 7},
            "trailing_gap_pct": {"min": 0.1, "max": 2},
            "predictor.distance": {"choices": ["relative", "absolute"]},
            "predictor.pattern_length": [1, 2, 3],
        },
        BASE,
    )
    got = random_points(space, 200, seed=7)
    assert got == random_points(space, 200, seed=7)
    assert got != random_points(space, 200, seed=8)
    assert len(got) == 200
    levels = [p["trade_start_level"] for p in got]
    assert all(isinstance(x, int) and 1 <= x <= 7 for x in levels)
    assert set(levels) == set(range(1, 8))
    gaps = [p["trailing_gap_pct"] for p in got]
    assert all(isinstance(x, float) and 0.1 <= x <= 2 for x in gaps)
    assert {p["predictor.distance"] for p in got} == {"relative", "absolute"}
    assert {p["predictor.pattern_length"] for p in got} == {1, 2, 3}
    for point in got[:20]:
        best_settings_data(BASE, point)  # each drawn point is valid settings


# -- ranking and applying ---------------------------------------------------------------------


def result(name: str, **figures: Any) -> TrialResult:
    return TrialResult({"name": name}, figures, 0.0, name)


def test_rank_puts_the_best_first_and_undefined_figures_last() -> None:
    rs = [
        result("a", sharpe=0.5, max_drawdown=0.2),
        result("b", sharpe=None, max_drawdown=None),
        result("c", sharpe=2.0, max_drawdown=0.3),
        result("d", sharpe=math.nan, max_drawdown=0.1),
        result("e", sharpe=-1.0, max_drawdown=math.nan),
        result("f"),
    ]
    names = {o: [r.point["name"] for r in rank(rs, o)] for o in ("sharpe", "max_drawdown")}
    assert names["sharpe"] == ["c", "a", "e", "b", "d", "f"]
    assert names["max_drawdown"] == ["d", "a", "c", "b", "e", "f"]  # lower is better
    assert [r.point["name"] for r in rank(rs, "win_rate")] == list("abcdef")
    with pytest.raises(OptimizeError, match="unknown objective 'profit'"):
        rank(rs, "profit")
    assert {"sharpe", "sortino", "calmar", "total_return", "cagr", "max_drawdown"} < OBJECTIVES


def test_best_settings_data_applies_the_point_and_validates() -> None:
    base = json.loads(json.dumps(BASE))
    point = {"trade_start_level": 4, "predictor.pattern_length": 2, "dca_levels": [-5, -10]}
    data = best_settings_data(base, point)
    assert base == BASE  # the base is not changed
    assert data["trade_start_level"] == 4
    assert data["predictor"]["pattern_length"] == 2
    assert data["dca_levels"] == [-5.0, -10.0]
    assert pt_config.to_data(pt_config.parse(data)) == data
    with pytest.raises(GridError, match="min_pct"):
        best_settings_data(base, {"sizing.min_pct": 50.0, "sizing.max_pct": 20.0})


# -- optimising -------------------------------------------------------------------------------


def test_every_trial_is_a_backtest_recorded_in_the_results_file(
    fresh: tuple[Path, list[TrialResult]], points: list[dict[str, Any]]
) -> None:
    path, results = fresh
    assert sorted(map(json.dumps, (r.point for r in results))) == sorted(map(json.dumps, points))
    assert results == rank(results, "sharpe")
    assert len({r.figures["sharpe"] for r in results}) > 1  # the parameters matter
    assert all(r.figures["trades"] >= 1 and r.seconds > 0 for r in results)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(points)
    assert sorted(json.loads(line)["key"] for line in lines) == sorted(r.key for r in results)
    assert trials(rank(load_results(path), "sharpe")) == trials(results)


def test_two_worker_processes_give_the_same_figures(
    tmp_path: Path,
    fresh: tuple[Path, list[TrialResult]],
    points: list[dict[str, Any]],
    history: dict[str, Candles],
) -> None:
    got = run(tmp_path / "results.jsonl", points, history, workers=2)
    assert trials(got) == trials(fresh[1])
    assert len(load_results(tmp_path / "results.jsonl")) == len(points)


def counter() -> tuple[list[int], Callable[[int, int], None]]:
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        assert total == 6
        seen.append(done)

    return seen, progress


def test_a_stopped_optimisation_resumes_where_it_stopped(
    tmp_path: Path,
    fresh: tuple[Path, list[TrialResult]],
    points: list[dict[str, Any]],
    history: dict[str, Candles],
) -> None:
    path = tmp_path / "results.jsonl"
    seen, progress = counter()
    first = run(
        path, points, history, workers=1, progress=progress, should_stop=lambda: seen[-1] >= 2
    )
    assert len(first) == 2 and seen == [0, 1, 2]
    seen, progress = counter()
    final = run(path, points, history, workers=1, progress=progress)
    assert seen == [2, 3, 4, 5, 6]  # only the four trials left ran
    assert trials(final) == trials(fresh[1])
    assert len(path.read_text(encoding="utf-8").splitlines()) == 6


def test_a_crashed_optimisation_on_processes_resumes_too(
    tmp_path: Path,
    fresh: tuple[Path, list[TrialResult]],
    points: list[dict[str, Any]],
    history: dict[str, Candles],
) -> None:
    path = tmp_path / "results.jsonl"

    def crash(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(path, points, history, workers=2, progress=crash)
    assert len(load_results(path)) == 3
    seen, progress = counter()
    final = run(path, points, history, workers=2, progress=progress)
    assert seen == [3, 4, 5, 6]
    assert trials(final) == trials(fresh[1])


def test_a_damaged_last_line_is_ignored_and_that_trial_runs_again(
    tmp_path: Path,
    fresh: tuple[Path, list[TrialResult]],
    points: list[dict[str, Any]],
    history: dict[str, Candles],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "results.jsonl"
    text = fresh[0].read_text(encoding="utf-8")
    path.write_text(text[: len(text) - len(text.splitlines()[-1]) // 2 - 1], encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="pt_backtest_optimize"):
        assert len(load_results(path)) == 5
    assert "damaged last line 6" in caplog.text
    seen, progress = counter()
    final = run(path, points, history, workers=1, progress=progress)
    assert seen == [5, 6]
    assert trials(final) == trials(fresh[1])
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6 and all(json.loads(line) for line in lines)
    # A whole line of garbage at the end is tolerated too; one in the middle is not.
    path.write_text(text + "garbage\n", encoding="utf-8")
    seen, progress = counter()
    assert trials(run(path, points, history, progress=progress)) == trials(fresh[1])
    assert seen == [6]
    path.write_text("garbage\n" + text, encoding="utf-8")
    with pytest.raises(OptimizeError, match="line 1 is not a trial"):
        load_results(path)


def test_bad_inputs_fail_before_any_trial(
    tmp_path: Path, points: list[dict[str, Any]], history: dict[str, Candles]
) -> None:
    path = tmp_path / "results.jsonl"
    common: dict[str, Any] = {"start": START, "end": END, "history": history, "results_path": path}
    with pytest.raises(OptimizeError, match="unknown objective"):
        optimize(BASE, points, coins=("BTC",), objective="profit", **common)
    with pytest.raises(OptimizeError, match="no candles given for ETH"):
        optimize(BASE, points, coins=("ETH",), **common)
    with pytest.raises(GridError, match="min_pct"):
        run(path, [{"sizing.min_pct": 50.0}], history)
    assert not path.exists()


def test_a_dask_cluster_gives_the_same_figures(
    tmp_path: Path,
    fresh: tuple[Path, list[TrialResult]],
    points: list[dict[str, Any]],
    history: dict[str, Candles],
) -> None:
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        got = run(tmp_path / "a.jsonl", points, history, scheduler=client)
        assert trials(got) == trials(fresh[1])
        assert client.status == "running"  # a client passed in is left open
        by_address = run(
            tmp_path / "b.jsonl", points[:2], history, scheduler=cluster.scheduler_address
        )
        assert trials(by_address) == [t for t in trials(fresh[1]) if t[0] in points[:2]]
    assert len(load_results(tmp_path / "a.jsonl")) == len(points)


# -- the predictor tables shared by trials ------------------------------------------------------

CACHE_GRID = {"trailing_gap_pct": [0.3, 1.0], "predictor.pattern_length": [1, 2]}


def count_builds(monkeypatch: pytest.MonkeyPatch) -> list[HoursKey]:
    """Every predictor table built from now on (the engine's builder, wrapped)."""
    built: list[HoursKey] = []
    real = pt_backtest_engine.coin_hours

    def counting(spec: BacktestSpec, coin: str, hourly: Candles) -> CoinHours:
        built.append(HoursKey.of(spec, coin))
        return real(spec, coin, hourly)

    monkeypatch.setattr(pt_backtest_engine, "coin_hours", counting)
    return built


def test_shared_tables_give_the_figures_of_tables_built_for_each_trial(
    tmp_path: Path, history: dict[str, Candles], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A strategy key (shares the table) and a predictor key (does not) varied together, the
    pattern length fastest: with one table kept per coin, only the grouping of the trials by
    their tables lets the second trial of each pattern length reuse it."""
    points = grid_points(ParamSpace.from_mapping(CACHE_GRID, BASE))
    assert [p["predictor.pattern_length"] for p in points] == [1, 2, 1, 2]
    built = count_builds(monkeypatch)
    shared = run(tmp_path / "shared.jsonl", points, history, workers=1, tables_per_coin=1)
    assert sorted(k.pattern.pattern_length for k in built) == [1, 2]
    each = run(tmp_path / "each.jsonl", points, history, workers=1, tables_per_coin=0)
    assert len(built) == 2 + 4
    assert trials(shared) == trials(each)  # == on floats: bit-identical
    by = {(p["trailing_gap_pct"], p["predictor.pattern_length"]): f for p, f in trials(each)}
    assert by[0.3, 1] != by[1.0, 1]  # the trailing gap matters with the same table ...
    assert by[0.3, 1] != by[0.3, 2]  # ... and the pattern length changes the table


def test_the_cache_serves_a_table_only_for_its_key_and_the_same_candles(
    history: dict[str, Candles],
) -> None:
    spec = BacktestSpec.from_settings(
        pt_config.parse(BASE), start=START, end=START + 7 * DAY, coins=("BTC",)
    )
    mapped: list[list[str]] = []

    def mapper(
        build: Callable[..., CoinHours], coins: Iterable[str], *rest: Any
    ) -> Iterator[CoinHours]:
        coins = list(coins)
        mapped.append(coins)  # the coins whose tables are built (in a pool: in the workers)
        return map(build, coins, *rest)

    def backtest(s: BacktestSpec, candles: dict[str, Candles], cache: TableCache) -> list[Any]:
        result = run_backtest(s, candles, mapper=mapper, tables=cache)
        return [(o.time, o.fill) for o in result.orders]

    cache = TableCache(1)
    first = backtest(spec, history, cache)
    other_gap = replace(spec, strategy=replace(spec.strategy, trailing_gap_pct=0.9))
    second = backtest(other_gap, history, cache)
    assert mapped == [["BTC"], []] and (cache.misses, cache.hits) == (1, 1)
    assert first and first != second  # it traded, and the gap changed how
    assert first == backtest(spec, history, TableCache(0))  # as without a cache
    assert second == backtest(other_gap, history, TableCache(0))
    mapped.clear()
    cache.resize(4)
    other_pattern = replace(spec, pattern=PatternConfig(pattern_length=2))
    backtest(spec, {"BTC": history["BTC"].slice(0)}, cache)  # equal candles, another object
    backtest(other_pattern, history, cache)
    backtest(replace(spec, strategy=replace(spec.strategy, trade_start_level=4)), history, cache)
    backtest(spec, history, cache)  # still kept
    assert mapped == [["BTC"], ["BTC"], ["BTC"], []]
    cache.resize(1)  # the least recently used go first
    backtest(spec, history, cache)
    backtest(other_pattern, history, cache)
    assert mapped[4:] == [[], ["BTC"]] and len(cache) == 1
    kept = cache.get(HoursKey.of(other_pattern, "BTC"), history["BTC"])
    assert kept is not None and not kept.table.low_bounds.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        kept.table.entry_below[0] = 0.0
