"""The hub's chart pages (spec §4.4): a coin's candles with the thinker's and the trader's lines,
and the account value curve.

Both pages only draw. Their data comes from :class:`pt_gui_chartdata.ChartWorker` (one thread
for every chart, shared through :class:`pt_gui_background.Background`), so a slow venue or a
busy journal never freezes the window (the original fetched candles on the Tk thread). A page
refreshes when it is shown and then every ``refresh_ms`` while it stays visible; hidden pages
cost nothing. A request made while one is on its way is folded into one more, never queued up.
"""

from __future__ import annotations

import itertools
import logging
import math
import tkinter as tk
from datetime import datetime, tzinfo
from itertools import accumulate
from tkinter import ttk

from pt_gui_background import Background
from pt_gui_chartdata import (
    AccountChartData,
    AccountRequest,
    ChartLoader,
    ChartWorker,
    CoinChartData,
    CoinRequest,
    LoadFailed,
    Marker,
    MarkerKind,
    Request,
    Result,
    bar_index,
    fmt_price,
    nearest_index,
    price_tick,
    spread_labels,
)
from pt_gui_charts import Anchor, ChartCanvas, EquityChart, EquityView, nice_ticks
from pt_gui_theme import (
    ACCENT,
    AVG_YELLOW,
    BG,
    BID_TEAL,
    BORDER,
    GRID,
    LONG_BLUE,
    MUTED,
    NEGATIVE,
    PANEL,
    PANEL_HI,
    PURPLE,
    SHORT_ORANGE,
    TEXT,
    Theme,
    apply_theme,
    wrapping,
)
from pt_metrics import fmt_usd
from pt_types import Timeframe

__all__ = [
    "AccountChart", "AccountEquityChart", "CandleChart", "ChartLoader", "ChartWorker",
    "CoinChart", "equity_view",
]  # fmt: skip

log = logging.getLogger(__name__)

DEBOUNCE_MS = 120  # a timeframe change or a page being shown: load once the clicks settle
REFRESH_MS = 10_000  # the original's chart_refresh_seconds
LINE_COLOURS = {"ASK": PURPLE, "BID": BID_TEAL, "AVG": AVG_YELLOW, "DCA": NEGATIVE, "SELL": ACCENT}
MARKER_COLOURS = {MarkerKind.BUY: NEGATIVE, MarkerKind.DCA: PURPLE, MarkerKind.SELL: ACCENT}


def _when(t: float, tz: tzinfo | None, fmt: str) -> str:
    return datetime.fromtimestamp(t, tz=tz).strftime(fmt)


def equity_view(data: AccountChartData, tz: tzinfo | None) -> EquityView:
    """The account curve in EquityChart's terms: its running peak and drawdown included."""
    span = data.times[-1] - data.times[0] if data.times else 0.0
    fmt = "%Y-%m-%d" if span >= 3 * 86_400 else "%m-%d %H:%M"
    peak = tuple(accumulate(data.values, max))
    drawdown = tuple(1 - v / p if p > 0 else 0.0 for v, p in zip(data.values, peak, strict=True))
    dates = tuple(_when(t, tz, fmt) for t in data.times)
    return EquityView(dates, data.values, peak, drawdown)


# ---------------------------------------------------------------------------------------------
# Canvases


class CandleChart(ChartCanvas):
    """Candles, bound lines, trade lines with labels at the right edge, and fill markers."""

    def __init__(self, parent: tk.Misc, theme: Theme, tz: tzinfo | None = None) -> None:
        super().__init__(parent, theme, width=640, height=320)
        self.data: CoinChartData | None = None
        self.tz = tz
        self.empty_text = "Loading candles…"
        self._xs: list[float] = []
        self._scale = (0.0, 1.0, 0.0, 1.0)  # top, bottom, lo, hi
        self.bind("<Motion>", self._hover)
        self.bind("<Leave>", lambda _e: self.delete("hover"))

    def show(self, data: CoinChartData | None, empty_text: str = "Loading candles…") -> None:
        self.data, self.empty_text = data, empty_text
        self.redraw()

    def y_of(self, price: float) -> float:
        top, bottom, lo, hi = self._scale
        return bottom - (price - lo) / (hi - lo) * (bottom - top)

    def price_at(self, y: float) -> float:
        """The price a canvas row stands for (tests map the lines back with it)."""
        top, bottom, lo, hi = self._scale
        return lo + (bottom - y) / (bottom - top) * (hi - lo)

    def redraw(self) -> None:
        self.delete("all")
        self._xs = []
        w, h, d = self.winfo_width(), self.winfo_height(), self.data
        if w < 160 or h < 120:
            return
        if d is None or not d.bars:
            self._placeholder()
            return
        small, lh = self.theme.small, self.theme.line_height(self, self.theme.small)
        top, bottom = lh + 16, h - lh - 10
        lo, hi = min(b.low for b in d.bars), max(b.high for b in d.bars)
        pad = (hi - lo) * 0.05 or hi * 0.01
        lo, hi = lo - pad, hi + pad
        ticks = nice_ticks(lo, hi, max(2, min(6, int((bottom - top) // (lh * 2.6)))))
        step = ticks[1] - ticks[0] if len(ticks) > 1 else hi - lo
        labels = [price_tick(t, step) for t in ticks]
        tag_texts = [f"{line.label} {fmt_price(line.price)}" for line in d.lines]
        tag_texts += [f"↓ SELL {fmt_price(hi)}"]  # room for a tag even before the trader runs
        left = max(self.theme.measure(self, s) for s in labels) + 14
        right = w - max(self.theme.measure(self, s, self.theme.small_bold) for s in tag_texts) - 22
        self._scale = (top, bottom, lo, hi)
        for t, text in zip(ticks, labels, strict=True):
            y = self.y_of(t)
            self.create_line(left, y, right, y, fill=GRID, tags=("grid",))
            self.create_text(left - 6, y, text=text, anchor="e", fill=MUTED, font=small)
        slot = (right - left) / len(d.bars)
        self._xs = [left + slot * (i + 0.5) for i in range(len(d.bars))]
        self._time_axis(left, right, bottom)
        self._candles(slot)
        self._bounds(left, right)
        self._trade_lines(left, right)
        self._markers(right)
        self._legend(left)

    def _candles(self, slot: float) -> None:
        assert self.data is not None
        half = max(0.5, min(slot * 0.36, 7.0))
        for i, (x, b) in enumerate(zip(self._xs, self.data.bars, strict=True)):
            colour = ACCENT if b.close >= b.open else NEGATIVE
            self.create_line(x, self.y_of(b.high), x, self.y_of(b.low), fill=colour,
                             tags=("wick", f"bar{i}"))  # fmt: skip
            y0, y1 = sorted((self.y_of(b.open), self.y_of(b.close)))
            self.create_rectangle(x - half, y0, x + half, max(y1, y0 + 1), fill=colour,
                                  outline=colour, tags=("body", f"bar{i}"))  # fmt: skip

    def _bounds(self, left: float, right: float) -> None:
        """Every active bound line, thin and dashed; the chosen timeframe's pair solid."""
        assert self.data is not None
        n, lo, hi = self.data.neural, self._scale[2], self._scale[3]
        for kind, colour, prices, own in (
            ("low", LONG_BLUE, n.lows, n.tf_low), ("high", SHORT_ORANGE, n.highs, n.tf_high),
        ):  # fmt: skip
            for price in prices:
                if not lo <= price <= hi:
                    continue
                y, strong = self.y_of(price), price == own
                self.create_line(left, y, right, y, fill=colour, width=2 if strong else 1,
                                 dash=() if strong else (5, 4),
                                 tags=("neural", kind, *(("tf",) if strong else ())))  # fmt: skip

    def _trade_lines(self, left: float, right: float) -> None:
        """ASK/BID/AVG/DCA/SELL lines with tags at the right edge, nudged apart so no two
        overlap; a line off the chart keeps its tag at the edge with an arrow."""
        assert self.data is not None
        top, bottom, lo, hi = self._scale
        font = self.theme.small_bold
        gap = self.theme.line_height(self, font) + 3
        lines = self.data.lines
        wanted = [min(max(self.y_of(line.price), top), bottom) for line in lines]
        placed = spread_labels(wanted, gap, top + gap / 2, bottom - gap / 2)
        for line, y, ty in zip(lines, wanted, placed, strict=True):
            colour, key = LINE_COLOURS.get(line.label, TEXT), line.label.lower()
            inside = lo <= line.price <= hi
            if inside:
                self.create_line(left, y, right, y, fill=colour, width=1.5, tags=("line", key))
            arrow = "" if inside else ("↑ " if line.price > hi else "↓ ")
            text = f"{arrow}{line.label} {fmt_price(line.price)}"
            tw = self.theme.measure(self, text, font)
            self.create_line(right, y, right + 6, ty, fill=colour, tags=("tag", key))
            self.create_rectangle(right + 6, ty - gap / 2 + 1, right + tw + 16, ty + gap / 2 - 1,
                                  fill=colour, outline="", tags=("tag", key))  # fmt: skip
            self.create_text(right + 11, ty, text=text, anchor="w", fill=BG, font=font,
                             tags=("tag", key, "tag_text"))  # fmt: skip

    def _markers(self, right: float) -> None:
        """A dot per fill on its candle; one label per candle and kind where it fits."""
        assert self.data is not None
        d, (top, bottom) = self.data, self._scale[:2]
        dots: list[tuple[float, float, Marker]] = []
        for m in d.markers:
            i = bar_index(d.bars, d.timeframe.seconds, m.time)
            if i is not None:
                dots.append((self._xs[i], min(max(self.y_of(m.price), top), bottom), m))
        _marker_labels(self, dots, (self._xs[0] - 4, top, right, bottom))

    def _time_axis(self, left: float, right: float, bottom: float) -> None:
        """Five date/time ticks (fewer when they would touch), first and last at the ends."""
        assert self.data is not None
        bars, n = self.data.bars, len(self.data.bars)
        fmt = "%m-%d %H:%M" if self.data.timeframe.seconds < 86_400 else "%Y-%m-%d"
        self.create_line(left, bottom, right, bottom, fill=GRID)
        last_right = -math.inf
        for k in range(5):
            i = round(k * (n - 1) / 4) if n > 1 else 0
            text = _when(bars[i].time, self.tz, fmt)
            width = self.theme.measure(self, text)
            anchor: Anchor = "nw" if k == 0 else "ne" if k == 4 else "n"
            x0 = {"nw": self._xs[i], "ne": self._xs[i] - width}.get(anchor, self._xs[i] - width / 2)
            if x0 < last_right + 14 or (k < 4 and x0 + width > right - width - 14):
                continue
            last_right = x0 + width
            self.create_line(self._xs[i], bottom, self._xs[i], bottom + 3, fill=MUTED)
            self.create_text(self._xs[i], bottom + 4, text=text, anchor=anchor, fill=MUTED,
                             font=self.theme.small, tags=("xtick",))  # fmt: skip

    def _legend(self, left: float) -> None:
        assert self.data is not None
        d, small, x, y = self.data, self.theme.small, left, 8
        items: list[tuple[str, str, str]] = [
            ("text", TEXT, f"{d.coin} ({d.timeframe.value})"),
            ("line", LONG_BLUE, "long bounds"), ("line", SHORT_ORANGE, "short bounds"),
            ("text", MUTED, f"solid = {d.timeframe.value}"),
        ]  # fmt: skip
        for kind, colour, text in items:
            if kind == "line":
                self.create_line(x, y + 7, x + 16, y + 7, fill=colour, width=2, tags=("legend",))
                x += 20
            font = self.theme.small_bold if colour == TEXT else small
            self.create_text(x, y, text=text, anchor="nw", fill=colour if kind == "text" else MUTED,
                             font=font, tags=("legend",))  # fmt: skip
            x += self.theme.measure(self, text, font) + 14

    def _hover(self, event: tk.Event[tk.Misc]) -> None:
        self.delete("hover")
        d, xs = self.data, self._xs
        if d is None or not xs or not (xs[0] - 8 <= event.x <= xs[-1] + 8):
            return
        i = min(range(len(xs)), key=lambda k: abs(xs[k] - event.x))
        b = d.bars[i]
        self.create_line(xs[i], self._scale[0], xs[i], self._scale[1], fill=MUTED, dash=(2, 2),
                         tags=("hover",))  # fmt: skip
        prices = "   ".join(
            f"{k} {fmt_price(v)}"
            for k, v in (("O", b.open), ("H", b.high), ("L", b.low), ("C", b.close))
        )
        text = f"{_when(b.time, self.tz, '%Y-%m-%d %H:%M')}   {prices}"
        self.create_rectangle(*self._readout_box(text), fill=PANEL_HI, outline="", tags=("hover",))
        self.create_text(xs[-1], 8, text=text, anchor="ne", fill=TEXT, font=self.theme.small,
                         tags=("hover", "readout"))  # fmt: skip

    def _readout_box(self, text: str) -> tuple[float, float, float, float]:
        width = self.theme.measure(self, text)
        lh = self.theme.line_height(self, self.theme.small)
        return (self._xs[-1] - width - 6, 5, self._xs[-1] + 4, 10 + lh)


class AccountEquityChart(EquityChart):
    """EquityChart (line, running peak, drawdown) with the journal's fills marked on it."""

    def __init__(self, parent: tk.Misc, theme: Theme) -> None:
        super().__init__(parent, theme)
        self.times: tuple[float, ...] = ()
        self.markers: tuple[Marker, ...] = ()

    def show_account(self, data: AccountChartData | None, tz: tzinfo | None, empty: str) -> None:
        have = data is not None and bool(data.values)
        self.times = data.times if data is not None and have else ()
        self.markers = data.markers if data is not None and have else ()
        self.show(equity_view(data, tz) if data is not None and have else None, empty)

    def redraw(self) -> None:
        super().redraw()
        line, dot = self.find_withtag("equity"), self.find_withtag("last")
        if not (line or dot) or not self.times or not self.markers:
            return
        coords = self.coords(line[0]) if line else self.coords(dot[0])
        if not line:  # a single point: the centre of its dot
            coords = [(coords[0] + coords[2]) / 2, (coords[1] + coords[3]) / 2]
        points = list(zip(coords[::2], coords[1::2], strict=True))
        dots = [(*points[nearest_index(self.times, m.time)], m) for m in self.markers]
        box = (points[0][0] - 4, 8.0, self.winfo_width() - 10.0, self.winfo_height() - 8.0)
        _marker_labels(self, dots, box, with_coin=True)


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _marker_labels(
    canvas: ChartCanvas,
    dots: list[tuple[float, float, Marker]],
    box: tuple[float, float, float, float],
    *,
    with_coin: bool = False,
) -> None:
    """Fill dots, then their labels (BUY/DCA above, SELL below) on a dark backing, moved away
    from dots and other labels, kept inside ``box``; a label with no free place is left out
    (its dot stays). Several fills of one kind at one spot share a label."""
    font = canvas.theme.small_bold
    lh = canvas.theme.line_height(canvas, font)
    taken: list[tuple[float, ...]] = []
    for x, y, m in dots:
        canvas.create_oval(x - 4.5, y - 4.5, x + 4.5, y + 4.5, fill=MARKER_COLOURS[m.kind],
                           outline=BG, tags=("marker", m.kind.value.lower()))  # fmt: skip
        taken.append((x - 5, y - 5, x + 5, y + 5))
    labelled: set[tuple[float, MarkerKind]] = set()
    for x, y, m in dots:
        if (x, m.kind) in labelled:
            continue
        labelled.add((x, m.kind))
        text = f"{m.coin} {m.text}" if with_coin else m.text
        w = canvas.theme.measure(canvas, text, font) + 6
        first = m.kind is not MarkerKind.SELL  # buys above their dot, sells below
        sides = (0.0, -w / 2 - 8, w / 2 + 8)
        for up, k, dx in itertools.product((first, not first), range(3), sides):
            x0 = min(max(x + dx - w / 2, box[0]), box[2] - w)
            y0 = y - 7 - lh - k * (lh + 2) if up else y + 7 + k * (lh + 2)
            spot = (x0, y0, x0 + w, y0 + lh)
            if box[1] <= y0 and y0 + lh <= box[3] and not any(_overlaps(spot, t) for t in taken):
                break
        else:
            continue
        taken.append(spot)
        colour, kind = MARKER_COLOURS[m.kind], m.kind.value.lower()
        if k or dx:  # away from its dot: a leader line shows whose label it is
            canvas.create_line(x, y, min(max(x, x0), x0 + w), y0 + lh if up else y0,
                               fill=colour, tags=("marker_box", kind))  # fmt: skip
        canvas.create_rectangle(*spot, fill=PANEL, outline=BORDER, tags=("marker_box", kind))
        canvas.create_text(x0 + w / 2, y0 + lh / 2, text=text, fill=colour, font=font,
                           tags=("marker_text", kind))  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Pages


class _ChartPage(ttk.Frame):
    """Loads through the shared worker when shown, on a timer while visible, and on demand."""

    def __init__(
        self, parent: tk.Misc, worker: ChartWorker, *, refresh_ms: int, theme: Theme | None
    ) -> None:
        super().__init__(parent, style="Panel.TFrame", padding=(10, 6, 10, 8))
        self.theme = theme or apply_theme(self.winfo_toplevel())
        self.refresh_ms = refresh_ms
        self.generation = 0  # answers applied (tests wait on it)
        self._bg: Background[Request, Result] = Background(
            self, worker, self._answer, name=type(self).__name__, refresh_job=self._request
        )
        self.columnconfigure(0, weight=1)
        self.bind("<Map>", lambda _e: self.request_refresh(), add="+")
        self._bg.every("tick", refresh_ms, self._tick)

    def _request(self) -> Request:
        raise NotImplementedError

    def _apply(self, result: Result) -> None:
        raise NotImplementedError

    def _answer(self, result: Result) -> None:
        self.generation += 1
        self._apply(result)

    @property
    def busy(self) -> bool:
        return self._bg.busy

    def request_refresh(self, delay_ms: int = DEBOUNCE_MS) -> None:
        """Load soon: several requests within ``delay_ms`` make one load."""
        self._bg.after("soon", delay_ms, self.refresh_now)

    def refresh_now(self) -> None:
        """Load now; while a load is on its way, once more after it (never a queue of them)."""
        self._bg.refresh()

    def _tick(self) -> None:
        if self.winfo_viewable():  # a hidden page does not load
            self.refresh_now()

    def destroy(self) -> None:
        self._bg.close()  # the shared worker stays: the hub closes it
        super().destroy()


class CoinChart(_ChartPage):
    """One coin's chart page: header, timeframe choice, neural levels, and the candle canvas."""

    def __init__(
        self,
        parent: tk.Misc,
        coin: str,
        worker: ChartWorker,
        *,
        timeframe: Timeframe | str = Timeframe.H1,
        refresh_ms: int = REFRESH_MS,
        tz: tzinfo | None = None,
        theme: Theme | None = None,
    ) -> None:
        super().__init__(parent, worker, refresh_ms=refresh_ms, theme=theme)
        self.coin, self.timeframe, self.tz = coin.upper(), _chart_timeframe(timeframe), tz
        self.data: CoinChartData | None = None
        head = ttk.Frame(self, style="Panel.TFrame")
        head.grid(row=0, column=0, sticky="ew")
        head.columnconfigure(3, weight=1)
        self.title = ttk.Label(head, text=f"{self.coin} chart", style="Section.TLabel")
        self.title.grid(row=0, column=0, padx=(0, 14))
        ttk.Label(head, text="Timeframe:", style="PanelMuted.TLabel").grid(row=0, column=1)
        self.tf_var = tk.StringVar(self, value=self.timeframe.value)
        choices = [t.value for t in Timeframe]
        self.tf_box = ttk.Combobox(head, textvariable=self.tf_var, values=choices,
                                   state="readonly", width=5, style="Panel.TCombobox")  # fmt: skip
        self.tf_box.grid(row=0, column=2, padx=(6, 0))
        self.tf_box.bind("<<ComboboxSelected>>", lambda _e: self.set_timeframe(self.tf_var.get()))
        self.last = ttk.Label(head, text="Last: —", style="PanelMuted.TLabel")
        self.last.grid(row=0, column=4, sticky="e")
        self.levels = wrapping(ttk.Label(self, text="Neural: —", style="Panel.TLabel"), margin=0)
        self.levels.grid(row=1, column=0, sticky="ew", pady=(4, 0))
        self.problem = wrapping(ttk.Label(self, text="", style="Problem.TLabel"), margin=0)
        self.chart = CandleChart(self, self.theme, tz)
        self.chart.grid(row=3, column=0, sticky="nsew", pady=(6, 0))
        self.rowconfigure(3, weight=1)

    def set_timeframe(self, timeframe: Timeframe | str) -> None:
        """Show another timeframe: loaded at once (after the debounce), the old one kept
        on screen until the new candles arrive."""
        tf = Timeframe.parse(timeframe) if isinstance(timeframe, str) else timeframe
        self.tf_var.set(tf.value)
        if tf is not self.timeframe:
            self.timeframe = tf
            self.last.configure(text=f"Loading {tf.value}…")
            self.request_refresh()

    def _request(self) -> Request:
        return CoinRequest(self.coin, self.timeframe)

    def _apply(self, result: Result) -> None:
        if isinstance(result, LoadFailed):
            self._show_problems((result.message,))
            self._show_last()
            if self.data is None:
                self.chart.show(None, result.message)
            return
        if not isinstance(result, CoinChartData) or result.key != (self.coin, self.timeframe):
            return  # an answer for the timeframe before: the current one is on its way
        old = self.data
        if not result.bars and old is not None and old.key == result.key:
            result = CoinChartData(result.coin, result.timeframe, old.bars, result.neural,
                                   result.lines, result.markers, result.problems)  # fmt: skip
        self.data = result
        self.levels.configure(text=result.neural.text)
        self._show_last()
        self._show_problems(result.problems)
        empty = "; ".join(result.problems) or f"No {result.timeframe.value} candles yet"
        self.chart.show(result, empty)

    def _show_last(self) -> None:
        """When the thinker last wrote its signals (wall clock), as the original showed."""
        at = None if self.data is None else self.data.neural.written_at
        text = "Last: —" if at is None else f"Last: {_when(at, self.tz, '%H:%M:%S')}"
        self.last.configure(text=text)

    def _show_problems(self, problems: tuple[str, ...]) -> None:
        self.problem.configure(text=" · ".join(problems))
        if problems:
            self.problem.grid(row=2, column=0, sticky="ew", pady=(2, 0))
        else:
            self.problem.grid_remove()


class AccountChart(_ChartPage):
    """The ACCOUNT page: account value over time with the fills marked on it."""

    def __init__(
        self,
        parent: tk.Misc,
        worker: ChartWorker,
        *,
        refresh_ms: int = REFRESH_MS,
        tz: tzinfo | None = None,
        theme: Theme | None = None,
    ) -> None:
        super().__init__(parent, worker, refresh_ms=refresh_ms, theme=theme)
        self.tz = tz
        self.data: AccountChartData | None = None
        head = ttk.Frame(self, style="Panel.TFrame")
        head.grid(row=0, column=0, sticky="ew")
        head.columnconfigure(0, weight=1)
        self.title = ttk.Label(head, text="Account value", style="Section.TLabel")
        self.title.grid(row=0, column=0, sticky="w")
        self.note = ttk.Label(head, text="", style="PanelMuted.TLabel")
        self.note.grid(row=0, column=1, sticky="e")
        self.problem = ttk.Label(self, text="", style="Problem.TLabel")
        self.chart = AccountEquityChart(self, self.theme)
        self.chart.grid(row=2, column=0, sticky="nsew", pady=(6, 0))
        self.rowconfigure(2, weight=1)

    def _request(self) -> Request:
        return AccountRequest()

    def _apply(self, result: Result) -> None:
        if isinstance(result, LoadFailed) or not isinstance(result, AccountChartData):
            message = result.message if isinstance(result, LoadFailed) else "unexpected answer"
            self.problem.configure(text=message)
            self.problem.grid(row=1, column=0, sticky="ew")
            return
        if not result.values and result.problem and self.data is not None and self.data.values:
            self.problem.configure(text=f"{result.problem} (showing the last good curve)")
            self.problem.grid(row=1, column=0, sticky="ew")
            return
        self.data = result
        self.problem.grid_remove()
        last = result.last
        self.title.configure(
            text="Account value" if last is None else f"Account value ({fmt_usd(last)})"
        )
        points = len(result.values)
        self.note.configure(text=f"{points} points · {len(result.markers)} fills" if points else "")
        self.chart.show_account(result, self.tz, result.problem or "No account value recorded yet")


def _chart_timeframe(timeframe: Timeframe | str) -> Timeframe:
    """The settings' ``default_timeframe`` may name a minute chart the market cannot serve
    (the original offered 1m..30m): such a page starts on 1h instead."""
    try:
        return Timeframe.parse(timeframe) if isinstance(timeframe, str) else timeframe
    except ValueError:
        log.info("chart timeframe %s is not available; showing 1h", timeframe)
        return Timeframe.H1
