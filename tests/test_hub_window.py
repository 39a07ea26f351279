"""The hub window under Xvfb, driving the real workers: Train All, Start All, trades, Stop All.

The window runs in this process with a real :class:`pt_hub_engine.HubEngine` and
:class:`pt_supervisor.Supervisor`, which start the real ``pt_trainer.py``, ``pt_thinker.py`` and
``pt_trader.py`` as child processes on a temporary demo data folder. The test presses the
window's own buttons and waits for what a user would see.
"""

from __future__ import annotations

import os
import time
import tkinter as tk
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pt_config
from pt_gui_hub import HubWindow
from pt_hub_engine import HubEngine
from pt_journal_reader import JournalReader
from pt_replay import change_speed, start_clock
from pt_state import DataLayout
from pt_supervisor import Supervisor
from pt_types import Mode, WorkerState
from tests.gui_support import pump, screenshot
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


def test_train_all_start_all_trade_stop_all(hub: HubWindow) -> None:
    layout = hub.layout
    wait(hub, lambda: hub.applied > 0, "the first status")
    assert hub.controls.toggle.instate(["disabled"])  # nothing trained: Start All is off
    assert "Train All first (2 coin(s) not ready)" in hub.controls.flow.cget("text")
    assert hub.controls.badge.cget("text") == "DEMO"
    screenshot(hub.root, "hub-first-run")
    hub.open_key_wizard()  # the Settings menu's entry; one at a time
    wizard = hub.wizard
    hub.open_key_wizard()
    assert wizard is not None and hub.wizard is wizard
    assert wizard.title() == "Robinhood API Setup"
    wizard.destroy()
    hub.tabs.select(hub.settings_editor)
    pump(hub.root, 0.5)
    screenshot(hub.root, "hub-settings")

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
    hub.tabs.select(hub.analytics)
    pump(hub.root, 1.0)
    screenshot(hub.root, "hub-running")

    pids = [w.pid for w in hub.status.supervisor.workers if w.pid]  # type: ignore[union-attr]
    assert len(pids) == 2
    hub.controls.toggle.invoke()  # Stop All
    wait(hub, lambda: hub.status is not None and not hub.status.running, "everything to stop", 60)
    states = {w.name: w.state for w in hub.status.supervisor.workers}  # type: ignore[union-attr]
    assert states["thinker"] is WorkerState.STOPPED and states["trader"] is WorkerState.STOPPED
    hub.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
