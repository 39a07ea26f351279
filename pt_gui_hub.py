"""The hub window: the panels around one :class:`pt_hub_engine.HubEngine`.

The window never reads a file or touches a process itself: every 200 ms it takes the newest
:class:`HubStatus` the engine published (if any) and hands it to the panels; buttons queue work
to the engine. Left: controls and training (they cannot collapse); right: a notebook with the
charts, trades, ANALYTICS, settings and logs tabs as their panels are added.
"""

from __future__ import annotations

import logging
import queue
import time
import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from pt_analytics_dashboard import AnalyticsWidget, mode_clock
from pt_gui_controls import ControlsPanel, TrainingPanel
from pt_gui_keywizard import KeyWizard
from pt_gui_settings import SettingsEditor
from pt_gui_theme import apply_theme
from pt_hub_engine import HubEngine, HubStatus
from pt_replay import change_speed
from pt_secrets_vault import read_header
from pt_state import DataLayout
from pt_supervisor import Supervisor

log = logging.getLogger(__name__)

TITLE = "PowerTrader AI — Hub"
DRAIN_MS = 200
ROBINHOOD_URL = "https://trading.robinhood.com"
LEFT_MIN, RIGHT_MIN = 360, 520
GUIDE = (
    "Welcome to PowerTrader AI. You are in DEMO mode: real past prices on a simulated clock and "
    "a paper wallet, no network and no keys needed. 1. Train All (a few seconds per coin on the "
    "bundled history).  2. Start All: the thinker starts, and the trader follows once it is ready."
    "  Watch the trades and the ANALYTICS tab; change anything in SETTINGS."
)


class HubWindow:
    """Builds the window on ``root`` and keeps it in step with ``engine``."""

    def __init__(self, root: tk.Tk, layout: DataLayout, engine: HubEngine, *, first_run: bool):
        self.root, self.layout, self.engine = root, layout, engine
        self.theme = apply_theme(root)
        root.title(TITLE)
        root.geometry("1400x820")
        root.minsize(980, 640)
        self.status: HubStatus | None = None
        self.applied = 0  # statuses shown (tests wait on it)
        self.closed = False
        self.wizard: KeyWizard | None = None
        self._build(first_run)
        root.protocol("WM_DELETE_WINDOW", self.close)
        self._after = root.after(DRAIN_MS, self._drain)

    # -- layout -----------------------------------------------------------------------------

    def _build(self, first_run: bool) -> None:
        root = self.root
        self._menu()
        if first_run:
            self.guide = ttk.Frame(root, style="Panel.TFrame", padding=(10, 6))
            self.guide.pack(fill="x", side="top")
            text = ttk.Label(self.guide, text=GUIDE, style="Panel.TLabel", wraplength=1200)
            text.pack(side="left", fill="x", expand=True)
            ttk.Button(self.guide, text="Got it", command=self.guide.destroy).pack(side="right")
            self.guide.bind("<Configure>", lambda e: text.configure(wraplength=e.width - 120))
        self.statusbar = ttk.Label(root, text="", style="Status.TLabel", padding=(8, 2))
        self.statusbar.pack(fill="x", side="bottom")
        panes = ttk.PanedWindow(root, orient="horizontal")
        panes.pack(fill="both", expand=True)
        left = ttk.Frame(panes, style="TFrame", padding=(6, 6, 3, 6), width=470)
        right = ttk.Frame(panes, style="TFrame", padding=(3, 6, 6, 6))
        panes.add(left, weight=0)
        panes.add(right, weight=1)
        self.panes = panes
        panes.bind("<ButtonRelease-1>", lambda _e: self._clamp_sash())
        root.bind("<Configure>", lambda _e: self._clamp_sash(), add="+")
        self.controls = ControlsPanel(
            left,
            self.theme,
            on_start_all=self.start_all,
            on_stop_all=self.engine.stop_all,
            on_speed=self.set_speed,
        )
        self.controls.pack(fill="x")
        ttk.Label(left, text="Training", style="Section.TLabel").pack(fill="x", pady=(8, 0))
        self.training = TrainingPanel(
            left, self.theme, on_train=self.engine.train, on_stop=self.engine.stop_training
        )
        self.training.pack(fill="x")
        self.left = left
        self.tabs = ttk.Notebook(right)
        self.tabs.pack(fill="both", expand=True)
        self.analytics = AnalyticsWidget(
            self.tabs, journal_path=self.layout.journal_db, clock=mode_clock(self.layout)
        )
        self.tabs.add(self.analytics, text="ANALYTICS")
        self.settings = SettingsEditor(
            self.tabs,
            layout=self.layout,
            account_value=self.account_value,
            keys_configured=lambda: read_header(self.layout) is not None,
            open_key_wizard=self.open_key_wizard,
        )
        self.tabs.add(self.settings, text="SETTINGS")

    def _menu(self) -> None:
        bar = tk.Menu(self.root)
        file = tk.Menu(bar, tearoff=False)
        file.add_command(label="Exit", command=self.close)
        bar.add_cascade(label="File", menu=file)
        scripts = tk.Menu(bar, tearoff=False)
        scripts.add_command(label="Start All", command=self.start_all)
        scripts.add_command(label="Stop All", command=self.engine.stop_all)
        bar.add_cascade(label="Scripts", menu=scripts)
        settings = tk.Menu(bar, tearoff=False)
        settings.add_command(label="Robinhood API keys…", command=self.open_key_wizard)
        bar.add_cascade(label="Settings", menu=settings)
        self.root.configure(menu=bar)

    def _clamp_sash(self) -> None:
        """Neither side can be dragged (or resized) below its minimum width."""
        width = self.panes.winfo_width()
        if width <= 1:
            return
        position = int(self.panes.tk.call(self.panes, "sashpos", 0))
        clamped = min(max(position, LEFT_MIN), max(LEFT_MIN, width - RIGHT_MIN))
        if clamped != position:
            self.panes.tk.call(self.panes, "sashpos", 0, clamped)

    def add_tab(self, widget: tk.Widget, text: str, *, index: int | str = "end") -> None:
        self.tabs.insert(index, widget, text=text)

    # -- actions ------------------------------------------------------------------------------

    def account_value(self) -> float | None:
        """The trader's last total account value (for the settings' "≈ $ per trade" hint)."""
        trader = self.status.trader if self.status else None
        value = ((trader or {}).get("account") or {}).get("total_value")
        return float(value) if isinstance(value, int | float) else None

    def open_key_wizard(self) -> None:
        """One wizard at a time (``self.wizard``): a second request brings it to the front."""
        if self.wizard is not None and self.wizard.winfo_exists():
            self.wizard.lift()
            return
        url = self.status.settings.exchanges.robinhood_url if self.status else ROBINHOOD_URL
        self.wizard = KeyWizard(self.root, self.layout, robinhood_url=url)

    def start_all(self) -> None:
        self.engine.start_all()

    def set_speed(self, speed: float) -> None:
        layout = self.layout

        def command(_sup: Supervisor) -> None:
            change_speed(layout, speed)

        self.engine.submit(command)

    # -- refresh ------------------------------------------------------------------------------

    def _drain(self) -> None:
        try:
            status = self.engine.statuses.get_nowait()
        except queue.Empty:
            status = None
        if status is not None:
            self.apply(status)
        self._after = self.root.after(DRAIN_MS, self._drain)

    def apply(self, status: HubStatus) -> None:
        self.status = status
        self.controls.apply(status)
        self.training.apply(status)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status.wall))
        self.statusbar.configure(text=f"{when} | data folder {self.layout.root}")
        self.applied += 1

    def close(self) -> None:
        """Stop every child (trainers too), then close: the window hides first, so the wait
        for the children to stop is not a frozen window."""
        if self.closed:
            return
        self.closed = True
        self.root.after_cancel(self._after)
        self.root.withdraw()
        self.analytics.destroy()
        self.settings.destroy()
        self.engine.close()
        self.root.destroy()


def run_window(
    layout: DataLayout,
    *,
    first_run: bool = False,
    make_supervisor: Callable[[DataLayout], Supervisor] = Supervisor,
) -> int:
    root = tk.Tk(className="PowerTrader")
    engine = HubEngine(layout, make_supervisor(layout)).start()
    HubWindow(root, layout, engine, first_run=first_run)
    root.mainloop()
    return 0
