"""The ANALYTICS tab's display widgets: KPI cards, tables, and charts drawn on a Tk Canvas
(the equity curve with its drawdown, and PnL per coin).

They take ready text and numbers (the analytics worker computed them) and only lay them out,
so they never block the Tk thread. The charts are drawn by hand rather than with a plotting
library: a Canvas redraws in a millisecond, needs no extra dependency and follows the dark
theme exactly; each chart keeps its data and redraws itself when resized.
"""

from __future__ import annotations

import logging
import math
import tkinter as tk
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from tkinter import ttk
from typing import Literal

from pt_gui_theme import (
    ACCENT,
    BORDER,
    GRID,
    LOSS_FILL,
    MUTED,
    NEGATIVE,
    PANEL,
    PEAK,
    TEXT,
    TONE_COLOURS,
    Font,
    Theme,
    Tone,
    apply_theme,
)
from pt_metrics import DASH, fmt_usd

log = logging.getLogger(__name__)

Anchor = Literal["nw", "n", "ne", "w", "center", "e", "sw", "s", "se"]
MIN_BAR_ROW = 18  # px: below this the coin names would overlap


@dataclass(frozen=True)
class EquityView:
    """The daily mark-to-market equity, its running peak and its drawdown (positive fractions)."""

    dates: tuple[str, ...]
    equity: tuple[float, ...]
    peak: tuple[float, ...]
    drawdown: tuple[float, ...]


@dataclass(frozen=True)
class CoinBar:
    """One coin's realized PnL, with the text printed at the end of its bar."""

    coin: str
    value: float
    label: str


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round axis values (1, 2, 2.5, 5 × 10ⁿ steps) covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def money_tick(value: float, step: float) -> str:
    """An axis label: whole dollars when the ticks are at least a dollar apart."""
    if step >= 1:
        return f"-${abs(value):,.0f}" if value < 0 else f"${value:,.0f}"
    return fmt_usd(value)


class ChartCanvas(tk.Canvas):
    """A themed canvas that redraws itself from its last data when its size changes; the base
    of every chart here and of the hub's coin and account charts (:mod:`pt_gui_coinchart`)."""

    def __init__(self, parent: tk.Misc, theme: Theme, *, width: int, height: int) -> None:
        super().__init__(parent, background=PANEL, highlightthickness=0, width=width, height=height)
        self.theme = theme
        self.empty_text = ""
        self.bind("<Configure>", lambda _e: self.redraw())

    def redraw(self) -> None:
        raise NotImplementedError

    def _placeholder(self) -> None:
        w, h = self.winfo_width(), self.winfo_height()
        self.create_text(
            w / 2,
            h / 2,
            text=self.empty_text,
            fill=MUTED,
            font=self.theme.body,
            width=max(w - 40, 60),
            justify="center",
            tags=("placeholder",),
        )


class EquityChart(ChartCanvas):
    """Equity line over its dashed running peak, the gap between them shaded, and the drawdown
    in a small panel underneath; hovering shows the day's figures."""

    def __init__(self, parent: tk.Misc, theme: Theme) -> None:
        super().__init__(parent, theme, width=480, height=220)
        self.data: EquityView | None = None
        self.empty_text = "No equity recorded yet"
        self._xs: list[float] = []
        self._box = (0.0, 0.0, 0.0, 0.0)
        self.bind("<Motion>", self._hover)
        self.bind("<Leave>", lambda _e: self.delete("hover"))

    def show(self, data: EquityView | None, empty_text: str = "No equity recorded yet") -> None:
        self.data, self.empty_text = data, empty_text
        self.redraw()

    def redraw(self) -> None:
        self.delete("all")
        self._xs = []
        w, h = self.winfo_width(), self.winfo_height()
        if w < 60 or h < 60:
            return
        d = self.data
        if d is None or not d.equity:
            self._placeholder()
            return
        small, lh = self.theme.small, self.theme.line_height(self, self.theme.small)
        lo, hi = min(d.equity), max(d.peak)
        pad = (hi - lo) * 0.08 or max(abs(hi) * 0.01, 1.0)
        axis_y = h - lh - 8
        room = (axis_y - 10) * 0.74 - 12
        ticks = nice_ticks(lo - pad, hi + pad, max(2, min(5, int(room // (lh * 2.4)))))
        step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
        lo, hi = min(lo - pad, ticks[0]), max(hi + pad, ticks[-1])
        labels = [money_tick(t, step) for t in ticks]
        left = max(self.theme.measure(self, s) for s in [*labels, "-00.00%"]) + 14
        right, top = w - 14, 10
        dd_h = max(36.0, (axis_y - top) * 0.26)
        eq_bottom = axis_y - dd_h - 18
        dd_top = eq_bottom + 18
        n = len(d.equity)
        span = right - left
        xs = [left + span / 2] if n == 1 else [left + span * i / (n - 1) for i in range(n)]

        def y_of(v: float) -> float:
            return eq_bottom - (v - lo) / (hi - lo) * (eq_bottom - top)

        for t, text in zip(ticks, labels, strict=True):
            y = y_of(t)
            self.create_line(left, y, right, y, fill=GRID, tags=("grid",))
            self.create_text(left - 6, y, text=text, anchor="e", fill=MUTED, font=small)
        eq = [(x, y_of(v)) for x, v in zip(xs, d.equity, strict=True)]
        pk = [(x, y_of(v)) for x, v in zip(xs, d.peak, strict=True)]
        if n > 1 and max(d.drawdown) > 0:
            self.create_polygon(*pk, *reversed(eq), fill=LOSS_FILL, outline="", tags=("shade",))
        if n > 1:
            self.create_line(*pk, fill=PEAK, dash=(4, 3), tags=("peak",))
            self.create_line(*eq, fill=ACCENT, width=2, tags=("equity",))
        x, y = eq[-1]
        self.create_oval(x - 3, y - 3, x + 3, y + 3, fill=ACCENT, outline="", tags=("last",))
        self._drawdown_panel(d, xs, (left, right, dd_top, axis_y))
        self._date_axis(d, xs, axis_y + 4)
        self._xs, self._box = xs, (left, right, top, axis_y)

    def _drawdown_panel(
        self, d: EquityView, xs: list[float], box: tuple[float, float, float, float]
    ) -> None:
        left, right, top, bottom = box
        small, worst = self.theme.small, max(d.drawdown)
        self.create_line(left, top, right, top, fill=GRID)
        self.create_line(left, bottom, right, bottom, fill=GRID)
        self.create_text(left - 6, top, text="0%", anchor="e", fill=MUTED, font=small)
        self.create_text(left + 4, bottom - 2, text="Drawdown", anchor="sw", fill=MUTED, font=small)
        if worst <= 0:
            return
        self.create_text(
            left - 6, bottom, text=f"-{worst * 100:.2f}%", anchor="e", fill=NEGATIVE, font=small
        )
        pts = [(x, top + dd / worst * (bottom - top)) for x, dd in zip(xs, d.drawdown, strict=True)]
        if len(pts) > 1:
            area = [(xs[0], top), *pts, (xs[-1], top)]
            self.create_polygon(*area, fill=LOSS_FILL, outline="", tags=("drawdown",))
            self.create_line(*pts, fill=NEGATIVE, tags=("drawdown",))

    def _date_axis(self, d: EquityView, xs: list[float], y: float) -> None:
        """Dates under the plot: the first and last always, evenly spaced ones between them
        where they fit without touching."""
        n, gap = len(xs), 16
        width = self.theme.measure(self, "2024-01-01")
        if n == 1:
            placed: list[tuple[int, Anchor]] = [(0, "n")]
        else:
            placed = [(0, "nw")]
            last_left = xs[-1] - width
            count = max(2, int((xs[-1] - xs[0]) // (1.5 * width + gap)) + 1)
            right_edge = xs[0] + width
            for k in range(1, count - 1):
                i = round(k * (n - 1) / (count - 1))
                lo, hi = xs[i] - width / 2, xs[i] + width / 2
                if i not in (0, n - 1) and lo >= right_edge + gap and hi <= last_left - gap:
                    placed.append((i, "n"))
                    right_edge = hi
            if xs[-1] - width >= xs[0] + width + gap:
                placed.append((n - 1, "ne"))
        for i, anchor in placed:
            self.create_text(
                xs[i], y, text=d.dates[i], anchor=anchor, fill=MUTED, font=self.theme.small,
                tags=("date",),
            )  # fmt: skip

    def _hover(self, event: tk.Event[tk.Misc]) -> None:
        self.delete("hover")
        d, xs = self.data, self._xs
        if d is None or not xs:
            return
        left, right, top, bottom = self._box
        if not (left <= event.x <= right and top <= event.y <= bottom):
            return
        i = min(range(len(xs)), key=lambda k: abs(xs[k] - event.x))
        self.create_line(xs[i], top, xs[i], bottom, fill=MUTED, dash=(2, 2), tags=("hover",))
        text = f"{d.dates[i]}   {fmt_usd(d.equity[i])}   drawdown {d.drawdown[i] * 100:.2f}%"
        self.create_text(
            right,
            top,
            text=text,
            anchor="ne",
            fill=TEXT,
            font=self.theme.small,
            tags=("hover", "readout"),
        )


class CoinBarsChart(ChartCanvas):
    """Realized PnL per coin as horizontal bars from a zero line: gains right, losses left."""

    def __init__(self, parent: tk.Misc, theme: Theme) -> None:
        super().__init__(parent, theme, width=300, height=220)
        self.bars: tuple[CoinBar, ...] = ()
        self.empty_text = "No closed trades yet"

    def show(self, bars: Sequence[CoinBar], empty_text: str = "No closed trades yet") -> None:
        self.bars, self.empty_text = tuple(bars), empty_text
        self.redraw()

    def redraw(self) -> None:
        self.delete("all")
        w, h = self.winfo_width(), self.winfo_height()
        if w < 60 or h < 40:
            return
        if not self.bars:
            self._placeholder()
            return
        bold, small = self.theme.bold, self.theme.small
        avail = h - 16
        shown = list(self.bars)
        if len(shown) * MIN_BAR_ROW > avail:  # keep the biggest movers, say how many are hidden
            avail -= self.theme.line_height(self, small) + 4
            keep = max(1, int(avail // MIN_BAR_ROW))
            shown = sorted(shown, key=lambda b: -abs(b.value))[:keep]
            shown.sort(key=lambda b: -b.value)
        row = min(34.0, avail / max(len(shown), 1))
        name_w = max(self.theme.measure(self, b.coin, bold) for b in shown) + 16
        neg_w = max((self.theme.measure(self, b.label) for b in shown if b.value < 0), default=0)
        pos_w = max((self.theme.measure(self, b.label) for b in shown if b.value >= 0), default=0)
        x_lo, x_hi = 8 + name_w + (neg_w + 8 if neg_w else 0), w - 10 - (pos_w + 8 if pos_w else 0)
        lo, hi = min(0.0, *(b.value for b in shown)), max(0.0, *(b.value for b in shown))
        scale = (x_hi - x_lo) / (hi - lo) if hi > lo else 0.0
        zero = x_lo - lo * scale
        top = max(8.0, (avail + 16 - row * len(shown)) / 2 - 4)
        for k, b in enumerate(shown):
            mid = top + row * (k + 0.5)
            half = max(4.0, min(11.0, row * 0.32))
            end = zero + b.value * scale
            colour = ACCENT if b.value > 0 else NEGATIVE if b.value < 0 else MUTED
            self.create_text(8, mid, text=b.coin, anchor="w", fill=TEXT, font=bold)
            x0, x1 = min(zero, end), max(zero, end)
            self.create_rectangle(
                x0, mid - half, max(x1, x0 + 1), mid + half, fill=colour, outline="",
                tags=("bar",),
            )  # fmt: skip
            anchor: Anchor = "e" if b.value < 0 else "w"
            tx = x0 - 6 if b.value < 0 else x1 + 6
            self.create_text(tx, mid, text=b.label, anchor=anchor, fill=colour, font=small)
        self.create_line(zero, top - 4, zero, top + row * len(shown) + 4, fill=MUTED)
        if hidden := len(self.bars) - len(shown):
            self.create_text(
                8, top + row * len(shown) + 6, text=f"+{hidden} more coins", anchor="nw",
                fill=MUTED, font=small,
            )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Cards and tables

PERIOD_COLUMNS = (
    "Period", "Trades", "Win rate", "Realized PnL", "Profit factor", "Expectancy",
    "Equity change", "Max drawdown", "Sharpe", "Exposure",
)  # fmt: skip
TRADE_COLUMNS = (
    "Closed", "Coin", "Result", "Exit", "Quantity", "Cost", "Proceeds", "PnL", "PnL %", "DCA",
    "Hold",
)  # fmt: skip


class KPICard(tk.Frame):
    """A figure with its title and a one-line detail; a coloured edge shows its tone. A figure
    too wide for the card is shown in a smaller size rather than cut."""

    VALUE_SIZES = (18, 16, 14, 12)

    def __init__(self, parent: tk.Misc, title: str, *, theme: Theme | None = None) -> None:
        super().__init__(parent, background=PANEL, highlightthickness=1,
                         highlightbackground=BORDER, highlightcolor=BORDER)  # fmt: skip
        self.theme = theme or apply_theme(self.winfo_toplevel())
        self.edge = tk.Frame(self, width=3, background=BORDER)
        self.edge.pack(side="left", fill="y")
        self.body = ttk.Frame(self, style="Panel.TFrame", padding=(10, 6, 8, 6))
        self.body.pack(side="left", fill="both", expand=True)
        self.title_label = ttk.Label(self.body, text=title, style="PanelMuted.TLabel")
        self.value_label = ttk.Label(self.body, text=DASH, style="Panel.TLabel")
        self.detail_label = ttk.Label(self.body, text="", style="PanelMuted.TLabel")
        for label in (self.title_label, self.value_label, self.detail_label):
            label.pack(anchor="w")
        self.tone: Tone = "neutral"
        self._room = 0
        self._fit()
        self.body.bind("<Configure>", self._resized)

    def _resized(self, event: tk.Event[tk.Misc]) -> None:
        self._room = event.width - 18
        self.detail_label.configure(wraplength=max(self._room, 60))  # wrap rather than cut
        self._fit()

    def _fit(self) -> None:
        family, text = self.theme.family, self.value_text
        font: Font = (family, self.VALUE_SIZES[0], "bold")
        for size in self.VALUE_SIZES:
            font = (family, size, "bold")
            if self._room <= 0 or self.theme.measure(self, text, font) <= self._room:
                break
        self.value_label.configure(font=font)

    def set(self, value_text: str, tone: Tone = "neutral", detail: str = "") -> None:
        self.tone = tone
        self.value_label.configure(text=value_text, foreground=TONE_COLOURS[tone])
        self.edge.configure(background=TONE_COLOURS[tone] if tone != "neutral" else BORDER)
        self.detail_label.configure(text=detail)
        self._fit()

    @property
    def value_text(self) -> str:
        return str(self.value_label.cget("text"))


LEFT_COLUMNS = frozenset({"Period", "Closed", "Coin", "Result", "Exit"})


def _table(
    tree: ttk.Treeview, theme: Theme, samples: Mapping[str, str], weights: Mapping[str, int]
) -> None:
    """Each column is at least as wide as its heading and a typical value, so nothing is cut at
    the hub's minimum size; spare width goes by ``weights`` (default 1) when the table grows."""
    least: dict[str, int] = {}
    for col, sample in samples.items():
        left = col in LEFT_COLUMNS
        need = max(
            theme.measure(tree, col, theme.small_bold), theme.measure(tree, sample, theme.body)
        )
        least[col] = need + 16
        tree.heading(col, text=col, anchor="w" if left else "e")
        tree.column(col, width=least[col], minwidth=least[col], stretch=False,
                    anchor="w" if left else "e")  # fmt: skip
    total = sum(weights.get(col, 1) for col in least)

    def fit(event: tk.Event[tk.Misc]) -> None:
        spare = max(0, event.width - 4 - sum(least.values()))
        for col, width in least.items():
            tree.column(col, width=width + spare * weights.get(col, 1) // total)

    tree.bind("<Configure>", fit, add="+")


class PerformanceTable(ttk.Treeview):
    """Today, 7 days, 30 days and all time side by side."""

    def __init__(self, parent: tk.Misc, *, theme: Theme | None = None) -> None:
        super().__init__(parent, columns=PERIOD_COLUMNS, show="headings", height=4,
                         selectmode="none")  # fmt: skip
        theme = apply_theme(self.winfo_toplevel()) if theme is None else theme
        samples = ("All time", "999", "100.00%", "-$10,000.00", "99.99", "-$1,000.00",
                   "-$10,000.00", "100.00%", "-9.99", "100.00%")  # fmt: skip
        _table(self, theme, dict(zip(PERIOD_COLUMNS, samples, strict=True)), {"Trades": 0})

    def set_rows(self, rows: Sequence[Sequence[str]]) -> None:
        self.delete(*self.get_children())
        for row in rows:
            self.insert("", "end", values=tuple(row))

    def rows(self) -> list[tuple[str, ...]]:
        return [tuple(str(v) for v in self.item(i, "values")) for i in self.get_children()]


class TradesTable(ttk.Frame):
    """The latest trades, newest first, wins and losses coloured."""

    def __init__(self, parent: tk.Misc, *, theme: Theme | None = None) -> None:
        super().__init__(parent, style="Panel.TFrame")
        theme = apply_theme(self.winfo_toplevel()) if theme is None else theme
        self.tree = ttk.Treeview(self, columns=TRADE_COLUMNS, show="headings", height=3)
        samples = ("2024-01-01 00:00", "DOGE", "Loss", "TRAIL_SELL", "0.00012345", "$1,000.00",
                   "$1,000.00", "-$100.00", "-10.00%", "99", "10d 23h")  # fmt: skip
        weights = {"Exit": 4, "Coin": 0, "Result": 0, "DCA": 0}
        _table(self.tree, theme, dict(zip(TRADE_COLUMNS, samples, strict=True)), weights)
        for tag, colour in (("win", TONE_COLOURS["positive"]), ("loss", TONE_COLOURS["negative"])):
            self.tree.tag_configure(tag, foreground=colour)
        bar = ttk.Scrollbar(self, orient="vertical", command=self.tree.yview)
        self.tree.configure(yscrollcommand=bar.set)
        self.tree.grid(row=0, column=0, sticky="nsew")
        bar.grid(row=0, column=1, sticky="ns")
        self.rowconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)

    def set_rows(self, rows: Sequence[tuple[tuple[str, ...], str]]) -> None:
        self.tree.delete(*self.tree.get_children())
        for cells, tag in rows:
            self.tree.insert("", "end", values=cells, tags=(tag,))

    def rows(self) -> list[tuple[str, ...]]:
        return [
            tuple(str(v) for v in self.tree.item(i, "values")) for i in self.tree.get_children()
        ]


def panel(parent: tk.Misc, title: str) -> tuple[ttk.Frame, ttk.Label]:
    """A dark panel with a heading; returns it and a muted label at the heading's right."""
    frame = ttk.Frame(parent, style="Panel.TFrame", padding=(10, 6, 10, 6))
    frame.columnconfigure(0, weight=1)
    ttk.Label(frame, text=title, style="Section.TLabel").grid(row=0, column=0, sticky="w")
    note = ttk.Label(frame, text="", style="PanelMuted.TLabel")
    note.grid(row=0, column=1, sticky="e")
    return frame, note
