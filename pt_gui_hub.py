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

import pt_config
from pt_analytics_dashboard import AnalyticsWidget, mode_clock
from pt_config_schema import Settings
from pt_gui_backtest import BacktestTab
from pt_gui_controls import ControlsPanel, TrainingPanel
from pt_gui_correlation import CorrelationTab
from pt_gui_hub_charts import ChartsNotebook
from pt_gui_keywizard import KeyWizard
from pt_gui_levels import LevelsPanel
from pt_gui_logs import LogViewer
from pt_gui_notify import PassphraseDialog, ask_passphrase
from pt_gui_output import LiveOutput
from pt_gui_settings import Checks, SettingsEditor
from pt_gui_theme import apply_theme
from pt_gui_trades import AccountPanel, HistoryList, TradesFeed, TradesTable
from pt_gui_trades_data import TradesLoader
from pt_hub_engine import HubEngine, HubStatus, hub_engine, passphrase_reason
from pt_replay import change_speed
from pt_secrets_vault import read_header
from pt_state import DataLayout
from pt_strategy import StrategyConfig
from pt_supervisor import Supervisor
from pt_types import Mode

log = logging.getLogger(__name__)

TITLE = "PowerTrader AI — Hub"
DRAIN_MS = 200
ROBINHOOD_URL = "https://trading.robinhood.com"
LEFT_MIN, LEFT_START, RIGHT_MIN = 360, 540, 520  # px: the account box fits two columns at 540
TRAINING_MIN, LEVELS_MIN, CHARTS_MIN, TRADES_MIN = 110, 130, 220, 160  # px: the other splits
GUIDE = (
    "Welcome to PowerTrader AI. You are in DEMO mode: real past prices on a simulated clock and "
    "a paper wallet, no network and no keys needed. 1. Train All (a few seconds per coin on the "
    "bundled history).  2. Start All: the thinker starts, and the trader follows once it is ready."
    "  Watch the trades and the ANALYTICS tab; change anything in SETTINGS."
)


NO_KEYS = "LIVE mode needs Robinhood keys: Settings → Robinhood API keys… (nothing was started)."


class HubWindow:
    """Builds the window on ``root`` and keeps it in step with ``engine``."""

    def __init__(
        self,
        root: tk.Tk,
        layout: DataLayout,
        engine: HubEngine,
        *,
        first_run: bool,
        settings: Settings | None = None,
        ask_passphrase: PassphraseDialog = ask_passphrase,
    ):
        self.root, self.layout, self.engine = root, layout, engine
        self.settings = settings or pt_config.load(layout.settings_file)
        self.theme = apply_theme(root)
        root.title(TITLE)
        root.geometry("1400x820")
        root.minsize(980, 640)
        self.status: HubStatus | None = None
        self.applied = 0  # statuses shown (tests wait on it)
        self.closed = False
        self.wizard: KeyWizard | None = None
        self._ask_passphrase = ask_passphrase
        self._auto_pending = self.settings.auto_start_scripts
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
        left = ttk.Frame(panes, style="TFrame", padding=(6, 6, 3, 6))
        right = ttk.Frame(panes, style="TFrame", padding=(3, 6, 6, 6))
        panes.add(left, weight=0)
        panes.add(right, weight=1)
        self.panes = panes
        self._splits: list[tuple[ttk.PanedWindow, int, int]] = [(panes, LEFT_MIN, RIGHT_MIN)]
        root.bind(
            "<Configure>", lambda e: self._clamp_sash() if e.widget is root else None, add="+"
        )
        self.feed = self._new_feed(self.settings)
        self._build_left(left)
        self.tabs = ttk.Notebook(right)
        self.tabs.pack(fill="both", expand=True)
        self._build_tabs()
        for split, _first, _second in self._splits:
            split.bind("<ButtonRelease-1>", lambda _e: self._clamp_sash(), add="+")

    def _build_left(self, left: ttk.Frame) -> None:
        """Controls, account and, in a split that cannot collapse, training over the levels."""
        self.controls = ControlsPanel(
            left,
            self.theme,
            on_start_all=self.start_all,
            on_stop_all=self.engine.stop_all,
            on_speed=self.set_speed,
            on_resume=self.resume_risk,
        )
        self.controls.pack(fill="x")
        self.account = AccountPanel(left, self.feed, columns=2, theme=self.theme)
        self.account.pack(fill="x", pady=(6, 0))
        split = ttk.PanedWindow(left, orient="vertical")
        split.pack(fill="both", expand=True, pady=(4, 0))
        top = ttk.Frame(split, style="TFrame")
        self.training = TrainingPanel(
            top, self.theme, on_train=self.engine.train, on_stop=self.engine.stop_training
        )
        self.training.pack(fill="both", expand=True)
        bottom = ttk.Frame(split, style="TFrame", padding=(0, 6, 0, 0))
        self.levels = LevelsPanel(
            bottom,
            layout=self.layout,
            coins=self.settings.coins,
            trade_start_level=self.settings.trade_start_level,
            on_open=self.open_chart,
            refresh_ms=self._ui_ms(self.settings),
        )
        self.levels.pack(fill="both", expand=True)
        split.add(top, weight=1)
        split.add(bottom, weight=2)
        self.left_split = split
        self._splits.append((split, TRAINING_MIN, LEVELS_MIN))
        self.left = left

    def _build_tabs(self) -> None:
        trading = ttk.PanedWindow(self.tabs, orient="vertical")
        self.charts = ChartsNotebook(
            trading, layout=self.layout, settings=self.settings, theme=self.theme
        )
        trades = ttk.Frame(trading, style="TFrame", padding=(0, 6, 0, 0))
        self.trades_table = TradesTable(trades, self.feed, theme=self.theme)
        self.history = HistoryList(trades, self.feed, theme=self.theme)
        self.trades_table.pack(fill="both", expand=True, pady=(0, 6))
        self.history.pack(fill="both", expand=True)
        trading.add(self.charts, weight=3)
        trading.add(trades, weight=2)
        self.trading = trading
        self._splits.append((trading, CHARTS_MIN, TRADES_MIN))
        self.tabs.add(trading, text="TRADING")
        self.analytics = AnalyticsWidget(
            self.tabs, journal_path=self.layout.journal_db, clock=mode_clock(self.layout)
        )
        self.tabs.add(self.analytics, text="ANALYTICS")
        risk = self.settings.risk
        self.correlation = CorrelationTab(self.tabs, layout=self.layout, coins=self.settings.coins,
                                          days=risk.correlation_days,
                                          threshold=risk.correlation_threshold)  # fmt: skip
        self.tabs.add(self.correlation, text="CORRELATION")
        self.output = LiveOutput(self.tabs, logs_dir=self.layout.logs_dir)
        self.tabs.add(self.output, text="LIVE OUTPUT")
        self.logs = LogViewer(self.tabs, logs_dir=self.layout.logs_dir)
        self.tabs.add(self.logs, text="LOGS")
        self.settings_editor = SettingsEditor(
            self.tabs,
            layout=self.layout,
            account_value=self.account_value,
            checks=Checks(keys=self._keys_stored, secrets=self._secrets_stored),
            open_key_wizard=self.open_key_wizard,
            ask_passphrase=self._ask_passphrase,
        )
        self.tabs.add(self.settings_editor, text="SETTINGS")
        self.backtest = BacktestTab(
            self.tabs,
            layout=self.layout,
            settings=lambda: self.settings,
            results_dir=self.layout.root / "backtests",
            on_apply=self.apply_backtest_point,
        )
        self.tabs.insert(self.settings_editor, self.backtest, text="BACKTEST")

    def _new_feed(self, settings: Settings) -> TradesFeed:
        loader = TradesLoader(self.layout, mode=settings.mode)
        config = StrategyConfig.from_settings(settings)
        return TradesFeed(self.root, loader, config, refresh_ms=self._ui_ms(settings))

    @staticmethod
    def _ui_ms(settings: Settings) -> int:
        return round(settings.ui_refresh_seconds * 1000)

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

    def _place_sash(self) -> None:
        """The left column's starting width (then clamped to what the window allows)."""
        self.panes.tk.call(self.panes, "sashpos", 0, LEFT_START)
        self._clamp_sash()

    def _resized(self, event: tk.Event[tk.Misc]) -> None:
        if event.widget is self.root:  # the binding also sees every child's resize
            self._clamp_sash()

    def _clamp_sash(self) -> None:
        """No pane can be dragged (or resized) below its minimum size."""
        for panes, first, second in self._splits:
            clamp_split(panes, first, second)

    def add_tab(self, widget: tk.Widget, text: str, *, index: int | str = "end") -> None:
        self.tabs.insert(index, widget, text=text)

    # -- actions ------------------------------------------------------------------------------

    def account_value(self) -> float | None:
        """The trader's last total account value (for the settings' "≈ $ per trade" hint)."""
        trader = self.status.trader if self.status else None
        value = ((trader or {}).get("account") or {}).get("total_value")
        return float(value) if isinstance(value, int | float) else None

    def _keys_stored(self) -> bool:
        """(Worker thread) a secrets file exists, so live mode can be saved."""
        return read_header(self.layout) is not None

    def _secrets_stored(self) -> tuple[str, ...]:
        """(Worker thread) the names the secrets file holds."""
        header = read_header(self.layout)
        return header.names if header is not None else ()

    def open_key_wizard(self) -> None:
        """One wizard at a time (``self.wizard``): a second request brings it to the front."""
        if self.wizard is not None and self.wizard.winfo_exists():
            self.wizard.lift()
            return
        url = self.status.settings.exchanges.robinhood_url if self.status else ROBINHOOD_URL
        self.wizard = KeyWizard(self.root, self.layout, robinhood_url=url)

    def start_all(self) -> None:
        """Start All; when the secrets file is locked with a passphrase and live trading or a
        notification channel needs it, ask first (it goes to the workers' standard input,
        never to a file or a command line). Live mode without it starts nothing; paper and
        demo start without those channels."""
        status = self.status
        passphrase = None
        if status is not None:
            live = status.settings.mode is Mode.LIVE
            if live and status.key_source is None:
                self.controls.say(NO_KEYS)
                return
            why = passphrase_reason(status.settings, status.key_source, status.stored_secrets)
            if why:
                passphrase = self._ask_passphrase(self.root, why) or None
                if passphrase is None and live:
                    self.controls.say("Start All cancelled: live trading needs the passphrase.")
                    return
                if passphrase is None:
                    self.controls.say(f"Started without the passphrase: {why} stay off.")
        self.engine.start_all(passphrase)

    def _auto_start(self, status: HubStatus) -> None:
        """``auto_start_scripts``: Start All once when the hub opens, if every coin is trained.
        Never in live mode: real orders start only from a click."""
        self._auto_pending = False
        if status.running:
            return
        if status.settings.mode is Mode.LIVE:
            self.controls.say("Auto start is off in LIVE mode: press Start All to trade.")
        elif not status.all_trained:
            self.controls.say("Auto start waits for training: press Train All.")
        else:
            self.start_all()

    def resume_risk(self) -> None:
        """Resume trading after the drawdown stop (the engine writes the request; the banner
        goes once the trader's next status no longer shows the stop)."""
        self.engine.resume_risk()

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
        if status.settings != self.settings:
            self.apply_settings(status.settings)
        self.controls.apply(status)
        refit = self.applied == 0 or len(status.coins) != len(self.training.rows)
        self.training.apply(status)
        trainers = [w.name.removeprefix("trainer-") for w in status.supervisor.workers
                    if w.name.startswith("trainer-") and w.pid]  # fmt: skip
        self.output.show_running(trainers)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status.wall))
        self.statusbar.configure(text=f"{when} | data folder {self.layout.root}")
        if self.applied == 0:
            self.root.after_idle(self._place_sash)
        if refit:
            self.root.after_idle(self._fit_training)
        if self._auto_pending:
            self._auto_start(status)
        self.applied += 1

    def apply_settings(self, settings: Settings) -> None:
        """Saved settings (from the SETTINGS tab or an editor outside): coins, rules, refresh
        periods and mode reach every panel without a restart."""
        old, self.settings = self.settings, settings
        log.info("settings changed: updating the panels")
        if (old.mode, old.ui_refresh_seconds) != (settings.mode, settings.ui_refresh_seconds):
            self._replace_feed(settings)
        else:
            self.feed.set_config(StrategyConfig.from_settings(settings))
        self.levels.set_config(settings.coins, settings.trade_start_level)
        self.charts.apply_settings(settings)
        risk = settings.risk
        self.correlation.set_config(settings.coins, risk.correlation_days,
                                    risk.correlation_threshold)  # fmt: skip

    def apply_backtest_point(self, point: dict[str, object]) -> str:
        """The BACKTEST tab's "apply": the values go into the SETTINGS form for review, never
        straight into the file the running trader reads."""
        if self.settings_editor.dirty:
            return "Not applied: SETTINGS has unsaved edits; Save or Revert them first"
        note = self.settings_editor.propose(point, "the backtest's best trial")
        self.show_tab(self.settings_editor)
        return note

    def _replace_feed(self, settings: Settings) -> None:
        """Another mode reads other journal rows: a new feed, and the panels on it."""
        self.feed.close()
        self.feed = self._new_feed(settings)
        for panel in (self.account, self.trades_table, self.history):
            self.feed.subscribe(panel.show)

    def _fit_training(self) -> None:
        """Give the training list the height of its rows (at most 45 % of the split), the
        rest to the level tiles; the user can still drag the sash."""
        height = self.left_split.winfo_height()
        if height <= 1:
            return
        body = self.training.list.body.winfo_reqheight()
        wanted = self.training.winfo_reqheight() - self.training.list.winfo_reqheight() + body
        position = max(120, min(wanted + 28, int(height * 0.45)))
        self.left_split.tk.call(str(self.left_split), "sashpos", 0, position)  # untyped in ttk

    def show_tab(self, page: tk.Misc) -> None:
        """Bring one of the right-hand tabs to the front (ttk's Notebook.select is untyped)."""
        self.tabs.tk.call(str(self.tabs), "select", str(page))

    def open_chart(self, coin: str) -> None:
        """A neural-level tile was clicked: show that coin's chart."""
        self.show_tab(self.trading)
        self.charts.open(coin)

    def close(self) -> None:
        """Stop every child (trainers too), then close: the window hides first, so the wait
        for the children to stop is not a frozen window."""
        if self.closed:
            return
        self.closed = True
        self.root.after_cancel(self._after)
        self.root.withdraw()
        self.feed.close()
        for panel in (self.analytics, self.correlation, self.settings_editor, self.backtest,
                      self.charts, self.levels, self.output, self.logs):  # fmt: skip
            panel.destroy()  # each stops its background worker
        self.engine.close()
        self.root.destroy()


def clamp_split(panes: ttk.PanedWindow, first: int, second: int) -> None:
    """Keep the sash of a two-pane split where each pane has its minimum size (the first one
    wins when the split is too small for both)."""
    vertical = str(panes.cget("orient")) == "vertical"
    size = panes.winfo_height() if vertical else panes.winfo_width()
    if size <= 1:
        return
    position = int(panes.tk.call(panes, "sashpos", 0))
    clamped = min(max(position, first), max(first, size - second))
    if clamped != position:
        panes.tk.call(panes, "sashpos", 0, clamped)


def run_window(
    layout: DataLayout,
    settings: Settings,
    *,
    first_run: bool = False,
    make_supervisor: Callable[..., Supervisor] = Supervisor,
) -> int:
    root = tk.Tk(className="PowerTrader")
    engine = hub_engine(layout, make_supervisor).start()
    HubWindow(root, layout, engine, first_run=first_run, settings=settings)
    root.mainloop()
    return 0
