"""The CORRELATION tab: the view from the thinker's correlations and the trader's positions
(pure, hand-checked), and the heatmap in a real Tk window fed by real state files."""

from __future__ import annotations

import time
import tkinter as tk
from collections.abc import Iterator
from pathlib import Path

import pytest

from pt_correlation import CorrelationMatrix
from pt_gui_correlation import (
    NO_DATA,
    CorrelationTab,
    build_view,
    cell_colour,
    positions_from_status,
)
from pt_gui_theme import BORDER, PANEL
from pt_signals import SIGNALS_SCHEMA, SignalsSnapshot, Stage, snapshot_to_data
from pt_state import DataLayout, StateWriter
from pt_trader import STATUS_SCHEMA
from tests.gui_support import pump, screenshot, themed_root
from tests.gui_support import wait_until as wait_for

COINS = ("BTC", "ETH", "XRP")


def matrix(days: int, btc_eth: float, btc_xrp: float | None, eth_xrp: float) -> CorrelationMatrix:
    values = ((1.0, btc_eth, btc_xrp), (btc_eth, 1.0, eth_xrp), (btc_xrp, eth_xrp, 1.0))
    return CorrelationMatrix(COINS, values, days, days)


def snapshot() -> SignalsSnapshot:
    return SignalsSnapshot(
        Stage.READY, "", 0.0, (),
        correlations=(matrix(7, 0.95, 0.1, 0.2), matrix(30, 0.85, 0.4, 0.5),
                      matrix(90, 0.7, None, 0.3)),
    )  # fmt: skip


def test_the_view_weights_the_portfolio_and_names_the_alerts() -> None:
    # BTC $3 000, ETH $1 000, XRP $1 000: pairs weighted by the product of their values:
    # (3e6·0.85 + 3e6·0.4 + 1e6·0.5) / (3e6 + 3e6 + 1e6) = 4.25e6 / 7e6 = 0.607
    held = {"BTC": 3_000.0, "ETH": 1_000.0, "XRP": 1_000.0}
    view = build_view(snapshot(), held, COINS, days=30, threshold=0.8)
    assert view.coins == COINS and view.values[0] == (1.0, 0.85, 0.4)
    assert view.portfolio.endswith(": 0.61")
    assert view.alerts == ("Held together: BTC and ETH (correlation 0.85 > 0.8)",)
    only_btc = build_view(snapshot(), {"BTC": 3_000.0}, COINS, days=7, threshold=0.8)
    assert only_btc.alerts == (
        "A new entry in ETH moved with BTC (correlation 0.95 over 7 days): a new entry adds "
        "little diversification",
    )
    assert "needs two positions" in only_btc.portfolio
    assert build_view(snapshot(), {}, ("BTC", "XRP"), days=90, threshold=0.8).values == (
        (1.0, None), (None, 1.0),
    )  # fmt: skip
    empty = build_view(None, held, COINS, days=30, threshold=0.8)
    assert (empty.coins, empty.status) == ((), NO_DATA)


def test_positions_and_colours() -> None:
    status = {"coins": [{"coin": "BTC", "quantity": 0.5, "bid": 60_000.0},
                        {"coin": "ETH", "quantity": 0.0, "bid": 3_000.0},
                        {"coin": "XRP", "quantity": 10.0, "bid": None}]}  # fmt: skip
    assert positions_from_status(status) == {"BTC": 30_000.0}
    assert positions_from_status(None) == {}
    assert cell_colour(None) == BORDER and cell_colour(0.0) == PANEL.upper()
    assert cell_colour(1.0) == "#E24A3B" and cell_colour(-1.0) == "#2E6FD8"


@pytest.fixture
def root(display: str) -> Iterator[tk.Tk]:
    with themed_root("760x420+0+0") as win:
        yield win


def test_the_tab_draws_the_heatmap_and_follows_the_period(root: tk.Tk, tmp_path: Path) -> None:
    layout = DataLayout(tmp_path).ensure()
    tab = CorrelationTab(root, layout=layout, coins=COINS, refresh_ms=0)
    tab.pack(fill="both", expand=True)
    wait_for(root, lambda: tab.view is not None, what="the first view")
    assert tab.status.cget("text") == NO_DATA and not tab.canvas.find_all()
    StateWriter(layout.signals_file, SIGNALS_SCHEMA).write(snapshot_to_data(snapshot()))
    StateWriter(layout.trader_status_file, STATUS_SCHEMA).write({"time": time.time(), "coins": [
        {"coin": "BTC", "quantity": 0.05, "bid": 60_000.0},
        {"coin": "ETH", "quantity": 1.0, "bid": 3_000.0}]})  # fmt: skip
    before = tab.generation
    tab.refresh_now()
    wait_for(
        root, lambda: tab.generation > before and bool(tab.view and tab.view.coins), what="data"
    )
    canvas = tab.canvas
    cell = canvas.find_withtag("cell:BTC:ETH")[0]
    assert canvas.itemcget(cell, "fill") == cell_colour(0.85)
    assert canvas.itemcget(canvas.find_withtag("cell:BTC:ETH:text")[0], "text") == "0.85"
    assert "Held together: BTC and ETH" in tab.alerts.cget("text")
    pump(root, 0.1)
    screenshot(root, "correlation-tab")
    tab.period.set("90")
    tab.period.event_generate("<<ComboboxSelected>>")
    wait_for(root, lambda: tab.view is not None and tab.view.days == 90, what="the 90-day view")
    assert canvas.itemcget(canvas.find_withtag("cell:BTC:XRP:text")[0], "text") == "–"
    assert tab.alerts.cget("text") == ""  # 0.70 is under the threshold
    tab.set_config(("BTC", "ETH"), 7, 0.99)
    wait_for(root, lambda: tab.view is not None and tab.view.days == 7, what="new settings")
    view = tab.view
    assert view is not None and view.coins == ("BTC", "ETH") and tab.alerts.cget("text") == ""
    tab.destroy()
