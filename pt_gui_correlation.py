"""The hub's CORRELATION tab: how the managed coins moved together, as a heatmap, with the
portfolio's correlation and the diversification alerts.

The figures are the thinker's (``state/signals.json``: daily return correlations over 7, 30
and 90 days, measured once per closed day); the positions are the trader's
(``state/trader_status.json``), so the tab shows exactly what the trader's risk check uses.
Both files are read on a worker thread; the Tk thread only draws. :func:`build_view` is pure
and tested without a display.
"""

from __future__ import annotations

import time
import tkinter as tk
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from tkinter import ttk
from typing import Any

from pt_correlation import PERIODS, CorrelationMatrix, diversification_alerts, portfolio_correlation
from pt_gui_background import Background
from pt_gui_theme import BORDER, MUTED, PANEL, TEXT, Theme, apply_theme, wrapping
from pt_signals import SignalsSnapshot
from pt_state import DataLayout, StateReader
from pt_thinker import read_signals
from pt_trader import STATUS_SCHEMA

CELL, LABEL_W = 64, 56  # heatmap cell size and the coin-label margin, pixels
COLD, WARM = (0x2E, 0x6F, 0xD8), (0xE2, 0x4A, 0x3B)  # -1 and +1; 0 is the panel colour
NO_DATA = "no correlations yet: the thinker measures them from daily candles once it runs"


@dataclass(frozen=True)
class CorrelationView:
    days: int
    coins: tuple[str, ...]
    values: tuple[tuple[float | None, ...], ...]
    portfolio: str
    alerts: tuple[str, ...]
    status: str


def cell_colour(value: float | None) -> str:
    """A diverging colour: blue for -1, the panel for 0, red for +1; grey when unknown."""
    if value is None:
        return BORDER
    base = (int(PANEL[i : i + 2], 16) for i in (1, 3, 5))
    t, end = min(abs(value), 1.0), WARM if value > 0 else COLD
    r, g, b = (round(p + (e - p) * t) for p, e in zip(base, end, strict=True))
    return f"#{r:02X}{g:02X}{b:02X}"


def positions_from_status(data: Mapping[str, Any] | None) -> dict[str, float]:
    """Each held coin's value at the bid from the trader's status (coin → USD)."""
    found: dict[str, float] = {}
    for coin in (data or {}).get("coins", ()):
        qty, bid = coin.get("quantity"), coin.get("bid")
        if isinstance(qty, int | float) and isinstance(bid, int | float) and qty > 0 < bid:
            found[str(coin.get("coin"))] = float(qty) * float(bid)
    return found


def build_view(
    snapshot: SignalsSnapshot | None,
    positions: Mapping[str, float],
    coins: Sequence[str],
    *,
    days: int,
    threshold: float,
) -> CorrelationView:
    """The heatmap of the managed ``coins`` over ``days``, the portfolio's correlation and the
    alerts: held pairs above ``threshold``, and entries that would add little diversification."""
    matrix = snapshot.correlation(days) if snapshot is not None else None
    if matrix is None or not matrix.coins:
        return CorrelationView(days, (), (), "", (), NO_DATA)
    shown = tuple(c for c in coins if c in matrix.coins) or matrix.coins
    values = tuple(tuple(matrix.get(a, b) for b in shown) for a in shown)
    held = [c for c, v in positions.items() if v > 0]
    rho = portfolio_correlation(matrix, positions)
    portfolio = (
        f"Portfolio correlation (pairs weighted by position value): {rho:.2f}"
        if rho is not None
        else "Portfolio correlation: needs two positions with a measured correlation"
    )
    return CorrelationView(
        days, shown, values, portfolio, _alerts(matrix, shown, held, threshold), _status(matrix)
    )


def _alerts(
    matrix: CorrelationMatrix, coins: Sequence[str], held: Sequence[str], threshold: float
) -> tuple[str, ...]:
    lines = []
    for i, a in enumerate(held):
        for b in held[i + 1 :]:
            rho = matrix.get(a, b)
            if rho is not None and rho > threshold:
                lines.append(f"Held together: {a} and {b} (correlation {rho:.2f} > {threshold:g})")
    for coin in coins:
        if coin not in held:
            lines += [f"A new entry in {a.message}" for a in
                      diversification_alerts(matrix, coin, held, threshold)[:1]]  # fmt: skip
    return tuple(lines)


def _status(matrix: CorrelationMatrix) -> str:
    text = f"Daily returns over {matrix.periods} days ({matrix.returns_used} used)"
    return f"{text}; {'; '.join(matrix.notes)}" if matrix.notes else text


class CorrelationLoader:
    """The worker's side: reads both files and builds the view."""

    def __init__(self, layout: DataLayout) -> None:
        self.layout = layout
        self._status = StateReader(layout.trader_status_file, STATUS_SCHEMA)

    def load(self, job: tuple[tuple[str, ...], int, float]) -> CorrelationView:
        coins, days, threshold = job
        env = self._status.read()
        positions = positions_from_status(env.data if env is not None else None)
        return build_view(read_signals(self.layout), positions, coins, days=days,
                          threshold=threshold)  # fmt: skip


class CorrelationTab(ttk.Frame):
    """The tab (module doc): a period choice, the heatmap, and the portfolio text."""

    def __init__(
        self,
        parent: tk.Misc,
        *,
        layout: DataLayout,
        coins: Sequence[str],
        days: int = 30,
        threshold: float = 0.8,
        refresh_ms: int = 5000,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(parent, style="Panel.TFrame", padding=(10, 8))
        self.theme: Theme = apply_theme(self.winfo_toplevel())
        self.coins, self.threshold = tuple(coins), threshold
        self.view: CorrelationView | None = None
        self.generation = 0
        self._build(days)
        loader = CorrelationLoader(layout)
        self._bg: Background[tuple[tuple[str, ...], int, float], CorrelationView] = Background(
            self, loader.load, self._apply, name="correlation-worker",
            refresh_job=self._job, join_timeout_s=2,
        )  # fmt: skip
        self.refresh_now()
        self._bg.every("tick", refresh_ms, self.refresh_now)

    def _build(self, days: int) -> None:
        head = ttk.Frame(self, style="Panel.TFrame")
        head.grid(row=0, column=0, columnspan=2, sticky="ew")
        ttk.Label(head, text="Correlation of daily returns", style="Section.TLabel").pack(
            side="left"
        )
        self.period = ttk.Combobox(head, values=[str(p) for p in PERIODS], width=4,
                                   state="readonly")  # fmt: skip
        self.period.set(str(days))
        self.period.pack(side="right")
        ttk.Label(head, text="Days:", style="Panel.TLabel").pack(side="right", padx=4)
        self.period.bind("<<ComboboxSelected>>", lambda _e: self.refresh_now())
        self.canvas = tk.Canvas(self, background=PANEL, highlightthickness=0, width=400,
                                height=360)  # fmt: skip
        self.canvas.grid(row=1, column=0, sticky="nw", pady=(8, 0))
        side = ttk.Frame(self, style="Panel.TFrame")
        side.grid(row=1, column=1, sticky="nsew", padx=(16, 0), pady=(8, 0))
        self.portfolio = ttk.Label(side, text="", style="Panel.TLabel", justify="left")
        self.portfolio.pack(anchor="w", fill="x")
        wrapping(self.portfolio, margin=4, least=200)
        self.alerts = ttk.Label(side, text="", style="Problem.TLabel", justify="left")
        self.alerts.pack(anchor="w", fill="x", pady=(8, 0))
        wrapping(self.alerts, margin=4, least=200)
        legend = ttk.Label(side, text="Red: the coins moved together (+1); blue: apart (−1); "
                           "dark: unrelated (0); grey: not measured.", style="PanelMuted.TLabel",
                           justify="left")  # fmt: skip
        legend.pack(anchor="w", fill="x", pady=(12, 0))
        wrapping(legend, margin=4, least=200)
        self.status = ttk.Label(self, text="", style="PanelMuted.TLabel", anchor="w")
        self.status.grid(row=2, column=0, columnspan=2, sticky="ew", pady=(6, 0))
        wrapping(self.status, margin=4, least=200)
        self.columnconfigure(1, weight=1)
        self.rowconfigure(1, weight=1)

    def _job(self) -> tuple[tuple[str, ...], int, float]:
        return self.coins, int(self.period.get()), self.threshold

    def set_config(self, coins: Sequence[str], days: int, threshold: float) -> None:
        """New settings: other coins, period or alert threshold."""
        self.coins, self.threshold = tuple(coins), threshold
        self.period.set(str(days))
        self.refresh_now()

    def refresh_now(self) -> None:
        self._bg.refresh()

    @property
    def busy(self) -> bool:
        return self._bg.busy

    def _apply(self, view: CorrelationView) -> None:
        self.generation += 1
        self.view = view
        self.portfolio.configure(text=view.portfolio)
        self.alerts.configure(text="\n".join(view.alerts) or "")
        self.status.configure(text=view.status)
        self.redraw()

    def redraw(self) -> None:
        c, view = self.canvas, self.view
        c.delete("all")
        if view is None or not view.coins:
            return
        n = len(view.coins)
        c.configure(width=LABEL_W + n * CELL + 4, height=LABEL_W // 2 + n * CELL + 4)
        top = LABEL_W // 2
        for j, coin in enumerate(view.coins):
            c.create_text(LABEL_W + j * CELL + CELL / 2, top / 2, text=coin, fill=TEXT,
                          font=self.theme.bold)  # fmt: skip
        for i, row in enumerate(view.values):
            y = top + i * CELL
            c.create_text(LABEL_W - 8, y + CELL / 2, text=view.coins[i], fill=TEXT, anchor="e",
                          font=self.theme.bold)  # fmt: skip
            for j, value in enumerate(row):
                x = LABEL_W + j * CELL
                tag = f"cell:{view.coins[i]}:{view.coins[j]}"
                c.create_rectangle(x, y, x + CELL - 2, y + CELL - 2, fill=cell_colour(value),
                                   outline="", tags=(tag,))  # fmt: skip
                text, ink = ("–", MUTED) if value is None else (f"{value:.2f}", TEXT)
                c.create_text(x + CELL / 2 - 1, y + CELL / 2 - 1, text=text, fill=ink,
                              tags=(f"{tag}:text",))  # fmt: skip

    def destroy(self) -> None:
        self._bg.close()
        super().destroy()
