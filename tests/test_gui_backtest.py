"""The BACKTEST tab: the default span, the results-file reader (pure), and in a real Tk window a
real short backtest of the bundled BTC history, refused input, Stop, and the optimisation results
ranked and applied."""

from __future__ import annotations

import json
import tkinter as tk
from collections.abc import Iterator
from pathlib import Path
from tkinter import ttk

import numpy as np
import pytest

from pt_config_schema import Settings
from pt_errors import PowerTraderError
from pt_gui_backtest import BacktestTab, default_span, figure_text, read_trials
from pt_gui_theme import NEGATIVE
from pt_state import DataLayout
from pt_types import DAY, HOUR, Candles
from tests.gui_support import pump, screenshot, themed_root, wait_until

TRIALS = [
    {"key": "a", "seconds": 1.0, "point": {"trailing_gap_pct": 0.5},
     "figures": {"sharpe": 1.5, "max_drawdown": 0.20, "total_return": 0.10, "win_rate": None}},
    {"key": "b", "seconds": 1.0, "point": {"trailing_gap_pct": 1.0, "dca_levels": [-5, -10]},
     "figures": {"sharpe": None, "max_drawdown": 0.05, "total_return": 0.30, "win_rate": 0.6}},
    {"key": "c", "seconds": 1.0, "point": {"trailing_gap_pct": 2.0},
     "figures": {"sharpe": 0.5, "max_drawdown": 0.10, "total_return": -0.05, "win_rate": 0.4}},
]  # fmt: skip
BEST_FIRST = {  # the keys in rank order per objective: max_drawdown ascending, nulls last
    "sharpe": ["a", "c", "b"],
    "max_drawdown": ["b", "c", "a"],
    "total_return": ["b", "a", "c"],
    "win_rate": ["b", "c", "a"],
}


def write_results(path: Path) -> None:
    lines = [json.dumps(TRIALS[0]), json.dumps(TRIALS[1]), '{"key": "broken", "point": {',
             "", json.dumps(TRIALS[2])]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def candles(first: int, last: int) -> Candles:
    t = np.arange(first, last + 1, HOUR, dtype=np.int64)
    one = np.ones(len(t), dtype=np.float64)
    return Candles(t, one, one, one, one, one)


def test_the_default_span_is_the_last_90_days_all_coins_have() -> None:
    day0 = 1_700_000_000 // DAY * DAY
    btc = candles(day0 - 400 * DAY, day0 + 18 * HOUR)  # ends 18:00: that day is not whole
    bnb = candles(day0 - 400 * DAY, day0 - 30 * DAY + 23 * HOUR)  # that day is whole
    assert default_span({"BTC": btc}) == ("2023-08-16", "2023-11-14")
    assert default_span({"BTC": btc, "BNB": bnb}) == ("2023-07-18", "2023-10-16")
    young = candles(day0 - 10 * DAY + 5 * HOUR, day0 + 23 * HOUR)  # starts mid-day
    assert default_span({"NEW": young}) == ("2023-11-05", "2023-11-15")


def test_the_results_reader_skips_damaged_lines(tmp_path: Path) -> None:
    path = tmp_path / "opt.jsonl"
    write_results(path)
    with path.open("a", encoding="utf-8") as f:
        f.write('[1, 2]\n{"point": 3, "figures": {}, "seconds": 1, "key": "x"}\n')
    trials, skipped = read_trials(path)
    assert [t.key for t in trials] == ["a", "b", "c"] and skipped == 3
    assert trials[1].point == {"trailing_gap_pct": 1.0, "dca_levels": [-5, -10]}
    assert figure_text("sharpe", 1.234) == "1.23" and figure_text("cagr", 0.1) == "+10.00%"
    assert figure_text("max_drawdown", 0.25) == "-25.00%" and figure_text("calmar", None) == "n/a"


@pytest.fixture
def root(display: str) -> Iterator[tk.Tk]:
    with themed_root("1400x820+0+0") as win:
        yield win


class Applied:
    def __init__(self) -> None:
        self.points: list[dict[str, object]] = []

    def __call__(self, point: dict[str, object]) -> str:
        self.points.append(point)
        return "Settings saved: the trader uses them from its next tick."


def make_tab(root: tk.Tk, tmp_path: Path, on_apply: Applied | None = None) -> BacktestTab:
    layout = DataLayout(tmp_path / "data").ensure()
    settings = Settings(coins=("BTC", "ETH"))
    results, apply = layout.root / "backtests", on_apply or Applied()
    tab = BacktestTab(root, layout=layout, settings=lambda: settings, results_dir=results,
                      on_apply=apply)  # fmt: skip
    tab.pack(fill="both", expand=True)
    wait_until(root, lambda: tab.idle and bool(tab.end_entry.get()), what="the default span")
    return tab


def is_red(label: ttk.Label) -> bool:
    return str(ttk.Style(label).lookup(str(label.cget("style")), "foreground")) == NEGATIVE


def set_run(tab: BacktestTab, coins: str, start: str, end: str) -> None:
    for entry, text in ((tab.coins_entry, coins), (tab.start_entry, start), (tab.end_entry, end)):
        entry.delete(0, "end")
        entry.insert(0, text)


def runs(results: Path) -> list[Path]:
    return sorted(results.glob("run-*")) if results.exists() else []


def test_a_backtest_runs_and_shows_the_bot_beside_buy_and_hold(root: tk.Tk, tmp_path: Path) -> None:
    results = tmp_path / "data" / "backtests"
    write_results(results / "optimize-20260101.jsonl")
    tab = make_tab(root, tmp_path)
    assert tab.coins_entry.get() == "BTC, ETH" and tab.step.get() == "600"
    assert (tab.start_entry.get(), tab.end_entry.get()) == ("2026-02-15", "2026-05-16")
    set_run(tab, "btc", "2022-06-01", "2022-06-08")
    tab.run_button.invoke()
    assert tab.running and str(tab.stop_button.cget("state")) == "normal"
    assert str(tab.run_button.cget("state")) == "disabled"
    wait_until(root, lambda: not tab.running, timeout=60, what="the backtest")
    text = tab.summary.get("1.0", "end")
    assert "buy & hold" in text and "closed trades" in text, tab.message.cget("text")
    assert not is_red(tab.message) and "BTC 2022-06-01 .. 2022-06-08" in tab.message.cget("text")
    done, total = float(tab.progress.cget("value")), float(tab.progress.cget("maximum"))
    assert done == total >= 7 * 24  # every hour of the span (and any warm-up steps) done
    assert tab.last_out is not None and runs(results) == [tab.last_out]
    for name in ("journal.sqlite3", "summary.json", "fills.csv", "equity.csv"):
        assert (tab.last_out / name).is_file(), name
    summary = json.loads((tab.last_out / "summary.json").read_text(encoding="utf-8"))
    assert summary["coins"] == ["BTC"] and summary["step_seconds"] == 600
    chart = tab.chart
    assert chart.find_withtag("bot") and chart.find_withtag("hold") and chart.find_withtag("date")
    assert str(tab.stop_button.cget("state")) == "disabled"
    wait_until(root, lambda: len(tab.top) == 3, what="the optimisation results")
    pump(root, 0.2)
    screenshot(root, "backtest-tab")
    for name, size in (("small", "1000x700"), ("in-hub", "860x760")):  # the hub's tab is ~860 wide
        root.geometry(size)
        pump(root, 0.4)
        screenshot(root, f"backtest-tab-{name}")
    tab.destroy()


def test_bad_input_is_named_in_red_and_runs_nothing(root: tk.Tk, tmp_path: Path) -> None:
    tab = make_tab(root, tmp_path)
    results = tmp_path / "data" / "backtests"
    set_run(tab, "BTC", "2022-06-08", "2022-06-01")
    tab.run_button.invoke()
    assert not tab.running and is_red(tab.message)
    assert "To (2022-06-01) is not after From (2022-06-08)" in tab.message.cget("text")
    set_run(tab, "BTC", "2022-13-01", "2022-06-01")
    tab.run_button.invoke()
    assert not tab.running and "From: '2022-13-01' is not a date" in tab.message.cget("text")
    set_run(tab, " , ", "2022-06-01", "2022-06-08")
    tab.run_button.invoke()
    assert not tab.running and "name at least one coin" in tab.message.cget("text")
    for coins, start, end, says in (
        ("BTC, NOSUCHCOIN", "2022-06-01", "2022-06-08", "Unknown coin NOSUCHCOIN"),
        ("BTC", "2030-01-01", "2030-02-01", "is outside BTC's data, which runs 2017-08-17 .."),
        ("BTC", "2010-01-01", "2010-02-01", "pick dates within it"),
    ):
        set_run(tab, coins, start, end)
        tab.run_button.invoke()
        wait_until(root, lambda: not tab.running, timeout=20, what=f"the check of {coins}")
        assert says in tab.message.cget("text") and is_red(tab.message)
        assert float(tab.progress.cget("value")) == 0 and not runs(results)
        assert str(tab.run_button.cget("state")) == "normal"
    screenshot(root, "backtest-tab-refused")
    tab.destroy()


def test_stop_ends_a_run_and_writes_nothing(root: tk.Tk, tmp_path: Path) -> None:
    tab = make_tab(root, tmp_path)
    set_run(tab, "BTC", "2022-06-01", "2022-06-08")
    tab.run_button.invoke()
    tab.stop_button.invoke()
    assert "Stopping" in tab.message.cget("text")
    wait_until(root, lambda: not tab.running, timeout=30, what="the stop")
    assert "stopped" in tab.message.cget("text") and not is_red(tab.message)
    assert tab.last_out is None and not runs(tmp_path / "data" / "backtests")
    assert tab.summary.get("1.0", "end").strip() == ""
    assert str(tab.run_button.cget("state")) == "normal"
    tab.destroy()


def rank_keys(tab: BacktestTab) -> list[str]:
    return [t.key for t in tab.top]


def test_optimisation_results_are_ranked_and_the_best_applied(root: tk.Tk, tmp_path: Path) -> None:
    applied = Applied()
    tab = make_tab(root, tmp_path, applied)
    assert "No optimisation results" in tab.trials_note.cget("text")
    assert str(tab.apply_button.cget("state")) == "disabled"
    write_results(tmp_path / "data" / "backtests" / "optimize-a.jsonl")
    tab.refresh_button.invoke()
    wait_until(root, lambda: tab.idle and len(tab.top) == 3, what="the results file")
    assert tab.files.get() == "optimize-a.jsonl"
    note = "3 trials; 1 damaged lines skipped. Best by sharpe: trailing_gap_pct = 0.5"
    assert tab.trials_note.cget("text") == note
    for objective, keys in BEST_FIRST.items():
        tab.objective.set(objective)
        tab.objective.event_generate("<<ComboboxSelected>>")
        wait_until(root, lambda: tab.idle, what=f"the ranking by {objective}")
        assert rank_keys(tab) == keys, objective
        rows = [tab.trials.item(i, "values") for i in tab.trials.get_children()]
        assert [r[0] for r in rows] == ["1", "2", "3"]
        assert tab.trials.heading(objective, "text").endswith("▼")
    assert rows[0][-1] == "trailing_gap_pct = 1.0, dca_levels = [-5, -10]"
    assert rows[-1][1:8] == ("1.50", "n/a", "n/a", "+10.00%", "n/a", "-20.00%", "n/a")
    tab.apply_button.invoke()  # ranked by win rate: b is best
    assert applied.points == [{"trailing_gap_pct": 1.0, "dca_levels": [-5, -10]}]
    assert tab.trials_note.cget("text").startswith("Settings saved") and not is_red(tab.trials_note)
    tab.objective.set("sharpe")
    tab.objective.event_generate("<<ComboboxSelected>>")
    wait_until(root, lambda: tab.idle and rank_keys(tab)[0] == "a", what="the Sharpe ranking")
    tab.apply_button.invoke()
    assert applied.points[-1] == {"trailing_gap_pct": 0.5}

    def refuse(point: dict[str, object]) -> str:
        raise PowerTraderError("risk.max_coin_pct = 120 is above 100; fix the grid")

    tab.on_apply = refuse
    tab.apply_button.invoke()
    assert is_red(tab.trials_note) and "fix the grid" in tab.trials_note.cget("text")
    write_results(tmp_path / "data" / "backtests" / "optimize-b.jsonl")
    tab.refresh_button.invoke()
    wait_until(root, lambda: tab.idle and len(tab.files.cget("values")) == 2, what="two files")
    assert tab.files.get() == "optimize-a.jsonl"  # the one chosen stays chosen
    assert not is_red(tab.trials_note)
    tab.destroy()


def test_trials_are_compared_with_the_current_settings(root: tk.Tk, tmp_path: Path) -> None:
    tab = make_tab(root, tmp_path)
    results = tmp_path / "data" / "backtests"
    write_results(results / "optimize-a.jsonl")
    tab.refresh_button.invoke()
    wait_until(root, lambda: tab.idle and len(tab.top) == 3, what="the optimisation results")
    assert str(tab.compare_button.cget("state")) == "normal"
    items = tab.trials.get_children()
    tab.trials.selection_set((items[0], items[2]))  # ranked by Sharpe: a (#1) and b (#3)
    set_run(tab, "BTC", "2022-06-01", "2022-06-04")
    tab.compare_button.invoke()
    assert tab.running and "Comparing 3 settings on BTC" in tab.message.cget("text")
    wait_until(root, lambda: not tab.running, timeout=90, what="the comparison")
    lines = tab.summary.get("1.0", "end").splitlines()
    names = [line[:22].strip() for line in lines[1:5]]
    assert names == ["current settings", "optimize-a #1", "optimize-a #3", "buy & hold"], lines
    assert "optimize-a #3: trailing_gap_pct = 1.0, dca_levels = [-5, -10]" in lines
    assert all(tab.chart.find_withtag(tag) for tag in ("run1", "run2", "run3", "hold"))
    [out] = sorted(results.glob("compare-*"))
    assert tab.last_out == out and (out / "report.html").is_file()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "01-current-settings", "02-optimize-a-1", "03-optimize-a-3"
    ]  # fmt: skip
    pump(root, 0.2)
    screenshot(root, "backtest-tab-compare")
    tab.trials.selection_set(())  # nothing selected: the best three
    tab.compare_button.invoke()
    assert "Comparing 4 settings" in tab.message.cget("text")
    tab.stop_button.invoke()
    wait_until(root, lambda: not tab.running, timeout=60, what="the stop")
    assert "stopped; nothing was kept" in tab.message.cget("text")
    assert sorted(results.glob("compare-*")) == [out]
    tab.destroy()
