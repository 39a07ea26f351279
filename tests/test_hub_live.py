"""The hub window in live mode and with auto start, over dummy workers (no real orders).

Start All in live mode asks for the passphrase of the stored keys and hands it to the trader's
standard input; without keys, or when the question is cancelled, nothing starts and the window
says why. ``auto_start_scripts`` starts everything once in demo/paper mode, never in live mode.
In paper mode the passphrase is asked only for notification secrets, and cancelling it starts
trading without those channels.
"""

from __future__ import annotations

import time
import tkinter as tk
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pt_config import parse, save
from pt_gui_hub import NO_KEYS, HubWindow
from pt_hub_engine import HubEngine, hub_engine, passphrase_reason
from pt_models import save_model
from pt_notify_format import SECRET_NAMES
from pt_secrets import RobinhoodCredentials, save_robinhood
from pt_secrets_keysource import PassphraseKeySource
from pt_secrets_vault import SecretStore
from pt_state import DataLayout
from pt_supervisor import Supervisor
from pt_types import WorkerState
from tests.fake_notify import FakeReceiver
from tests.fake_robinhood import TEST_API_KEY, TEST_SEED
from tests.gui_support import pump, screenshot
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


def test_paper_start_all_asks_for_notification_secrets_and_starts_without_them(
    display: str, sup: Supervisor, layout: DataLayout
) -> None:
    """A passphrase-locked Discord URL: Start All asks (saying what for); cancelled, paper
    trading starts anyway and the window says the channel stays off."""
    store = SecretStore(layout, PassphraseKeySource(PASSPHRASE, n=2**14))
    store.set(SECRET_NAMES["discord"], "https://discord.com/api/webhooks/1/abc")
    save(layout.settings_file, parse({"coins": ["BTC"], "mode": "paper",
                                      "notifications": {"discord_enabled": True}}))  # fmt: skip
    asked: list[str] = []

    def ask(_parent: tk.Misc, why: str) -> str | None:
        asked.append(why)
        return None

    root = tk.Tk()
    engine = hub_engine(layout, lambda _layout, notify: sup).start()  # with its notifications
    window = HubWindow(root, layout, engine, first_run=False, ask_passphrase=ask)
    try:
        wait(window, lambda: window.status is not None and bool(window.status.stored_secrets),
             "the vault")  # fmt: skip
        window.start_all()
        assert asked == ["notifications by discord"]
        assert message(window) == (
            "Started without the passphrase: notifications by discord stay off."
        )
        wait(window, lambda: state(window, "thinker") is WorkerState.RUNNING, "the thinker")
        assert not (layout.root / "dummy-thinker.stdin").exists()  # nothing handed over
        # The hub's own channels say why Discord is off, in the controls, while it runs.
        assert message(window).startswith(
            "Notifications: discord is on but its webhook URL cannot be read: the secrets file "
            "is locked with a passphrase"
        )
        screenshot(window.controls, "hub-notify-problem")
    finally:
        window.close()


@pytest.mark.parametrize(
    ("mode", "notifications", "stored", "why"),
    [
        ("live", {}, (), "live trading"),
        ("paper", {"discord_enabled": True}, ("notify.discord.url",), "notifications by discord"),
        ("paper", {"discord_enabled": True}, (), ""),  # nothing stored: nothing to open
        ("demo", {"discord_enabled": True}, ("notify.discord.url",), ""),  # demo sends nothing
        ("demo", {"discord_enabled": True, "send_in_demo": True}, ("notify.discord.url",),
         "notifications by discord"),
        ("paper", {"webhook_enabled": True, "webhook_url": "https://x.test/h"}, (), ""),
    ],
)  # fmt: skip
def test_when_start_all_needs_the_passphrase(
    mode: str, notifications: dict[str, object], stored: tuple[str, ...], why: str
) -> None:
    settings = parse({"mode": mode, "notifications": notifications})
    assert passphrase_reason(settings, "passphrase", stored) == why
    assert passphrase_reason(settings, "keyring", stored) == ""  # the keyring opens by itself


def test_the_hub_engine_sends_a_crash_to_the_users_channels(
    layout: DataLayout, tmp_path: Path
) -> None:
    with FakeReceiver() as receiver:
        save(layout.settings_file, parse({"coins": ["BTC"], "mode": "paper", "notifications": {
            "webhook_enabled": True, "webhook_url": receiver.url}}))  # fmt: skip
        engine = hub_engine(
            layout, lambda lay, notify: dummy_supervisor(lay, tmp_path, notify)
        ).start()
        try:
            (layout.root / "dummy-thinker.txt").write_text("exit 3")
            engine.start_all()
            deadline = time.monotonic() + 20
            while not any(m["kind"] == "worker_crashed" for m in receiver.received):
                assert time.monotonic() < deadline, receiver.received
                time.sleep(0.05)
        finally:
            engine.close()
    crash = next(m for m in receiver.received if m["kind"] == "worker_crashed")
    assert crash["title"] == "thinker crashed" and "died with code 3" in crash["text"]
