"""The SETTINGS tab's notification tools: "Send test" per channel and the secrets window.

The channel settings themselves are ordinary fields of the Notifications group (generated from
the schema). What a form cannot hold lives here:

- **Send test** builds that one channel from the form as it stands (saved or not) and its
  stored secret, and sends a test message; the answer (sent, or what to fix) is shown under
  the buttons. A secrets file locked with a passphrase asks for it once per session.
- **Secrets…** opens :class:`NotifySecretsWindow`: the SMTP password, the Discord webhook URL
  and the Telegram bot token, stored encrypted with the Robinhood keys (never in
  settings.json), each checked for form before it is stored and never shown again.

All file and network work runs on worker threads (:mod:`pt_gui_notify_worker`).
"""

from __future__ import annotations

import functools
import logging
import tkinter as tk
from collections.abc import Callable
from tkinter import simpledialog, ttk

import pt_secrets as ps
from pt_config_schema import Settings
from pt_gui_background import Background
from pt_gui_keywizard_worker import (
    KeySourceFactory,
    Outcome,
    Vault,
    VaultState,
    vault_outcome,
)
from pt_gui_notify_worker import (
    CHANNELS,
    LABELS,
    SecretJob,
    SecretsDone,
    TestJob,
    TestResult,
    run_secret_job,
    secret_label,
    send_test,
)
from pt_gui_theme import ACCENT, NEGATIVE, PANEL, TEXT, WARNING, apply_theme, wrapping
from pt_notify_format import SECRET_NAMES
from pt_state import DataLayout

__all__ = ["NotifySecretsWindow", "NotifyTools", "PassphraseDialog", "ask_passphrase"]

log = logging.getLogger(__name__)

MASK = "•"
PassphraseDialog = Callable[[tk.Misc, str], str | None]


def ask_passphrase(parent: tk.Misc, why: str) -> str | None:
    """The passphrase of the stored secrets, typed hidden; None when cancelled. ``why``: what
    it opens (live trading, notifications by ...)."""
    return simpledialog.askstring(
        "Unlock the stored secrets",
        f"Passphrase of the stored secrets (for {why}):",
        show=MASK,
        parent=parent,
    )


def _styles(root: tk.Misc) -> None:
    style = ttk.Style(root)
    for tone, colour in (("Info", TEXT), ("Ok", ACCENT), ("Warn", WARNING), ("Error", NEGATIVE)):
        style.configure(f"NT{tone}.TLabel", background=PANEL, foreground=colour)


def _say(label: ttk.Label, outcome: Outcome) -> None:
    label.configure(text=outcome.text, style=f"NT{outcome.tone.capitalize()}.TLabel")


class NotifyTools(ttk.Frame):
    """The row under the Notifications group. ``form_settings`` returns the form's settings
    when every field is valid (None: the form shows what to fix, nothing is sent)."""

    def __init__(
        self,
        parent: tk.Misc,
        *,
        layout: DataLayout,
        form_settings: Callable[[], Settings | None],
        ask: PassphraseDialog = ask_passphrase,
        key_source_factory: KeySourceFactory = ps.choose_key_source,
    ) -> None:
        super().__init__(parent, style="Panel.TFrame")
        _styles(self.winfo_toplevel())
        self.layout, self._form, self._ask = layout, form_settings, ask
        self._factory = key_source_factory
        self._passphrase: str | None = None  # remembered after a test that worked
        self._trying: str | None = None
        self.window: NotifySecretsWindow | None = None
        self.buttons: dict[str, ttk.Button] = {}
        self.columnconfigure(len(CHANNELS) + 2, weight=1)
        ttk.Label(self, text="Send test:", style="Panel.TLabel").grid(row=0, column=0, sticky="w")
        for i, channel in enumerate(CHANNELS):
            button = ttk.Button(self, text=LABELS[channel],
                                command=functools.partial(self.send_test, channel))  # fmt: skip
            button.grid(row=0, column=1 + i, padx=(6, 0))
            self.buttons[channel] = button
        self.secrets_button = ttk.Button(self, text="Secrets…", command=self.open_secrets)
        self.secrets_button.grid(row=0, column=len(CHANNELS) + 2, sticky="e")
        self.result = wrapping(ttk.Label(self, text="", style="NTInfo.TLabel", justify="left"))
        self.result.grid(row=1, column=0, columnspan=len(CHANNELS) + 3, sticky="ew", pady=(4, 0))
        self.results = 0  # answers shown (tests wait on it)
        self._bg: Background[TestJob, TestResult] = Background(
            self, lambda job: send_test(layout, job), self._show, name="notify-test",
            join_timeout_s=0,
        )  # fmt: skip

    def send_test(self, channel: str, passphrase: str | None = None) -> None:
        settings = self._form()
        if settings is None:
            _say(self.result, Outcome("Fix the fields marked in red first; nothing sent.", "error"))
            return
        self.buttons[channel].state(["disabled"])
        _say(self.result, Outcome(f"Sending a test message by {LABELS[channel]}…"))
        self._trying = passphrase or self._passphrase
        self._bg.submit(TestJob(channel, settings.notifications, self._trying))

    def _show(self, result: TestResult) -> None:
        self.results += 1
        self.buttons[result.channel].state(["!disabled"])
        if result.need_passphrase:
            passphrase = self._ask(self, f"a test message by {LABELS[result.channel]}")
            if not passphrase:
                _say(self.result, Outcome("Not sent: the secrets need the passphrase.", "warn"))
                return
            self.send_test(result.channel, passphrase)
            return
        if result.outcome.tone == "ok" and self._trying:
            self._passphrase = self._trying  # it opened the secrets: not asked again
        _say(self.result, result.outcome)

    def remember(self, passphrase: str) -> None:
        """A passphrase that opened the secrets (the next test does not ask again)."""
        self._passphrase = passphrase

    def open_secrets(self) -> None:
        """One secrets window at a time: a second click brings it to the front."""
        if self.window is not None and self.window.winfo_exists():
            self.window.lift()
            return
        self.window = NotifySecretsWindow(self, self.layout, key_source_factory=self._factory,
                                          on_unlocked=self.remember)  # fmt: skip

    def destroy(self) -> None:
        self._bg.close()
        super().destroy()


class NotifySecretsWindow(tk.Toplevel):
    """Store or remove each channel's secret (module doc)."""

    def __init__(
        self,
        master: tk.Misc,
        layout: DataLayout,
        *,
        key_source_factory: KeySourceFactory = ps.choose_key_source,
        on_unlocked: Callable[[str], None] = lambda _p: None,
    ) -> None:
        super().__init__(master)
        self.title("Notification secrets")
        self.geometry("760x430")
        self.minsize(640, 400)
        apply_theme(self)
        _styles(self)
        self._on_unlocked = on_unlocked
        self.pass_var, self.pass2_var = tk.StringVar(self), tk.StringVar(self)
        self.values = {c: tk.StringVar(self) for c in SECRET_NAMES}
        self.states: dict[str, ttk.Label] = {}
        self.results = 0  # answers shown (tests wait on it)
        self.vault_mode = "checking"
        self._build()
        vault = Vault(layout, key_source_factory)  # only ever used on the worker thread
        self._bg: Background[SecretJob, SecretsDone] = Background(
            self, lambda job: run_secret_job(layout, vault, job), self._apply,
            name="notify-secrets", join_timeout_s=0,
        )  # fmt: skip
        self._bg.submit(SecretJob("probe"))
        self.protocol("WM_DELETE_WINDOW", self.destroy)

    def _build(self) -> None:
        box = ttk.Frame(self, style="Panel.TFrame", padding=(16, 12))
        box.pack(fill="both", expand=True)
        box.columnconfigure(1, weight=1)
        ttk.Label(box, text="Notification secrets", style="Section.TLabel").grid(
            row=0, column=0, columnspan=5, sticky="w"
        )
        self.vault_label = wrapping(ttk.Label(box, text="Checking the secrets file…",
                                              style="NTInfo.TLabel", justify="left"))  # fmt: skip
        self.vault_label.grid(row=1, column=0, columnspan=5, sticky="ew", pady=(4, 6))
        self.pass_row = ttk.Frame(box, style="Panel.TFrame")
        ttk.Label(self.pass_row, text="Passphrase:", style="Panel.TLabel").pack(side="left")
        ttk.Entry(self.pass_row, textvariable=self.pass_var, show=MASK, width=24).pack(
            side="left", padx=(6, 12)
        )
        self.pass2_label = ttk.Label(self.pass_row, text="Again:", style="Panel.TLabel")
        self.pass2_entry = ttk.Entry(self.pass_row, textvariable=self.pass2_var, show=MASK,
                                     width=24)  # fmt: skip
        self.store_buttons: dict[str, ttk.Button] = {}
        for i, channel in enumerate(SECRET_NAMES):
            row = 3 + i
            ttk.Label(box, text=secret_label(channel) + ":", style="Panel.TLabel").grid(
                row=row, column=0, sticky="w", pady=4
            )
            ttk.Entry(box, textvariable=self.values[channel], show=MASK).grid(
                row=row, column=1, sticky="ew", padx=(8, 0)
            )
            store = ttk.Button(box, text="Store", width=8,
                               command=functools.partial(self.store, channel))  # fmt: skip
            store.grid(row=row, column=2, padx=(6, 0))
            self.store_buttons[channel] = store
            remove = functools.partial(self.remove, channel)
            ttk.Button(box, text="Remove", width=8, command=remove).grid(
                row=row, column=3, padx=(6, 0)
            )
            self.states[channel] = ttk.Label(box, text="", style="NTInfo.TLabel", width=11)
            self.states[channel].grid(row=row, column=4, padx=(8, 0))
        self.message = wrapping(ttk.Label(box, text="", style="NTInfo.TLabel", justify="left"))
        self.message.grid(row=7, column=0, columnspan=5, sticky="ew", pady=(8, 0))
        note = (
            "Stored encrypted with the Robinhood keys, never in settings.json, never shown "
            "again. Turn each channel on in the Notifications settings, then Send test."
        )
        wrapping(ttk.Label(box, text=note, style="PanelMuted.TLabel", justify="left")).grid(
            row=8, column=0, columnspan=5, sticky="ew", pady=(8, 0)
        )  # fmt: skip
        ttk.Button(box, text="Close", command=self.destroy).grid(
            row=9, column=4, sticky="e", pady=(10, 0)
        )
        box.rowconfigure(8, weight=1)

    def _job(self, kind: str, channel: str, value: str = "") -> SecretJob:
        return SecretJob(kind, channel, value, self.pass_var.get(), self.pass2_var.get())

    def store(self, channel: str) -> None:
        value = self.values[channel].get().strip()
        if not value:
            _say(self.message, Outcome(f"Type the {secret_label(channel)} first.", "warn"))
            return
        _say(self.message, Outcome(f"Storing the {secret_label(channel)}…"))
        self._bg.submit(self._job("store", channel, value))

    def remove(self, channel: str) -> None:
        _say(self.message, Outcome(f"Removing the {secret_label(channel)}…"))
        self._bg.submit(self._job("remove", channel))

    def _apply(self, result: SecretsDone) -> None:
        self.results += 1
        done = result.done
        for channel, label in self.states.items():
            stored = channel in result.stored
            label.configure(text="stored" if stored else "not stored",
                            style="NTOk.TLabel" if stored else "NTInfo.TLabel")  # fmt: skip
        if result.vault is not None:
            self._show_vault(result.vault)
        if done.outcome is not None:
            _say(self.message, done.outcome)
        if done.ok and done.kind == "store":
            self.values[result.channel].set("")  # stored: the value is not kept in the window
        if done.ok and self.pass_var.get():
            self._on_unlocked(self.pass_var.get())

    def _show_vault(self, state: VaultState) -> None:
        self.vault_mode = state.mode
        self.pass2_label.pack_forget()
        self.pass2_entry.pack_forget()
        self.pass_row.grid_forget()
        if state.mode in ("new", "locked"):
            self.pass_row.grid(row=2, column=0, columnspan=5, sticky="w", pady=(0, 6))
        if state.mode == "new":
            self.pass2_label.pack(side="left")
            self.pass2_entry.pack(side="left", padx=(6, 0))
        outcome = vault_outcome(state, stored="Secrets", locked_hint="store or remove a secret")
        _say(self.vault_label, outcome)

    def destroy(self) -> None:
        self._bg.close()
        for var in (self.pass_var, self.pass2_var, *self.values.values()):
            var.set("")  # nothing typed lingers in the Tcl interpreter
        super().destroy()
