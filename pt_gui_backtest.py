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
import shutil
import threading
import tkinter as tk
from argparse import ArgumentTypeError
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from tkinter import font as tkfont
from tkinter import ttk
from typing import Any, TypeVar

import pt_config
import pt_gui_theme as ui
from pt_backtest_cli import (
    Candidate,
    UsageError,
    backtest_into,
    check_span,
    compare_runs,
    comparison_table,
    day,
    load_history,
    new_folder,
    point_text,
    utc_day,
)
from pt_backtest_engine import BacktestSpec, BacktestStoppedError
from pt_backtest_optimize import TrialResult, best_settings_data, rank
from pt_backtest_report import ReportRun
from pt_backtest_summary import summary_lines
from pt_config_schema import Settings
from pt_errors import PowerTraderError
from pt_gui_background import Background
from pt_gui_backtest_chart import ComparisonChart, Curve, run_curves
from pt_gui_theme import Theme, apply_theme, wrapping
from pt_state import DataLayout
from pt_types import DAY, HOUR, Candles

STEPS, SPAN_DAYS, TOP, COMPARED = ("300", "600", "1200"), 90, 10, 3
OBJECTIVES = ("sharpe", "sortino", "calmar", "total_return", "cagr", "max_drawdown", "win_rate")
PERCENT = frozenset({"total_return", "cagr", "max_drawdown", "win_rate"})
COLUMNS = ("#", *OBJECTIVES, "settings")
HEADINGS = ("#", "Sharpe", "Sortino", "Calmar", "Return", "CAGR", "Max DD", "Win rate", "Settings")
SUMMARY_CHARS = 64  # the summary's width in characters
VALUE_COLUMN = 34  # where summary_lines' values start: a long one wraps back to it
RED = "BacktestError.TLabel"  # a refusal or an error, in red
CURRENT = "current settings"

W = TypeVar("W", bound=tk.Widget)
Span = tuple[str, str]  # the default span: its first day and the day after its last


@dataclass(frozen=True)
class RunJob:
    """A run of the settings (``candidates`` empty) or a comparison of ``candidates``."""

    spec: BacktestSpec
    progress: queue.Queue[tuple[int, int]]  # (done, total) from the engine, for the Tk thread
    stop: threading.Event
    candidates: tuple[Candidate, ...] = ()
    legend: tuple[str, ...] = ()  # what each compared trial changed


@dataclass(frozen=True)
class RunDone:
    table: str  # the summary (values from column VALUE_COLUMN), or the comparison's table
    notes: str
    out: Path
    curves: tuple[Curve, ...]


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


def run_job(layout: DataLayout, results_dir: Path, job: RunJob) -> Outcome:
    """Load, check, run, journal and write one backtest or a comparison; a refused or stopped
    one leaves nothing behind."""
    spec, kind = job.spec, "compare" if job.candidates else "run"
    out: Path | None = None
    options: dict[str, Any] = {"should_stop": job.stop.is_set, "parallel": False,
                               "progress": lambda *done: job.progress.put(done)}  # fmt: skip
    try:
        history = load_history(layout, spec.coins)
        check_span(history, spec.start, spec.end)
        if job.stop.is_set():
            raise BacktestStoppedError("stop requested")
        out = new_folder(results_dir, kind)
        if not job.candidates:
            run = backtest_into(spec, history, out, **options)
            return _one_done(run, out)
        runs = compare_runs(job.candidates, history, out, coins=spec.coins, start=spec.start,
                            end=spec.end, step_seconds=spec.step_seconds, **options)  # fmt: skip
    except (PowerTraderError, OSError) as exc:  # stopped, refused or failed: keep nothing
        if out is not None:
            shutil.rmtree(out, ignore_errors=True)  # e.g. a comparison stopped after one run
        return _failed(kind, exc)
    eq = [(r.name, r.result.equity.time.tolist(), r.result.equity.equity.tolist()) for r in runs]
    hold = runs[0].buy_and_hold
    table = "\n".join([*comparison_table(runs), "", *job.legend])
    return RunDone(table, "", out, run_curves(eq, (hold.time.tolist(), hold.equity.tolist())))


def _failed(kind: str, exc: Exception) -> Failed:
    if isinstance(exc, BacktestStoppedError):
        return Failed(f"{kind.capitalize()} stopped; nothing was kept. Press the button to "
                      "start again.", stopped=True)  # fmt: skip
    if isinstance(exc, UsageError):
        return Failed(f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
    return Failed(f"The {'comparison' if kind == 'compare' else 'backtest'} failed: {exc}")


def _one_done(run: ReportRun, out: Path) -> RunDone:
    s, result = run.summary, run.result
    lines = summary_lines(s.metrics, s.buy_and_hold, deepest_dca=s.deepest_dca,
                          starting_cash=result.spec.starting_cash)  # fmt: skip
    eq, hold = result.equity, run.buy_and_hold
    curves = run_curves([("Bot", eq.time.tolist(), eq.equity.tolist())],
                        (hold.time.tolist(), hold.equity.tolist()))  # fmt: skip
    return RunDone("\n".join(lines), "\n\n" + "\n".join(result.notes), out, curves)


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
                                   selectmode="extended")  # fmt: skip
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
        self.compare_button = ttk.Button(foot, text="Compare with current", state="disabled",
                                         command=self.compare)  # fmt: skip
        self.compare_button.pack(side="right", padx=(0, 8))
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
        got = self._inputs()
        if isinstance(got, str):
            self._say(self.message, got, error=True)
            return
        self._start(got, "Running")

    def compare(self) -> None:
        """The current settings beside the selected trials (none selected: the best
        ``COMPARED``) on the typed coins and span, each a backtest: one table, one chart."""
        got = self._inputs()
        rows = sorted(int(self.trials.set(item, "#")) - 1 for item in self.trials.selection())
        chosen = rows or list(range(min(COMPARED, len(self.top))))
        if isinstance(got, str):
            self._say(self.message, got, error=True)
            return
        if not chosen:
            self._say(self.message, "No optimisation results to compare.", error=True)
            return
        base, name = pt_config.to_data(self.settings()), self.files.get().removesuffix(".jsonl")
        candidates, legend = [Candidate(CURRENT, self.settings())], []
        try:
            for row in chosen:
                trial, label = self.top[row], f"{name} #{row + 1}"
                data = best_settings_data(base, trial.point)
                candidates.append(Candidate(label, pt_config.parse(data)))
                legend.append(f"{label}: {point_text(trial.point)}")
        except (PowerTraderError, pt_config.SettingsError) as exc:
            self._say(self.message, f"Cannot compare: {exc}", error=True)
            return
        self._start(got, f"Comparing {len(candidates)} settings on", tuple(candidates),
                    tuple(legend))  # fmt: skip

    def _start(self, spec: BacktestSpec, doing: str, candidates: tuple[Candidate, ...] = (),
               legend: tuple[str, ...] = ()) -> None:  # fmt: skip
        if self.running:
            self._say(self.message, "A backtest is already running.", error=True)
            return
        self.running, self._stop, self._progress = True, threading.Event(), queue.Queue()
        self.progress.configure(value=0, maximum=1.0)
        for button in (self.run_button, self.compare_button):
            button.configure(state="disabled")
        self.stop_button.configure(state="normal")
        self._span = f"{', '.join(spec.coins)} {utc_day(spec.start)} .. {utc_day(spec.end)}"
        self._say(self.message, f"{doing} {self._span}: loading the candles and warming up …")
        self._runner.submit(RunJob(spec, self._progress, self._stop, candidates, legend))
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
        self.compare_button.configure(state="normal" if self.top else "disabled")
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
        points = [point_text(t.point) for t in view.top]
        for i, (trial, point) in enumerate(zip(view.top, points, strict=True), 1):
            figures = (figure_text(o, trial.figures.get(o)) for o in OBJECTIVES)
            self.trials.insert("", "end", values=(i, *figures, point))
        self.apply_button.configure(state="normal" if view.top else "disabled")
        if not self.running:
            self.compare_button.configure(state="normal" if view.top else "disabled")
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
