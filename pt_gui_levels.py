"""The hub's "Neural levels" panel: one tile per coin with its LONG and SHORT levels (0..7).

Each tile (original-behaviour.md §4.4) has two bars of seven segments filled from the bottom,
LONG in blue and SHORT in orange, a marker at the boundary below the trade start level (a LONG
bar that reaches above it can start a trade), and the caption ``L:x S:y``. A coin without a
usable signal says why ("not trained", "stale model", "no price"…) instead of showing zeros,
because 0/0 would read as "no trade signal" when it means "no data". Hovering a tile highlights
it and shows the thinker's full reason; clicking opens the coin (``on_open``).

``state/signals.json`` is read on a worker thread, and only when its stat changed; the tiles are
drawn on one scrollable Canvas that wraps them into as many columns as fit.
"""

from __future__ import annotations

import logging
import time
import tkinter as tk
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from tkinter import ttk

from pt_gui_background import Background
from pt_gui_theme import (
    ACCENT,
    BORDER,
    GRID,
    LONG_BLUE,
    MUTED,
    PANEL,
    PANEL_HI,
    SHORT_ORANGE,
    TEXT,
    WARNING,
    Theme,
    apply_theme,
    scrollbars,
    wrapping,
)
from pt_signals import TRAINING_STATUSES, CoinStatus, SignalsSnapshot
from pt_state import DataLayout, stat_key
from pt_thinker import read_signals

__all__ = ["LevelTile", "LevelsLoader", "LevelsPanel", "LevelsView", "build_levels"]

log = logging.getLogger(__name__)

SEGMENTS = 7
TILE_W, TILE_H, GAP = 92, 156, 8
SEG_H, SEG_GAP, BAR_W = 11, 2, 16
HINT = "Click a coin to open its chart · the white line marks the trade start level"
STALE_AFTER_S = 120.0  # wall seconds without a new signals file: the thinker is not writing
STATUS_WORDS = {
    CoinStatus.WARMING_UP: "warming up", CoinStatus.NOT_TRAINED: "not trained",
    CoinStatus.STALE_MODEL: "stale model", CoinStatus.DAMAGED_MODEL: "damaged model",
    CoinStatus.NO_PRICE: "no price", CoinStatus.NO_CANDLES: "no candles",
    CoinStatus.INACTIVE: "inactive", CoinStatus.ERROR: "error",
}  # fmt: skip


@dataclass(frozen=True)
class LevelTile:
    """One coin's tile: levels None when the coin has no usable signal (then ``note`` says
    why, ``warn`` when only training or a fix helps)."""

    coin: str
    long: int | None
    short: int | None
    note: str = ""
    reason: str = ""
    warn: bool = False
    volume: str = ""  # the volume state's short line (pt_market_state.VolumeState.tile_text)
    volume_detail: str = ""
    anomaly: bool = False

    @property
    def caption(self) -> str:
        def text(level: int | None) -> str:
            return "–" if level is None else str(level)

        return f"L:{text(self.long)} S:{text(self.short)}"


@dataclass(frozen=True)
class LevelsView:
    tiles: tuple[LevelTile, ...]
    last: str  # "Last: HH:MM:SS" (the file's write time) or why there is none
    stale: bool
    seq: int


def build_levels(
    snapshot: SignalsSnapshot | None,
    coins: Sequence[str],
    *,
    wall_now: float,
    tz: tzinfo | None = None,
    stale_after_s: float = STALE_AFTER_S,
) -> LevelsView:
    """The tiles of the configured ``coins`` (in their order) from the thinker's snapshot."""
    if snapshot is None:
        waiting = "the thinker has not written yet"
        empty = tuple(LevelTile(c, None, None, "no signal", waiting) for c in coins)
        return LevelsView(empty, "Last: — (thinker not started)", False, 0)
    tiles: list[LevelTile] = []
    for coin in coins:
        c = snapshot.coin(coin)
        if c is None:
            tiles.append(LevelTile(coin, None, None, "no signal", "not in the thinker's file yet"))
        elif c.status is CoinStatus.READY and c.long_level is not None:
            tiles.append(LevelTile(coin, c.long_level, c.short_level or 0, "", c.reason))
        else:
            word = STATUS_WORDS.get(c.status, c.status.value.replace("_", " "))
            warn = c.status in TRAINING_STATUSES or c.status is CoinStatus.ERROR
            tiles.append(LevelTile(coin, None, None, word, c.reason, warn))
        volume = c.market.volume if c is not None and c.market is not None else None
        if volume is not None:
            detail = f"volume {volume.summary}: {volume.reason}"
            tiles[-1] = replace(tiles[-1], volume=volume.tile_text, anomaly=volume.anomalous,
                                volume_detail=detail)  # fmt: skip
    stale = snapshot.age(wall_now) > stale_after_s
    when = datetime.fromtimestamp(snapshot.written_at, tz=tz).strftime("%H:%M:%S")
    last = f"Last: {when}" + (" (not updating)" if stale else "")
    return LevelsView(tuple(tiles), last, stale, snapshot.seq)


class LevelsLoader:
    """The worker's side: re-reads ``state/signals.json`` only when its stat changed and builds
    a view only when its ``seq``, the coins or the staleness changed (None otherwise).
    ``reads`` counts the times the file was parsed."""

    def __init__(
        self,
        layout: DataLayout,
        *,
        tz: tzinfo | None = None,
        wall: Callable[[], float] = time.time,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        self.layout, self.tz, self._wall, self._stale_after = layout, tz, wall, stale_after_s
        self._key: tuple[int, int, int] | bool | None = False  # False: never looked
        self._snapshot: SignalsSnapshot | None = None
        self._shown: tuple[int, tuple[str, ...], bool] | None = None
        self.reads = 0

    def load(self, coins: Sequence[str]) -> LevelsView | None:
        key = stat_key(self.layout.signals_file)
        if key != self._key:
            self._key = key
            if key is not None:
                self.reads += 1
                self._snapshot = read_signals(self.layout) or self._snapshot
        now = self._wall()
        snap = self._snapshot
        stale = snap is not None and snap.age(now) > self._stale_after
        shown = (snap.seq if snap else 0, tuple(coins), stale)
        if shown == self._shown:
            return None
        self._shown = shown
        return build_levels(snap, coins, wall_now=now, tz=self.tz, stale_after_s=self._stale_after)


class LevelsPanel(ttk.Frame):
    """The "Neural levels" panel (module doc). ``coins`` and ``trade_start_level`` come from
    the settings (:meth:`set_config` when they change); ``on_open(coin)`` runs on a click."""

    def __init__(
        self,
        parent: tk.Misc,
        *,
        layout: DataLayout,
        coins: Sequence[str],
        trade_start_level: int = 3,
        on_open: Callable[[str], None] = lambda coin: None,
        refresh_ms: int = 1000,
        tz: tzinfo | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(parent, style="Panel.TFrame", padding=(10, 6, 10, 6))
        self.theme: Theme = apply_theme(self.winfo_toplevel())
        self.loader = LevelsLoader(layout, tz=tz, wall=wall)
        self.coins, self.start_level, self.on_open = tuple(coins), trade_start_level, on_open
        self.view: LevelsView | None = None
        self.generation = 0
        self.hovered: str | None = None
        self._boxes: dict[str, tuple[int, int]] = {}
        self._build()
        # a failed read is logged and shown as "no change" (the last tiles stay)
        self._bg: Background[tuple[str, ...], LevelsView | None] = Background(
            self, self.loader.load, self._apply, name="levels-worker",
            refresh_job=lambda: self.coins, on_error=lambda _coins, _exc: None,
            join_timeout_s=2,
        )  # fmt: skip
        self.refresh_now()
        self._bg.every("tick", refresh_ms, self.refresh_now)

    # -- layout ------------------------------------------------------------------------------

    def _build(self) -> None:
        head = ttk.Frame(self, style="Panel.TFrame")
        head.grid(row=0, column=0, columnspan=2, sticky="ew")
        head.columnconfigure(0, weight=1)
        ttk.Label(head, text="Neural levels (0–7)", style="Section.TLabel").grid(
            row=0, column=0, sticky="w"
        )
        self.last = ttk.Label(head, text="", style="PanelMuted.TLabel")
        self.last.grid(row=0, column=1, sticky="e")
        legend = ttk.Frame(head, style="Panel.TFrame")
        legend.grid(row=1, column=0, columnspan=2, sticky="w")
        for text, colour in (("■ Long", LONG_BLUE), ("■ Short", SHORT_ORANGE),
                             ("0 = bottom, 7 = top", MUTED)):  # fmt: skip
            ttk.Label(legend, text=text, style="PanelMuted.TLabel", foreground=colour).pack(
                side="left", padx=(0, 10)
            )
        self.canvas = tk.Canvas(self, background=PANEL, highlightthickness=0,
                                width=TILE_W * 3 + GAP * 4, height=TILE_H + GAP * 2)  # fmt: skip
        _, x_bar = scrollbars(self, self.canvas)
        x_bar.grid_remove()  # the tiles wrap: only vertical scrolling
        self.detail = ttk.Label(self, text="", style="PanelMuted.TLabel", anchor="w")
        wrapping(self.detail, margin=4, least=150)
        self.detail.grid(row=4, column=0, columnspan=2, sticky="ew", pady=(3, 0))
        self.rowconfigure(2, weight=1)
        self.columnconfigure(0, weight=1)
        self.canvas.bind("<Configure>", lambda _e: self.redraw())
        self.canvas.bind("<Motion>", self._motion)
        self.canvas.bind("<Leave>", lambda _e: self._hover(None))
        self.canvas.bind("<Button-1>", self._click)
        for seq in ("<MouseWheel>", "<Button-4>", "<Button-5>"):
            self.canvas.bind(seq, self._wheel)

    # -- drawing -------------------------------------------------------------------------------

    def redraw(self) -> None:
        """Tiles in rows of as many as fit the width; the scroll region follows."""
        c = self.canvas
        c.delete("all")
        self._boxes = {}
        tiles = self.view.tiles if self.view else ()
        per_row = max(1, (c.winfo_width() - GAP) // (TILE_W + GAP))
        used = min(per_row, max(len(tiles), 1)) * (TILE_W + GAP) - GAP
        left = max(GAP, (c.winfo_width() - used) // 2)  # the rows centred in the panel
        for i, tile in enumerate(tiles):
            x, y = left + (i % per_row) * (TILE_W + GAP), GAP + (i // per_row) * (TILE_H + GAP)
            self._boxes[tile.coin] = (x, y)
            self._tile(tile, x, y)
        rows = -(-len(tiles) // per_row)
        c.configure(scrollregion=(0, 0, c.winfo_width(), GAP + rows * (TILE_H + GAP)))
        if self.hovered is not None:
            self._outline(self.hovered, ACCENT)

    def _tile(self, t: LevelTile, x: int, y: int) -> None:
        c, tag = self.canvas, f"tile:{t.coin}"
        c.create_rectangle(x, y, x + TILE_W, y + TILE_H, fill=PANEL_HI, outline=BORDER,
                           tags=(tag, "box", f"box:{t.coin}"))  # fmt: skip
        c.create_text(x + TILE_W / 2, y + 12, text=t.coin, fill=TEXT, font=self.theme.bold,
                      tags=(tag,))  # fmt: skip
        bottom = y + 26 + SEGMENTS * (SEG_H + SEG_GAP)
        for k, (level, colour) in enumerate(((t.long, LONG_BLUE), (t.short, SHORT_ORANGE))):
            bx = x + TILE_W / 2 - BAR_W - 4 + k * (BAR_W + 8)
            for seg in range(SEGMENTS):
                top = bottom - (seg + 1) * (SEG_H + SEG_GAP) + SEG_GAP
                lit = level is not None and seg < level
                c.create_rectangle(bx, top, bx + BAR_W, top + SEG_H, outline="",
                                   fill=colour if lit else GRID,
                                   tags=(tag, f"seg:{t.coin}:{'LS'[k]}:{seg + 1}"))  # fmt: skip
            mark = bottom - (self.start_level - 1) * (SEG_H + SEG_GAP) + SEG_GAP / 2
            c.create_line(bx - 3, mark, bx + BAR_W + 3, mark, fill=TEXT, width=2,
                          tags=(tag, "marker"))  # fmt: skip
        c.create_text(x + TILE_W / 2, bottom + 12, text=t.caption, font=self.theme.small,
                      fill=TEXT if t.long is not None else MUTED,
                      tags=(tag, f"caption:{t.coin}"))  # fmt: skip
        if t.note:
            c.create_text(x + TILE_W / 2, bottom + 28, text=t.note, font=self.theme.small,
                          fill=WARNING if t.warn else MUTED, width=TILE_W - 8, justify="center",
                          tags=(tag, f"note:{t.coin}"))  # fmt: skip
        if t.volume and not t.note:  # a coin without a signal shows why instead (hover: both)
            colour = WARNING if t.anomaly else MUTED
            c.create_text(x + TILE_W / 2, bottom + 28, text=t.volume, font=self.theme.small,
                          fill=colour, tags=(tag, f"volume:{t.coin}"))  # fmt: skip

    def _outline(self, coin: str, colour: str) -> None:
        self.canvas.itemconfigure(f"box:{coin}", outline=colour, width=2 if colour == ACCENT else 1)

    # -- interaction ---------------------------------------------------------------------------

    def coin_at(self, x: float, y: float) -> str | None:
        """The tile under a point in canvas coordinates."""
        for coin, (tx, ty) in self._boxes.items():
            if tx <= x <= tx + TILE_W and ty <= y <= ty + TILE_H:
                return coin
        return None

    def _at(self, event: tk.Event[tk.Misc]) -> str | None:
        return self.coin_at(self.canvas.canvasx(event.x), self.canvas.canvasy(event.y))

    def _motion(self, event: tk.Event[tk.Misc]) -> None:
        self._hover(self._at(event))

    def _hover(self, coin: str | None) -> None:
        if coin == self.hovered:
            return
        if self.hovered is not None:
            self._outline(self.hovered, BORDER)
        self.hovered = coin
        self.canvas.configure(cursor="hand2" if coin else "")
        tile = next((t for t in self.view.tiles if t.coin == coin), None) if self.view else None
        if coin is None or tile is None:
            self.detail.configure(text=HINT)
            return
        self._outline(coin, ACCENT)
        reason = tile.reason.removeprefix(f"{coin}: ") or "ready"
        volume = f" · {tile.volume_detail}" if tile.volume_detail else ""
        self.detail.configure(text=f"{coin} {tile.caption} — {reason}{volume}")

    def _click(self, event: tk.Event[tk.Misc]) -> None:
        coin = self._at(event)
        if coin is not None:
            self.on_open(coin)

    def _wheel(self, event: tk.Event[tk.Misc]) -> None:
        step = -1 if event.num == 4 or getattr(event, "delta", 0) > 0 else 1
        self.canvas.yview_scroll(step, "units")

    # -- refresh (Tk thread) ------------------------------------------------------------------

    def set_config(self, coins: Sequence[str], trade_start_level: int) -> None:
        """New settings: other coins or another start level (the marker moves)."""
        self.coins, self.start_level = tuple(coins), trade_start_level
        self.redraw()
        self.refresh_now()

    def refresh_now(self) -> None:
        """Read the signals now; while a read is running, once more after it."""
        self._bg.refresh()

    @property
    def busy(self) -> bool:
        return self._bg.busy

    def _apply(self, view: LevelsView | None) -> None:
        self.generation += 1
        if view is not None:
            self.view = view
            style = "Problem.TLabel" if view.stale else "PanelMuted.TLabel"
            self.last.configure(text=view.last, style=style)
            self.redraw()
            if self.hovered is None:
                self.detail.configure(text=HINT)

    def destroy(self) -> None:
        self._bg.close()
        super().destroy()
