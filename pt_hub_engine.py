"""The hub without its window: the supervisor on its own thread, and what the hub shows.

Both faces of the hub use it: the Tk window (which only ever reads :class:`HubStatus` values
from a queue, so no file, process or SQLite work happens on the Tk thread) and ``pt_hub.py
--headless`` (which prints :func:`status_table`). Commands (Start All, train a coin, ...) are
queued to the engine's thread and run there, so a slow stop never freezes the window.
The engine also owns the hub's notifications (:class:`pt_notify_runtime.ProcessNotifier`): the
supervisor's crash, restart and training events go there, and it follows the settings.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pt_config
from pt_config_schema import Settings
from pt_models import model_status
from pt_notify_format import SECRET_NAMES, channels_with_secrets
from pt_notify_runtime import ProcessNotifier
from pt_replay import DemoClockState, read_clock, sim_time
from pt_secrets_keysource import SecretsError
from pt_secrets_vault import VAULT_NAME, read_header
from pt_signals import SignalsSnapshot
from pt_state import DataLayout, StateReader, StatKey, stat_key, write_risk_resume
from pt_supervisor import Supervisor, SupervisorSnapshot, trainer_spec
from pt_thinker import read_signals
from pt_trader import STATUS_SCHEMA as TRADER_SCHEMA
from pt_trainer import STATUS_SCHEMA as TRAINER_SCHEMA
from pt_types import Mode, WorkerState

log = logging.getLogger(__name__)

Command = Callable[[Supervisor], object]
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class CoinTraining:
    """One coin's model as the Training box shows it."""

    coin: str
    state: str  # "trained", "training", "stale", "missing", "damaged"
    detail: str
    percent: float | None = None
    eta_seconds: float | None = None


@dataclass(frozen=True)
class HubStatus:
    """Everything the hub shows that comes from files and processes, read off the Tk thread."""

    wall: float
    settings: Settings
    supervisor: SupervisorSnapshot
    coins: tuple[CoinTraining, ...]
    clock: DemoClockState | None
    sim_now: float | None
    signals: SignalsSnapshot | None
    trader: dict[str, Any] | None  # the trader_status/1 data, None before the first tick
    message: str = ""  # the answer to the last command ("" when it worked)
    key_source: str | None = None  # how the stored keys are locked ("passphrase", ...); None: none
    stored_secrets: tuple[str, ...] = ()  # the names in the secrets file (no values)
    notify_problems: tuple[str, ...] = ()  # enabled channels that cannot send, and why

    @property
    def risk_stop(self) -> str:
        """Why the trader stopped buying (the drawdown stop), or "" when it did not."""
        risk = (self.trader or {}).get("risk") or {}
        return str(risk.get("reason") or "stopped by a risk limit") if risk.get("halted") else ""

    @property
    def all_trained(self) -> bool:
        return all(c.state == "trained" for c in self.coins)

    @property
    def running(self) -> bool:
        return self.supervisor.start_all != "idle" or any(
            w.state in (WorkerState.RUNNING, WorkerState.STARTING)
            for w in self.supervisor.workers
            if w.name in ("thinker", "trader")
        )


def training_states(
    layout: DataLayout, settings: Settings, now: float, supervisor: SupervisorSnapshot
) -> tuple[CoinTraining, ...]:
    """Per coin: training (its trainer runs, with progress) or the model's own state."""
    coins = []
    for coin in settings.coins:
        worker = supervisor.worker(f"trainer-{coin}")
        if worker is not None and worker.state in (WorkerState.RUNNING, WorkerState.STARTING):
            progress = _trainer_progress(layout, coin)
            coins.append(
                CoinTraining(
                    coin,
                    "training",
                    str(progress.get("phase", "starting")),
                    _number(progress.get("percent")),
                    _number(progress.get("eta_seconds")),
                )
            )
            continue
        status = model_status(layout, coin, now)
        detail = status.detail
        if worker is not None and worker.detail not in ("", "finished"):
            detail = f"{detail} (last training: {worker.detail})"
        coins.append(CoinTraining(coin, status.state, detail))
    return tuple(coins)


_trainer_readers: dict[str, StateReader] = {}


def _trainer_progress(layout: DataLayout, coin: str) -> dict[str, Any]:
    path = layout.trainer_file(coin)
    reader = _trainer_readers.setdefault(str(path), StateReader(path, TRAINER_SCHEMA))
    env = reader.read()
    return env.data if env is not None and isinstance(env.data, dict) else {}


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


class HubEngine:
    """The supervisor's thread: runs queued commands, polls, and publishes :class:`HubStatus`.

    ``statuses`` holds at most the newest status (older unread ones are dropped), so a window
    that was busy never replays stale states."""

    def __init__(
        self,
        layout: DataLayout,
        supervisor: Supervisor,
        *,
        wall: Callable[[], float] = time.time,
        poll_seconds: float = POLL_SECONDS,
        notifier: ProcessNotifier | None = None,
    ) -> None:
        self.layout, self.supervisor = layout, supervisor
        self.notifier = notifier
        self._wall, self._poll_seconds = wall, poll_seconds
        self._commands: queue.Queue[Command | None] = queue.Queue()
        self.statuses: queue.Queue[HubStatus] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, name="hub-engine", daemon=True)
        self._watcher = pt_config.SettingsWatcher(layout.settings_file)
        self._trader_reader = StateReader(layout.trader_status_file, TRADER_SCHEMA)
        self._message = ""
        self._vault: tuple[StatKey | None, str | None, tuple[str, ...]] = (None, None, ())
        self.latest: HubStatus | None = None

    def start(self) -> HubEngine:
        self._thread.start()
        return self

    def submit(self, command: Command) -> None:
        self._commands.put(command)

    def start_all(self, passphrase: str | None = None) -> None:
        """Start All; ``passphrase`` (of the secrets file) also opens the hub's own
        notification secrets."""
        if self.notifier is not None:
            self.notifier.unlock(passphrase)
        self.submit(lambda s: s.start_all(passphrase))

    def stop_all(self) -> None:
        self.submit(lambda s: s.stop_all())

    def resume_risk(self) -> None:
        """The user resumes trading after the drawdown stop (the trader releases it at its
        next tick and measures the drawdown from there)."""

        def command(_sup: Supervisor) -> None:
            at = write_risk_resume(self.layout, clock=self._wall)
            log.warning("the user resumed trading after the drawdown stop (at %.0f)", at)

        self.submit(command)

    def train(self, coins: list[str]) -> None:
        """Train the coins (all in parallel, like the original's Train All)."""

        def command(sup: Supervisor) -> None:
            for coin in coins:
                sup.start(trainer_spec(coin))

        self.submit(command)

    def stop_training(self, coins: list[str]) -> None:
        def command(sup: Supervisor) -> None:
            for coin in coins:
                sup.stop(f"trainer-{coin}")

        self.submit(command)

    def close(self, timeout: float = 60.0) -> None:
        """Stop every child (trainers too) and the thread; waits for both."""
        self._commands.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while True:
                deadline = time.monotonic() + self._poll_seconds
                if not self._run_commands(deadline):
                    break
                self._publish(self.collect())
        finally:
            self.supervisor.shutdown()
            if self.notifier is not None:
                self.notifier.close()

    def _run_commands(self, deadline: float) -> bool:
        """Run queued commands until the poll is due; False once closing was asked for."""
        while True:
            try:
                command = self._commands.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return True
            if command is None:
                return False
            try:
                answer = command(self.supervisor)
            except Exception as exc:  # a failed command must not kill the supervisor thread
                log.exception("hub command failed")
                answer = f"failed: {exc}"
            self._message = answer if isinstance(answer, str) else ""

    def collect(self) -> HubStatus:
        """Poll the supervisor and read what the hub shows (on the engine's thread)."""
        snapshot = self.supervisor.poll()
        settings = self._watcher.reload()  # a stat per poll; a bad edit keeps the last good
        if self.notifier is not None:
            self.notifier.update(settings)
        wall = self._wall()
        clock = read_clock(self.layout) if settings.mode is Mode.DEMO else None
        sim_now = sim_time(clock, wall) if clock is not None else None
        model_now = sim_now if sim_now is not None else wall
        env = self._trader_reader.read()
        trader = env.data if env is not None and isinstance(env.data, dict) else None
        return HubStatus(
            wall,
            settings,
            snapshot,
            training_states(self.layout, settings, model_now, snapshot),
            clock,
            sim_now,
            read_signals(self.layout),
            trader,
            self._message,
            *self._vault_header(),
            self.notifier.problems if self.notifier is not None else (),
        )

    def _vault_header(self) -> tuple[str | None, tuple[str, ...]]:
        """How the vault is locked and what it holds, read again only when the file changed
        (a stat per poll)."""
        stamp = stat_key(self.layout.secrets_dir / VAULT_NAME)
        if stamp != self._vault[0]:
            try:
                header = read_header(self.layout) if stamp is not None else None
            except SecretsError as exc:
                log.warning("stored keys unreadable: %s", exc)
                header = None
            names = header.names if header else ()
            self._vault = (stamp, header.key_source if header else None, names)
        return self._vault[1], self._vault[2]

    def _publish(self, status: HubStatus) -> None:
        self.latest = status
        with contextlib.suppress(queue.Empty):
            self.statuses.get_nowait()
        self.statuses.put_nowait(status)


def passphrase_reason(settings: Settings, key_source: str | None, stored: tuple[str, ...]) -> str:
    """What Start All needs the passphrase of the secrets file for ("" when nothing): live
    trading (the keys), or the notification channels whose secrets are stored in it."""
    if key_source != "passphrase":
        return ""
    if settings.mode is Mode.LIVE:
        return "live trading"
    cfg = settings.notifications
    if settings.mode is Mode.DEMO and not cfg.send_in_demo:
        return ""
    wanted = [c for c in channels_with_secrets(cfg) if SECRET_NAMES[c] in stored]
    return f"notifications by {', '.join(wanted)}" if wanted else ""


def hub_engine(
    layout: DataLayout, make_supervisor: Callable[..., Supervisor] = Supervisor, **kw: Any
) -> HubEngine:
    """The hub's engine with its notifications: the supervisor's events go to the channels,
    and CRITICAL log records of the hub too. Not started."""
    notifier = ProcessNotifier(layout, "hub").install()
    supervisor = make_supervisor(layout, notify=notifier.notify, **kw)
    return HubEngine(layout, supervisor, notifier=notifier)


def status_table(status: HubStatus) -> str:
    """The compact table ``--headless`` prints: workers, then one line per coin."""
    s = status.settings
    clock = ""
    if status.sim_now is not None and status.clock is not None:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(status.sim_now))
        clock = f"  demo clock {when} UTC at {status.clock.speed:g}x"
    lines = [f"PowerTrader AI  {s.mode.value.upper()}{clock}"]
    for w in status.supervisor.workers:
        age = "" if w.heartbeat_age is None else f" beat {w.heartbeat_age:.0f}s ago"
        lines.append(f"  {w.name:<12} {w.state.value:<9}{age}  {w.detail}"[:120])
    if status.supervisor.detail:
        lines.append(f"  start all: {status.supervisor.detail}")
    lines.append(_account_line(status.trader))
    lines.append(
        f"  {'coin':<6}{'model':<10}{'LONG':>5}{'SHORT':>6}  {'qty':>12} {'PnL%':>7}  note"
    )
    positions = {c["coin"]: c for c in (status.trader or {}).get("coins", [])}
    for coin in status.coins:
        signal = status.signals.coin(coin.coin) if status.signals else None
        long_ = "-" if signal is None or signal.long_level is None else str(signal.long_level)
        short = "-" if signal is None or signal.short_level is None else str(signal.short_level)
        pos = positions.get(coin.coin, {})
        qty = pos.get("quantity") or 0.0
        pnl = pos.get("pnl_sell_pct")
        pnl_text = "" if pnl is None else f"{pnl:+.2f}"
        note = pos.get("problem") or (signal.reason if signal and signal.long_level is None else "")
        if coin.state == "training" and coin.percent is not None:
            note = f"training {coin.percent:.0f}%"
        line = f"  {coin.coin:<6}{coin.state:<10}{long_:>5}{short:>6}  {qty:>12.6g} {pnl_text:>7}"
        lines.append(f"{line}  {note}"[:140])
    if status.risk_stop:
        lines.append(f"  RISK STOP: {status.risk_stop} (python pt_hub.py --resume-trading)")
    if status.message:
        lines.append(f"  {status.message}")
    return "\n".join(lines)


def _account_line(trader: dict[str, Any] | None) -> str:
    account = (trader or {}).get("account") or {}
    total, cash = account.get("total_value"), account.get("cash")
    if total is None or cash is None:
        return "  account: no trader status yet"
    in_trade = account.get("percent_in_trade") or 0.0
    return f"  account ${total:,.2f}  cash ${cash:,.2f}  in trade {in_trade:.1f}%"
