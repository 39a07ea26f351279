"""The hub's dark theme (original-behaviour.md §4.1), shared by every GUI module.

One place for the colours and fonts so that the ANALYTICS tab, the hub and later dialogs look
like one program: ttk "clam" (the one built-in theme whose colours can all be changed) with the
original's background, panel, text and accent colours.
"""

from __future__ import annotations

import logging
import math
import tkinter as tk
from dataclasses import dataclass
from tkinter import font as tkfont
from tkinter import ttk
from typing import Any, Literal

log = logging.getLogger(__name__)

BG = "#070B10"
PANEL = "#0E1626"
PANEL_HI = "#14203A"  # headings, buttons: a step lighter than a panel
BORDER = "#1F2E48"
GRID = "#18243A"
TEXT = "#C7D1DB"
MUTED = "#7F8EA3"
ACCENT = "#00FF66"
NEGATIVE = "#FF5C6C"
WARNING = "#FFB347"
SELECT = "#1D3A5C"
LOSS_FILL = "#4A1822"  # drawdown areas: a dark red that keeps the lines on top readable
PEAK = "#5E6E86"
# The charts' line colours (original-behaviour.md §4.4), shared by the coin chart and the
# neural-level tiles so a LONG level and a long bound read as the same thing.
LONG_BLUE = "#4DA3FF"  # long bounds, LONG levels
SHORT_ORANGE = WARNING  # short bounds, SHORT levels
AVG_YELLOW = "#FFD84D"  # the average cost line
PURPLE = "#B98CFF"  # the ASK line, DCA fills
BID_TEAL = "#2EC4B6"  # the BID line

Tone = Literal["positive", "negative", "neutral"]
TONE_COLOURS: dict[str, str] = {"positive": ACCENT, "negative": NEGATIVE, "neutral": TEXT}

Font = tuple[str, int] | tuple[str, int, str]


def tone_of(value: float | None) -> Tone:
    """Colour a signed amount: gains green, losses red, zero or unknown plain."""
    if value is None or math.isnan(value) or round(value, 2) == 0:
        return "neutral"
    return "positive" if value > 0 else "negative"


@dataclass(frozen=True)
class Theme:
    """Fonts as descriptions (tuples), so no named Tk font has to be kept alive."""

    family: str
    body: Font
    small: Font
    bold: Font
    small_bold: Font
    section: Font
    title: Font
    value: Font

    def measure(self, widget: tk.Misc, text: str, which: Font | None = None) -> int:
        """Pixel width of ``text`` in a font, for laying out canvas labels."""
        return int(tkfont.Font(root=widget, font=which or self.small).measure(text))

    def line_height(self, widget: tk.Misc, which: Font | None = None) -> int:
        return int(tkfont.Font(root=widget, font=which or self.body).metrics("linespace"))


def _inputs(style: ttk.Style) -> None:
    """Entries, comboboxes (readonly ones too: clam paints them light grey) and progress bars."""
    field = {"fieldbackground": PANEL_HI, "foreground": TEXT, "background": PANEL_HI}
    for name in ("TEntry", "TCombobox", "TSpinbox"):
        style.configure(name, **field, bordercolor=BORDER, insertcolor=TEXT, arrowcolor=TEXT)
        style.map(
            name,
            fieldbackground=[("readonly", PANEL_HI), ("disabled", PANEL)],
            foreground=[("disabled", MUTED), ("readonly", TEXT)],
            selectbackground=[("readonly", PANEL_HI), ("!readonly", SELECT)],
            selectforeground=[("readonly", TEXT), ("!readonly", TEXT)],
        )
    style.configure(
        "Horizontal.TProgressbar", background=ACCENT, troughcolor=BG, bordercolor=BORDER
    )
    style.configure("TNotebook", background=BG, bordercolor=BORDER, tabmargins=(2, 4, 2, 0))
    style.configure(
        "TNotebook.Tab", background=PANEL, foreground=MUTED, bordercolor=BORDER, padding=(12, 4)
    )
    style.map(
        "TNotebook.Tab",
        background=[("selected", PANEL_HI), ("active", SELECT)],
        foreground=[("selected", ACCENT), ("active", TEXT)],
    )
    style.configure("TPanedwindow", background=BG)


def _panel_inputs(root: tk.Misc, style: ttk.Style) -> None:
    """Inputs on a panel (``Panel.TEntry``, ``Panel.TCombobox``, ``Panel.TCheckbutton``): a
    field darker than the panel, which clam would draw light; and dark drop-down lists."""
    field: dict[str, Any] = {
        "fieldbackground": BG, "foreground": TEXT, "bordercolor": BORDER, "lightcolor": BORDER,
        "padding": (4, 2),
    }  # fmt: skip
    style.configure("Panel.TCombobox", background=PANEL_HI, arrowcolor=TEXT, **field)
    style.map("Panel.TCombobox", fieldbackground=[("readonly", BG)],
              foreground=[("readonly", TEXT)], background=[("active", SELECT)])  # fmt: skip
    style.configure("Panel.TEntry", insertcolor=TEXT, **field)
    style.map("Panel.TEntry", fieldbackground=[("readonly", BG)])
    style.configure("Panel.TCheckbutton", background=PANEL, foreground=TEXT,
                    indicatorbackground=BG, indicatorforeground=ACCENT)  # fmt: skip
    style.map("Panel.TCheckbutton", background=[("active", PANEL)],
              indicatorbackground=[("selected", BG)])  # fmt: skip
    for key, value in (("background", PANEL), ("foreground", TEXT),
                       ("selectBackground", SELECT), ("selectForeground", TEXT)):  # fmt: skip
        root.option_add(f"*TCombobox*Listbox.{key}", value)


def _scrollbars(style: ttk.Style) -> None:
    """Both orientations dark, also when there is nothing to scroll (clam draws a disabled
    scrollbar light grey)."""
    for name in ("Vertical.TScrollbar", "Horizontal.TScrollbar"):
        style.configure(name, background=PANEL_HI, troughcolor=PANEL, arrowcolor=MUTED,
                        bordercolor=BORDER, lightcolor=PANEL_HI, darkcolor=PANEL_HI)  # fmt: skip
        style.map(name, background=[("disabled", PANEL), ("active", SELECT)],
                  arrowcolor=[("disabled", BORDER)])  # fmt: skip


def scrollbars(
    parent: tk.Misc, view: tk.Listbox | tk.Canvas | tk.Text | ttk.Treeview
) -> tuple[ttk.Scrollbar, ttk.Scrollbar]:
    """``view`` at row 2 of ``parent``'s grid (under a heading) with its vertical scrollbar on
    its right and the horizontal one below (the panels' shared layout)."""
    y = ttk.Scrollbar(parent, orient="vertical", command=view.yview)
    x = ttk.Scrollbar(parent, orient="horizontal", command=view.xview)
    view.configure(yscrollcommand=y.set, xscrollcommand=x.set)
    view.grid(row=2, column=0, sticky="nsew", pady=(4, 0))
    y.grid(row=2, column=1, sticky="ns", pady=(4, 0))
    x.grid(row=3, column=0, sticky="ew")
    return y, x


def wrapping(label: ttk.Label, *, margin: int = 8, least: int = 200) -> ttk.Label:
    """Long text (a reason, an error's advice) wraps to the label's width less ``margin``, and
    at least ``least`` px, instead of being cut off at the window's edge."""

    def fit(event: tk.Event[tk.Misc]) -> None:
        label.configure(wraplength=max(event.width - margin, least))

    label.bind("<Configure>", fit, add="+")
    return label


def apply_theme(root: tk.Misc) -> Theme:
    """Style every ttk widget under ``root`` dark; safe to call more than once."""
    family = str(tkfont.nametofont("TkDefaultFont", root=root).actual("family"))
    theme = Theme(
        family=family,
        body=(family, 10),
        small=(family, 9),
        bold=(family, 10, "bold"),
        small_bold=(family, 9, "bold"),
        section=(family, 10, "bold"),
        title=(family, 14, "bold"),
        value=(family, 18, "bold"),
    )
    style = ttk.Style(root)
    if style.theme_use() != "clam":
        style.theme_use("clam")
    style.configure(
        ".",
        background=BG,
        foreground=TEXT,
        fieldbackground=PANEL,
        bordercolor=BORDER,
        darkcolor=PANEL,
        lightcolor=PANEL,
        troughcolor=BG,
        focuscolor=ACCENT,
        selectbackground=SELECT,
        selectforeground=TEXT,
        font=theme.body,
    )
    style.configure("TFrame", background=BG)
    style.configure("Panel.TFrame", background=PANEL)
    style.configure("TLabel", background=BG, foreground=TEXT)
    style.configure("Panel.TLabel", background=PANEL, foreground=TEXT)
    style.configure("Section.TLabel", background=PANEL, foreground=TEXT, font=theme.section)
    style.configure("Muted.TLabel", background=BG, foreground=MUTED, font=theme.small)
    style.configure("PanelMuted.TLabel", background=PANEL, foreground=MUTED, font=theme.small)
    style.configure("Title.TLabel", background=BG, foreground=TEXT, font=theme.title)
    style.configure("Badge.TLabel", background=PANEL_HI, foreground=ACCENT, font=theme.bold)
    style.configure("Notice.TLabel", background=BG, foreground=ACCENT, font=theme.bold)
    style.configure("Status.TLabel", background=PANEL, foreground=MUTED, font=theme.small)
    style.configure("Problem.TLabel", background=PANEL, foreground=WARNING, font=theme.small)
    style.configure(
        "TButton", background=PANEL_HI, foreground=TEXT, bordercolor=BORDER, padding=(10, 4)
    )
    style.map(
        "TButton",
        background=[("disabled", PANEL), ("pressed", SELECT), ("active", "#1B2B4A")],
        foreground=[("disabled", MUTED)],
    )
    rowheight = theme.line_height(root) + 6
    style.configure(
        "Treeview",
        background=PANEL,
        fieldbackground=PANEL,
        foreground=TEXT,
        bordercolor=BORDER,
        rowheight=rowheight,
    )
    style.map("Treeview", background=[("selected", SELECT)], foreground=[("selected", TEXT)])
    style.configure(
        "Treeview.Heading",
        background=PANEL_HI,
        foreground=TEXT,
        bordercolor=BORDER,
        relief="flat",
        font=theme.small_bold,
        padding=(4, 3),
    )
    style.map("Treeview.Heading", background=[("active", "#1B2B4A")])
    _scrollbars(style)
    _inputs(style)
    _panel_inputs(root, style)
    if isinstance(root, tk.Tk | tk.Toplevel):
        root.configure(background=BG)
    log.debug("dark theme applied (font family %s)", family)
    return theme
