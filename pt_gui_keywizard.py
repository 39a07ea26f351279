"""The Robinhood API setup wizard: make a key pair, test it read-only, store it encrypted.

The original wizard (original-behaviour.md §4.8) wrote the trading key as plain text next to the
code and ran its test request on the GUI thread. Here the flow is the same (instructions,
``Generate keys``, paste the API key, ``Test credentials``, ``Save``) but:

- keys go only into the encrypted vault (:mod:`pt_secrets`); the original's plain
  ``r_key.txt`` / ``r_secret.txt`` can be imported, and the user is told to delete them;
- every slow thing (scrypt, the vault file, the signed test request) runs on one worker thread
  (:mod:`pt_gui_keywizard_worker`, through :class:`pt_gui_background.Background`) that holds
  no widget; only the answers are drawn on the Tk thread, so the window never freezes on a
  slow or unreachable Robinhood;
- when no OS keyring is usable the passphrase is typed into the wizard itself (twice for a new
  vault), so no terminal is needed;
- only the public key is ever shown; error texts pass through :func:`pt_logging.redact`.
"""

from __future__ import annotations

import functools
import logging
import tkinter as tk
from collections.abc import Callable
from pathlib import Path
from tkinter import filedialog, ttk

import pt_logging
import pt_secrets as ps
from pt_gui_background import Background
from pt_gui_keywizard_worker import (
    DEFAULT_URL,
    Done,
    Job,
    KeySourceFactory,
    Outcome,
    Vault,
    VaultMode,
    VaultState,
    api_key_problem,
    run_wizard_job,
    vault_outcome,
)
from pt_gui_theme import ACCENT, BG, NEGATIVE, PANEL, TEXT, WARNING, apply_theme, wrapping
from pt_secrets import RobinhoodCredentials, SecretsError
from pt_state import DataLayout

__all__ = ["KeyWizard"]

log = logging.getLogger(__name__)

TITLE = "Robinhood API Setup"
PORTAL_URL = "https://robinhood.com/account/crypto"
DOCS_URL = "https://docs.robinhood.com/crypto/trading/"
LINKS = ((f"Copy link: {PORTAL_URL[8:]}", PORTAL_URL), ("Copy link: API docs", DOCS_URL))
MASK = "•"
ACK_TEXT = "I understand the private key gives trading access and I will not share it"
STEPS_TEXT = (
    "1.  Press Generate keys (step 2). Only the public key is shown; the private key never "
    "leaves this computer.\n"
    "2.  In a web browser on a computer, sign in at robinhood.com and open Account → Settings → "
    "Crypto → API Trading → Add key.\n"
    "3.  Paste the public key, allow the permissions READ and TRADE, and create the key.\n"
    "4.  Robinhood then shows an API key (rh-api-…): paste it in step 3, test it, and save."
)


def _styles(root: tk.Misc) -> None:
    """The wizard's own styles: messages by tone, and roomier entries (on the theme's
    ``Panel.TEntry``) whose read-only public key shows in the accent colour."""
    style = ttk.Style(root)
    for tone, colour in (("Info", TEXT), ("Ok", ACCENT), ("Warn", WARNING), ("Error", NEGATIVE)):
        style.configure(f"KW{tone}.TLabel", background=PANEL, foreground=colour)
    style.configure("KW.Panel.TEntry", padding=(6, 3))
    style.map("KW.Panel.TEntry", foreground=[("readonly", ACCENT)])


class _Scrolled(ttk.Frame):
    """A vertically scrolling area for the steps: at the minimum window size a long error
    message would otherwise push step 4 below the edge, out of reach."""

    def __init__(self, master: tk.Misc) -> None:
        super().__init__(master)
        self.canvas = tk.Canvas(self, background=BG, highlightthickness=0, borderwidth=0)
        bar = ttk.Scrollbar(self, orient="vertical", command=self.canvas.yview)
        self.canvas.configure(yscrollcommand=bar.set)
        bar.pack(side="right", fill="y")
        self.canvas.pack(side="left", fill="both", expand=True)
        self.inner = ttk.Frame(self.canvas, padding=(16, 0, 10, 10))
        self.inner.columnconfigure(0, weight=1)
        item = self.canvas.create_window(0, 0, window=self.inner, anchor="nw")
        self.inner.bind("<Configure>", lambda _e: self._fit())
        self.canvas.bind("<Configure>", lambda e: self.canvas.itemconfigure(item, width=e.width))

    def _fit(self) -> None:
        self.canvas.configure(scrollregion=(0, 0, 1, self.inner.winfo_reqheight()))

    def wheel(self, event: tk.Event[tk.Misc]) -> None:
        down = event.num == 5 or event.delta < 0
        self.canvas.yview_scroll(3 if down else -3, "units")

    def see(self, widget: tk.Misc) -> None:
        """Scroll just enough to show ``widget`` (a message that has just changed)."""
        self.update_idletasks()  # lay out the new text first, or its old height is measured
        self._fit()
        height = max(self.inner.winfo_reqheight(), 1)
        top = widget.winfo_rooty() - self.inner.winfo_rooty()
        bottom, view = top + widget.winfo_height(), self.canvas.winfo_height()
        first, last = self.canvas.yview()
        if bottom > last * height:
            self.canvas.yview_moveto(max(0.0, min(top, bottom - view)) / height)
        elif top < first * height:
            self.canvas.yview_moveto(top / height)


class KeyWizard(tk.Toplevel):
    """ "Robinhood API Setup" for the data folder ``layout``; ``on_saved`` runs on the Tk thread
    after keys were saved or imported (the hub refreshes its "Robinhood: configured" line)."""

    def __init__(
        self,
        master: tk.Misc,
        layout: DataLayout,
        *,
        robinhood_url: str = DEFAULT_URL,
        key_source_factory: KeySourceFactory = ps.choose_key_source,
        ask_folder: Callable[..., object] = filedialog.askdirectory,
        on_saved: Callable[[], None] | None = None,
        test_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(master)
        self.title(TITLE)
        self.geometry("980x720")
        self.minsize(860, 620)
        self.theme = apply_theme(self)
        _styles(self)
        self.layout, self.robinhood_url = layout, robinhood_url.rstrip("/")
        self._ask_folder, self._on_saved, self._timeout = ask_folder, on_saved, test_timeout_s
        self._seed: bytes | None = None
        self._configured = False
        self.vault_mode: VaultMode = "checking"
        self.api_key_var, self.private_var = tk.StringVar(self), tk.StringVar(self)
        self.public_var = tk.StringVar(self)
        self.pass_var, self.pass2_var = tk.StringVar(self), tk.StringVar(self)
        self.show_key_var, self.ack_var = tk.BooleanVar(self), tk.BooleanVar(self)
        self._build()
        vault = Vault(layout, key_source_factory)  # only ever used on the worker thread
        # closing does not wait: a test still waiting on Robinhood ends on the worker by itself
        self._bg: Background[Job, Done] = Background(
            self, lambda job: run_wizard_job(vault, job), self._apply, name="keywizard-worker",
            join_timeout_s=0,
        )  # fmt: skip
        self._submit(Job("probe"))
        self.protocol("WM_DELETE_WINDOW", self.destroy)

    # -- layout --------------------------------------------------------------------------------

    def _section(self, row: int, title: str) -> ttk.Frame:
        box = ttk.Frame(self.scroller.inner, style="Panel.TFrame", padding=(12, 6, 12, 8))
        box.grid(row=row, column=0, sticky="ew", pady=(8, 0))
        box.columnconfigure(1, weight=1)
        ttk.Label(box, text=title, style="Section.TLabel").grid(
            row=0, column=0, columnspan=2, sticky="w", pady=(0, 4)
        )
        return box

    def _msg(self, parent: ttk.Frame, row: int, text: str = "") -> ttk.Label:
        label = ttk.Label(parent, text=text, style="KWInfo.TLabel", justify="left", anchor="w")
        label.grid(row=row, column=0, columnspan=4, sticky="ew", pady=(4, 0))
        return wrapping(label)

    def _entry(self, parent: ttk.Frame, var: tk.StringVar, *, secret: bool) -> ttk.Entry:
        return ttk.Entry(
            parent, textvariable=var, style="KW.Panel.TEntry", show=MASK if secret else ""
        )

    def _button(self, parent: ttk.Frame, text: str, command: Callable[[], object]) -> ttk.Button:
        return ttk.Button(parent, text=text, command=command)

    def _build(self) -> None:
        head = ttk.Frame(self, padding=(16, 10, 16, 0))
        head.pack(fill="x")
        head.columnconfigure(0, weight=1)
        ttk.Label(head, text=TITLE, style="Title.TLabel").grid(row=0, column=0, sticky="w")
        ttk.Label(head, style="Muted.TLabel", text=(
            "Connects PowerTrader to your Robinhood crypto account for live trading. Demo and "
            "paper trading need no keys.")).grid(row=1, column=0, sticky="w")  # fmt: skip
        foot = ttk.Frame(self, padding=(16, 6, 16, 10))
        foot.pack(side="bottom", fill="x")
        foot.columnconfigure(0, weight=1)
        self.note = wrapping(ttk.Label(foot, style="Muted.TLabel", text=(
            "Only the public key is ever shown. Nothing here places an order.")))  # fmt: skip
        self.note.grid(row=0, column=0, sticky="ew")
        self._button(foot, "Close", self.destroy).grid(row=0, column=1, padx=(8, 0))
        self.scroller = _Scrolled(self)
        self.scroller.pack(fill="both", expand=True)
        for sequence in ("<MouseWheel>", "<Button-4>", "<Button-5>"):
            self.bind(sequence, self.scroller.wheel)
        self._build_vault()
        self._build_intro(self._section(1, "Step 1 · Create the key at Robinhood"))
        self._build_keys(self._section(2, "Step 2 · Your key pair"))
        self._build_test(self._section(3, "Step 3 · API key and a read-only test"))
        self._build_save(self._section(4, "Step 4 · Save"))

    def _build_vault(self) -> None:
        box = ttk.Frame(self.scroller.inner, style="Panel.TFrame", padding=(12, 6))
        box.grid(row=0, column=0, sticky="ew", pady=(8, 0))
        box.columnconfigure(0, weight=1)
        self.vault_label = self._msg(box, 0, "Checking the secrets file…")
        self.vault_label.grid_configure(pady=0)
        self.pass_row = row = ttk.Frame(box, style="Panel.TFrame")
        ttk.Label(row, text="Passphrase:", style="Panel.TLabel").pack(side="left")
        self.pass_entry = self._entry(row, self.pass_var, secret=True)
        self.pass_entry.configure(width=26)
        self.pass_entry.pack(side="left", padx=(6, 12))
        self.pass_entry.bind("<Return>", lambda _e: self._enter_pressed())
        self.pass2_label = ttk.Label(row, text="Again:", style="Panel.TLabel")
        self.pass2_entry = self._entry(row, self.pass2_var, secret=True)
        self.pass2_entry.configure(width=26)
        self.unlock_button = self._button(row, "Unlock", self.unlock)

    def _build_intro(self, box: ttk.Frame) -> None:
        self.link_buttons = []
        for i, (text, url) in enumerate(LINKS):
            command = functools.partial(self._copy, url, text.removeprefix("Copy "))
            self.link_buttons.append(self._button(box, text, command))
            self.link_buttons[-1].grid(row=0, column=2 + i, padx=(8, 0), sticky="e")
        steps = ttk.Label(box, text=STEPS_TEXT, style="Panel.TLabel", justify="left")
        wrapping(steps).grid(row=1, column=0, columnspan=4, sticky="ew", pady=(2, 0))

    def _build_keys(self, box: ttk.Frame) -> None:
        self.generate_button = self._button(box, "Generate keys", self.generate_keys)
        self.generate_button.grid(row=1, column=0, sticky="ew", padx=(0, 10))
        self.public_entry = self._entry(box, self.public_var, secret=False)
        self.public_entry.state(["readonly"])
        self.public_entry.grid(row=1, column=1, sticky="ew")
        self.copy_button = self._button(box, "Copy public key", self.copy_public_key)
        self.copy_button.grid(row=1, column=2, sticky="ew", padx=(8, 0))
        self.key_note = self._msg(box, 2, "No keys yet: press Generate keys.")
        ttk.Label(box, text="Own private key:", style="PanelMuted.TLabel").grid(
            row=3, column=0, sticky="w", pady=(8, 0)
        )
        self.private_entry = self._entry(box, self.private_var, secret=True)
        self.private_entry.grid(row=3, column=1, sticky="ew", pady=(8, 0))
        self._button(box, "Use this key", lambda: self.use_private_key(self.private_var.get())
                     ).grid(row=3, column=2, sticky="ew", padx=(8, 0), pady=(8, 0))  # fmt: skip

    def _build_test(self, box: ttk.Frame) -> None:
        ttk.Label(box, text="API key:", style="Panel.TLabel").grid(row=1, column=0, sticky="w")
        self.api_key_entry = self._entry(box, self.api_key_var, secret=True)
        self.api_key_entry.grid(row=1, column=1, sticky="ew", padx=(10, 0))
        ttk.Checkbutton(box, text="Show", variable=self.show_key_var, style="Panel.TCheckbutton",
                        command=self._toggle_key).grid(row=1, column=2, padx=(8, 0))  # fmt: skip
        self.test_button = self._button(
            box, "Test credentials (read-only, no trading)", self.test_credentials
        )
        self.test_button.grid(row=1, column=3, padx=(8, 0))
        self.test_label = self._msg(box, 2, "Not tested yet.")

    def _toggle_key(self) -> None:
        self.api_key_entry.configure(show="" if self.show_key_var.get() else MASK)

    def _build_save(self, box: ttk.Frame) -> None:
        ttk.Checkbutton(box, text=ACK_TEXT, variable=self.ack_var, style="Panel.TCheckbutton").grid(
            row=1, column=0, columnspan=4, sticky="w"
        )
        buttons = ttk.Frame(box, style="Panel.TFrame")
        buttons.grid(row=2, column=0, columnspan=4, sticky="w", pady=(6, 0))
        self.save_button = self._button(buttons, "Save", self.save)
        self.save_button.pack(side="left")
        self.import_button = self._button(
            buttons, "Import original r_key.txt / r_secret.txt…", self.import_original
        )
        self.import_button.pack(side="left", padx=(8, 0))
        self.save_label = self._msg(box, 3, "")

    # -- showing state -------------------------------------------------------------------------

    def _say(self, label: ttk.Label, outcome: Outcome) -> None:
        label.configure(text=outcome.text, style=f"KW{outcome.tone.capitalize()}.TLabel")

    def _show_vault(self, state: VaultState) -> None:
        self.vault_mode, self._configured = state.mode, state.configured
        for widget in (self.pass2_label, self.pass2_entry, self.unlock_button):
            widget.pack_forget()
        self.pass_row.grid_forget()
        if state.mode in ("new", "locked"):
            self.pass_row.grid(row=1, column=0, sticky="w", pady=(6, 0))
        if state.mode == "new":
            self.pass2_label.pack(side="left")
            self.pass2_entry.pack(side="left", padx=(6, 0))
        elif state.mode == "locked":
            self.unlock_button.pack(side="left")
        hint = "show, test, replace or import keys"
        self._say(self.vault_label, vault_outcome(state, stored="The keys", locked_hint=hint))
        if self._configured and self._seed is None:
            self._say(self.key_note, Outcome(
                "Keys are configured (stored encrypted). Unlock them above to see their public "
                "key, or generate new ones.", "ok"))  # fmt: skip

    def _set_keys(self, seed: bytes, public: str, note: Outcome) -> None:
        self._seed = seed
        self.public_var.set(public)
        self._say(self.key_note, note)

    def _adopt(self, creds: RobinhoodCredentials) -> None:
        self.api_key_var.set(creds.api_key)
        self._set_keys(creds.private_key_seed, creds.public_key_b64, Outcome(
            "Keys are configured (stored encrypted). This is their public key; it must be the "
            "one registered at Robinhood.", "ok"))  # fmt: skip

    def _set_busy(self) -> None:
        """The buttons that start a job are off while any job is on its way."""
        state = ["disabled"] if self.busy else ["!disabled"]
        for button in (self.test_button, self.save_button, self.import_button, self.unlock_button):
            button.state(state)

    # -- the steps -----------------------------------------------------------------------------

    @property
    def public_key(self) -> str:
        return self.public_var.get()

    @property
    def busy(self) -> bool:
        return not self._bg.idle

    def generate_keys(self) -> None:
        """A new Ed25519 pair (fast, no I/O); it replaces the stored one only on Save."""
        seed, public = ps.generate_keypair()
        self.api_key_var.set("")  # an API key belongs to one public key: the old one is useless
        self._set_keys(seed, public, Outcome(
            "New key pair, not saved yet. Copy the public key into Robinhood (step 1), paste the "
            "API key it gives you in step 3, then save."
            + (" The stored keys stay in use until you save." if self._configured else ""),
            "warn"))  # fmt: skip

    def use_private_key(self, text: str) -> bool:
        """Take an existing private key (base64 of the 32-byte seed or the 64-byte pair)."""
        try:
            seed = ps.parse_private_key(text, "the pasted private key")
        except SecretsError as exc:
            self._say(self.key_note, Outcome(pt_logging.redact(str(exc)), "error"))
            return False
        self.private_var.set("")
        self._set_keys(
            seed,
            ps.public_key_b64(seed),
            Outcome(
                "Using your private key (not saved yet). Its public key is shown above.", "warn"
            ),
        )
        return True

    def copy_public_key(self) -> None:
        if self.public_key:
            self._copy(self.public_key, "public key")

    def _copy(self, text: str, what: str) -> None:
        self.clipboard_clear()
        self.clipboard_append(text)
        self.note.configure(text=f"Copied the {what} to the clipboard.")
        if what == "public key":
            self._say(self.key_note, Outcome("Public key copied: paste it into Robinhood.", "ok"))

    def _creds(self, label: ttk.Label) -> RobinhoodCredentials | None:
        """The credentials on screen, or None after saying what is missing."""
        api_key = self.api_key_var.get().strip()
        problem = api_key_problem(api_key)
        if self._seed is None:
            problem = "Generate keys (step 2), use your own private key, or unlock stored ones."
        if problem is not None or self._seed is None:
            self._say(label, Outcome(problem or "", "error"))
            return None
        return RobinhoodCredentials(api_key, self._seed)

    def test_credentials(self) -> None:
        """Signed read-only GET of the BTC best bid/ask, on the worker thread."""
        creds = self._creds(self.test_label)
        if creds is not None:
            self._say(self.test_label, Outcome(f"Testing against {self.robinhood_url}…"))
            self._submit(Job("test", creds=creds, base_url=self.robinhood_url,
                              timeout=self._timeout))  # fmt: skip

    def save(self) -> None:
        if not self.ack_var.get():
            self._say(self.save_label, Outcome("Tick the box above first.", "error"))
            return
        creds = self._creds(self.save_label)
        if creds is not None and self._passphrase_ok():
            self._say(self.save_label, Outcome("Saving…"))
            self._submit(Job("save", self.pass_var.get(), self.pass2_var.get(), creds=creds))

    def import_original(self, folder: Path | None = None) -> None:
        """Encrypt the original's r_key.txt / r_secret.txt from ``folder`` (asked when None)."""
        if folder is None:
            title = "Folder holding r_key.txt and r_secret.txt"
            chosen = self._ask_folder(parent=self, mustexist=True, title=title)
            if not isinstance(chosen, str) or not chosen:
                return
            folder = Path(chosen)
        if self._passphrase_ok():
            self._say(self.save_label, Outcome(f"Importing from {folder}…"))
            self._submit(Job("import", self.pass_var.get(), self.pass2_var.get(), folder=folder))

    def unlock(self) -> None:
        if not self.pass_var.get():
            self._say(self.vault_label, Outcome("Enter the passphrase first.", "warn"))
            return
        self._submit(Job("unlock", self.pass_var.get()))

    def _enter_pressed(self) -> None:
        if self.vault_mode == "locked":
            self.unlock()

    def _passphrase_ok(self) -> bool:
        """A new passphrase is checked here too, so the user hears at once, not after a job."""
        if self.vault_mode != "new":
            return True
        first = self.pass_var.get()
        try:
            ps.check_new_passphrase(first)
        except ValueError as exc:
            self._say(self.save_label, Outcome(f"Passphrase (top of the window): {exc}.", "error"))
            return False
        if self.pass2_var.get() != first:
            self._say(self.save_label, Outcome(
                "The two passphrases at the top of the window differ.", "error"))  # fmt: skip
            return False
        return True

    # -- the worker's answers ------------------------------------------------------------------

    def _submit(self, job: Job) -> None:
        self._bg.submit(job)
        self._set_busy()

    def _apply(self, done: Done) -> None:
        self._set_busy()
        if done.vault is not None:
            self._show_vault(done.vault)
        if done.creds is not None:
            self._adopt(done.creds)
        if done.ok and done.kind in ("save", "import", "unlock"):
            self.pass_var.set("")
            self.pass2_var.set("")
        if done.outcome is not None:
            label = {"test": self.test_label, "probe": self.vault_label}.get(done.kind)
            if label is None and done.kind == "unlock":
                label = self.key_note if done.ok else self.vault_label
            label = label or self.save_label
            self._say(label, done.outcome)
            self.scroller.see(label)
        if done.ok and done.kind == "save":
            self._say(self.key_note, Outcome("Keys saved (encrypted).", "ok"))
        if done.ok and done.kind in ("save", "import"):
            log.info("Robinhood credentials stored by the API wizard (%s)", done.kind)
            if self._on_saved is not None:
                self._on_saved()

    def destroy(self) -> None:
        """Close at once: a test still waiting on Robinhood ends on the worker by itself."""
        self._bg.close()
        super().destroy()
