"""The hub window under Xvfb, driving the real workers: Train All, Start All, trades, Stop All.

The window runs in this process with a real :class:`pt_hub_engine.HubEngine` and
:class:`pt_supervisor.Supervisor`, which start the real ``pt_trainer.py``, ``pt_thinker.py`` and
``pt_trader.py`` as child processes on a temporary demo data folder. The test presses the
window's own buttons and waits for what a user would see.
"""

from __future__ import annotations

import base64
import json
import os
import time
import tkinter as tk
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pt_config
from pt_analytics_dashboard import EMPTY_VIEW
from pt_gui_coinchart import CoinChart
from pt_gui_hub import HubWindow
from pt_gui_levels import LevelsPanel
from pt_hub_engine import HubEngine
from pt_journal_reader import JournalReader
from pt_replay import change_speed, start_clock
from pt_state import DataLayout
from pt_supervisor import Supervisor
from pt_types import Mode, WorkerState
from tests.fake_robinhood import TEST_API_KEY, TEST_SEED, FakeRobinhood
from tests.gui_support import pump, screenshot
from tests.test_gui_backtest import write_results
from tests.test_gui_settings import type_into
from tests.test_trading_e2e import SETTINGS, SIM_START

ROOT = Path(__file__).resolve().parent.parent


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("POWERTRADER_")}


@pytest.fixture
def hub(display: str, tmp_path: Path) -> Iterator[HubWindow]:
    layout = DataLayout(tmp_path).ensure()
    pt_config.save(layout.settings_file, pt_config.parse(SETTINGS))
    start_clock(layout, sim_start=SIM_START, speed=0)  # stands still while training
    root = tk.Tk()
    engine = HubEngine(layout, Supervisor(layout, env=env())).start()
    window = HubWindow(root, layout, engine, first_run=True)
    yield window
    window.close()  # a no-op when the test closed it


def wait(window: HubWindow, ok: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not ok():
        assert time.monotonic() < deadline, f"timed out waiting for {what}; {window.status}"
        pump(window.root, 0.1)


def training(hub: HubWindow) -> bool:
    return hub.status is not None and any(c.state == "training" for c in hub.status.coins)


def phase(hub: HubWindow) -> str:
    return "" if hub.status is None else hub.status.supervisor.start_all


def trade_count(layout: DataLayout) -> int:
    if not layout.journal_db.exists():
        return 0
    with JournalReader.open_readonly(layout.journal_db, mode=Mode.DEMO) as reader:
        return len(reader.fills())


def settings_on_disk(layout: DataLayout) -> dict[str, object]:
    return json.loads(layout.settings_file.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def save_setting(hub: HubWindow, path: str, text: str) -> None:
    editor = hub.settings_editor
    wait(hub, lambda: editor.generation >= 1 and not editor.busy, "the editor to be idle", 10)
    before = editor.generation
    type_into(editor.rows[path], text)
    editor.save_button.invoke()
    if editor.busy:  # valid: written off the Tk thread (an invalid form stops at the check)
        wait(hub, lambda: editor.generation > before and not editor.busy, f"saving {path}", 10)
    pump(hub.root, 0.1)


def check_key_wizard(hub: HubWindow, robinhood: FakeRobinhood) -> None:
    """Settings -> Robinhood API keys: one wizard at a time, tested against the fake venue."""
    hub.open_key_wizard()
    wizard = hub.wizard
    hub.open_key_wizard()
    assert wizard is not None and hub.wizard is wizard
    assert wizard.title() == "Robinhood API Setup"
    wait(hub, lambda: not wizard.busy, "the wizard to read the vault", 10)
    assert wizard.use_private_key(base64.b64encode(TEST_SEED).decode("ascii"))
    wizard.api_key_var.set(TEST_API_KEY)
    wizard.test_button.invoke()
    wait(hub, lambda: not wizard.busy, "the key test", 10)
    assert "BTC-USD ask" in str(wizard.test_label.cget("text"))
    assert robinhood.orders == []  # a read-only call
    screenshot(wizard, "hub-keywizard")
    wizard.destroy()


def check_settings_editor(hub: HubWindow) -> None:
    """An invalid value shows its error and writes nothing; a valid one reaches the panels."""
    hub.tabs.select(hub.settings_editor)
    wait(hub, lambda: hub.settings_editor.generation >= 1, "the settings to load")
    before = hub.layout.settings_file.read_bytes()
    save_setting(hub, "trailing_gap_pct", "150")
    row = hub.settings_editor.rows["trailing_gap_pct"]
    assert row.error_text and row.error.winfo_ismapped()
    assert hub.layout.settings_file.read_bytes() == before  # nothing written
    screenshot(hub.root, "hub-settings-error")
    save_setting(hub, "trailing_gap_pct", "0.4")
    assert settings_on_disk(hub.layout)["trailing_gap_pct"] == 0.4
    wait(hub, lambda: hub.feed.config.trailing_gap_pct == 0.4, "the trades panel's new rules")
    screenshot(hub.root, "hub-settings")


def check_backtest_apply(hub: HubWindow) -> None:
    """BACKTEST's "apply best" puts the trial's values into the SETTINGS form, unsaved: the file
    the trader reads changes only when the user presses Save there."""
    tab = hub.backtest
    hub.tabs.select(tab)
    write_results(hub.layout.root / "backtests" / "optimize.jsonl")
    tab.refresh_button.invoke()
    wait(hub, lambda: tab.idle and len(tab.top) == 3, "the optimisation results")
    screenshot(hub.root, "hub-backtest")
    before = hub.layout.settings_file.read_bytes()
    tab.apply_button.invoke()  # best by Sharpe: trailing_gap_pct = 0.5
    assert hub.tabs.select() == str(hub.settings_editor)
    editor = hub.settings_editor
    assert editor.rows["trailing_gap_pct"].raw == "0.5" and editor.dirty
    assert "Trailing gap" in tab.trials_note.cget("text")
    assert hub.layout.settings_file.read_bytes() == before  # nothing written yet
    tab.apply_button.invoke()
    assert tab.trials_note.cget("text").startswith("Not applied: SETTINGS has unsaved edits")
    save_setting(hub, "trade_start_level", "3")
    assert settings_on_disk(hub.layout)["trailing_gap_pct"] == 0.5
    wait(hub, lambda: hub.settings.trailing_gap_pct == 0.5, "the hub to follow the new file")


def test_train_all_start_all_trade_stop_all(hub: HubWindow) -> None:
    layout = hub.layout
    wait(hub, lambda: hub.applied > 0, "the first status")
    assert hub.controls.toggle.instate(["disabled"])  # nothing trained: Start All is off
    assert "Train All first (2 coin(s) not ready)" in hub.controls.flow.cget("text")
    assert hub.controls.badge.cget("text") == "DEMO"
    screenshot(hub.root, "hub-first-run")
    with FakeRobinhood() as robinhood:
        save_setting(hub, "exchanges.robinhood_url", robinhood.base_url)
        wait(hub, lambda: hub.settings.exchanges.robinhood_url == robinhood.base_url, "the url")
        check_key_wizard(hub, robinhood)
    check_settings_editor(hub)
    check_backtest_apply(hub)

    hub.training.train_all.invoke()
    wait(hub, lambda: training(hub), "training to start")
    screenshot(hub.root, "hub-training")
    wait(hub, lambda: hub.status is not None and hub.status.all_trained, "training to finish", 120)
    assert hub.controls.toggle.instate(["!disabled"])

    hub.controls.toggle.invoke()  # Start All
    wait(hub, lambda: phase(hub) == "running", "the trader to start", 90)
    change_speed(layout, 40_000.0)  # as the speed box would, without waiting a simulated day
    wait(hub, lambda: trade_count(layout) > 0, "a first trade", 90)
    wait(hub, lambda: hub.status is not None and hub.status.trader is not None, "trader status")
    check_views(hub)

    pids = [w.pid for w in hub.status.supervisor.workers if w.pid]  # type: ignore[union-attr]
    assert len(pids) == 2
    hub.controls.toggle.invoke()  # Stop All
    wait(hub, lambda: hub.status is not None and not hub.status.running, "everything to stop", 60)
    states = {w.name: w.state for w in hub.status.supervisor.workers}  # type: ignore[union-attr]
    assert states["thinker"] is WorkerState.STOPPED and states["trader"] is WorkerState.STOPPED

    hub.tabs.select(hub.settings_editor)
    save_setting(hub, "coins", "BTC, ETH, DOGE")  # a new coin: a chart tab and a tile appear
    wait(hub, lambda: "DOGE" in hub.charts.pages and "DOGE" in hub.levels.coins, "DOGE's panels")
    assert hub.charts.tabs()[-1] == str(hub.charts.pages["DOGE"])
    hub.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def check_views(hub: HubWindow) -> None:
    """Every main view while trading: a tile click opens its chart; each tab shows its data."""
    hub.tabs.select(hub.analytics)
    pump(hub.root, 0.3)
    x, y = tile_centre(hub.levels, "ETH")
    hub.levels.canvas.event_generate("<Button-1>", x=x, y=y)
    chart = hub.charts.pages["ETH"]
    assert hub.tabs.select() == str(hub.trading) and hub.charts.shown() == "ETH"
    wait(hub, lambda: isinstance(chart, CoinChart) and chart.data is not None, "ETH's candles", 30)
    wait(hub, lambda: bool(hub.history.lines()), "the trades")
    pump(hub.root, 0.5)
    screenshot(hub.root, "hub-trading")
    hub.charts.open("ACCOUNT")
    wait(hub, lambda: hub.charts.pages["ACCOUNT"].generation > 0, "the account curve", 30)
    pump(hub.root, 0.3)
    screenshot(hub.root, "hub-account")
    hub.tabs.select(hub.analytics)
    wait(hub, lambda: hub.analytics.view.summary != EMPTY_VIEW.summary, "the analytics", 10)
    pump(hub.root, 1.0)
    screenshot(hub.root, "hub-running")
    hub.tabs.select(hub.output)
    wait(hub, lambda: "--- started" in hub.output.panes["trader"].content(), "the trader's output")
    screenshot(hub.root, "hub-output")
    hub.tabs.select(hub.logs)
    wait(hub, lambda: len(hub.logs.rows()) > 0, "log lines", 10)
    screenshot(hub.root, "hub-logs")
    hub.show_tab(hub.trading)
    pump(hub.root, 0.2)
    check_no_pane_collapses(hub)


def check_no_pane_collapses(hub: HubWindow) -> None:
    """Dragging any sash to an edge leaves each pane at least its minimum size."""
    for split, first, second in hub._splits:
        size = (
            split.winfo_height() if str(split.cget("orient")) == "vertical" else split.winfo_width()
        )
        for drag_to, expected in ((0, first), (size, size - second)):
            split.tk.call(split, "sashpos", 0, drag_to)
            split.event_generate("<ButtonRelease-1>")
            pump(hub.root, 0.05)
            assert int(split.tk.call(split, "sashpos", 0)) == expected, (split, drag_to)


def tile_centre(panel: LevelsPanel, coin: str) -> tuple[int, int]:
    x, y = panel._boxes[coin]
    return int(x + 40 - panel.canvas.canvasx(0)), int(y + 60 - panel.canvas.canvasy(0))
