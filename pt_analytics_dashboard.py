"""The ANALYTICS tab: KPI cards, the period table, equity and PnL-per-coin charts, recent trades.

The hub puts :class:`AnalyticsWidget` in its notebook; ``python pt_analytics_dashboard.py
[--data-dir DIR]`` shows it alone in a window, to look at before (or without) the hub.

The Tk thread must never wait on the journal: the trader writes it while we read, a locked or
damaged file can take seconds to fail, and years of trades take a moment to summarise. So one
worker thread (:class:`pt_gui_background.Background`) opens the journal read-only, asks
:class:`pt_analytics.PerformanceTracker` for the figures and turns them into ready-to-show text
(:class:`DashboardView`); the result, or the error, comes back to the Tk thread, which only draws.
A failed read leaves the last good figures on screen and says why in the status line; the tab
never writes to the journal.
"""

from __future__ import annotations

import argparse
import calendar
import json
import logging
import os
import sys
import time
import tkinter as tk
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from itertools import accumulate
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Protocol

import pt_config
import pt_metrics as pm
from pt_analytics import (
    DashboardMetrics,
    JournalError,
    JournalMissingError,
    PerformanceTracker,
    TradeJournal,
    TradeRecord,
    export_csv,
)
from pt_gui_background import Background
from pt_gui_charts import (
    CoinBar,
    CoinBarsChart,
    EquityChart,
    EquityView,
    KPICard,
    PerformanceTable,
    TradesTable,
    panel,
)
from pt_gui_theme import Tone, apply_theme, tone_of, wrapping
from pt_replay import read_clock, sim_time
from pt_state import DataDirError, DataLayout, resolve_data_dir
from pt_types import Mode

__all__ = [
    "AnalyticsWidget", "Card", "DashboardLoader", "DashboardView", "KPICard", "PerformanceTable",
    "TradesTable", "build_view", "main", "mode_clock",
]  # fmt: skip

log = logging.getLogger(__name__)

NO_JOURNAL_TEXT = "No trades yet — start the bot (demo mode needs no keys)"
WINDOW_TITLE = "PowerTrader AI — Analytics"
EXIT_NO_DISPLAY = EXIT_BAD_INPUT = 2
READ_TIMEOUT_S = 2.0  # a locked journal: give up quickly, the next refresh tries again
CARDS = (
    ("trades", "Total trades"), ("win_rate", "Win rate"), ("today", "Today's PnL"),
    ("drawdown", "Max drawdown"), ("realized", "Realized PnL"), ("exposure", "Open exposure"),
)  # fmt: skip
PERIOD_NAMES = {"today": "Today", "7d": "7 days", "30d": "30 days", "all": "All time"}


class DashboardSource(Protocol):
    def get_dashboard_metrics(self, now: float) -> DashboardMetrics: ...


SaveDialog = Callable[..., object]  # tk.filedialog.asksaveasfilename's shape


# ---------------------------------------------------------------------------------------------
# What the tab shows, as text: built on the worker thread


@dataclass(frozen=True)
class Card:
    """A KPI card's text and colour, decided with the figures rather than by the widget."""

    value: str
    tone: Tone = "neutral"
    detail: str = ""


@dataclass(frozen=True)
class DashboardView:
    """Everything on the tab, formatted; the Tk thread copies it into widgets."""

    mode: str
    cards: Mapping[str, Card]
    periods: tuple[tuple[str, ...], ...]
    recent: tuple[tuple[tuple[str, ...], str], ...]  # (cells, row tag: win/loss/draw/open)
    equity: EquityView
    coins: tuple[CoinBar, ...]
    summary: str


EMPTY_VIEW = DashboardView(
    mode="",
    cards={key: Card(pm.DASH) for key, _ in CARDS},
    periods=tuple((name, *([pm.DASH] * 9)) for name in PERIOD_NAMES.values()),
    recent=(),
    equity=EquityView((), (), (), ()),
    coins=(),
    summary="",
)


def _qty(q: float) -> str:
    return f"{q:,.8f}".rstrip("0").rstrip(".") or "0"


def _when(t: float | None, tz: tzinfo | None) -> str:
    return pm.DASH if t is None else datetime.fromtimestamp(t, tz=tz).strftime("%Y-%m-%d %H:%M")


def _recovery(dd: pm.Drawdown) -> str:
    if dd.max_drawdown is None:
        return "no equity recorded yet"
    if not dd.max_drawdown:
        return "no drawdown"
    if dd.days_to_recover is None:
        return "not recovered yet"
    return f"recovered in {dd.days_to_recover} d"


def build_view(
    d: DashboardMetrics, records: Mapping[str, TradeRecord], tz: tzinfo | None
) -> DashboardView:
    """Format the tracker's figures (and the recent trades' journal rows) for the tab."""
    k, whole = d.kpis, d.period("all")
    usd, pct, ratio = pm.fmt_usd, pm.fmt_pct, pm.fmt_ratio
    t = whole.trades
    cards = {
        "trades": Card(str(k.total_trades), detail=f"{t.wins} won · {t.losses} lost"),
        "win_rate": Card(pct(k.win_rate), detail=f"profit factor {ratio(k.profit_factor)}"),
        "today": Card(usd(k.today_realized_pnl_usd), tone_of(k.today_realized_pnl_usd),
                      f"equity {usd(k.today_equity_change_usd, signed=True)}"),
        "drawdown": Card(pct(k.max_drawdown), "negative" if k.max_drawdown else "neutral",
                         _recovery(whole.account.drawdown)),
        "realized": Card(usd(k.realized_pnl_usd), tone_of(k.realized_pnl_usd),
                         f"avg {usd(t.expectancy_usd)} / trade"),
        "exposure": Card(usd(k.open_cost_usd), detail=f"peak {usd(whole.capital_deployed_usd)}"),
    }  # fmt: skip
    periods = tuple(
        (PERIOD_NAMES.get(p.label, p.label), str(p.trades.trades), pct(p.trades.win_rate),
         usd(p.trades.realized_pnl_usd), ratio(p.trades.profit_factor),
         usd(p.trades.expectancy_usd), usd(p.equity_change_usd), pct(p.account.max_drawdown),
         ratio(p.account.sharpe), pct(p.exposure))
        for p in d.periods
    )  # fmt: skip
    recent = []
    for r in d.recent_trades:
        rec = records.get(r.trade_group_id)
        is_open = r.closed_at is None
        quantity = pm.DASH if rec is None else _qty(rec.bought_quantity)
        proceeds = (
            pm.DASH if rec is None or (is_open and not rec.proceeds_usd) else usd(rec.proceeds_usd)
        )
        hold = r.hold_s if r.hold_s is not None else d.now - r.opened_at
        pnl, pnl_pct = usd(r.realized_pnl_usd), f"{r.realized_pnl_pct:+.2f}%"
        if is_open and not r.realized_pnl_usd:
            pnl = pnl_pct = pm.DASH
        cells = (
            "open" if is_open else _when(r.closed_at, tz), r.coin,
            {"draw": "even"}.get(r.result, r.result).capitalize(), r.exit_reason or pm.DASH,
            quantity, usd(r.cost_usd), proceeds, pnl, pnl_pct, str(r.dca_count),
            pm.fmt_duration(hold),
        )  # fmt: skip
        recent.append((cells, r.result))
    peak = tuple(accumulate(d.equity, max))
    coins = tuple(
        CoinBar(c.coin, c.trades.realized_pnl_usd, usd(c.trades.realized_pnl_usd))
        for c in d.coins
        if c.trades.trades
    )
    equity_now = f" · equity {usd(k.equity_usd)}" if k.equity_usd is not None else ""
    return DashboardView(
        mode=d.mode,
        cards=cards,
        periods=periods,
        recent=tuple(recent),
        equity=EquityView(d.dates, d.equity, peak, d.drawdown),
        coins=coins,
        summary=f"{k.total_trades} closed, {k.open_trades} open{equity_now}",
    )


class DashboardLoader:
    """The worker's side: reads the journal read-only and formats; no Tk here."""

    def __init__(
        self,
        journal_path: Path,
        *,
        tracker_factory: Callable[[TradeJournal], DashboardSource] = PerformanceTracker,
        clock: Callable[[], float] = time.time,
        tz: tzinfo | None = None,
        busy_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        self.journal_path = Path(journal_path)
        self.tracker_factory = tracker_factory
        self.clock = clock
        self.tz = tz
        self.busy_timeout_s = busy_timeout_s
        self.last_problem = ""  # logged once, not at every refresh while it lasts

    def now(self) -> float:
        """The mode's "now" (a demo clock may read a file, so it is asked here, off the Tk
        thread); the wall clock if it fails."""
        try:
            return float(self.clock())
        except Exception:  # a broken clock must not stop the figures
            log.exception("the clock failed; using the wall clock")
            return time.time()

    def _open(self) -> TradeJournal:
        return TradeJournal.open_readonly(self.journal_path, busy_timeout_s=self.busy_timeout_s)

    def load(self, now: float) -> DashboardView:
        """The tab at ``now``; raises JournalMissingError or JournalError."""
        with self._open() as journal, journal.snapshot():
            metrics = self.tracker_factory(journal).get_dashboard_metrics(now)
            records = {
                r.trade_group_id: rec
                for r in metrics.recent_trades
                if (rec := journal.trade(r.trade_group_id)) is not None
            }
        return build_view(metrics, records, self.tz)

    def export(self, what: str, target: Path) -> int:
        """Write trades or fills as CSV; a partial file never replaces the target."""
        part = target.with_name(f".{target.name}.part")
        try:
            with self._open() as journal, part.open("w", newline="", encoding="utf-8") as out:
                rows = export_csv(journal, what, out)
            part.replace(target)
        finally:
            part.unlink(missing_ok=True)
        return rows


# Messages from the worker to the Tk thread.
@dataclass(frozen=True)
class _Read:
    """A refresh at ``at``: the figures, or no journal yet (no ``view`` and no ``problem``), or
    why the journal could not be read (the last good figures stay on screen)."""

    at: float
    view: DashboardView | None = None
    problem: str = ""


@dataclass(frozen=True)
class _Exported:
    text: str  # for the status line
    problem: bool = False


@dataclass(frozen=True)
class _ExportJob:
    what: str
    target: Path


_Job = _ExportJob | None  # None: read the figures again
_Result = _Read | _Exported


def _export(loader: DashboardLoader, job: _ExportJob) -> _Exported:
    try:
        rows = loader.export(job.what, job.target)
    except (JournalError, OSError) as exc:
        return _Exported(f"Export of {job.what} failed: {exc}", problem=True)
    except Exception as exc:  # shown to the user rather than killing the worker
        log.exception("export of %s to %s failed", job.what, job.target)
        return _Exported(f"Export of {job.what} failed: unexpected error: {exc}", problem=True)
    return _Exported(f"Exported {rows} {job.what} to {job.target}")


def _refresh(loader: DashboardLoader) -> _Read:
    now = loader.now()
    try:
        view = loader.load(now)
    except JournalMissingError:
        return _Read(now)
    except JournalError as exc:
        if str(exc) != loader.last_problem:
            log.warning("analytics: %s", exc)
        loader.last_problem = str(exc)
        return _Read(now, problem=str(exc))
    except Exception as exc:  # shown to the user rather than killing the worker
        if str(exc) != loader.last_problem:
            log.exception("analytics refresh failed unexpectedly")
        loader.last_problem = str(exc)
        return _Read(now, problem=f"unexpected error reading the journal: {exc}")
    if loader.last_problem:
        log.info("analytics: the journal reads again")
        loader.last_problem = ""
    return _Read(now, view)


def _work(loader: DashboardLoader, job: _Job) -> _Result:
    """One job on the worker thread; every failure becomes a message shown on the tab. It holds
    no widget: the last reference to a Tk object must never be dropped off the Tk thread."""
    return _export(loader, job) if isinstance(job, _ExportJob) else _refresh(loader)


class AnalyticsWidget(ttk.Frame):
    """The ANALYTICS tab (module doc): refreshed every ``refresh_ms`` (0: only on demand) by a
    background worker; ``ask_save_path`` is the file dialog (injectable for tests)."""

    def __init__(
        self,
        parent: tk.Misc,
        *,
        journal_path: Path,
        tracker_factory: Callable[[TradeJournal], DashboardSource] = PerformanceTracker,
        clock: Callable[[], float] = time.time,
        refresh_ms: int = 5000,
        tz: tzinfo | None = None,
        ask_save_path: SaveDialog = filedialog.asksaveasfilename,
    ) -> None:
        super().__init__(parent, style="TFrame", padding=(12, 8, 12, 6))
        self.theme = apply_theme(self.winfo_toplevel())
        self.journal_path = Path(journal_path)
        self._loader = DashboardLoader(
            self.journal_path, tracker_factory=tracker_factory, clock=clock, tz=tz
        )
        self._tz, self._refresh_ms = tz, refresh_ms
        self._last_at: float | None = None  # "now" of the latest refresh
        self._ask_save_path = ask_save_path
        self._good_at: float | None = None
        self._export_busy = False
        self.generation = 0  # refresh results applied (tests wait on it)
        self.view: DashboardView = EMPTY_VIEW
        self._build()
        self._show(EMPTY_VIEW)
        self._exporting()
        loader = self._loader  # the worker gets the loader, never the widget
        self._bg: Background[_Job, _Result] = Background(
            self, lambda job: _work(loader, job), self._apply, name="analytics-worker",
            refresh_job=lambda: None, join_timeout_s=READ_TIMEOUT_S + 1,
        )  # fmt: skip
        self.refresh_now()
        self._bg.every("tick", refresh_ms, self.refresh_now)

    # -- layout ------------------------------------------------------------------------

    def _build(self) -> None:
        self.columnconfigure(0, weight=3, uniform="split")
        self.columnconfigure(1, weight=2, uniform="split")
        head = ttk.Frame(self)
        head.grid(row=0, column=0, columnspan=2, sticky="ew", pady=(0, 6))
        head.columnconfigure(2, weight=1)
        ttk.Label(head, text="Performance", style="Title.TLabel").grid(row=0, column=0)
        self.mode_badge = ttk.Label(head, text="", style="Badge.TLabel", padding=(8, 1))
        self.notice = ttk.Label(head, text="", style="Notice.TLabel")
        self.notice.grid(row=0, column=2, sticky="w", padx=(14, 8))
        self.refresh_button = ttk.Button(head, text="Refresh", command=self.refresh_now)
        self.export_trades_button = ttk.Button(
            head, text="Export trades…", command=lambda: self.export("trades")
        )
        self.export_fills_button = ttk.Button(
            head, text="Export fills…", command=lambda: self.export("fills")
        )
        for i, button in enumerate(
            (self.refresh_button, self.export_trades_button, self.export_fills_button)
        ):
            button.grid(row=0, column=3 + i, padx=(6, 0))
        strip = ttk.Frame(self)
        strip.grid(row=1, column=0, columnspan=2, sticky="ew", pady=(0, 6))
        self.cards: dict[str, KPICard] = {}
        for i, (key, title) in enumerate(CARDS):
            strip.columnconfigure(i, weight=1, uniform="card")
            card = KPICard(strip, title, theme=self.theme)
            card.grid(row=0, column=i, sticky="nsew", padx=(0 if i == 0 else 6, 0))
            self.cards[key] = card
        eq_panel, self.equity_note = panel(self, "Equity (daily, mark-to-market)")
        eq_panel.grid(row=2, column=0, sticky="nsew", pady=(0, 6))
        self.equity_chart = EquityChart(eq_panel, self.theme)
        self.equity_chart.grid(row=1, column=0, columnspan=2, sticky="nsew", pady=(4, 0))
        eq_panel.rowconfigure(1, weight=1)
        coin_panel, _ = panel(self, "Realized PnL by coin")
        coin_panel.grid(row=2, column=1, sticky="nsew", pady=(0, 6), padx=(6, 0))
        self.coin_chart = CoinBarsChart(coin_panel, self.theme)
        self.coin_chart.grid(row=1, column=0, columnspan=2, sticky="nsew", pady=(4, 0))
        coin_panel.rowconfigure(1, weight=1)
        period_panel = ttk.Frame(self, style="Panel.TFrame", padding=(10, 6))
        period_panel.grid(row=3, column=0, columnspan=2, sticky="nsew", pady=(0, 6))
        period_panel.columnconfigure(0, weight=1)
        self.period_table = PerformanceTable(period_panel, theme=self.theme)
        self.period_table.grid(row=0, column=0, sticky="ew")
        trades_panel, self.trades_note = panel(self, "Recent trades")
        trades_panel.grid(row=4, column=0, columnspan=2, sticky="nsew", pady=(0, 6))
        self.trades_table = TradesTable(trades_panel, theme=self.theme)
        self.trades_table.grid(row=1, column=0, columnspan=2, sticky="nsew", pady=(4, 0))
        trades_panel.rowconfigure(1, weight=1)
        self.status = ttk.Label(self, text="Reading the journal…", style="Status.TLabel",
                                padding=(8, 3), anchor="w")  # fmt: skip
        wrapping(self.status, margin=16).grid(row=5, column=0, columnspan=2, sticky="ew")
        self.rowconfigure(2, weight=3, minsize=170)
        self.rowconfigure(4, weight=2, minsize=140)

    # -- drawing what arrived ----------------------------------------------------------------

    def _show(self, view: DashboardView) -> None:
        self.view = view
        for key, card in self.cards.items():
            c = view.cards[key]
            card.set(c.value, c.tone, c.detail)
        if view.mode:
            self.mode_badge.configure(text=view.mode.upper())
            self.mode_badge.grid(row=0, column=1, padx=(10, 0))
        else:
            self.mode_badge.grid_remove()
        self.period_table.set_rows(view.periods)
        self.trades_table.set_rows(view.recent)
        self.trades_note.configure(text=f"latest {len(view.recent)}" if view.recent else "")
        empty = "No equity recorded yet" if view.mode else NO_JOURNAL_TEXT
        self.equity_chart.show(view.equity if view.equity.equity else None, empty)
        eq = view.equity
        note = (
            f"now {pm.fmt_usd(eq.equity[-1])} · peak {pm.fmt_usd(eq.peak[-1])}" if eq.equity else ""
        )
        self.equity_note.configure(text=note)
        self.coin_chart.show(view.coins)

    def _say(self, text: str, *, problem: bool = False) -> None:
        self.status.configure(text=text, style="Problem.TLabel" if problem else "Status.TLabel")

    def _clock_text(self, t: float) -> str:
        return datetime.fromtimestamp(t, tz=self._tz).strftime("%H:%M:%S")

    def _apply(self, result: _Result) -> None:
        if isinstance(result, _Exported):
            self._exporting(False)
            self._say(result.text, problem=result.problem)
            return
        self.generation += 1
        self._last_at, view = result.at, result.view
        if result.problem:
            kept = (f"Showing the figures from {self._clock_text(self._good_at)}"
                    if self._good_at is not None else "No figures yet")  # fmt: skip
            self._say(f"{kept} — {result.problem}", problem=True)
            return
        self._good_at = None if view is None else result.at
        self.notice.configure(text="" if view else NO_JOURNAL_TEXT)
        self._show(view or EMPTY_VIEW)
        self._exporting()
        if view is None:
            self._say(f"No journal yet at {self.journal_path}")
        else:
            self._say(f"Updated {self._clock_text(result.at)} · {view.summary} · "
                      f"{self.journal_path}")  # fmt: skip

    # -- refresh and export (Tk thread) -------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A refresh is on its way."""
        return self._bg.busy

    def refresh_now(self) -> None:
        """Read the journal again now; while a read is running, once more after it."""
        self._bg.refresh()

    def _exporting(self, busy: bool | None = None) -> None:
        """Export buttons work when there is a journal and no export is running."""
        if busy is not None:
            self._export_busy = busy
        off = self._export_busy or self._good_at is None
        for button in (self.export_trades_button, self.export_fills_button):
            button.state(["disabled"] if off else ["!disabled"])

    def export(self, what: str) -> None:
        """Ask where to save ``trades`` or ``fills`` as CSV, then write it off the Tk thread."""
        at = self._last_at
        day = "" if at is None else datetime.fromtimestamp(at, tz=self._tz).strftime("-%Y-%m-%d")
        chosen = self._ask_save_path(
            parent=self,
            title=f"Export {what} as CSV",
            defaultextension=".csv",
            filetypes=[("CSV files", "*.csv"), ("All files", "*")],
            initialdir=str(self.journal_path.parent),
            initialfile=f"powertrader-{what}{day}.csv",
        )
        if not isinstance(chosen, str | os.PathLike) or not str(chosen):
            return  # cancelled
        self._exporting(True)
        self._say(f"Exporting {what} to {chosen}…")
        self._bg.submit(_ExportJob(what, Path(chosen)))

    def destroy(self) -> None:
        """Stop the timers and the worker (after the job it is doing, at most a read timeout)."""
        self._bg.close()
        super().destroy()


# ---------------------------------------------------------------------------------------------
# Standalone window


def _no_display() -> str | None:
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display found (DISPLAY is not set)"
    return None


def mode_clock(layout: DataLayout) -> Callable[[], float]:
    """The settings' mode's "now", as the hub has it: in demo the trades carry simulated times,
    so "today" is the demo's day (``state/clock.json``; the demo start before it runs)."""
    try:  # read only: this viewer must not set a broken settings file aside as the hub does
        text = layout.settings_file.read_text(encoding="utf-8")
        settings = pt_config.parse(pt_config.apply_env(json.loads(text), os.environ))
    except FileNotFoundError:
        settings = pt_config.parse(pt_config.apply_env({}, os.environ))
    except (ValueError, TypeError, OSError) as exc:  # SettingsError is a ValueError
        log.warning("settings unreadable (%s); using the wall clock", exc)
        return time.time
    if settings.mode is not Mode.DEMO:
        return time.time
    start = calendar.timegm(time.strptime(settings.demo.start, "%Y-%m-%d"))

    def now() -> float:
        state = read_clock(layout)
        return float(start) if state is None else sim_time(state, time.time())

    return now


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pt_analytics_dashboard.py", description="Show the ANALYTICS tab in its own window."
    )
    parser.add_argument(
        "--data-dir", help="data folder (default: $POWERTRADER_HOME, else ./user_data)"
    )
    parser.add_argument("--refresh-ms", type=int, default=5000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        layout = DataLayout(resolve_data_dir(args.data_dir))
    except DataDirError as exc:
        sys.stderr.write(f"PowerTrader AI analytics: {exc}\n")
        return EXIT_BAD_INPUT
    problem = _no_display()
    root: tk.Tk | None = None
    if problem is None:
        try:
            root = tk.Tk(className="PowerTrader")
        except tk.TclError as exc:
            problem = f"the display cannot be opened ({exc})"
    if root is None:
        sys.stderr.write(
            f"PowerTrader AI analytics needs a desktop window: {problem}.\n"
            "Run it on a desktop, or use `python pt_analytics.py summary` in a terminal.\n"
        )
        return EXIT_NO_DISPLAY
    root.title(WINDOW_TITLE)
    root.geometry("1400x820")
    root.minsize(980, 640)
    tab = AnalyticsWidget(
        root, journal_path=layout.journal_db, clock=mode_clock(layout), refresh_ms=args.refresh_ms
    )
    tab.pack(fill="both", expand=True)

    def close() -> None:
        tab.destroy()
        root.destroy()

    root.protocol("WM_DELETE_WINDOW", close)
    root.mainloop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
