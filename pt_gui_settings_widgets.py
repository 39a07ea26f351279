"""The SETTINGS tab's building blocks: its styles, one field's widgets, and the typed
confirmation that guards live mode (the tab itself is :mod:`pt_gui_settings`).

The styles only recombine the theme's colours: an input is a shade darker than its panel so it
reads as a place to type, and a field with a problem turns red (field, label and the line under
it), so every problem is visible where it has to be fixed.
"""

from __future__ import annotations

import logging
import tkinter as tk
from tkinter import ttk

from pt_gui_settings_fields import FieldSpec, Raw
from pt_gui_theme import (
    ACCENT,
    BG,
    BORDER,
    LOSS_FILL,
    MUTED,
    NEGATIVE,
    PANEL,
    PANEL_HI,
    SELECT,
    TEXT,
    WARNING,
    Theme,
    apply_theme,
)

__all__ = ["LIVE_WORD", "FieldRow", "LiveConfirmDialog", "ask_live_confirmation",
           "configure_styles"]  # fmt: skip

log = logging.getLogger(__name__)

LIVE_WORD = "LIVE"


def configure_styles(root: tk.Misc) -> Theme:
    """The theme plus the form's own styles (inputs, red error marks), from theme colours."""
    theme = apply_theme(root)
    style = ttk.Style(root)
    for name, field_bg, border in (("Field", BG, BORDER), ("FieldError", LOSS_FILL, NEGATIVE)):
        style.configure(
            f"{name}.TEntry",
            fieldbackground=field_bg,
            foreground=TEXT,
            insertcolor=TEXT,
            bordercolor=border,
            lightcolor=border,
            padding=(4, 2),
        )
        style.configure(f"{name}.TCombobox", fieldbackground=field_bg, foreground=TEXT,
                        background=PANEL_HI, arrowcolor=TEXT, bordercolor=border,
                        lightcolor=border, padding=(4, 2))  # fmt: skip
        style.map(f"{name}.TCombobox", fieldbackground=[("readonly", field_bg)],
                  foreground=[("readonly", TEXT)], background=[("active", SELECT)])  # fmt: skip
        style.configure(f"{name}.TCheckbutton", background=PANEL, foreground=TEXT,
                        indicatorbackground=field_bg, indicatorforeground=ACCENT)  # fmt: skip
        style.map(f"{name}.TCheckbutton", background=[("active", PANEL)],
                  indicatorbackground=[("selected", field_bg)])  # fmt: skip
    style.configure("FieldLabel.TLabel", background=PANEL, foreground=TEXT)
    style.configure("FieldLabelError.TLabel", background=PANEL, foreground=NEGATIVE)
    style.configure("FieldError.TLabel", background=PANEL, foreground=NEGATIVE, font=theme.small)
    style.configure("FieldLive.TLabel", background=PANEL, foreground=ACCENT, font=theme.small)
    style.configure("FieldWarn.TLabel", background=PANEL, foreground=WARNING, font=theme.small)
    style.configure("SummaryOk.TLabel", background=BG, foreground=ACCENT, font=theme.bold)
    style.configure("SummaryError.TLabel", background=BG, foreground=NEGATIVE, font=theme.bold)
    style.configure("SummaryInfo.TLabel", background=BG, foreground=MUTED)
    style.configure("Unknown.TLabel", background=BG, foreground=WARNING, font=theme.small)
    for key, value in (("background", PANEL), ("foreground", TEXT),
                       ("selectBackground", SELECT), ("selectForeground", TEXT)):  # fmt: skip
        root.option_add(f"*TCombobox*Listbox.{key}", value)
    return theme


# ---------------------------------------------------------------------------------------------
# The typed confirmation for live mode


class LiveConfirmDialog(tk.Toplevel):
    """Asks for the word LIVE, typed exactly; anything else (or closing it) cancels."""

    def __init__(self, parent: tk.Misc) -> None:
        super().__init__(parent)
        theme = configure_styles(self)
        self.title("Switch to LIVE trading")
        self.transient(parent.winfo_toplevel())
        self.resizable(False, False)
        self.result = False
        self.typed = tk.StringVar(self)
        body = ttk.Frame(self, style="Panel.TFrame", padding=(20, 16))
        body.pack(fill="both", expand=True)
        ttk.Label(body, text="Switch to LIVE trading?", style="Section.TLabel",
                  font=theme.title).pack(anchor="w")  # fmt: skip
        ttk.Label(
            body,
            text="Live mode sends REAL orders with real money to Robinhood for every coin in "
            "the list, as soon as the trader runs. There is no stop loss.\n\n"
            f"To confirm, type {LIVE_WORD} (in capitals) and press Switch to live. "
            "Anything else cancels and nothing is saved.",
            style="Panel.TLabel",
            wraplength=440,
            justify="left",
        ).pack(anchor="w", pady=(8, 10))
        self.entry = ttk.Entry(body, textvariable=self.typed, style="Field.TEntry", width=14)
        self.entry.pack(anchor="w")
        buttons = ttk.Frame(body, style="Panel.TFrame")
        buttons.pack(fill="x", pady=(14, 0))
        self.cancel_button = ttk.Button(buttons, text="Cancel", command=self.cancel)
        self.cancel_button.pack(side="right")
        self.confirm_button = ttk.Button(buttons, text="Switch to live", command=self.confirm)
        self.confirm_button.pack(side="right", padx=(0, 8))
        self.bind("<Return>", lambda _e: self.confirm())
        self.bind("<Escape>", lambda _e: self.cancel())
        self.protocol("WM_DELETE_WINDOW", self.cancel)
        self.bind("<Map>", self._grab, add="+")
        self.entry.focus_set()

    def _grab(self, _event: object = None) -> None:
        try:  # modal while it shows; a window manager may refuse, which only loses modality
            self.grab_set()
        except tk.TclError:
            log.debug("live confirmation: grab refused")

    def confirm(self) -> None:
        self.result = self.typed.get() == LIVE_WORD
        self.destroy()

    def destroy(self) -> None:
        """Also drop the typed text's Tk variable here, on the Tk thread: left in the dialog's
        reference cycle, a later garbage collection on a worker thread would finalise it there,
        which Tk refuses ("main thread is not in main loop")."""
        super().destroy()
        self.__dict__.pop("typed", None)  # freed now, by reference count

    def cancel(self) -> None:
        self.result = False
        self.destroy()


def ask_live_confirmation(parent: tk.Misc) -> bool:
    """Show :class:`LiveConfirmDialog` and wait for it (a nested event loop, like any dialog)."""
    dialog = LiveConfirmDialog(parent)
    dialog.wait_window()
    return dialog.result


# ---------------------------------------------------------------------------------------------
# One field's widgets


class FieldRow:
    """Label, input, hint and the red error line under the input, for one setting."""

    def __init__(self, parent: ttk.Frame, row: int, spec: FieldSpec) -> None:
        self.spec = spec
        self.label = ttk.Label(parent, text=spec.label, style="FieldLabel.TLabel")
        self.label.grid(row=row, column=0, sticky="w", padx=(0, 12), pady=(5, 0))
        self.var: tk.StringVar | tk.BooleanVar
        self.input: ttk.Entry | ttk.Combobox | ttk.Checkbutton
        if spec.kind == "bool":
            self.var, self._class = tk.BooleanVar(parent, value=False), "TCheckbutton"
            self.input = ttk.Checkbutton(parent, variable=self.var, style="Field.TCheckbutton")
        elif spec.kind == "choice":
            self.var, self._class = tk.StringVar(parent), "TCombobox"
            self.input = ttk.Combobox(
                parent, textvariable=self.var, values=spec.choices, state="readonly", width=1
            )
            self.input.configure(style="Field.TCombobox")
        else:
            self.var, self._class = tk.StringVar(parent), "TEntry"
            self.input = ttk.Entry(parent, textvariable=self.var, style="Field.TEntry", width=1)
        self.input.grid(row=row, column=1, sticky="w" if spec.kind == "bool" else "ew", pady=(5, 0))
        side = ttk.Frame(parent, style="Panel.TFrame")
        side.grid(row=row, column=2, sticky="ew", padx=(14, 0), pady=(5, 0))
        side.columnconfigure(0, weight=1)
        self.hint = ttk.Label(side, text=spec.hint, style="PanelMuted.TLabel", wraplength=380)
        self.hint.grid(row=0, column=0, sticky="w")
        self.live = ttk.Label(side, text="", style="FieldLive.TLabel")
        self.live.grid(row=1, column=0, sticky="w")
        self.live.grid_remove()
        side.bind("<Configure>", self._wrap)
        self.error = ttk.Label(parent, text="", style="FieldError.TLabel", wraplength=600)
        self.error.grid(row=row + 1, column=1, columnspan=2, sticky="w")
        self.error.grid_remove()

    def _wrap(self, event: tk.Event[tk.Misc]) -> None:
        """Wrap the hints to the room the column has, so a narrow window shows them whole."""
        width = max(int(event.width) - 8, 160)
        if abs(int(str(self.hint.cget("wraplength")) or 0) - width) > 4:
            self.hint.configure(wraplength=width)
            self.live.configure(wraplength=width)

    @property
    def raw(self) -> Raw:
        value = self.var.get()
        return bool(value) if self.spec.kind == "bool" else str(value)

    @raw.setter
    def raw(self, value: Raw) -> None:
        if isinstance(self.var, tk.BooleanVar):
            self.var.set(bool(value))
        else:
            self.var.set(str(value))

    @property
    def error_text(self) -> str:
        return str(self.error.cget("text"))

    def show_error(self, message: str) -> None:
        """Red text under the field and a red field, or neither when ``message`` is empty."""
        self.input.configure(style=f"{'FieldError' if message else 'Field'}.{self._class}")
        self.label.configure(style="FieldLabelError.TLabel" if message else "FieldLabel.TLabel")
        self.error.configure(text=message)
        if message:
            self.error.grid()
        else:
            self.error.grid_remove()

    def show_live(self, text: str, *, warn: bool = False) -> None:
        self.live.configure(text=text, style="FieldWarn.TLabel" if warn else "FieldLive.TLabel")
        if text:
            self.live.grid()
        else:
            self.live.grid_remove()
