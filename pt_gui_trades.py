"""The hub's trading panels: "Current trades", the "Account" box and the "Trade history".

They show what the trader reports in ``state/trader_status.json`` and the fills in the journal
(original-behaviour.md §4.4). The Tk thread never reads a file: a
:class:`pt_gui_trades_data.TradesLoader` on a worker thread does, only when something changed;
the :class:`TradesFeed` hands each new :class:`TradesView` (ready text) to the widgets on the Tk
thread (:class:`pt_gui_background.Background`). A coin that cannot trade is shown in warning
colour with its reason above the table. The hub may embed :class:`TradesPanel` (all three), or
place :class:`AccountPanel`, :class:`TradesTable` and :class:`HistoryList` itself over one feed.
"""

from __future__ import annotations

import logging
import time
import tkinter as tk
from collections.abc import Callable
from datetime import tzinfo
from tkinter import font as tkfont
from tkinter import ttk
from typing import Literal

from pt_gui_background import Background
from pt_gui_theme import (
    MUTED,
    PANEL,
    SELECT,
    TEXT,
    TONE_COLOURS,
    WARNING,
    Theme,
    apply_theme,
    scrollbars,
    wrapping,
)
from pt_gui_trades_data import (
    READ_TIMEOUT_S,
    HistoryLine,
    TradeRow,
    TradesLoader,
    TradesView,
    account_lines,
)
from pt_state import DataLayout
from pt_strategy import StrategyConfig
from pt_types import Mode

# scrollbars lives in pt_gui_theme now; still exported here for the modules that used it
__all__ = ["AccountPanel", "HistoryList", "TradesFeed", "TradesPanel", "TradesTable", "scrollbars"]

log = logging.getLogger(__name__)

COLUMNS = (
    "Coin", "Qty", "Value", "Avg cost", "Ask", "DCA PnL", "Bid", "Sell PnL", "DCA stage",
    "DCA 24h", "Next DCA", "Trail line",
)  # fmt: skip
SAMPLES = (
    "DOGE", "0.00012345", "$10,000.00", "$43,250.5", "$43,250.5", "-10.00%", "$43,250.5",
    "-10.00%", "9", "2/2", "$57,247 · HARD", "$60,300 · ACTIVE · peak $60,601.5 · +0.33%",
)  # fmt: skip
GROUP_GAP, LABEL_GAP = 18, 10  # px between the account box's groups, and label to figure
TEXT_COLUMNS = frozenset({"Coin", "Next DCA", "Trail line"})
WEIGHTS = {"Next DCA": 1, "Trail line": 2}

# ---------------------------------------------------------------------------------------------
# The feed: the loader on a worker thread, each new view handed to the widgets on the Tk thread


class TradesFeed:
    """Refreshes every ``refresh_ms`` (0: only on demand) and hands each new view to the
    subscribed widgets; ``generation`` counts finished refreshes (tests wait on it). A failed
    read is logged and counts as "no change"."""

    def __init__(
        self,
        master: tk.Misc,
        loader: TradesLoader,
        config: StrategyConfig,
        *,
        refresh_ms: int = 1000,
    ) -> None:
        self.master, self.loader, self.config = master, loader, config
        self.view: TradesView | None = None
        self.generation = 0
        self._subscribers: list[Callable[[TradesView], None]] = []
        self._bg: Background[StrategyConfig, TradesView | None] = Background(
            master, loader.load, self._apply, name="trades-worker",
            refresh_job=lambda: self.config, on_error=lambda _config, _exc: None,
            join_timeout_s=READ_TIMEOUT_S + 1,
        )  # fmt: skip
        self.refresh_now()
        self._bg.every("tick", refresh_ms, self.refresh_now)

    def subscribe(self, callback: Callable[[TradesView], None]) -> None:
        self._subscribers.append(callback)
        if self.view is not None:
            callback(self.view)

    @property
    def busy(self) -> bool:
        return self._bg.busy

    def refresh_now(self) -> None:
        """Read now; while a read is running, once more after it."""
        self._bg.refresh()

    def set_config(self, config: StrategyConfig) -> None:
        """New settings (coins, DCA rules): the next refresh rebuilds the view with them."""
        self.config = config
        self.refresh_now()

    def _apply(self, view: TradesView | None) -> None:
        self.generation += 1
        if view is not None:
            self.view = view
            for callback in self._subscribers:
                callback(view)

    def close(self) -> None:
        """Stop the timers and the worker (after the read it is doing)."""
        self._bg.close()


# ---------------------------------------------------------------------------------------------
# Widgets


def _heading(parent: tk.Misc, title: str) -> ttk.Label:
    """The panel's title on the left and a muted note on the right (returned)."""
    frame = ttk.Frame(parent, style="Panel.TFrame")
    frame.grid(row=0, column=0, columnspan=2, sticky="ew")
    frame.columnconfigure(0, weight=1)
    ttk.Label(frame, text=title, style="Section.TLabel").grid(row=0, column=0, sticky="w")
    note = ttk.Label(frame, text="", style="PanelMuted.TLabel")
    note.grid(row=0, column=1, sticky="e")
    return note


class TradesTable(ttk.Frame):
    """ "Current trades": one row per held coin and per coin that cannot trade (in warning
    colour, its reason above the table too). Narrower than its columns, it scrolls sideways."""

    def __init__(self, parent: tk.Misc, feed: TradesFeed | None = None, *,
                 theme: Theme | None = None) -> None:  # fmt: skip
        super().__init__(parent, style="Panel.TFrame", padding=(10, 6, 10, 6))
        self.theme = theme or apply_theme(self.winfo_toplevel())
        self.note = _heading(self, "Current trades")
        self.banner = ttk.Label(self, text="", style="Problem.TLabel", anchor="w")
        # twelve columns share the hub's right pane: the smaller font keeps most of them in view
        ttk.Style(self).configure("Trades.Treeview", font=self.theme.small)
        self.tree = ttk.Treeview(self, columns=COLUMNS, show="headings", height=4,
                                 selectmode="browse", style="Trades.Treeview")  # fmt: skip
        self.tree.tag_configure("problem", foreground=WARNING)
        scrollbars(self, self.tree)
        self.rules = ttk.Label(self, text="", style="PanelMuted.TLabel", anchor="w")
        self.rules.grid(row=4, column=0, columnspan=2, sticky="ew", pady=(3, 0))
        self.empty = ttk.Label(self, text="No open trades", style="PanelMuted.TLabel")
        self.rowconfigure(2, weight=1)
        self.columnconfigure(0, weight=1)
        self._cell_font = tkfont.Font(font=self.theme.small)
        self._title_font = tkfont.Font(font=self.theme.small_bold)
        self._widths: dict[tuple[str, bool], int] = {}
        self._shown: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._least: dict[str, int] = {}
        self._least = self._size_columns()
        self._fit()
        self.tree.bind("<Configure>", self._fit, add="+")
        wrapping(self.banner, margin=4)
        wrapping(self.rules, margin=4)
        if feed is not None:
            feed.subscribe(self.show)

    def _measure(self, text: str, *, title: bool = False) -> int:
        """Pixel width of a cell or title, remembered: most texts come back every refresh, and
        each measurement is a round trip to Tk."""
        key = (text, title)
        width = self._widths.get(key)
        if width is None:
            if len(self._widths) > 5000:
                self._widths.clear()
            font = self._title_font if title else self._cell_font
            width = self._widths[key] = font.measure(text)
        return width

    def _size_columns(self, rows: tuple[TradeRow, ...] | None = None) -> dict[str, int]:
        """Each column as wide as its title and its widest cell (the samples before any row
        arrived), so the numbers take little room and the trail line gets the rest."""
        least: dict[str, int] = {}
        for i, col in enumerate(COLUMNS):
            texts = [SAMPLES[i]] if rows is None else [r.cells[i] for r in rows]
            widest = max(self._measure(col, title=True), *(self._measure(t) for t in texts), 0)
            least[col] = widest + 12
        if least != self._least:
            for col in COLUMNS:
                anchor: Literal["w", "e"] = "w" if col in TEXT_COLUMNS else "e"
                self.tree.heading(col, text=col, anchor=anchor)
                self.tree.column(col, minwidth=least[col], stretch=False, anchor=anchor)
        return least

    def _fit(self, _event: object = None) -> None:
        """Spare width goes to the long text columns; too narrow, the table scrolls sideways."""
        spare = max(0, self.tree.winfo_width() - 4 - sum(self._least.values()))
        total = sum(WEIGHTS.values())
        for col, width in self._least.items():
            self.tree.column(col, width=width + spare * WEIGHTS.get(col, 0) // total)

    def _rows(self, rows: tuple[TradeRow, ...]) -> None:
        """Change only what changed: a refresh mostly moves a few prices."""
        wanted = {row.coin for row in rows}
        gone = [iid for iid in self.tree.get_children() if iid not in wanted]
        if gone:
            self.tree.delete(*gone)
            for iid in gone:
                self._shown.pop(iid, None)
        for index, row in enumerate(rows):
            tags = ("problem",) if row.problem else ()
            if not self.tree.exists(row.coin):
                self.tree.insert("", index, iid=row.coin, values=row.cells, tags=tags)
                self._shown[row.coin] = (row.cells, tags)
                continue
            if self._shown.get(row.coin) != (row.cells, tags):
                self.tree.item(row.coin, values=row.cells, tags=tags)
                self._shown[row.coin] = (row.cells, tags)
            if self.tree.index(row.coin) != index:
                self.tree.move(row.coin, "", index)

    def show(self, view: TradesView) -> None:
        self.rules.configure(text=view.rules)
        least = self._size_columns(view.rows)
        if least != self._least:
            self._least = least
            self._fit()
        self._rows(view.rows)
        mode = f"{view.mode.upper()} · " if view.mode else ""
        self.note.configure(text=mode + view.note, style="Problem.TLabel" if view.stale
                            else "PanelMuted.TLabel")  # fmt: skip
        problems = [p for p in (view.problem, *view.coin_problems) if p]
        if problems:
            self.banner.configure(text="⚠ " + "\n⚠ ".join(problems))
            self.banner.grid(row=1, column=0, columnspan=2, sticky="ew", pady=(4, 0))
        else:
            self.banner.grid_remove()
        if view.rows:
            self.empty.place_forget()
        else:
            self.empty.place(in_=self.tree, relx=0.5, rely=0.55, anchor="center")

    def rows(self) -> list[tuple[str, ...]]:
        return [tuple(str(v) for v in self.tree.item(i, "values"))
                for i in self.tree.get_children()]  # fmt: skip


class AccountPanel(ttk.Frame):
    """The "Account" box: each label with its figure on its right, realized PnL coloured; in
    up to ``columns`` side-by-side groups, fewer when the box is too narrow for them."""

    def __init__(self, parent: tk.Misc, feed: TradesFeed | None = None, *, columns: int = 1,
                 theme: Theme | None = None) -> None:  # fmt: skip
        super().__init__(parent, style="Panel.TFrame", padding=(10, 6, 10, 8))
        self.theme = theme or apply_theme(self.winfo_toplevel())
        self.max_columns, self.columns = max(1, columns), 0
        ttk.Label(self, text="Account", style="Section.TLabel").grid(row=0, column=0, sticky="w")
        self.labels: list[ttk.Label] = []
        self.values: dict[str, ttk.Label] = {}
        for line in account_lines(None, None, StrategyConfig(coins=())):
            self.labels.append(ttk.Label(self, text=line.label, style="PanelMuted.TLabel"))
            value = ttk.Label(self, text=line.value, style="Panel.TLabel", font=self.theme.bold)
            self.values[line.label] = value
        self._place(self.max_columns)
        if self.max_columns > 1:
            self.bind("<Configure>", self._reflow, add="+")
        if feed is not None:
            feed.subscribe(self.show)

    def _place(self, columns: int) -> None:
        if columns == self.columns:
            return
        self.columns = columns
        for k in range(2 * self.max_columns):
            self.columnconfigure(k, weight=0)
        for i, (label, value) in enumerate(zip(self.labels, self.values.values(), strict=True)):
            row, col = 1 + i // columns, 2 * (i % columns)
            label.grid(row=row, column=col, sticky="w", pady=1,
                       padx=(0 if col == 0 else GROUP_GAP, LABEL_GAP))  # fmt: skip
            value.grid(row=row, column=col + 1, sticky="e", pady=1)
            self.columnconfigure(col + 1, weight=1)

    def _reflow(self, event: tk.Event[tk.Misc] | None = None) -> None:
        """As many groups side by side as fit without cutting a figure (on a resize, and when
        the figures grew)."""
        width = self.winfo_width() if event is None else event.width
        if self.max_columns == 1 or width <= 1:
            return
        label = max(w.winfo_reqwidth() for w in self.labels)
        value = max(80, *(w.winfo_reqwidth() for w in self.values.values()))
        fits = (width - 20 + GROUP_GAP) // (label + value + LABEL_GAP + GROUP_GAP)
        self._place(max(1, min(self.max_columns, fits)))

    def show(self, view: TradesView) -> None:
        for line in view.account:
            self.values[line.label].configure(text=line.value, foreground=TONE_COLOURS[line.tone])
        self._reflow()

    def texts(self) -> dict[str, str]:
        return {label: str(w.cget("text")) for label, w in self.values.items()}


class HistoryList(ttk.Frame):
    """ "Trade history": the newest 250 fills, newest first; sells coloured by their result."""

    def __init__(self, parent: tk.Misc, feed: TradesFeed | None = None, *,
                 theme: Theme | None = None) -> None:  # fmt: skip
        super().__init__(parent, style="Panel.TFrame", padding=(10, 6, 10, 6))
        self.theme = theme or apply_theme(self.winfo_toplevel())
        self.note = _heading(self, "Trade history")
        self.listbox = tk.Listbox(
            self, background=PANEL, foreground=TEXT, selectbackground=SELECT,
            selectforeground=TEXT, highlightthickness=0, borderwidth=0, activestyle="none",
            font=self.theme.small, height=5,
        )  # fmt: skip
        scrollbars(self, self.listbox)
        self.rowconfigure(2, weight=1)
        self.columnconfigure(0, weight=1)
        self._shown: tuple[HistoryLine, ...] | None = None
        if feed is not None:
            feed.subscribe(self.show)

    def show(self, view: TradesView) -> None:
        if view.history == self._shown:
            return
        old, self._shown = self._shown, view.history
        new = view.history
        fresh = _new_on_top(old or (), new)
        if fresh is None:  # not just newer fills on top: draw it all again
            self.listbox.delete(0, "end")
            fresh = len(new)
        for i, line in enumerate(new[:fresh]):  # a refresh usually adds one fill or none
            self.listbox.insert(i, line.text)
            if line.tone != "neutral":
                self.listbox.itemconfigure(i, foreground=TONE_COLOURS[line.tone])
        if self.listbox.size() > len(new):
            self.listbox.delete(len(new), "end")  # the oldest dropped off the end
        if not view.history:
            self.listbox.insert("end", "No fills yet")
            self.listbox.itemconfigure(0, foreground=MUTED)
        self.note.configure(
            text=f"latest {len(view.history)} · newest first" if view.history else ""
        )

    def lines(self) -> list[str]:
        return [str(x) for x in self.listbox.get(0, "end")] if self._shown else []


def _new_on_top(old: tuple[HistoryLine, ...], new: tuple[HistoryLine, ...]) -> int | None:
    """How many lines ``new`` adds on top of ``old`` (newest first, the oldest may drop off the
    end), or None when it is not that (the first view, other settings, another mode)."""
    if not old or not new:
        return None
    for added in range(len(new)):
        if new[added:] == old[: len(new) - added]:
            return added
    return None


class TradesPanel(ttk.Frame):
    """The three panels over one feed, for a tab: the account strip, the trades, the history.
    The hub may instead place ``AccountPanel``/``TradesTable``/``HistoryList`` itself over one
    :class:`TradesFeed` (the original had the account box in its left column)."""

    def __init__(
        self,
        parent: tk.Misc,
        *,
        layout: DataLayout,
        config: StrategyConfig,
        mode: Mode | None = None,
        refresh_ms: int = 1000,
        tz: tzinfo | None = None,
        wall: Callable[[], float] = time.time,
        account_columns: int = 3,
    ) -> None:
        super().__init__(parent, style="TFrame")
        self.theme = apply_theme(self.winfo_toplevel())
        loader = TradesLoader(layout, mode=mode, tz=tz, wall=wall)
        self.feed = TradesFeed(self, loader, config, refresh_ms=refresh_ms)
        self.account = AccountPanel(self, self.feed, columns=account_columns, theme=self.theme)
        self.table = TradesTable(self, self.feed, theme=self.theme)
        self.history = HistoryList(self, self.feed, theme=self.theme)
        self.account.grid(row=0, column=0, sticky="nsew", pady=(0, 6))
        self.table.grid(row=1, column=0, sticky="nsew", pady=(0, 6))
        self.history.grid(row=2, column=0, sticky="nsew")
        self.columnconfigure(0, weight=1)
        self.rowconfigure(1, weight=3, minsize=150)
        self.rowconfigure(2, weight=2, minsize=120)

    def destroy(self) -> None:
        self.feed.close()
        super().destroy()
