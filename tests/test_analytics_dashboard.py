"""The ANALYTICS tab in a real Tk window (Xvfb): figures from a real journal, bad input, CSV
export, a Tk thread that never waits on the journal, and screenshots for review."""

from __future__ import annotations

import csv
import gc
import hashlib
import itertools
import os
import sqlite3
import subprocess
import sys
import threading
import time
import tkinter as tk
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from pt_analytics import FILL_CSV, TRADE_CSV, DashboardMetrics, PerformanceTracker
from pt_analytics_dashboard import NO_JOURNAL_TEXT, WINDOW_TITLE, AnalyticsWidget, mode_clock
from pt_journal import TradeJournal
from pt_replay import start_clock
from pt_state import DataLayout
from pt_types import DAY, HOUR, Mode, OrderTag
from tests.gui_support import pump, screenshot

PROJECT = Path(__file__).resolve().parents[1]
T0 = 1_704_067_200.0  # 2024-01-01 00:00 UTC
NOW = T0 + 5 * DAY + 9 * HOUR  # 2024-01-06 09:00 UTC


def utc_tracker(journal: TradeJournal) -> PerformanceTracker:
    return PerformanceTracker(journal, tz=UTC)


def write_journal(path: Path) -> None:
    """BTC won, ETH won after a DCA, SOL lost today, XRP is still open; equity every day.

    BTC  cost 0.01 × 40,000 + 0.40 = 400.40, sold 420.00 − 0.42 fee  → +19.18 (+4.79%)
    ETH  cost 1,001.00 + 900.90 = 1,901.90, sold 1,960.00 − 1.96    → +56.14 (+2.95%)
    SOL  cost 1,001.00, sold 950.00 − 0.95                           → −51.95 (−5.19%)
    total +23.37; win rate 2/3; profit factor 75.32 / 51.95 = 1.45; XRP open cost 50.05.
    Daily equity 10,000 / 10,100 / 10,050 / 10,200 / 10,150 / 9,996: max drawdown
    1 − 9,996 / 10,200 = 2.00 %, today's equity change 9,996 − 10,150 = −154.00.
    """
    equity = [10_000.0, 10_100.0, 10_050.0, 10_200.0, 10_150.0]
    with TradeJournal(path, mode=Mode.PAPER, clock=lambda: T0) as j:
        j.log_entry("BTC", 0.01, 40_000, 0.40, T0 + HOUR, reason="LONG 4")
        j.record_equity(T0 + 20 * HOUR, equity[0], equity[0], 0.0)
        j.log_exit("BTC", 42_000, 0.42, T0 + DAY + 3 * HOUR, reason="trail")
        j.log_entry("ETH", 1.0, 1_000, 1.0, T0 + DAY + 5 * HOUR)
        j.record_equity(T0 + DAY + 20 * HOUR, equity[1], equity[1], 0.0)
        j.log_dca("ETH", 1.0, 900, 0.90, T0 + 2 * DAY + 4 * HOUR, reason="tier -10%")
        j.record_equity(T0 + 2 * DAY + 20 * HOUR, equity[2], equity[2], 0.0)
        j.log_exit("ETH", 980, 1.96, T0 + 3 * DAY + 6 * HOUR, reason="trail")
        j.record_equity(T0 + 3 * DAY + 20 * HOUR, equity[3], equity[3], 0.0)
        j.log_entry("SOL", 10.0, 100, 1.0, T0 + 4 * DAY + HOUR)
        j.record_equity(T0 + 4 * DAY + 20 * HOUR, equity[4], equity[4], 0.0)
        j.log_entry("XRP", 100.0, 0.5, 0.05, T0 + 5 * DAY + 2 * HOUR)
        j.log_exit(
            "SOL", 95, 0.95, T0 + 5 * DAY + 6 * HOUR, reason="user sold", tag=OrderTag.MANUAL
        )
        j.record_equity(T0 + 5 * DAY + 8 * HOUR, 9_996.0, 9_946.0, 50.0)


@pytest.fixture
def root(display: str) -> Iterator[tk.Tk]:
    win = tk.Tk()
    win.title(WINDOW_TITLE)
    win.geometry("1400x820+0+0")
    yield win
    win.destroy()
    del win
    gc.collect()  # finalise this Tk here: a worker thread's collection must not meet it later


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "journal.sqlite3"
    write_journal(path)
    return path


@pytest.fixture(scope="module")
def big_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 trades over a year: enough to keep a worker busy for a while."""
    path = tmp_path_factory.mktemp("big") / "journal.sqlite3"
    with TradeJournal(path, mode=Mode.DEMO, clock=lambda: T0) as j, j.transaction():
        for i in range(3000):
            at = T0 + i * 3 * HOUR
            coin = ("BTC", "ETH", "SOL", "XRP", "DOGE")[i % 5]
            j.log_entry(coin, 1.0, 100.0, 0.1, at)
            j.log_exit(coin, 100.0 + (i % 7) - 3, 0.1, at + HOUR)
            j.record_equity(at + HOUR, 10_000 + (i % 50) * 3 + i * 0.5, 10_000, 0.0)
    return path


def make(parent: tk.Misc, journal_path: Path, **kwargs: Any) -> AnalyticsWidget:
    options: dict[str, Any] = {
        "tracker_factory": utc_tracker, "clock": lambda: NOW, "refresh_ms": 0, "tz": UTC,
    }  # fmt: skip
    options.update(kwargs)
    widget = AnalyticsWidget(parent, journal_path=journal_path, **options)
    widget.pack(fill="both", expand=True)
    return widget


def wait_for(root: tk.Misc, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the tab did not update in time"
        root.update()
        time.sleep(0.01)


def refreshed(root: tk.Misc, widget: AnalyticsWidget) -> None:
    """Ask for a refresh and wait until its result is on screen."""
    before = widget.generation
    widget.refresh_now()
    wait_for(root, lambda: widget.generation > before and not widget.busy)


def card_texts(widget: AnalyticsWidget) -> dict[str, str]:
    return {key: card.value_text for key, card in widget.cards.items()}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------


def test_the_tab_shows_the_journal_figures(root: tk.Tk, journal: Path) -> None:
    widget = make(root, journal)
    refreshed(root, widget)
    assert card_texts(widget) == {
        "trades": "3", "win_rate": "66.67%", "today": "-$51.95", "drawdown": "2.00%",
        "realized": "$23.37", "exposure": "$50.05",
    }  # fmt: skip
    assert widget.cards["realized"].tone == "positive"
    assert widget.cards["today"].tone == "negative"
    assert widget.cards["trades"].detail_label.cget("text") == "2 won · 1 lost"
    assert widget.cards["win_rate"].detail_label.cget("text") == "profit factor 1.45"
    assert widget.cards["drawdown"].detail_label.cget("text") == "not recovered yet"
    assert widget.cards["today"].detail_label.cget("text") == "equity -$154.00"
    assert widget.cards["exposure"].detail_label.cget("text") == "peak $1,901.90"
    assert widget.mode_badge.cget("text") == "PAPER"
    assert widget.notice.cget("text") == ""
    periods = {row[0]: row for row in widget.period_table.rows()}
    assert list(periods) == ["Today", "7 days", "30 days", "All time"]
    assert periods["Today"][1:8] == (
        "1", "0.00%", "-$51.95", "0.00", "-$51.95", "-$154.00", "1.52%",
    )  # fmt: skip
    assert periods["All time"][1:9] == (
        "3", "66.67%", "$23.37", "1.45", "$7.79", "-$4.00", "2.00%", "-0.03",
    )  # fmt: skip
    assert periods["7 days"][1:4] == ("3", "66.67%", "$23.37")
    recent = widget.trades_table.rows()
    assert [r[1] for r in recent] == ["SOL", "XRP", "ETH", "BTC"]
    assert recent[0] == (
        "2024-01-06 06:00", "SOL", "Loss", "MANUAL: user sold", "10", "$1,001.00", "$950.00",
        "-$51.95", "-5.19%", "0", "1d 5h",
    )  # fmt: skip
    assert recent[1] == ("open", "XRP", "Open", "—", "100", "$50.05", "—", "—", "—", "0", "7h 0m")
    assert recent[2] == (
        "2024-01-04 06:00", "ETH", "Win", "TRAIL_SELL: trail", "2", "$1,901.90", "$1,960.00",
        "$56.14", "+2.95%", "1", "2d 1h",
    )  # fmt: skip
    equity_line = widget.equity_chart.find_withtag("equity")
    assert len(equity_line) == 1
    assert len(widget.equity_chart.coords(equity_line[0])) == 2 * 6  # one point per day
    assert widget.equity_chart.find_withtag("shade") and widget.equity_chart.find_withtag(
        "drawdown"
    )
    dates = [
        widget.equity_chart.itemcget(i, "text") for i in widget.equity_chart.find_withtag("date")
    ]
    assert dates[0] == "2024-01-01" and dates[-1] == "2024-01-06"
    assert len(widget.coin_chart.find_withtag("bar")) == 3  # XRP has no closed trade yet
    chart = widget.equity_chart
    x0, y0, *_ = chart.coords(equity_line[0])
    chart.event_generate("<Motion>", x=int(x0) + 1, y=int(y0))
    readout = [chart.itemcget(i, "text") for i in chart.find_withtag("readout")]
    assert readout == ["2024-01-01   $10,000.00   drawdown 0.00%"]
    chart.event_generate("<Leave>")
    assert not chart.find_withtag("hover")
    status = widget.status.cget("text")
    assert status.startswith("Updated 09:00:00 · 3 closed, 1 open · equity $9,996.00")
    screenshot(root, "analytics_tab")

    root.geometry("980x640")  # the hub's minimum size: nothing may collapse
    pump(root, 0.3)
    screenshot(root, "analytics_tab_small")
    assert all(card.winfo_width() >= 130 for card in widget.cards.values())
    assert all(
        card.value_label.winfo_reqwidth() <= card.winfo_width() for card in widget.cards.values()
    )
    assert widget.equity_chart.winfo_height() >= 120 and widget.coin_chart.winfo_width() >= 200
    assert widget.trades_table.winfo_height() >= 80
    assert widget.status.winfo_rooty() + widget.status.winfo_height() <= root.winfo_rooty() + 640


def test_no_journal_yet_shows_a_friendly_message(root: tk.Tk, tmp_path: Path) -> None:
    missing = tmp_path / "journal.sqlite3"
    widget = make(root, missing)
    refreshed(root, widget)
    assert widget.notice.cget("text") == NO_JOURNAL_TEXT
    assert set(card_texts(widget).values()) == {"—"}
    assert widget.trades_table.rows() == []
    placeholder = widget.equity_chart.find_withtag("placeholder")
    assert widget.equity_chart.itemcget(placeholder[0], "text") == NO_JOURNAL_TEXT
    assert "No journal yet" in widget.status.cget("text")
    assert not missing.exists() and list(tmp_path.iterdir()) == []  # nothing created
    assert widget.export_trades_button.instate(["disabled"])  # nothing to export yet
    screenshot(root, "analytics_empty")

    write_journal(missing)  # the bot starts: the next refresh shows it
    refreshed(root, widget)
    assert widget.cards["trades"].value_text == "3" and widget.notice.cget("text") == ""
    assert not widget.export_trades_button.instate(["disabled"])


def test_a_damaged_journal_keeps_the_last_good_figures(root: tk.Tk, journal: Path) -> None:
    widget = make(root, journal)
    refreshed(root, widget)
    good = card_texts(widget)
    rows = widget.trades_table.rows()
    journal.write_bytes(os.urandom(8192))
    refreshed(root, widget)
    status = widget.status.cget("text")
    assert status.startswith("Showing the figures from 09:00:00 — journal ")
    assert "damaged or is not a PowerTrader AI journal" in status
    assert str(widget.status.cget("style")) == "Problem.TLabel"
    assert card_texts(widget) == good and widget.trades_table.rows() == rows
    assert widget.equity_chart.find_withtag("equity")
    screenshot(root, "analytics_error")


def test_a_journal_from_a_newer_version_is_explained(root: tk.Tk, journal: Path) -> None:
    with sqlite3.connect(journal) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    widget = make(root, journal)
    refreshed(root, widget)
    status = widget.status.cget("text")
    assert status.startswith("No figures yet — journal ") and "99" in status
    assert widget.cards["trades"].value_text == "—"


def test_the_tab_never_writes_the_journal(root: tk.Tk, journal: Path) -> None:
    before = digest(journal), journal.stat().st_mtime_ns
    widget = make(root, journal)
    for _ in range(3):
        refreshed(root, widget)
    widget.destroy()
    assert (digest(journal), journal.stat().st_mtime_ns) == before
    # SQLite's read-only WAL readers may create the (empty) -wal and -shm side files; no record
    # is ever written to the journal, so the write-ahead log stays empty.
    wal = journal.with_name(journal.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    others = {p.name for p in journal.parent.iterdir()} - {journal.name, wal.name}
    assert others <= {journal.name + "-shm"}


def test_export_trades_and_fills_to_csv(root: tk.Tk, journal: Path, tmp_path: Path) -> None:
    asked: list[dict[str, Any]] = []
    answers = iter([str(tmp_path / "t.csv"), str(tmp_path / "f.csv"), "", "/no/such/dir/x.csv"])

    def dialog(**options: Any) -> str:
        asked.append(options)
        return next(answers)

    before = digest(journal)
    widget = make(root, journal, ask_save_path=dialog)
    refreshed(root, widget)

    def exported() -> bool:
        return not widget.export_trades_button.instate(["disabled"])

    widget.export_trades_button.invoke()
    wait_for(root, exported)
    assert widget.status.cget("text") == f"Exported 4 trades to {tmp_path / 't.csv'}"
    with (tmp_path / "t.csv").open(newline="", encoding="utf-8") as f:
        trades = list(csv.reader(f))
    assert tuple(trades[0]) == TRADE_CSV
    assert sorted(r[1] for r in trades[1:]) == ["BTC", "ETH", "SOL", "XRP"]
    assert asked[0]["initialfile"] == "powertrader-trades-2024-01-06.csv"
    assert asked[0]["parent"] is widget

    widget.export_fills_button.invoke()
    wait_for(root, exported)
    with (tmp_path / "f.csv").open(newline="", encoding="utf-8") as f:
        fills = list(csv.reader(f))
    assert tuple(fills[0]) == FILL_CSV and len(fills) == 1 + 8  # 2 BTC, 3 ETH, 2 SOL, 1 XRP

    status = widget.status.cget("text")
    widget.export_trades_button.invoke()  # cancelled: nothing happens
    pump(root, 0.1)
    assert widget.status.cget("text") == status and len(asked) == 3

    widget.export_trades_button.invoke()  # a folder that does not exist
    wait_for(root, lambda: "failed" in widget.status.cget("text"))
    assert widget.status.cget("text").startswith("Export of trades failed:")
    assert exported()
    written = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("journal"))
    assert written == ["f.csv", "t.csv"]  # no partial file left behind
    assert digest(journal) == before


def test_one_refresh_at_a_time(root: tk.Tk, journal: Path) -> None:
    gate = threading.Event()
    calls: list[float] = []

    class SlowTracker:
        def __init__(self, j: TradeJournal) -> None:
            self.inner = utc_tracker(j)

        def get_dashboard_metrics(self, now: float) -> DashboardMetrics:
            calls.append(now)
            gate.wait(5)
            return self.inner.get_dashboard_metrics(now)

    widget = make(root, journal, tracker_factory=SlowTracker)
    wait_for(root, lambda: len(calls) == 1)  # the first refresh, started by the constructor
    for _ in range(3):
        widget.refresh_now()
    pump(root, 0.2)
    assert len(calls) == 1 and widget.busy
    gate.set()
    wait_for(root, lambda: widget.generation == 2 and not widget.busy)
    assert len(calls) == 2  # the three requests made while busy became one more refresh
    background = widget._bg
    widget.destroy()
    assert not background.alive


def test_the_tk_thread_never_waits_for_the_journal(root: tk.Tk, big_journal: Path) -> None:
    def slow_tracker(j: TradeJournal) -> PerformanceTracker:
        """The real figures, after a wait as long as a busy journal's: had the read been on the
        Tk thread, the probe below would see a gap of at least this."""
        time.sleep(0.3)
        return utc_tracker(j)

    widget = make(root, big_journal, clock=lambda: T0 + 380 * DAY, tracker_factory=slow_tracker)
    refreshed(root, widget)  # warm up: the first read pays for imports and caches
    ticks: list[float] = []

    def probe() -> None:
        ticks.append(time.perf_counter())
        root.after(10, probe)

    probe()
    pump(root, 0.1)
    started = widget.generation
    for _ in range(3):
        widget.refresh_now()
        wait_for(root, lambda: not widget.busy)
    pump(root, 0.1)
    assert widget.generation >= started + 3
    assert widget.cards["trades"].value_text == "3000"
    gap = max(b - a for a, b in itertools.pairwise(ticks))
    print(
        f"longest gap between 10 ms Tk ticks during refreshes of 3,000 trades: {gap * 1000:.1f} ms"
    )
    assert gap < 0.2


def test_the_standalone_window_explains_a_missing_display(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    for extra in ({}, {"DISPLAY": ":189"}):  # no display at all; a display nobody serves
        done = subprocess.run(
            [sys.executable, str(PROJECT / "pt_analytics_dashboard.py"), "--data-dir",
             str(tmp_path)],
            check=False, capture_output=True, text=True, timeout=60, env={**env, **extra},
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "needs a desktop window" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_standalone_window_follows_the_demo_clock(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    assert mode_clock(layout)() == T0  # demo (the default) before the clock runs: its start day
    start_clock(layout, T0 + 3 * DAY, speed=0.0)
    assert mode_clock(layout)() == T0 + 3 * DAY  # trades carry simulated times: so does "today"
    layout.settings_file.write_text('{"mode": "paper"}', encoding="utf-8")
    assert mode_clock(layout) is time.time
    layout.settings_file.write_text("{not json", encoding="utf-8")
    assert mode_clock(layout) is time.time
    assert layout.settings_file.read_text(encoding="utf-8") == "{not json"  # left as it was


def test_reads_while_the_trader_writes_and_a_locked_journal(root: tk.Tk, journal: Path) -> None:
    widget = make(root, journal)
    refreshed(root, widget)
    stop = threading.Event()

    def trader() -> None:  # the writer, on its own connection, as the trader process would be
        with TradeJournal(journal, mode=Mode.PAPER) as j:
            i = 0
            while not stop.is_set():
                at = NOW - HOUR + i
                j.log_entry("DOGE", 10.0, 0.1, 0.0, at)
                j.log_exit("DOGE", 0.11, 0.0, at + 0.5)
                i += 1

    writer = threading.Thread(target=trader)
    writer.start()
    try:
        seen = []
        for _ in range(5):
            refreshed(root, widget)
            assert widget.status.cget("style") == "Status.TLabel", widget.status.cget("text")
            seen.append(int(widget.cards["trades"].value_text))
    finally:
        stop.set()
        writer.join()
    assert seen == sorted(seen) and seen[-1] > 3  # consistent snapshots, growing

    lock = sqlite3.connect(journal, isolation_level=None)  # another program holds the file
    lock.execute("PRAGMA locking_mode=EXCLUSIVE")
    lock.execute("BEGIN EXCLUSIVE")
    try:
        good = card_texts(widget)
        refreshed(root, widget)
        assert "is locked" in widget.status.cget("text")
        assert card_texts(widget) == good
    finally:
        lock.execute("ROLLBACK")
        lock.close()


def test_the_standalone_window_opens_on_a_display(display: str, journal: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(PROJECT / "pt_analytics_dashboard.py"), "--data-dir",
         str(journal.parent)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )  # fmt: skip
    try:
        time.sleep(1.5)
        assert proc.poll() is None, proc.communicate()[1]  # still showing the window
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "Traceback" not in err
