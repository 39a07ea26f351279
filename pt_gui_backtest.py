"""The hub's BACKTEST tab: a backtest of the settings beside buy-and-hold, and the optimisation
results in the data folder's ``backtests/``, ranked, the best one applicable to the settings.

A run does what ``pt_backtester.py run`` does, on a worker thread (its progress reaches the Tk
thread through a queue drained by ``after()``); results files are read on a second one.
"""

from __future__ import annotations

import contextlib
import json
import math
import queue
import threading
import time
import tkinter as tk
from argparse import ArgumentTypeError
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from tkinter import font as tkfont
from tkinter import ttk
from typing import TypeVar

import pt_gui_theme as ui
from pt_backtest_engine import BacktestSpec, BacktestStoppedError, run_backtest
from pt_backtest_journal import summarize, write_journal
from pt_backtest_optimize import TrialResult, rank
from pt_backtest_summary import buy_and_hold, summary_lines
from pt_backtest_cli import UsageError, check_span, day, load_history, utc_day, write_files
from pt_config_schema import Settings
from pt_errors import PowerTraderError
from pt_gui_background import Background
from pt_gui_charts import ChartCanvas, money_tick, nice_ticks
from pt_gui_theme import Theme, apply_theme, wrapping
from pt_state import DataLayout
from pt_types import DAY, HOUR, Candles

STEPS, SPAN_DAYS, TOP = ("300", "600", "1200"), 90, 10
OBJECTIVES = ("sharpe", "sortino", "calmar", "total_return", "cagr", "max_drawdown", "win_rate")
PERCENT = frozenset({"total_return", "cagr", "max_drawdown", "win_rate"})
COLUMNS = ("#", *OBJECTIVES, "settings")
HEADINGS = ("#", "Sharpe", "Sortino", "Calmar", "Return", "CAGR", "Max DD", "Win rate", "Settings")
CHART_POINTS, SUMMARY_CHARS = 800, 64  # points a line (more than the canvas is wide); text width
VALUE_COLUMN = 34  # where summary_lines' values start: a long one wraps back to it
CURVES = (("Bot", ui.ACCENT, "bot"), ("Buy & hold", ui.LONG_BLUE, "hold"))  # label, colour, tag
RED = "BacktestError.TLabel"  # a refusal or an error, in red
DAY_STEPS = (1, 2, 3, 7, 14, 30, 61, 91, 182, 365, 730, 1461)  # days between the chart's dates

Point = tuple[float, float]
W = TypeVar("W", bound=tk.Widget)
Span = tuple[str, str]  # the default span: its first day and the day after its last


@dataclass(frozen=True)
class RunJob:
    spec: BacktestSpec
    progress: queue.Queue[tuple[int, int]]  # (done, total) from the engine, for the Tk thread
    stop: threading.Event


@dataclass(frozen=True)
class RunDone:
    table: str  # the summary, bot beside buy-and-hold (values from column VALUE_COLUMN)
    notes: str
    out: Path
    curves: tuple[tuple[Point, ...], ...]  # the bot's equity and buy-and-hold's (CURVES)


@dataclass(frozen=True)
class Failed:
    message: str
    stopped: bool = False


@dataclass(frozen=True)
class TrialsView:
    objective: str
    files: tuple[str, ...]
    selected: str
    top: tuple[TrialResult, ...]
    note: str


Outcome = RunDone | Failed | Span


def default_span(history: Mapping[str, Candles], days: int = SPAN_DAYS) -> Span:
    """The last ``days`` whole days every coin has data for (end exclusive, UTC)."""
    end = min((int(c.time[-1]) + HOUR) // DAY * DAY for c in history.values())
    first = max(-(-int(c.time[0]) // DAY) * DAY for c in history.values())
    return utc_day(max(end - days * DAY, first)), utc_day(end)


def find_span(layout: DataLayout, coins: Sequence[str]) -> Span:
    """The default span of the coins that have data (BTC's when none has)."""
    found: dict[str, Candles] = {}
    for coin in coins:
        with contextlib.suppress(UsageError):
            found |= load_history(layout, (coin,))
    return default_span(found or load_history(layout, ("BTC",)))


def _curve(times: Sequence[float], values: Sequence[float]) -> tuple[Point, ...]:
    """The finite points, thinned to at most about CHART_POINTS (the last one always kept)."""
    pts = [(float(t), float(v)) for t, v in zip(times, values, strict=True) if math.isfinite(v)]
    every = max(1, len(pts) // CHART_POINTS)
    return tuple(pts[::every] + (pts[-1:] if pts and (len(pts) - 1) % every else []))


def run_job(layout: DataLayout, results_dir: Path, job: RunJob) -> Outcome:
    """Load, check, run, journal and write one backtest; a refused or stopped one writes nothing."""
    try:
        spec = job.spec
        history = load_history(layout, spec.coins)
        check_span(history, spec.start, spec.end)
        if job.stop.is_set():
            raise BacktestStoppedError("stop requested")
        result = run_backtest(spec, history, should_stop=job.stop.is_set,
                              progress=lambda *done: job.progress.put(done))  # fmt: skip
        out = results_dir / time.strftime("run-%Y%m%d-%H%M%S")
        hold = buy_and_hold(spec, history)
        journal = write_journal(result, out / "journal.sqlite3")
        try:
            summary = summarize(result, journal, hold)
        finally:
            journal.close()
        write_files(result, summary, out)
    except BacktestStoppedError:
        return Failed("Backtest stopped; nothing was written. Press Run backtest to start "
                      "again.", stopped=True)  # fmt: skip
    except UsageError as exc:
        return Failed(f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
    except (PowerTraderError, OSError) as exc:
        return Failed(f"The backtest failed: {exc}")
    lines = summary_lines(summary.metrics, summary.buy_and_hold, deepest_dca=summary.deepest_dca,
                          starting_cash=spec.starting_cash)  # fmt: skip
    bot = _curve(result.equity.time.tolist(), result.equity.equity.tolist())
    hold_curve = _curve(hold.time.tolist(), hold.equity.tolist())
    return RunDone("\n".join(lines), "\n\n" + "\n".join(result.notes), out, (bot, hold_curve))


def read_trials(path: Path) -> tuple[list[TrialResult], int]:
    """The trials of a JSON Lines results file and how many damaged lines were skipped."""
    trials, skipped = [], 0
    for line in filter(str.strip, path.read_text(encoding="utf-8", errors="replace").splitlines()):
        try:
            d = json.loads(line)
            point, figures = dict(d["point"]), dict(d["figures"])
            trials.append(TrialResult(point, figures, float(d["seconds"]), str(d["key"])))
        except (ValueError, KeyError, TypeError):
            skipped += 1
    return trials, skipped


def load_trials(results_dir: Path, selected: str, objective: str) -> TrialsView:
    """The results files in ``results_dir`` (newest name first) and the selected one's best."""
    files = tuple(sorted((p.name for p in results_dir.glob("*.jsonl")), reverse=True))
    if not files:
        note = f"No optimisation results (*.jsonl) in {results_dir} yet."
        return TrialsView(objective, (), "", (), note)
    name = selected if selected in files else files[0]
    try:
        trials, skipped = read_trials(results_dir / name)
    except OSError as exc:
        return TrialsView(objective, files, name, (), f"Cannot read {name}: {exc}")
    note = f"{len(trials)} trials" + (f"; {skipped} damaged lines skipped" if skipped else "")
    return TrialsView(objective, files, name, tuple(rank(trials, objective)[:TOP]), note)


def figure_text(objective: str, value: object) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "n/a"
    if objective == "max_drawdown":
        return f"{-value * 100:.2f}%"
    return f"{value * 100:+.2f}%" if objective in PERCENT else f"{value:.2f}"


class ComparisonChart(ChartCanvas):
    """The run's equity and buy-and-hold's on one time axis, with a legend."""

    def __init__(self, parent: tk.Misc, theme: Theme) -> None:
        super().__init__(parent, theme, width=360, height=220)
        self.curves: tuple[tuple[Point, ...], ...] = ()
        self.empty_text = "Run a backtest to see its equity beside buy & hold"

    def redraw(self) -> None:
        self.delete("all")
        w, h = self.winfo_width(), self.winfo_height()
        pts = [p for curve in self.curves for p in curve]
        if not pts or w < 80 or h < 80:
            self._placeholder()
            return
        small, lh = self.theme.small, self.theme.line_height(self, self.theme.small)
        t0, t1 = min(p[0] for p in pts), max(p[0] for p in pts)
        lo, hi = min(p[1] for p in pts), max(p[1] for p in pts)
        pad = (hi - lo) * 0.08 or max(abs(hi) * 0.01, 1.0)
        x, y = 8.0, float(lh)  # the legend first: the plot starts under it
        for (label, colour, _), curve in zip(CURVES, self.curves, strict=True):
            change = (curve[-1][1] / curve[0][1] - 1) * 100 if curve and curve[0][1] else 0.0
            text = f"{label} {change:+.2f}%"
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
        for (_, colour, tag), curve in zip(CURVES, self.curves, strict=True):
            if len(curve) > 1:
                self.create_line(*(c for p in curve for c in xy(p)), fill=colour, width=2,
                                 tags=(tag,))  # fmt: skip
        width = self.theme.measure(self, "2024-01-01") * 1.25
        days = next((d for d in DAY_STEPS if (t1 - t0) / (d * DAY) * width <= right - left), 3000)
        for when in range(-(-int(t0) // DAY) * DAY, int(t1) + 1, days * DAY):
            if width / 3 <= (x := xy((when, lo))[0]) <= w - width / 3:
                self.create_text(x, bottom + 4, text=utc_day(when), anchor="n", fill=ui.MUTED,
                                 font=small, tags=("date",))  # fmt: skip


class BacktestTab(ttk.Frame):
    """The tab (module doc). ``settings()`` gives the settings a run uses; ``on_apply(point)``
    writes an optimisation's best point into the settings and returns a message to show, or
    raises :class:`PowerTraderError`; it is called on the Tk thread."""

    def __init__(self, parent: tk.Misc, *, layout: DataLayout, settings: Callable[[], Settings],
                 results_dir: Path, on_apply: Callable[[dict[str, object]], str],
                 ) -> None:  # fmt: skip
        super().__init__(parent, style="Panel.TFrame", padding=(10, 8))
        self.theme: Theme = apply_theme(self.winfo_toplevel())
        ttk.Style(self).configure(RED, background=ui.PANEL, foreground=ui.NEGATIVE)
        self.settings, self.on_apply = settings, on_apply
        self.running, self._span = False, ""
        self.last_out: Path | None = None
        self.top: tuple[TrialResult, ...] = ()
        self._stop, self._progress = threading.Event(), queue.Queue[tuple[int, int]]()
        self._runner: Background[RunJob | tuple[str, ...], Outcome] = Background(
            self, lambda job: run_job(layout, results_dir, job) if isinstance(job, RunJob)
            else find_span(layout, job),
            self._finished, name="backtest-worker", join_timeout_s=2, on_error=lambda _job, exc:
            Failed(f"The backtest failed unexpectedly ({exc!r}); the log has the details."),
        )  # fmt: skip
        self._files: Background[tuple[str, str], TrialsView] = Background(
            self, lambda job: load_trials(results_dir, *job), self._show_trials,
            name="backtest-results", refresh_job=lambda: (self.files.get(), self.objective.get()),
            join_timeout_s=2,
        )  # fmt: skip
        self._build()
        coins = tuple(settings().coins)
        self.coins_entry.insert(0, ", ".join(coins))
        self._runner.submit(coins)
        self._files.refresh()

    def _build(self) -> None:
        head = self._row(0, "Backtest")
        self.coins_entry = self._field(head, "Coins", ttk.Entry(head, width=18))
        self.start_entry = self._field(head, "From", ttk.Entry(head, width=11))
        self.end_entry = self._field(head, "To", ttk.Entry(head, width=11))
        self.step = self._field(head, "Step (s)", ttk.Combobox(head, values=STEPS, width=5))
        self.step.set("600")
        bar = self._row(1, "")
        self.progress = ttk.Progressbar(bar, mode="determinate", maximum=1.0)
        self.progress.pack(side="left", fill="x", expand=True, padx=(0, 12))
        run = ttk.Button(bar, text="Run backtest", command=self.run)
        self.run_button = self._field(bar, "", run)
        self.stop_button = self._field(bar, "", ttk.Button(bar, text="Stop", command=self.stop,
                                                           state="disabled"))  # fmt: skip
        self.message = wrapping(ttk.Label(self, text="Dates are UTC; the end day is not included.",
                                          style="PanelMuted.TLabel"), margin=4)  # fmt: skip
        self.message.grid(row=2, column=0, columnspan=2, sticky="ew", pady=4)
        mono = (tkfont.nametofont("TkFixedFont", root=self).actual("family"), self.theme.body[1])
        self.summary = tk.Text(self, width=SUMMARY_CHARS, height=20, wrap="word", font=mono,
                               background=ui.BG, foreground=ui.TEXT, relief="flat",
                               highlightthickness=0, padx=6, pady=4, state="disabled")  # fmt: skip
        indent = tkfont.Font(root=self, font=mono).measure(" " * VALUE_COLUMN)
        self.summary.tag_configure("table", lmargin2=indent)
        self.summary.grid(row=3, column=0, sticky="nsw")
        self.chart = ComparisonChart(self, self.theme)
        self.chart.grid(row=3, column=1, sticky="nsew", padx=(10, 0))
        head = self._row(4, "Optimisation results")
        self.files = self._field(head, "", ttk.Combobox(head, width=24))
        refresh = ttk.Button(head, text="Refresh", command=self._files.refresh)
        self.refresh_button = self._field(head, "", refresh)
        self.objective = self._field(head, "Rank by", ttk.Combobox(head, values=OBJECTIVES,
                                                                   width=12))  # fmt: skip
        self.objective.set("sharpe")
        for box in (self.files, self.objective):
            box.bind("<<ComboboxSelected>>", lambda _e: self._files.refresh())
        frame = self._row(5, "")
        self.trials = ttk.Treeview(frame, columns=COLUMNS, show="headings", height=5,
                                   selectmode="browse")  # fmt: skip
        for col, text in zip(COLUMNS, HEADINGS, strict=True):
            wide = col == "settings"
            self.trials.heading(col, text=text, anchor="w" if wide else "e")
            sample = "99" if col == "#" else "+999.99%"
            fit = max(self.theme.measure(self, f"{text} ▼", self.theme.small_bold),
                      self.theme.measure(self, sample, self.theme.body)) + 10  # fmt: skip
            self.trials.column(col, width=300 if wide else fit, stretch=wide,
                               anchor="w" if wide else "e")  # fmt: skip
        scroll = ttk.Scrollbar(frame, orient="vertical", command=self.trials.yview)
        self.trials.configure(yscrollcommand=scroll.set)
        self.trials.pack(side="left", fill="both", expand=True)
        scroll.pack(side="left", fill="y")
        foot = self._row(6, "")
        self.apply_button = ttk.Button(foot, text="Apply best to settings", state="disabled",
                                       command=self.apply_best)  # fmt: skip
        self.apply_button.pack(side="right")
        self.trials_note = wrapping(ttk.Label(foot, text="", style="PanelMuted.TLabel"), margin=4)
        self.trials_note.pack(side="left", fill="x", expand=True)
        self.columnconfigure(1, weight=1)
        self.rowconfigure(3, weight=3)
        self.rowconfigure(5, weight=2)

    def _row(self, row: int, title: str) -> ttk.Frame:
        frame = ttk.Frame(self, style="Panel.TFrame")
        frame.grid(row=row, column=0, columnspan=2, sticky="nsew", pady=(12 if row == 4 else 4, 0))
        if title:
            ttk.Label(frame, text=title, style="Section.TLabel").pack(side="left", padx=(0, 12))
        return frame

    def _field(self, head: ttk.Frame, label: str, widget: W) -> W:
        if label:
            ttk.Label(head, text=label, style="Panel.TLabel").pack(side="left", padx=(0, 4))
        if isinstance(widget, ttk.Entry):  # a Combobox is one too
            widget.configure(style=f"Panel.{widget.winfo_class()}")
        if isinstance(widget, ttk.Combobox):
            widget.configure(state="readonly")
        widget.pack(side="left", padx=(0, 12 if isinstance(widget, ttk.Entry) else 6))
        return widget

    def _say(self, label: ttk.Label, text: str, *, error: bool = False) -> None:
        label.configure(text=text, style=RED if error else "Panel.TLabel")

    def _inputs(self) -> BacktestSpec | str:
        """The run the settings and what was typed describe, or what is wrong with it."""
        typed = self.coins_entry.get().split(",")
        coins = tuple(dict.fromkeys(c.strip().upper() for c in typed if c.strip()))
        if not coins:
            return "Coins: name at least one coin, e.g. BTC or BTC, ETH."
        days: list[int] = []
        for name, entry in (("From", self.start_entry), ("To", self.end_entry)):
            try:
                days.append(day(entry.get().strip()))
            except ArgumentTypeError:
                return f"{name}: {entry.get()!r} is not a date; write it as YYYY-MM-DD."
        if days[1] <= days[0]:
            return (f"To ({utc_day(days[1])}) is not after From ({utc_day(days[0])}): pick an "
                    "end date after the start date.")  # fmt: skip
        try:
            return BacktestSpec.from_settings(self.settings(), start=days[0], end=days[1],
                                              coins=coins,
                                              step_seconds=int(self.step.get()))  # fmt: skip
        except PowerTraderError as exc:
            return f"These settings cannot be backtested: {exc}"

    def run(self) -> None:
        """Check what was typed and start the run on the worker thread."""
        got = "A backtest is already running." if self.running else self._inputs()
        if isinstance(got, str):
            self._say(self.message, got, error=True)
            return
        self.running, self._stop, self._progress = True, threading.Event(), queue.Queue()
        self.progress.configure(value=0, maximum=1.0)
        self.run_button.configure(state="disabled")
        self.stop_button.configure(state="normal")
        self._span = f"{', '.join(got.coins)} {utc_day(got.start)} .. {utc_day(got.end)}"
        self._say(self.message, f"Running {self._span}: loading the candles and warming up …")
        self._runner.submit(RunJob(got, self._progress, self._stop))
        self._drain()

    def _drain(self) -> None:
        """Show the engine's latest progress; again in 100 ms while running."""
        while not self._progress.empty():  # the Tk thread is its only reader
            done, total = self._progress.get_nowait()
            self.progress.configure(maximum=max(total, 1), value=done)
        if self.running:
            self._runner.after("progress", 100, self._drain)

    def stop(self) -> None:
        self._stop.set()  # (the button is enabled only while a run is on)
        self._say(self.message, "Stopping at the engine's next check …")

    def _finished(self, outcome: Outcome) -> None:
        if isinstance(outcome, tuple):  # the default span, for entries still empty
            for entry, text in zip((self.start_entry, self.end_entry), outcome, strict=True):
                if not entry.get().strip():
                    entry.insert(0, text)
            return
        self.running = False
        self._drain()
        self.run_button.configure(state="normal")
        self.stop_button.configure(state="disabled")
        if isinstance(outcome, Failed):
            self._say(self.message, outcome.message, error=not outcome.stopped)
            return
        self.last_out = outcome.out
        self._say(self.message, f"{self._span}: results in {outcome.out}")
        self.summary.configure(state="normal")
        self.summary.replace("1.0", "end", outcome.table, "table", outcome.notes)
        self.summary.configure(state="disabled")
        self.chart.curves = outcome.curves
        self.chart.redraw()

    @property
    def idle(self) -> bool:
        return self._runner.idle and self._files.idle

    def _show_trials(self, view: TrialsView) -> None:
        self.files.configure(values=view.files)
        self.files.set(view.selected)
        self.top = view.top
        for col, text in zip(COLUMNS, HEADINGS, strict=True):
            self.trials.heading(col, text=f"{text} ▼" if col == view.objective else text)
        self.trials.delete(*self.trials.get_children())
        points = [", ".join(f"{k} = {v}" for k, v in t.point.items()) for t in view.top]
        for i, (trial, point) in enumerate(zip(view.top, points, strict=True), 1):
            figures = (figure_text(o, trial.figures.get(o)) for o in OBJECTIVES)
            self.trials.insert("", "end", values=(i, *figures, point))
        self.apply_button.configure(state="normal" if view.top else "disabled")
        best = f". Best by {view.objective}: {points[0]}" if points else ""
        self.trials_note.configure(text=view.note + best, style="PanelMuted.TLabel")

    def apply_best(self) -> None:
        """Hand the best trial's point (by the chosen objective) to ``on_apply``."""
        if not self.top:
            return
        try:
            self._say(self.trials_note, self.on_apply(dict(self.top[0].point)))
        except PowerTraderError as exc:
            self._say(self.trials_note, f"Not applied: {exc}", error=True)

    def destroy(self) -> None:
        self._stop.set()
        self._runner.close()
        self._files.close()
        super().destroy()
