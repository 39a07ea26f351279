"""The BACKTEST tab's equity chart: one or several runs beside buy-and-hold, drawn on a Tk
canvas in the hub's theme (redrawn on resize, like the other charts)."""

from __future__ import annotations

import math
import tkinter as tk
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import cycle

import pt_gui_theme as ui
from pt_backtest_cli import utc_day
from pt_gui_charts import ChartCanvas, money_tick, nice_ticks
from pt_gui_theme import Theme
from pt_types import DAY

CHART_POINTS = 800  # points a line (more than the canvas is wide)
DAY_STEPS = (1, 2, 3, 7, 14, 30, 61, 91, 182, 365, 730, 1461)  # days between the chart's dates
RUN_COLOURS = (ui.ACCENT, ui.PURPLE, ui.WARNING, ui.BID_TEAL, ui.AVG_YELLOW)  # runs, in order
HOLD_COLOUR = ui.LONG_BLUE

Point = tuple[float, float]


@dataclass(frozen=True)
class Curve:
    """One line of the chart: its legend label, colour, canvas tag and points."""

    label: str
    colour: str
    tag: str
    points: tuple[Point, ...]


def curve_points(times: Sequence[float], values: Sequence[float]) -> tuple[Point, ...]:
    """The finite points, thinned to at most about CHART_POINTS (the last one always kept)."""
    pts = [(float(t), float(v)) for t, v in zip(times, values, strict=True) if math.isfinite(v)]
    every = max(1, len(pts) // CHART_POINTS)
    return tuple(pts[::every] + (pts[-1:] if pts and (len(pts) - 1) % every else []))


def run_curves(
    runs: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    hold: tuple[Sequence[float], Sequence[float]],
) -> tuple[Curve, ...]:
    """The runs' curves (``(label, times, equity)``; tagged ``bot`` for a single run, else
    ``run1``, ``run2`` …) and buy-and-hold's (tagged ``hold``), coloured in order."""
    colours = cycle(RUN_COLOURS)
    curves = [
        Curve(label, next(colours), "bot" if len(runs) == 1 else f"run{i}",
              curve_points(times, equity))
        for i, (label, times, equity) in enumerate(runs, 1)
    ]  # fmt: skip
    return (*curves, Curve("Buy & hold", HOLD_COLOUR, "hold", curve_points(*hold)))


class ComparisonChart(ChartCanvas):
    """Equity curves (a run's, or several runs', and buy-and-hold's) on one time axis, each
    named in the legend with its change over the span."""

    def __init__(self, parent: tk.Misc, theme: Theme) -> None:
        super().__init__(parent, theme, width=360, height=220)
        self.curves: tuple[Curve, ...] = ()
        self.empty_text = "Run a backtest to see its equity beside buy & hold"

    def redraw(self) -> None:
        self.delete("all")
        w, h = self.winfo_width(), self.winfo_height()
        pts = [p for curve in self.curves for p in curve.points]
        if not pts or w < 80 or h < 80:
            self._placeholder()
            return
        small, lh = self.theme.small, self.theme.line_height(self, self.theme.small)
        t0, t1 = min(p[0] for p in pts), max(p[0] for p in pts)
        lo, hi = min(p[1] for p in pts), max(p[1] for p in pts)
        pad = (hi - lo) * 0.08 or max(abs(hi) * 0.01, 1.0)
        x, y = 8.0, float(lh)  # the legend first: the plot starts under it
        for curve in self.curves:
            line, colour = curve.points, curve.colour
            change = (line[-1][1] / line[0][1] - 1) * 100 if line and line[0][1] else 0.0
            text = f"{curve.label} {change:+.2f}%"
            need = 24 + self.theme.measure(self, text)
            x, y = (8.0, y + lh + 4) if x > 8 and x + need > w - 8 else (x, y)
            self.create_line(x, y, x + 18, y, fill=colour, width=2)
            self.create_text(x + 24, y, text=text, anchor="w", fill=ui.TEXT, font=small,
                             tags=("legend",))  # fmt: skip
            x += need + 24
        top, bottom = y + lh + 8, h - lh - 10
        ticks = nice_ticks(lo - pad, hi + pad, max(2, min(5, int((bottom - top) // (lh * 2.4)))))
        lo, hi = min(lo - pad, ticks[0]), max(hi + pad, ticks[-1])
        labels = [money_tick(t, ticks[1] - ticks[0] if len(ticks) > 1 else 1.0) for t in ticks]
        left, right = max(self.theme.measure(self, s) for s in labels) + 14, w - 14

        def xy(p: Point) -> Point:
            x = left + (p[0] - t0) / ((t1 - t0) or 1.0) * (right - left)
            return x, bottom - (p[1] - lo) / (hi - lo) * (bottom - top)

        for t, text in zip(ticks, labels, strict=True):
            y = xy((t0, t))[1]
            self.create_line(left, y, right, y, fill=ui.GRID, tags=("grid",))
            self.create_text(left - 6, y, text=text, anchor="e", fill=ui.MUTED, font=small)
        for curve in self.curves:
            if len(curve.points) > 1:
                self.create_line(*(c for p in curve.points for c in xy(p)), fill=curve.colour,
                                 width=2, tags=(curve.tag,))  # fmt: skip
        width = self.theme.measure(self, "2024-01-01") * 1.25
        days = next((d for d in DAY_STEPS if (t1 - t0) / (d * DAY) * width <= right - left), 3000)
        for when in range(-(-int(t0) // DAY) * DAY, int(t1) + 1, days * DAY):
            if width / 3 <= (x := xy((when, lo))[0]) <= w - width / 3:
                self.create_text(x, bottom + 4, text=utc_day(when), anchor="n", fill=ui.MUTED,
                                 font=small, tags=("date",))  # fmt: skip
