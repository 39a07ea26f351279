"""The SETTINGS tab's notifications under Xvfb: Save refuses a channel whose secret is not
stored, "Send test" reaches real receivers on 127.0.0.1 with the form's (unsaved) values, and
the secrets window stores, refuses and removes secrets in a real passphrase-locked file."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Iterator
from pathlib import Path
from tkinter import ttk
from typing import Any

import pytest

import pt_config
from pt_config_schema import Settings
from pt_gui_notify import NotifySecretsWindow
from pt_gui_settings import Checks, SettingsEditor
from pt_notify_format import SECRET_NAMES
from pt_secrets import AskPassphrase, KeySource, choose_key_source
from pt_secrets_keysource import PassphraseKeySource
from pt_secrets_vault import SecretStore, read_header
from pt_state import DataLayout
from tests.fake_notify import FakeDiscord, FakeReceiver
from tests.gui_support import pump, screenshot, themed_root, wait_until

PASSPHRASE = "correct horse battery"


@pytest.fixture
def root(display: str) -> Iterator[tk.Tk]:
    with themed_root("1400x860+0+0") as win:
        yield win


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    pt_config.save(tmp_path / "settings.json", Settings())
    return DataLayout(tmp_path)


def no_keyring(layout: DataLayout, ask: AskPassphrase) -> KeySource:
    """A passphrase vault whatever this machine has, so the test is the same everywhere."""
    return choose_key_source(layout, ask, use_keyring=False)


def stored(layout: DataLayout) -> tuple[str, ...]:
    header = read_header(layout)
    return header.names if header else ()


def editor_for(root: tk.Tk, layout: DataLayout, **kw: Any) -> SettingsEditor:
    editor = SettingsEditor(root, layout=layout, checks=Checks(secrets=lambda: stored(layout)),
                            **kw)  # fmt: skip
    editor.pack(fill="both", expand=True)
    wait_until(root, lambda: editor.generation >= 1 and not editor.busy, 10, "the settings")
    return editor


def set_raw(editor: SettingsEditor, path: str, value: str) -> None:
    editor.rows[path].raw = value


def save(root: tk.Tk, editor: SettingsEditor) -> None:
    before = editor.generation
    editor.save_button.invoke()
    wait_until(root, lambda: editor.generation > before and not editor.busy, 10, "saving")
    pump(root, 0.1)


def test_save_refuses_a_channel_whose_secret_is_not_stored(root: tk.Tk, layout: DataLayout) -> None:
    editor = editor_for(root, layout)
    before = layout.settings_file.read_bytes()
    set_raw(editor, "notifications.discord_enabled", "true")
    save(root, editor)
    error = editor.rows["notifications.discord_enabled"].error_text
    assert "discord is on but its webhook URL is not stored" in error
    assert "Nothing saved" in str(editor.summary.cget("text"))
    assert layout.settings_file.read_bytes() == before
    source = PassphraseKeySource(PASSPHRASE, n=2**14)
    SecretStore(layout, source).set(SECRET_NAMES["discord"], "https://x.test/api/webhooks/1/a")
    save(root, editor)
    assert editor.rows["notifications.discord_enabled"].error_text == ""
    assert pt_config.load(layout.settings_file, env={}).notifications.discord_enabled


def test_send_test_uses_the_form_as_it_stands_and_asks_a_locked_file_once(
    root: tk.Tk, layout: DataLayout
) -> None:
    asked: list[str] = []

    def ask(_parent: tk.Misc, why: str) -> str | None:
        asked.append(why)
        return PASSPHRASE

    with FakeReceiver() as receiver, FakeDiscord() as discord:
        source = PassphraseKeySource(PASSPHRASE, n=2**14)
        SecretStore(layout, source).set(SECRET_NAMES["discord"], discord.url)
        editor = editor_for(root, layout, ask_passphrase=ask)
        tools = editor.notify_tools
        assert tools is not None
        set_raw(editor, "notifications.webhook_url", receiver.url)  # typed, not saved

        def press(channel: str, answers: int) -> str:
            tools.buttons[channel].invoke()
            wait_until(root, lambda: tools.results >= answers, 15, f"the {channel} test")
            return str(tools.result.cget("text"))

        assert press("webhook", 1) == "Webhook: test message sent; the receiver accepted it."
        assert receiver.received[0]["kind"] == "test"
        assert press("discord", 3).startswith("Discord: test message sent")  # asked, then sent
        assert asked == ["a test message by Discord"]
        assert press("discord", 4).startswith("Discord: test message sent")  # not asked again
        assert len(asked) == 1 and len(discord.messages) == 2
        text = press("telegram", 5)
        assert text.startswith("Telegram: telegram is on but its bot token is not stored")
        set_raw(editor, "notifications.webhook_url", "not a url")
        tools.buttons["webhook"].invoke()
        assert "Fix the fields marked in red" in str(tools.result.cget("text"))
        assert editor.rows["notifications.webhook_url"].error_text
        editor.scroll_to(editor.rows["notifications.webhook_burst"])
        pump(root, 0.2)
        screenshot(root, "settings-notifications")
    assert pt_config.load(layout.settings_file, env={}).notifications.webhook_url == ""


def entry_of(window: NotifySecretsWindow, channel: str) -> ttk.Entry:
    for widget in window.winfo_children()[0].winfo_children():
        if isinstance(widget, ttk.Entry) and str(widget.cget("textvariable")) == str(
            window.values[channel]
        ):
            return widget
    raise AssertionError(f"no entry for {channel}")


def test_the_secrets_window_stores_refuses_and_removes(root: tk.Tk, layout: DataLayout) -> None:
    unlocked: list[str] = []
    window = NotifySecretsWindow(root, layout, key_source_factory=no_keyring,
                                 on_unlocked=unlocked.append)  # fmt: skip
    wait_until(root, lambda: window.results >= 1, 10, "the probe")
    assert window.vault_mode == "new"
    assert str(window.states["discord"].cget("text")) == "not stored"

    def answer(count: int) -> str:
        wait_until(root, lambda: window.results >= count, 15, "the secrets job")
        return str(window.message.cget("text"))

    window.values["discord"].set("https://discord.com/api/webhooks/123/abc-DEF")
    window.store("discord")
    assert "Choose a passphrase (twice)" in answer(2)
    window.pass_var.set(PASSPHRASE)
    window.pass2_var.set(PASSPHRASE)
    window.values["telegram"].set("not a token")
    window.store("telegram")
    assert "not stored: a bot token looks like" in answer(3)
    assert window.values["telegram"].get() == "not a token"  # kept for fixing
    window.store("discord")
    assert answer(4) == "Stored the discord webhook URL (encrypted)."
    assert window.values["discord"].get() == ""  # not kept in the window
    assert str(window.states["discord"].cget("text")) == "stored"
    assert stored(layout) == (SECRET_NAMES["discord"],) and unlocked[-1] == PASSPHRASE
    assert b"abc-DEF" not in (layout.secrets_dir / "secrets.enc").read_bytes()
    assert str(entry_of(window, "discord").cget("show")) == "•"
    window.geometry("760x430+0+0")
    window.lift()
    pump(root, 0.3)
    screenshot(window, "notify-secrets")
    window.remove("discord")
    assert answer(5) == "Removed the discord webhook URL."
    assert stored(layout) == ()
    window.destroy()
