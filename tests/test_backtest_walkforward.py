"""Walk-forward: windows roll over the span, each window's settings are the best trial on its
train part and are scored by a real backtest on the test part after it, a stopped walk-forward
resumes to the same result, and the command line writes the table, JSON and report."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pt_config
import pt_ohlcv
from pt_backtest_engine import BacktestSpec, run_backtest
from pt_backtest_journal import summarize, write_journal
from pt_backtest_optimize import best_settings_data, load_results
from pt_backtest_summary import buy_and_hold
from pt_backtest_walkforward import (
    WalkForward,
    WalkForwardError,
    Window,
    WindowResult,
    walk_forward,
    walk_windows,
)
from pt_backtest_wfreport import walkforward_lines, write_walkforward
from pt_backtester import main
from pt_config_schema import Settings
from pt_types import DAY, Candles


def utc(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp())


BASE = pt_config.to_data(Settings()) | {"start_allocation_pct": 5.0}
START, END = utc("2022-05-01"), utc("2022-06-05")
POINTS: list[dict[str, Any]] = [{"trailing_gap_pct": 0.3}, {"trailing_gap_pct": 0.8}]
OBJECTIVE = "total_return"  # defined for every run, so every window chooses


@pytest.fixture(scope="module")
def history() -> dict[str, Candles]:
    btc = pt_ohlcv.load_bundled("BTC")
    return {"BTC": btc.slice(int(np.searchsorted(btc.time, START)) - 2000)}


def windows() -> list[Window]:
    return walk_windows(START, END, train_days=14, test_days=7)


def run(history: dict[str, Candles], folder: Path, **options: Any) -> WalkForward:
    return walk_forward(BASE, POINTS, windows=windows(), coins=("BTC",), history=history,
                        results_dir=folder, workers=1, objective=OBJECTIVE, **options)  # fmt: skip


@pytest.fixture(scope="module")
def clean_run(
    tmp_path_factory: pytest.TempPathFactory, history: dict[str, Candles]
) -> tuple[Path, WalkForward]:
    """One uninterrupted walk-forward: its results folder and result."""
    folder = tmp_path_factory.mktemp("walkforward")
    return folder, run(history, folder)


@pytest.fixture
def clean(clean_run: tuple[Path, WalkForward]) -> WalkForward:
    return clean_run[1]


def test_windows_roll_on_by_the_test_length_and_stay_in_the_span() -> None:
    got = [(w.number, w.train, w.test) for w in windows()]
    d = utc("2022-05-01")
    assert got == [
        (1, (d, d + 14 * DAY), (d + 14 * DAY, d + 21 * DAY)),
        (2, (d + 7 * DAY, d + 21 * DAY), (d + 21 * DAY, d + 28 * DAY)),
        (3, (d + 14 * DAY, d + 28 * DAY), (d + 28 * DAY, d + 35 * DAY)),
    ]
    assert got[-1][2][1] == END


def test_a_span_too_short_for_one_window_says_how_long_it_is() -> None:
    with pytest.raises(WalkForwardError, match="the span is 35 days: too short for one window"):
        walk_windows(START, END, train_days=30, test_days=6)
    with pytest.raises(WalkForwardError, match="at least one day"):
        walk_windows(START, END, train_days=0, test_days=6)


def backtest(point: dict[str, Any], start: int, end: int, history: dict[str, Candles],
             folder: Path) -> float | None:  # fmt: skip
    """The point's total return over the span, by the engine directly (not the optimiser)."""
    settings = pt_config.parse(best_settings_data(BASE, point))
    spec = BacktestSpec.from_settings(settings, start=start, end=end, coins=("BTC",))
    result = run_backtest(spec, history)
    journal = write_journal(result, folder / f"{start}-{end}.sqlite3")
    try:
        return summarize(result, journal, buy_and_hold(spec, history)).metrics.account.total_return
    finally:
        journal.close()


def test_each_window_chooses_on_train_and_is_scored_on_the_test_after_it(
    clean_run: tuple[Path, WalkForward], history: dict[str, Candles], tmp_path: Path
) -> None:
    folder, clean = clean_run
    assert [w.window for w in clean.windows] == windows()
    for w in clean.windows:
        tried = load_results(folder / f"window-{w.window.number:02d}-train.jsonl")
        assert w.trials == len(tried) == 2
        best = max(t.figures[OBJECTIVE] for t in tried)
        assert w.point is not None and w.in_sample[OBJECTIVE] == best
        assert w.in_sample[OBJECTIVE] == backtest(w.point, *w.window.train, history, tmp_path)
        assert w.out_of_sample[OBJECTIVE] == backtest(w.point, *w.window.test, history, tmp_path)
    returns = [w.out_of_sample["total_return"] for w in clean.windows]
    assert clean.compounded() == pytest.approx(math.prod(1 + r for r in returns) - 1, abs=1e-15)
    holds = [w.out_of_sample["buy_and_hold_return"] for w in clean.windows]
    assert clean.compounded("buy_and_hold_return") == pytest.approx(
        math.prod(1 + r for r in holds) - 1, abs=1e-15
    )
    assert clean.median(OBJECTIVE, sample="out") == sorted(returns)[1]


def test_a_stopped_walk_forward_resumes_to_the_same_result(
    clean: WalkForward, history: dict[str, Candles], tmp_path: Path
) -> None:
    calls: list[tuple[int, int]] = []
    partial = run(history, tmp_path, progress=lambda d, t: calls.append((d, t)),
                  should_stop=lambda: len(calls) >= 5)  # fmt: skip
    assert 0 < len(partial.windows) < len(clean.windows)
    assert partial.windows == clean.windows[: len(partial.windows)]
    assert calls[0] == (0, 9) and all(t == 9 for _, t in calls)
    kept = {p: p.read_bytes() for p in tmp_path.glob("*.jsonl")}
    calls.clear()
    resumed = run(history, tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert resumed == clean
    assert calls[-1] == (9, 9)
    for path, before in kept.items():
        assert path.read_bytes().startswith(before)  # appended to, never rewritten


def test_a_window_without_a_defined_objective_chooses_nothing_and_is_said() -> None:
    w1, w2 = windows()[:2]
    result = WalkForward(
        "sharpe",
        (
            WindowResult(w1, 2, None, {}, {}),
            WindowResult(w2, 2, {"trailing_gap_pct": 0.3}, {"sharpe": 1.0},
                         {"sharpe": -0.5, "total_return": -0.02, "buy_and_hold_return": 0.1}),
        ),
    )  # fmt: skip
    assert result.compounded() == pytest.approx(-0.02)
    assert result.median("sharpe", sample="in") == 1.0
    lines = walkforward_lines(result)
    assert "nothing chosen (no trial had the objective defined)" in lines[2]
    assert "1.00 / -0.50" in lines[3] and "trailing_gap_pct = 0.3" in lines[3]
    assert lines[-1] == "1 window(s) chose nothing: no trial had a defined sharpe"
    assert WalkForward("sharpe", (WindowResult(w1, 2, None, {}, {}),)).compounded() is None


def test_the_report_and_json_hold_every_window(clean: WalkForward, tmp_path: Path) -> None:
    write_walkforward(clean, tmp_path)
    data = json.loads((tmp_path / "walkforward.json").read_text())
    assert [w["test"] for w in data["windows"]] == [
        ["2022-05-15", "2022-05-22"], ["2022-05-22", "2022-05-29"], ["2022-05-29", "2022-06-05"]
    ]  # fmt: skip
    assert data["out_of_sample_return"] == clean.compounded()
    page = (tmp_path / "walkforward.html").read_text()
    assert page.count("data:image/png;base64,") == 2
    for w in clean.windows:
        assert f"<td>{w.window.number}</td>" in page


def test_the_walk_forward_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"trailing_gap_pct": [0.3, 0.5]}))
    args = ["walk-forward", "--data-dir", str(tmp_path / "data"), "--coins", "BTC", "--start",
            "2022-06-01", "--end", "2022-06-09", "--grid", str(grid), "--workers", "1",
            "--out", str(tmp_path)]  # fmt: skip
    assert main([*args, "--train-days", "5", "--test-days", "3"]) == 0
    printed = capsys.readouterr().out
    assert "walk-forward, 1 window(s), chosen by sharpe" in printed
    assert "2022-06-01 .. 2022-06-06" in printed and "2022-06-06 .. 2022-06-09" in printed
    out = tmp_path / "walkforward"
    assert (out / "walkforward.html").exists() and (out / "window-01-train.jsonl").exists()
    assert main([*args, "--train-days", "7", "--test-days", "3"]) == 2
    assert "the span is 8 days: too short" in capsys.readouterr().err
