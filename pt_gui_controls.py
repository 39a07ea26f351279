"""The hub's left column: mode badge, demo clock, workers, Start All / Stop All, and training.

Widgets only: every value shown comes from a :class:`pt_hub_engine.HubStatus` handed to
``apply`` on the Tk thread, and every button calls back into the hub, which queues the work to
the engine's thread. Pure text helpers (``flow_hint``, ``worker_line``, ``progress_text``) are
tested without Tk.
"""

from __future__ import annotations

import logging
import time
import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from pt_gui_scroll import ScrollFrame
from pt_gui_theme import ACCENT, MUTED, NEGATIVE, PANEL, TEXT, WARNING, Theme
from pt_hub_engine import CoinTraining, HubStatus
from pt_types import Mode, WorkerState, WorkerStatus

log = logging.getLogger(__name__)

MODE_BADGES = {
    Mode.DEMO: ("DEMO", "#1D3A5C", TEXT, "bundled history, simulated clock, paper wallet"),
    Mode.PAPER: ("PAPER", "#3A3A10", WARNING, "live prices, paper wallet, no real orders"),
    Mode.LIVE: ("LIVE", "#7A0E1C", "#FFFFFF", "REAL ORDERS WITH REAL MONEY"),
}
SPEEDS = ("1", "60", "600", "3600", "20000")
STATE_COLOURS = {
    WorkerState.RUNNING: ACCENT,
    WorkerState.STARTING: WARNING,
    WorkerState.STALE: WARNING,
    WorkerState.CRASHED: NEGATIVE,
    WorkerState.GAVE_UP: NEGATIVE,
    WorkerState.STOPPED: MUTED,
}
TRAINING_COLOURS = {"trained": ACCENT, "training": WARNING, "stale": WARNING}


def flow_hint(status: HubStatus) -> str:
    """The original's one-line guide to what to press next."""
    phase = status.supervisor.start_all
    if phase == "waiting_for_thinker":
        return "Flow: thinker starting → waiting for ready → the trader starts by itself"
    if status.running:
        return "Flow: running (Stop All stops the trader, then the thinker)"
    if not status.all_trained:
        missing = sum(1 for c in status.coins if c.state != "trained")
        return f"Flow: Train All first ({missing} coin(s) not ready) → then Start All"
    return "Flow: press Start All"


def worker_line(worker: WorkerStatus | None) -> str:
    if worker is None:
        return "stopped"
    beat = "" if worker.heartbeat_age is None else f" · beat {worker.heartbeat_age:.0f} s ago"
    restarts = f" · {worker.restarts} restart(s)" if worker.restarts else ""
    return f"{worker.state.value}{beat}{restarts}"


def progress_text(coin: CoinTraining) -> str:
    if coin.state != "training":
        return {"missing": "not trained", "damaged": "damaged: train again"}.get(
            coin.state, coin.state
        )
    percent = "" if coin.percent is None else f" {coin.percent:.0f}%"
    eta = "" if not coin.eta_seconds else f", ETA {coin.eta_seconds:.0f} s"
    return f"training{percent}{eta}"


def clock_text(status: HubStatus) -> str:
    if status.settings.mode is not Mode.DEMO:
        return time.strftime("Clock %Y-%m-%d %H:%M:%S (real time)", time.localtime(status.wall))
    if status.sim_now is None or status.clock is None:
        return "Demo clock not started"
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(status.sim_now))
    return f"Demo clock {when} UTC · {status.clock.speed:g}x"


class ControlsPanel(ttk.Frame):
    """Mode, clock, workers and the Start All / Stop All toggle."""

    def __init__(
        self,
        parent: tk.Misc,
        theme: Theme,
        *,
        on_start_all: Callable[[], None],
        on_stop_all: Callable[[], None],
        on_speed: Callable[[float], None],
        on_resume: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(parent, style="Panel.TFrame", padding=8)
        self._on_start_all, self._on_stop_all, self._on_speed = on_start_all, on_stop_all, on_speed
        self.columnconfigure(1, weight=1)
        self.badge = tk.Label(self, text="DEMO", font=theme.title, padx=12, pady=2)
        self.badge.grid(row=0, column=0, sticky="w")
        self.badge_note = ttk.Label(self, text="", style="Panel.TLabel", wraplength=260)
        self.badge_note.grid(row=0, column=1, sticky="w", padx=(8, 0))
        clock_row = ttk.Frame(self, style="Panel.TFrame")  # clock and speed share a line
        clock_row.grid(row=1, column=0, columnspan=2, sticky="ew", pady=(6, 2))
        self.clock = ttk.Label(clock_row, text="", style="Panel.TLabel")
        self.clock.pack(side="left")
        self.speed = ttk.Combobox(clock_row, values=SPEEDS, width=7, state="readonly")
        self.speed.pack(side="right")
        ttk.Label(clock_row, text="Speed ×", style="Panel.TLabel").pack(side="right", padx=4)
        self.speed.bind("<<ComboboxSelected>>", lambda _e: self._on_speed(float(self.speed.get())))
        self.workers: dict[str, tk.Label] = {}
        for row, name in enumerate(("thinker", "trader"), start=3):
            ttk.Label(self, text=f"{name.capitalize()}:", style="Panel.TLabel").grid(
                row=row, column=0, sticky="w"
            )
            label = tk.Label(self, text="stopped", bg=PANEL, fg=MUTED, anchor="w")
            label.grid(row=row, column=1, sticky="ew")
            self.workers[name] = label
        self.toggle = ttk.Button(self, text="Start All", command=self._toggle)
        self.toggle.grid(row=5, column=0, columnspan=2, sticky="ew", pady=(8, 2))
        self.flow = ttk.Label(self, text="", style="PanelMuted.TLabel", wraplength=340)
        self.flow.grid(row=6, column=0, columnspan=2, sticky="w")
        self.message = tk.Label(self, text="", bg=PANEL, fg=WARNING, anchor="w", justify="left")
        self.message.grid(row=7, column=0, columnspan=2, sticky="ew")
        self.message.grid_remove()  # shown only when there is something to say
        self.risk = tk.Frame(self, bg=PANEL, highlightthickness=1, highlightbackground=NEGATIVE)
        self.risk.grid(row=8, column=0, columnspan=2, sticky="ew", pady=(6, 0))
        self.risk.columnconfigure(0, weight=1)
        self.risk_text = tk.Label(self.risk, text="", bg=PANEL, fg=NEGATIVE, anchor="w",
                                  justify="left")  # fmt: skip
        self.risk_text.grid(row=0, column=0, sticky="ew", padx=6, pady=(4, 2))
        self.resume = ttk.Button(self.risk, text="Resume trading", command=on_resume)
        self.resume.grid(row=1, column=0, sticky="w", padx=6, pady=(0, 6))
        self.risk.grid_remove()  # shown while a risk limit has stopped the trader
        self.bind("<Configure>", self._rewrap)
        self._running = False
        self.notice = ""

    def say(self, notice: str) -> None:
        """A note from the hub itself (not from the engine), shown until the workers run."""
        self.notice = notice
        self.message.configure(text=notice, fg=WARNING)
        self.message.grid()

    def _rewrap(self, event: tk.Event[tk.Misc]) -> None:
        width = max(200, event.width - 24)
        self.flow.configure(wraplength=width)
        self.message.configure(wraplength=width)
        self.risk_text.configure(wraplength=width - 12)

    def _toggle(self) -> None:
        (self._on_stop_all if self._running else self._on_start_all)()

    def apply(self, status: HubStatus) -> None:
        text, bg, fg, note = MODE_BADGES[status.settings.mode]
        self.badge.configure(text=text, bg=bg, fg=fg)
        self.badge_note.configure(text=note)
        self.clock.configure(text=clock_text(status))
        demo = status.settings.mode is Mode.DEMO and status.clock is not None
        self.speed.configure(state="readonly" if demo else "disabled")
        if demo and status.clock is not None and self.speed.focus_get() is not self.speed:
            self.speed.set(f"{status.clock.speed:g}")
        for name, label in self.workers.items():
            worker = status.supervisor.worker(name)
            state = worker.state if worker else WorkerState.STOPPED
            label.configure(text=worker_line(worker), fg=STATE_COLOURS.get(state, TEXT))
        self._running = status.running
        self.toggle.configure(text="Stop All" if status.running else "Start All")
        can_start = status.running or status.all_trained
        self.toggle.state(["!disabled"] if can_start else ["disabled"])
        self.flow.configure(text=flow_hint(status))
        problems = [w.detail for w in status.supervisor.workers if w.state is WorkerState.GAVE_UP]
        problems += [f"Notifications: {p}" for p in status.notify_problems]
        message = status.message or status.supervisor.detail
        if status.running:
            self.notice = ""  # the hub's own note (e.g. a cancelled start) is over
        self._show_risk(status.risk_stop)
        text = "\n".join([*problems, message, self.notice]).strip()
        if text != self.message.cget("text"):
            self.message.configure(text=text, fg=WARNING if problems else MUTED)
            if text:
                self.message.grid()
            else:
                self.message.grid_remove()

    def _show_risk(self, why: str) -> None:
        text = why[:1].upper() + why[1:]
        if text == self.risk_text.cget("text"):
            return
        self.risk_text.configure(text=text)
        if text:
            self.risk.grid()
        else:
            self.risk.grid_remove()


class TrainingPanel(ttk.Frame):
    """Per-coin model state with a progress bar while training; Train selected / all / Stop."""

    def __init__(
        self,
        parent: tk.Misc,
        theme: Theme,
        *,
        on_train: Callable[[list[str]], None],
        on_stop: Callable[[list[str]], None],
    ) -> None:
        super().__init__(parent, style="Panel.TFrame", padding=8)
        self._on_train, self._on_stop = on_train, on_stop
        self._theme = theme
        self.columnconfigure(1, weight=1)
        title = ttk.Label(self, text="Training", style="Section.TLabel")
        title.grid(row=0, column=0, columnspan=3, sticky="w", pady=(0, 4))
        buttons = ttk.Frame(self, style="Panel.TFrame")
        buttons.grid(row=1, column=0, columnspan=3, sticky="ew")
        self.coin = ttk.Combobox(buttons, width=7, state="readonly")
        self.coin.pack(side="left")
        ttk.Button(buttons, text="Train", command=self._train_selected).pack(side="left", padx=4)
        self.train_all = ttk.Button(buttons, text="Train All", command=self._train_all)
        self.train_all.pack(side="left")
        ttk.Button(buttons, text="Stop", command=self._stop).pack(side="left", padx=4)
        self.summary = ttk.Label(self, text="", style="Panel.TLabel")
        self.summary.grid(row=2, column=0, columnspan=3, sticky="w", pady=(6, 2))
        self.list = ScrollFrame(self, height=110)  # twenty coins scroll instead of crowding
        self.list.grid(row=3, column=0, columnspan=3, sticky="nsew")
        self.list.body.columnconfigure(1, weight=1)
        self.rowconfigure(3, weight=1)
        self.rows: dict[str, tuple[ttk.Label, ttk.Progressbar, tk.Label]] = {}
        self._coins: tuple[str, ...] = ()
        self._states: dict[str, str] = {}

    def _train_selected(self) -> None:
        if self.coin.get():
            self._on_train([self.coin.get()])

    def _train_all(self) -> None:
        self._on_train([c for c in self._coins if self._states.get(c) != "training"])

    def _stop(self) -> None:
        training = [c for c, s in self._states.items() if s == "training"]
        if training:
            self._on_stop(training)

    def _rebuild(self, coins: tuple[str, ...]) -> None:
        for name, bar, state in self.rows.values():
            name.destroy()
            bar.destroy()
            state.destroy()
        self.rows = {}
        body = self.list.body
        for row, coin in enumerate(coins):
            name = ttk.Label(body, text=coin, style="Panel.TLabel", width=6)
            name.grid(row=row, column=0, sticky="w")
            bar = ttk.Progressbar(body, maximum=100, length=120)
            bar.grid(row=row, column=1, sticky="ew", padx=6, pady=1)
            state = tk.Label(body, text="", bg=PANEL, fg=MUTED, anchor="w", width=22)
            state.grid(row=row, column=2, sticky="w")
            self.rows[coin] = (name, bar, state)
        self.coin.configure(values=coins)
        if coins and self.coin.get() not in coins:
            self.coin.set(coins[0])
        self._coins = coins

    def apply(self, status: HubStatus) -> None:
        coins = tuple(c.coin for c in status.coins)
        if coins != self._coins:
            self._rebuild(coins)
        self._states = {c.coin: c.state for c in status.coins}
        for coin in status.coins:
            _name, bar, state = self.rows[coin.coin]
            bar["value"] = 100 if coin.state == "trained" else (coin.percent or 0)
            colour = TRAINING_COLOURS.get(coin.state, NEGATIVE)
            state.configure(text=progress_text(coin), fg=colour)
        busy = sum(1 for c in status.coins if c.state == "training")
        missing = sum(1 for c in status.coins if c.state not in ("trained", "training"))
        if busy:
            text = f"Training: RUNNING ({busy} coin(s))"
        elif missing:
            text = f"Training: REQUIRED ({missing} not ready)"
        else:
            text = "Training: READY (all trained)"
        self.summary.configure(text=text)
