"""The hub's trade panels in a real Tk window (Xvfb), fed by a real ``trader_status.json``
(written by the trader's own ``status_data`` through a StateWriter) and a real journal."""

from __future__ import annotations

import dataclasses
import time
import tkinter as tk
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest

from pt_config import parse
from pt_format import price_decimals
from pt_gui_theme import NEGATIVE, TONE_COLOURS, WARNING
from pt_gui_trades import TradesPanel
from pt_gui_trades_data import (
    TradesLoader,
    fmt_price,
    fmt_qty,
    fmt_signed_pct,
)
from pt_journal import TradeJournal
from pt_state import DataLayout, StateWriter
from pt_strategy import Account, Decision, MarketView, PositionState, StrategyConfig, TrailingState
from pt_trader import STATUS_SCHEMA, status_data
from pt_trader_core import CoinView, TickResult
from pt_types import HOUR, Mode
from tests.gui_support import pump, screenshot, themed_root
from tests.gui_support import wait_until as wait_for

NOW = 1_717_243_200.0  # 2024-06-01 12:00 UTC (the mode's time of the status)
SETTINGS = parse({"coins": ["BTC", "ETH", "XRP", "DOGE"], "mode": "paper"})
CONFIG = StrategyConfig.from_settings(SETTINGS)


def write_journal(layout: DataLayout) -> None:
    """ETH: bought 0.5 @ 3,000 (+1.50 fee), sold @ 3,100 (−1.55 fee) → realized +46.95.
    BTC: 0.01 @ 61,000 (+0.61), DCA 0.01 @ 59,400 (+0.59) → cost 1,205.20, avg 60,260.
    XRP: 100 @ 0.50 (+0.05), open."""
    with TradeJournal(layout.journal_db, mode=Mode.PAPER, clock=lambda: NOW) as j:
        j.log_entry("ETH", 0.5, 3000, 1.5, NOW - 30 * HOUR, reason="LONG 4 ≥ start 3, SHORT 0")
        j.log_exit("ETH", 3100, 1.55, NOW - 20 * HOUR, reason="price fell through the trail line")
        j.log_entry("BTC", 0.01, 61_000, 0.61, NOW - 5 * HOUR, reason="LONG 5 ≥ start 3, SHORT 0")
        j.log_dca("BTC", 0.01, 59_400, 0.59, NOW - 2 * HOUR, reason="hard tier -2.5% reached")
        j.log_entry("XRP", 100, 0.5, 0.05, NOW - HOUR, reason="LONG 3 ≥ start 3, SHORT 0")


def write_status(layout: DataLayout, *, cash: float = 9_000.0) -> None:
    armed = CONFIG.trailing_settings
    btc = PositionState("BTC", 0.02, 1_205.2, dca_stage=1)
    xrp = PositionState("XRP", 100.0, 50.05)
    coins = (
        CoinView("BTC", MarketView(60_500, 60_600, NOW), btc, None,
                 Decision("BTC", (), TrailingState(True, 60_300, 60_601.5, True, armed), "hold")),
        CoinView("ETH", MarketView(3_050, 3_051, NOW), None, None, Decision("ETH", (), None, "")),
        CoinView("XRP", MarketView(0.52, 0.5202, NOW), xrp, None,
                 Decision("XRP", (), TrailingState(False, 0.5255, 0.5255, False, armed), "")),
        CoinView("DOGE", None, None, None, None, problem="no price: every venue failed"),
    )  # fmt: skip
    result = TickResult(NOW, Account(cash=cash, total_value=10_500.0), coins)
    StateWriter(layout.trader_status_file, STATUS_SCHEMA).write(
        status_data(result, SETTINGS, Mode.PAPER)
    )


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    layout = DataLayout(tmp_path).ensure()
    write_journal(layout)
    write_status(layout)
    return layout


@pytest.fixture
def root(display: str) -> Iterator[tk.Tk]:
    with themed_root("930x700+0+0") as win:  # the hub's right notebook at 1400x820
        yield win


def refreshed(root: tk.Misc, panel: TradesPanel) -> None:
    before = panel.feed.generation
    panel.feed.refresh_now()
    wait_for(root, lambda: panel.feed.generation > before and not panel.feed.busy)


def make(root: tk.Tk, layout: DataLayout) -> TradesPanel:
    panel = TradesPanel(root, layout=layout, config=CONFIG, mode=Mode.PAPER, refresh_ms=0, tz=UTC)
    panel.pack(fill="both", expand=True, padx=8, pady=8)
    wait_for(root, lambda: panel.feed.view is not None)
    pump(root, 0.1)
    return panel


# ---------------------------------------------------------------------------------------------


def test_formats_follow_the_original() -> None:
    assert [price_decimals(v) for v in (43_250, 250, 2.5, 0.25, 0.025, 0.0025, 0.00025)] == [
        2, 3, 4, 5, 6, 7, 8
    ]  # fmt: skip
    assert fmt_price(43_250.5) == "$43,250.5"
    assert fmt_price(60_260.0) == "$60,260"
    assert fmt_price(0.52) == "$0.52"
    assert fmt_price(0.000123456) == "$0.00012346"
    assert fmt_price(None) == fmt_price(float("nan")) == "—"
    assert fmt_signed_pct(1.234) == "+1.23%" and fmt_signed_pct(-0.5) == "-0.50%"
    assert fmt_qty(0.5) == "0.5" and fmt_qty(1234.0) == "1,234"


def test_the_panels_show_the_status_and_the_journal(root: tk.Tk, layout: DataLayout) -> None:
    panel = make(root, layout)
    rows = {r[0]: r for r in panel.table.rows()}
    assert list(rows) == ["BTC", "XRP", "DOGE"]  # ETH is not held and has no problem
    assert rows["BTC"] == (
        "BTC", "0.02", "$1,210.00", "$60,260", "$60,600", "+0.56%", "$60,500", "+0.40%", "1",
        "1/2", "$57,247 · HARD", "$60,300 · ACTIVE · peak $60,601.5 · +0.33%",
    )  # fmt: skip
    assert rows["XRP"][1:5] == ("100", "$52.00", "$0.5005", "$0.5202")
    assert rows["XRP"][9:12] == ("0/2", "$0.48799 · HARD", "$0.5255 · waiting · -1.05%")
    assert rows["DOGE"][1:] == ("0", *["—"] * 10)
    assert panel.table.tree.item("DOGE", "tags") == ("problem",)
    assert str(panel.table.tree.tag_configure("problem", "foreground")) == WARNING
    assert "DOGE: no price: every venue failed" in str(panel.table.banner.cget("text"))
    assert panel.table.banner.winfo_ismapped()
    rules = "trail starts +5% (+2.5% after a DCA), gap 0.5% · max 2 DCA / 24 h"
    assert panel.table.rules.cget("text") == rules
    assert str(panel.table.note.cget("text")).startswith("PAPER · status ")

    account = panel.account.texts()
    assert account["Total account value"] == "$10,500.00"
    assert account["Holdings value"] == "$1,500.00"
    assert account["Buying power"] == "$9,000.00"
    assert account["Percent in trade"] == "14.29%"
    # alloc max(0.50, 10,500 × 0.005 %) = 0.525; ×3 per stage: 4 coins 2.10 → 7, one 0.525 → 9
    assert (account["DCA levels (spread)"], account["DCA levels (single)"]) == ("7", "9")
    assert account["Total realized"] == "+$46.95"
    assert (
        str(panel.account.values["Total realized"].cget("foreground")) == TONE_COLOURS["positive"]
    )

    lines = panel.history.lines()
    assert lines == [
        "2024-06-01 11:00:00 | BUY XRP | qty=100 | px=$0.5 | reason: LONG 3 ≥ start 3, SHORT 0",
        "2024-06-01 10:00:00 | BUY/DCA BTC | qty=0.01 | px=$59,400 | pnl@trade=-2.72% | "
        "reason: hard tier -2.5% reached",
        "2024-06-01 07:00:00 | BUY BTC | qty=0.01 | px=$61,000 | reason: LONG 5 ≥ start 3, SHORT 0",
        "2024-05-31 16:00:00 | SELL/TRAIL_SELL ETH | qty=0.5 | px=$3,100 | pnl@trade=+3.13% | "
        "realized=+46.95 | reason: price fell through the trail line",
        "2024-05-31 06:00:00 | BUY ETH | qty=0.5 | px=$3,000 | reason: LONG 4 ≥ start 3, SHORT 0",
    ]
    sell = panel.history.listbox.itemcget(3, "foreground")
    assert sell == TONE_COLOURS["positive"]
    root.lift()  # another test session may share this virtual display
    screenshot(root, "trades_panel")

    root.geometry("560x500")  # about the hub's right pane at its minimum window size
    pump(root, 0.3)
    assert panel.table.tree.winfo_height() > 60 and panel.history.listbox.winfo_height() > 40
    root.lift()  # another test session may share this virtual display
    screenshot(root, "trades_panel_small")


def test_a_refresh_reads_only_what_changed(root: tk.Tk, layout: DataLayout) -> None:
    panel = make(root, layout)
    loader = panel.feed.loader
    reads = (loader.status_reads, loader.journal_reads, loader.fills_read)
    assert reads == (1, 1, 5)
    view = panel.feed.view

    refreshed(root, panel)  # nothing changed: no file parsed, no SQLite opened, same view
    assert (loader.status_reads, loader.journal_reads, loader.fills_read) == reads
    assert panel.feed.view is view

    with TradeJournal(layout.journal_db, mode=Mode.PAPER, clock=lambda: NOW) as j:
        j.log_exit("XRP", 0.49, 0.05, NOW + 60, reason="user sold")
    refreshed(root, panel)  # only the journal, and only from the last seen fill's time on
    assert (loader.status_reads, loader.journal_reads, loader.fills_read) == (1, 2, 7)
    top = panel.history.lines()[0]
    assert top.startswith("2024-06-01 12:01:00 | SELL/TRAIL_SELL XRP | qty=100 | px=$0.49 |")
    assert "realized=-1.10" in top and panel.history.listbox.itemcget(0, "foreground") == NEGATIVE
    assert panel.account.texts()["Total realized"] == "+$45.85"  # 46.95 + (49 − 0.05 − 50.05)
    with TradeJournal.open_readonly(layout.journal_db) as j:  # the journal's own accounting
        assert round(sum(t.realized_pnl_usd for t in j.trades()), 2) == 45.85

    write_status(layout, cash=9_500.0)
    refreshed(root, panel)  # only the status
    assert (loader.status_reads, loader.journal_reads) == (2, 2)
    assert panel.account.texts()["Buying power"] == "$9,500.00"


def test_a_stopped_trader_and_a_missing_journal_are_said(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path).ensure()
    loader = TradesLoader(layout, tz=UTC, wall=lambda: time.time() + 3600)
    view = loader.load(CONFIG)
    assert view is not None and view.note == "no trader status yet" and view.history == ()
    assert loader.journal_reads == 0  # no journal file: nothing opened
    write_status(layout)
    view = loader.load(CONFIG)
    assert view is not None and view.stale and "not updating" in view.note
    assert loader.load(CONFIG) is None  # still stale, nothing new

    # a failed tick: the trader writes only its problem (trader.Runner.step)
    StateWriter(layout.trader_status_file, STATUS_SCHEMA).write(
        {"mode": "paper", "problem": "the broker refused the credentials", "coins": []}
    )
    view = loader.load(CONFIG)
    assert view is not None and view.rows == () and view.problem.startswith("the broker refused")
    assert {line.value for line in view.account if line.label != "Total realized"} == {"—"}


def test_an_empty_data_folder_shows_placeholders(root: tk.Tk, tmp_path: Path) -> None:
    layout = DataLayout(tmp_path).ensure()
    StateWriter(layout.trader_status_file, STATUS_SCHEMA).write(
        {"mode": "demo", "problem": "paused by the hub: no new orders", "coins": []}
    )
    panel = make(root, layout)
    assert panel.table.rows() == [] and panel.table.empty.winfo_ismapped()
    assert panel.history.lines() == [] and panel.history.listbox.get(0) == "No fills yet"
    assert panel.table.banner.cget("text") == "⚠ paused by the hub: no new orders"
    assert panel.account.texts()["Total realized"] == "—"
    root.lift()  # another test session may share this virtual display
    screenshot(root, "trades_panel_empty")


def test_the_table_changes_only_what_changed(root: tk.Tk, layout: DataLayout) -> None:
    """Rows are updated in place (a refresh mostly moves prices): changed, gone, new, moved."""
    panel = make(root, layout)
    view = panel.feed.view
    assert view is not None
    btc, xrp, doge = view.rows
    bought = dataclasses.replace(btc, cells=(btc.cells[0], "0.03", *btc.cells[2:]))
    panel.table.show(dataclasses.replace(view, rows=(doge, bought)))
    assert panel.table.rows() == [doge.cells, bought.cells]
    panel.table.show(dataclasses.replace(view, rows=(xrp, bought, doge)))
    assert panel.table.rows() == [xrp.cells, bought.cells, doge.cells]
    panel.table.show(dataclasses.replace(view, rows=()))
    pump(root, 0.05)
    assert panel.table.rows() == [] and panel.table.empty.winfo_ismapped()


def test_new_fills_are_added_on_top_of_the_history(root: tk.Tk, layout: DataLayout) -> None:
    """Newer fills are inserted above the shown ones (the list is not redrawn each refresh)."""
    panel = make(root, layout)
    view = panel.feed.view
    assert view is not None and len(view.history) >= 2
    first, *rest = view.history
    panel.history.show(dataclasses.replace(view, history=tuple(rest)))
    assert panel.history.lines() == [line.text for line in rest]
    panel.history.listbox.selection_set(0)  # survives an insert on top: the list was kept
    panel.history.show(view)
    assert panel.history.lines() == [line.text for line in view.history]
    assert panel.history.listbox.curselection() == (1,)
    panel.history.show(dataclasses.replace(view, history=view.history[:1]))  # oldest dropped
    assert panel.history.lines() == [first.text]
