"""The trader process: ``python pt_trader.py [--data-dir DIR] [--once]``.

A composition root: the data folder, logging, the single-instance lock ``trader``, settings hot
reload, the broker for the mode (demo/paper: the paper broker over the journal, priced by the
market data; live: Robinhood with the encrypted credentials), and the tick loop around
:class:`pt_trader_core.Trader`. Unfinished orders are reconciled with the broker before the
first tick. Writes ``state/trader_status.json`` (schema ``trader_status/1``) and a heartbeat;
obeys the hub's control file (STOP exits 0, PAUSE sends no new orders but keeps reporting).

The mode is fixed for the life of the process (the journal writer is stamped with it); a mode
change in the settings is logged and takes effect when the hub restarts the trader.
"""

from __future__ import annotations

import logging
import math
import os
import signal as os_signal
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from pt_broker import Broker, BrokerQuote
from pt_broker_paper import PaperBroker
from pt_broker_robinhood import RobinhoodBroker
from pt_config import SettingsWatcher
from pt_config_schema import Settings
from pt_errors import PowerTraderError
from pt_journal import TradeJournal
from pt_notify_runtime import ProcessNotifier
from pt_notify_watch import DailySummary
from pt_process import read_passphrase, run_process, worker_parser
from pt_replay import DemoClockError, SimClock
from pt_risk import DrawdownState
from pt_robinhood import RobinhoodClient
from pt_secrets import SecretsError, SecretStore, choose_key_source, load_robinhood
from pt_secrets_vault import read_header
from pt_state import (
    DataLayout,
    StateWriter,
    read_control,
    read_risk_resume,
    write_heartbeat,
)
from pt_strategy import StrategyConfig, buy_pnl_pct, sell_pnl_pct
from pt_strategy_display import dca_line
from pt_thinker import read_signals
from pt_thinker_exchanges import AggregatedPrice, MarketData, build_market
from pt_trader_core import TickResult, Trader, no_notify
from pt_types import ControlCommand, Mode

log = logging.getLogger(__name__)

PROC = "trader"
STATUS_SCHEMA = "trader_status/1"
Clock = Callable[[], float]
CRASH_ENV = "POWERTRADER_CRASH_AT"
CRASH_POINTS = ("after_intent", "after_submit", "after_fill_record")


def crash_hook_from_env(environ: Mapping[str, str] = os.environ) -> Callable[[str], None]:
    """TEST-ONLY: the Trader's ``crash_hook``. It exists for the kill-at-every-step tests
    (tests/test_trader_crash.py): with ``POWERTRADER_CRASH_AT`` set to one of
    :data:`CRASH_POINTS`, the process SIGKILLs itself the first time an order reaches that step,
    so nothing (no finally, no atexit, no journal close) runs, as in a real crash. Unset (every
    normal run) it does nothing at all. An unknown value raises rather than silently not crash."""
    point = environ.get(CRASH_ENV, "")
    if not point:
        return lambda step: None
    if point not in CRASH_POINTS:
        raise ValueError(f"{CRASH_ENV} must be one of {', '.join(CRASH_POINTS)}, got {point!r}")

    def crash(step: str) -> None:
        if step == point:
            log.warning("%s=%s: killing the trader at %s (crash test)", CRASH_ENV, point, step)
            os.kill(os.getpid(), os_signal.SIGKILL)

    return crash


class VenuePrices:
    """Each coin's aggregated price across the venues, asked at most once per ``ttl`` seconds
    of ``wall``: one tick's quote, reference price and venue gap share one round of requests.
    The trader passes the mode's clock, so in demo a price is never reused for a later (or,
    after the hub restarts the clock, an earlier) simulated moment."""

    def __init__(self, market: MarketData, *, wall: Clock = time.time, ttl: float = 0.5) -> None:
        self.market, self._wall, self.ttl = market, wall, ttl
        self._memo: dict[str, tuple[float, AggregatedPrice]] = {}

    def get(self, coin: str) -> AggregatedPrice:
        now = self._wall()
        hit = self._memo.get(coin)
        if hit is not None and 0 <= now - hit[0] < self.ttl:
            return hit[1]
        agg = self.market.get_aggregated_current_price(coin)
        self._memo[coin] = (now, agg)
        return agg

    def quote(self, coin: str) -> BrokerQuote:
        """The paper broker's quote: the venues' median price, with the best bid/ask's spread."""
        agg = self.get(coin)
        half = max(agg.best_ask - agg.best_bid, 0.0) / 2
        return BrokerQuote(coin, agg.median_mid - half, agg.median_mid + half, agg.time)

    def reference(self, coin: str) -> float:
        """Live mode's check on the broker: the market-data venues' median mid price."""
        return self.get(coin).median_mid

    def gap_pct(self, coin: str) -> float:
        """How far apart the venues used for the price are: (highest − lowest mid) / median."""
        agg = self.get(coin)
        mids = [(q.bid + q.ask) / 2 for q in agg.quotes]
        if not mids or agg.median_mid <= 0:
            return math.nan
        return (max(mids) - min(mids)) / agg.median_mid * 100.0


def live_broker(settings: Settings, layout: DataLayout, passphrase: str | None = None) -> Broker:
    """Robinhood with the stored credentials; raises SystemExit(2) with a message without them.

    A passphrase-locked vault needs ``passphrase`` (the hub hands it over on the trader's
    standard input, ``--passphrase-stdin``); the trader never prompts."""

    def given(new: bool) -> str:
        if new or passphrase is None:
            raise SecretsError(
                "the keys are locked with a passphrase; start live trading from the hub, or run "
                "the trader with --passphrase-stdin and the passphrase on standard input"
            )
        return passphrase

    creds = None
    try:
        if read_header(layout) is not None:  # no vault yet: nothing stored, nothing to unlock
            creds = load_robinhood(SecretStore(layout, choose_key_source(layout, given)))
    except (SecretsError, OSError) as exc:
        print(f"trader cannot start in live mode: {exc}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None
    if creds is None:
        print(  # noqa: T201
            "trader cannot start in live mode: no Robinhood credentials are stored; "
            "add them with the API wizard or `python pt_secrets.py import-original`",
            file=sys.stderr,
        )
        raise SystemExit(2)
    client = RobinhoodClient(
        creds.api_key, creds.private_key_seed, base_url=settings.exchanges.robinhood_url
    )
    return RobinhoodBroker(client)


def status_data(result: TickResult, settings: Settings, mode: Mode) -> dict[str, Any]:
    """``trader_status/1``: what the hub's trades table shows (no secrets, plain numbers)."""
    config = StrategyConfig.from_settings(settings)
    coins = []
    for view in result.coins:
        p, m = view.position, view.market
        qty = p.quantity if p else 0.0
        avg = p.avg_cost if p else 0.0
        trailing = view.decision.trailing if view.decision else None
        line = dca_line(config, p, view.signal)
        coins.append(
            {
                "coin": view.coin,
                "quantity": qty,
                "avg_cost": avg,
                "bid": m.bid if m else None,
                "ask": m.ask if m else None,
                "pnl_buy_pct": buy_pnl_pct(avg, m.ask) if m and p else None,
                "pnl_sell_pct": sell_pnl_pct(avg, m.bid) if m and p else None,
                "dca_stage": p.dca_stage if p else 0,
                "next_dca_price": line.price,
                "next_dca_source": line.source,
                "next_dca_display": line.display,
                "trailing_line": trailing.line if trailing else None,
                "trailing_peak": trailing.peak if trailing else None,
                "trailing_active": bool(trailing and trailing.active),
                "trailing_distance_pct": (
                    (m.bid - trailing.line) / trailing.line * 100 if trailing and m else None
                ),
                "reason": view.decision.reason if view.decision else "",
                "problem": view.problem,
            }
        )
    account = result.account
    total = account.total_value if account else None
    cash = account.cash if account else None
    in_trade = (total - cash) / total * 100 if total and cash is not None else None
    return {
        "mode": mode.value,
        "time": result.now,
        "problem": result.problem,
        "account": {"cash": cash, "total_value": total, "percent_in_trade": in_trade},
        "coins": coins,
        "risk": risk_data(result.risk, total),
    }


def risk_data(state: DrawdownState | None, value: float | None) -> dict[str, Any]:
    """The drawdown stop as the hub shows it: tripped (with why and since when) or not."""
    if state is None:
        return {"halted": False, "reason": "", "since": None, "peak": None, "drawdown_pct": None}
    drawdown = state.drawdown_pct(value) if value is not None and state.peak > 0 else None
    return {"halted": state.halted, "reason": state.reason, "since": state.halted_at,
            "peak": state.peak or None, "drawdown_pct": drawdown}  # fmt: skip


class Runner:
    """Control file, heartbeat, status file and the tick period around a :class:`Trader`."""

    def __init__(
        self,
        layout: DataLayout,
        watcher: SettingsWatcher,
        *,
        wall: Clock = time.time,
        sleep: Callable[[float], None] = time.sleep,
        passphrase: str | None = None,
        notifier: ProcessNotifier | None = None,
    ) -> None:
        self.layout, self.watcher = layout, watcher
        self._passphrase = passphrase
        self.notifier = notifier
        self._daily = DailySummary(notifier.notify if notifier else no_notify)
        self._wall, self._sleep = wall, sleep
        self.mode = watcher.current.mode
        self._status = StateWriter(layout.trader_status_file, STATUS_SCHEMA, clock=wall)
        self.trader: Trader | None = None

    def _build(self, settings: Settings) -> Trader:
        layout, wall = self.layout, self._wall
        scale: Callable[[], float] = lambda: 1.0  # noqa: E731
        now: Clock = wall
        if self.mode is Mode.DEMO:
            sim = SimClock(layout, wall_clock=wall)
            now, scale = sim.now, lambda: sim.state().speed
        journal = TradeJournal(layout.journal_db, mode=self.mode, clock=now)
        venues = VenuePrices(build_market(settings, layout), wall=now)
        broker: Broker
        reference = None
        if self.mode is Mode.LIVE:
            broker = live_broker(settings, layout, self._passphrase)
            reference = venues.reference
        else:
            broker = PaperBroker.from_settings(journal, venues.quote, settings.paper, clock=now)
        trader = Trader(
            broker=broker,
            journal=journal,
            signals=lambda: read_signals(layout),
            clock=now,
            settings=self.watcher.reload,
            wall=wall,
            time_scale=scale,
            crash_hook=crash_hook_from_env(),
            reference=reference,
            notify=self.notifier.notify if self.notifier is not None else no_notify,
            venue_gap=venues.gap_pct,
            resume_requested=lambda: read_risk_resume(layout),
        )
        for line in trader.reconcile():  # before anything else
            log.info("reconciled %s", line)
        return trader

    def run(self, *, once: bool = False) -> int:
        while True:
            started = self._wall()
            command = read_control(self.layout, PROC)
            if command is ControlCommand.STOP:
                log.info("stop requested by the hub")
                return 0
            status = self.step(paused=command is ControlCommand.PAUSE)
            write_heartbeat(self.layout, PROC, status=status, clock=self._wall)
            if once:
                return 0
            period = self.watcher.current.trader.tick_seconds
            self._sleep(max(0.0, started + period - self._wall()))

    def step(self, *, paused: bool) -> str:
        settings = self.watcher.reload()
        if self.notifier is not None:
            self.notifier.update(settings)
        if settings.mode is not self.mode:
            log.warning("mode changed to %s: restart the trader to use it", settings.mode.value)
        try:
            if self.trader is None:
                self.trader = self._build(settings)
            result = self.trader.tick(paused=paused)
        except DemoClockError as exc:
            log.debug("%s", exc)
            self._status.write({"mode": self.mode.value, "problem": str(exc), "coins": []})
            return "waiting_for_clock"
        except PowerTraderError as exc:
            log.warning("tick failed: %s", exc)
            self._status.write({"mode": self.mode.value, "problem": str(exc), "coins": []})
            return "error"
        self._status.write(status_data(result, settings, self.mode))
        if self.notifier is not None and "daily_summary" in settings.notifications.events:
            self._daily.check(result.now, self.trader.journal, self.mode.value)
        return "paused" if paused else ("problem" if result.problem else "running")


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 stopped, 1 another trader runs for this data folder, 2 cannot start."""
    parser = worker_parser("pt_trader.py", __doc__.splitlines()[0], once="run one tick, then exit",
                           passphrase_for="live keys, notifications")  # fmt: skip
    args = parser.parse_args(argv)
    passphrase = read_passphrase(args)

    def body(layout: DataLayout, watcher: SettingsWatcher, notifier: ProcessNotifier) -> int:
        runner = Runner(layout, watcher, passphrase=passphrase, notifier=notifier)
        return runner.run(once=args.once)

    return run_process(PROC, args.data_dir, body, passphrase=passphrase)


if __name__ == "__main__":
    raise SystemExit(main())
