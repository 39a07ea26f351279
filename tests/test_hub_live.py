"""The hub window in live mode and with auto start, over dummy workers (no real orders).

Start All in live mode asks for the passphrase of the stored keys and hands it to the trader's
standard input; without keys, or when the question is cancelled, nothing starts and the window
says why. ``auto_start_scripts`` starts everything once in demo/paper mode, never in live mode.
"""

from __future__ import annotations

import time
import tkinter as tk
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pt_config import parse, save
from pt_gui_hub import NO_KEYS, HubWindow
from pt_hub_engine import HubEngine
from pt_models import save_model
from pt_secrets import RobinhoodCredentials, save_robinhood
from pt_secrets_keysource import PassphraseKeySource
from pt_secrets_vault import SecretStore
from pt_state import DataLayout
from pt_supervisor import Supervisor
from pt_types import WorkerState
from tests.fake_robinhood import TEST_API_KEY, TEST_SEED
from tests.gui_support import pump
from tests.test_supervisor import dummy_supervisor
from tests.test_thinker import tiny_model

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    layout = DataLayout(tmp_path / "data").ensure()
    save_model(layout, tiny_model("BTC", time.time()))
    return layout


def open_hub(sup: Supervisor, layout: DataLayout, answers: list[str | None]) -> HubWindow:
    """The window, whose passphrase question gives the next of ``answers``."""
    root = tk.Tk()
    window = HubWindow(root, layout, HubEngine(layout, sup).start(), first_run=False,
                       ask_passphrase=lambda _parent, _why: answers.pop(0))  # fmt: skip
    wait(window, lambda: window.status is not None, "the first status")
    return window


def wait(window: HubWindow, ok: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not ok():
        assert time.monotonic() < deadline, f"timed out waiting for {what}; {window.status}"
        pump(window.root, 0.05)


def state(window: HubWindow, name: str) -> WorkerState | None:
    worker = window.status.supervisor.worker(name) if window.status else None
    return worker.state if worker else None


def message(window: HubWindow) -> str:
    return str(window.controls.message.cget("text"))


@pytest.fixture
def sup(layout: DataLayout, tmp_path: Path) -> Iterator[Supervisor]:
    supervisor = dummy_supervisor(layout, tmp_path)
    yield supervisor
    supervisor.shutdown()


def test_live_start_all_asks_the_passphrase_and_hands_it_to_the_trader(
    display: str, sup: Supervisor, layout: DataLayout
) -> None:
    save(layout.settings_file, parse({"coins": ["BTC"], "mode": "live"}))
    answers: list[str | None] = [None, PASSPHRASE]
    window = open_hub(sup, layout, answers)
    try:
        window.start_all()  # no keys stored: nothing starts, and the window says what to do
        assert message(window) == NO_KEYS
        pump(window.root, 0.6)
        assert window.status is not None and window.status.supervisor.workers == ()

        store = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
        save_robinhood(store, RobinhoodCredentials(TEST_API_KEY, TEST_SEED))
        wait(window, lambda: window.status is not None and window.status.key_source == "passphrase",
             "the vault")  # fmt: skip
        window.start_all()  # cancelled
        assert "cancelled" in message(window) and answers == [PASSPHRASE]
        pump(window.root, 0.6)
        assert window.status.supervisor.workers == ()

        window.controls.toggle.invoke()  # Start All, passphrase given
        wait(window, lambda: state(window, "thinker") is WorkerState.RUNNING, "the thinker")
        (layout.root / "dummy-thinker.txt").write_text("ready")
        wait(window, lambda: state(window, "trader") is WorkerState.RUNNING, "the trader")
        stdin = layout.root / "dummy-trader.stdin"
        wait(window, stdin.exists, "the trader's input")
        assert stdin.read_text() == PASSPHRASE + "\n"
        assert "cancelled" not in message(window)  # the note ends once the workers run
        assert window.controls.badge.cget("text") == "LIVE"
    finally:
        window.close()


@pytest.mark.parametrize(("mode", "starts"), [("paper", True), ("live", False)])
def test_auto_start_only_outside_live_mode(
    display: str, sup: Supervisor, layout: DataLayout, mode: str, starts: bool
) -> None:
    save(layout.settings_file, parse({"coins": ["BTC"], "mode": mode, "auto_start_scripts": True}))
    window = open_hub(sup, layout, answers=[])
    try:
        if starts:
            wait(window, lambda: state(window, "thinker") is WorkerState.RUNNING, "auto start")
        else:
            pump(window.root, 1.0)
            assert window.status is not None and window.status.supervisor.workers == ()
            assert "Auto start is off in LIVE mode" in message(window)
    finally:
        window.close()
