"""The "Neural levels" tiles in a real Tk window (Xvfb), fed by a real ``state/signals.json``
written through the thinker's own StateWriter and ``snapshot_to_data``."""

from __future__ import annotations

import time
import tkinter as tk
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest

from pt_gui_levels import LevelsLoader, LevelsPanel
from pt_gui_theme import ACCENT, GRID, LONG_BLUE, MUTED, SHORT_ORANGE, WARNING
from pt_market_state import MarketState, VolumeState
from pt_signals import (
    SIGNALS_SCHEMA,
    CoinSignal,
    CoinStatus,
    SignalsSnapshot,
    snapshot_to_data,
    stage_of,
)
from pt_state import DataLayout, StateWriter
from pt_volume import Trend
from tests.gui_support import pump, screenshot, themed_root
from tests.gui_support import wait_until as wait_for

COINS = ("BTC", "ETH", "XRP", "DOGE", "SOL", "ADA")


LOUD = VolumeState(0, 9_000.0, 9.8, 4.2, True, Trend.INCREASING, 35.0, "anomaly: 4.2 σ above")
CALM = VolumeState(0, 900.0, 1.0, 0.1, False, Trend.STABLE, 1.0, "normal: 0.1 σ above")


def write_signals(layout: DataLayout, btc_long: int = 5) -> None:
    now = time.time()
    coins = (
        CoinSignal(
            "BTC",
            CoinStatus.READY,
            "7 of 7 timeframes",
            now,
            "m1",
            60_000.0,
            btc_long,
            0,
            market=MarketState(LOUD, "", 2.5, ""),
        ),
        CoinSignal(
            "ETH",
            CoinStatus.READY,
            "7 of 7 timeframes",
            now,
            "m1",
            3_000.0,
            2,
            3,
            market=MarketState(CALM, "", 3.1, ""),
        ),
        CoinSignal("XRP", CoinStatus.NOT_TRAINED, "XRP: not trained yet; train it", now),
        CoinSignal("DOGE", CoinStatus.STALE_MODEL, "DOGE: model is 20 days old; retrain", now),
        CoinSignal("SOL", CoinStatus.WARMING_UP, "SOL: 3 of 7 timeframes ready", now),
    )
    stage, reason = stage_of(coins)
    snap = SignalsSnapshot(stage, reason, now, coins)
    StateWriter(layout.signals_file, SIGNALS_SCHEMA).write(snapshot_to_data(snap))


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    layout = DataLayout(tmp_path).ensure()
    write_signals(layout)
    return layout


@pytest.fixture
def root(display: str) -> Iterator[tk.Tk]:
    with themed_root("470x340+0+0") as win:  # the hub's left pane
        yield win


def refreshed(root: tk.Misc, panel: LevelsPanel) -> None:
    before = panel.generation
    panel.refresh_now()
    wait_for(root, lambda: panel.generation > before and not panel.busy)


def make(root: tk.Tk, layout: DataLayout, opened: list[str], coins=COINS) -> LevelsPanel:
    panel = LevelsPanel(root, layout=layout, coins=coins, trade_start_level=3,
                        on_open=opened.append, refresh_ms=0, tz=UTC)  # fmt: skip
    panel.pack(fill="both", expand=True, padx=6, pady=6)
    wait_for(root, lambda: panel.view is not None)
    pump(root, 0.1)
    return panel


def fill(panel: LevelsPanel, tag: str) -> str:
    return str(panel.canvas.itemcget(panel.canvas.find_withtag(tag)[0], "fill"))


def text(panel: LevelsPanel, tag: str) -> str:
    return str(panel.canvas.itemcget(panel.canvas.find_withtag(tag)[0], "text"))


def centre(panel: LevelsPanel, coin: str) -> tuple[int, int]:
    x, y = panel._boxes[coin]
    return int(x + 40 - panel.canvas.canvasx(0)), int(y + 60 - panel.canvas.canvasy(0))


# ---------------------------------------------------------------------------------------------


def test_tiles_show_levels_and_why_a_coin_has_none(root: tk.Tk, layout: DataLayout) -> None:
    opened: list[str] = []
    panel = make(root, layout, opened)
    assert panel.view is not None
    assert [t.coin for t in panel.view.tiles] == list(COINS)
    lit = [fill(panel, f"seg:BTC:L:{k}") == LONG_BLUE for k in range(1, 8)]
    assert lit == [True] * 5 + [False] * 2 and fill(panel, "seg:BTC:L:6") == GRID
    assert [fill(panel, f"seg:BTC:S:{k}") for k in (1, 2)] == [GRID, GRID]
    assert [fill(panel, f"seg:ETH:S:{k}") == SHORT_ORANGE for k in range(1, 8)] == [True] * 3 + [
        False
    ] * 4
    assert text(panel, "caption:BTC") == "L:5 S:0" and text(panel, "caption:ETH") == "L:2 S:3"
    assert text(panel, "caption:XRP") == "L:– S:–"
    assert (text(panel, "note:XRP"), fill(panel, "note:XRP")) == ("not trained", WARNING)
    assert (text(panel, "note:DOGE"), fill(panel, "note:DOGE")) == ("stale model", WARNING)
    assert (text(panel, "note:SOL"), fill(panel, "note:SOL")) == ("warming up", MUTED)
    assert (text(panel, "note:ADA"), fill(panel, "note:ADA")) == ("no signal", MUTED)
    assert not panel.canvas.find_withtag("note:BTC")
    assert (text(panel, "volume:BTC"), fill(panel, "volume:BTC")) == ("vol 9.8× ↑ !", WARNING)
    assert (text(panel, "volume:ETH"), fill(panel, "volume:ETH")) == ("vol 1.0× →", MUTED)
    assert not panel.canvas.find_withtag("volume:XRP")  # no market state: no line
    assert str(panel.last.cget("text")).startswith("Last: ")

    # the start-level marker sits between segments 2 and 3 (a LONG of 3 reaches above it)
    marker_y = panel.canvas.coords(panel.canvas.find_withtag("tile:BTC&&marker")[0])[1]
    seg2_top = panel.canvas.coords(panel.canvas.find_withtag("seg:BTC:L:2")[0])[1]
    seg3_bottom = panel.canvas.coords(panel.canvas.find_withtag("seg:BTC:L:3")[0])[3]
    assert seg3_bottom <= marker_y <= seg2_top

    x, y = centre(panel, "XRP")
    panel.canvas.event_generate("<Motion>", x=x, y=y)
    pump(root, 0.05)
    assert panel.hovered == "XRP"
    box = panel.canvas.find_withtag("box:XRP")[0]
    assert panel.canvas.itemcget(box, "outline") == ACCENT
    assert panel.detail.cget("text") == "XRP L:– S:– — not trained yet; train it"
    root.lift()  # another test session may share this virtual display
    screenshot(root, "levels_panel")

    x, y = centre(panel, "BTC")
    panel.canvas.event_generate("<Motion>", x=x, y=y)
    pump(root, 0.05)
    assert panel.detail.cget("text") == (
        "BTC L:5 S:0 — 7 of 7 timeframes · volume vol 9.8× · z +4.2 · rising: anomaly: 4.2 σ above"
    )

    x, y = centre(panel, "ETH")
    panel.canvas.event_generate("<Motion>", x=x, y=y)
    panel.canvas.event_generate("<Button-1>", x=x, y=y)
    pump(root, 0.05)
    assert opened == ["ETH"]
    assert panel.canvas.itemcget(box, "outline") != ACCENT  # the hover moved on

    panel.set_config(COINS, 5)  # the marker follows the start level
    pump(root, 0.1)
    marker_y = panel.canvas.coords(panel.canvas.find_withtag("tile:BTC&&marker")[0])[1]
    seg5_bottom = panel.canvas.coords(panel.canvas.find_withtag("seg:BTC:L:5")[0])[3]
    seg4_top = panel.canvas.coords(panel.canvas.find_withtag("seg:BTC:L:4")[0])[1]
    assert seg5_bottom <= marker_y <= seg4_top


def test_a_refresh_rereads_only_a_changed_file(root: tk.Tk, layout: DataLayout) -> None:
    panel = make(root, layout, [])
    assert panel.loader.reads == 1
    view = panel.view
    refreshed(root, panel)
    refreshed(root, panel)
    assert panel.loader.reads == 1 and panel.view is view  # nothing read, nothing redrawn

    write_signals(layout, btc_long=7)
    refreshed(root, panel)
    assert panel.loader.reads == 2 and panel.view is not view
    assert text(panel, "caption:BTC") == "L:7 S:0" and fill(panel, "seg:BTC:L:7") == LONG_BLUE


def test_many_coins_wrap_and_scroll(root: tk.Tk, layout: DataLayout) -> None:
    coins = [f"C{i:02d}" for i in range(14)]
    panel = make(root, layout, [], coins=coins)
    boxes = panel._boxes
    per_row = len({x for x, _ in boxes.values()})
    assert per_row == 4 and len({y for _, y in boxes.values()}) == 4  # 470 px: 4 tiles a row
    region = [float(v) for v in str(panel.canvas.cget("scrollregion")).split()]
    assert region[3] > panel.canvas.winfo_height()  # taller than the view: it scrolls
    panel.canvas.yview_moveto(1.0)
    pump(root, 0.05)
    assert panel.canvas.canvasy(0) > 0
    root.geometry("360x300")  # the left pane's minimum
    pump(root, 0.2)
    assert len({x for x, _ in panel._boxes.values()}) == 3
    root.lift()  # another test session may share this virtual display
    screenshot(root, "levels_panel_small")


def test_no_signals_file_says_the_thinker_has_not_written(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path).ensure()
    loader = LevelsLoader(layout, tz=UTC)
    view = loader.load(["BTC"])
    assert view is not None and view.last.startswith("Last: —") and loader.reads == 0
    assert view.tiles[0].caption == "L:– S:–" and view.tiles[0].note == "no signal"
    assert loader.load(["BTC"]) is None
    stale = LevelsLoader(layout, tz=UTC, wall=lambda: time.time() + 3600)
    write_signals(layout)
    view = stale.load(["BTC"])
    assert view is not None and view.stale and "(not updating)" in view.last
