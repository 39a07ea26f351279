"""One trader tick and the restart reconciliation, over injected collaborators.

The process (:mod:`pt_trader`) wires files, locks and the broker; this class does the work a
tick needs and nothing else: settings (hot reload), the thinker's signals, the broker's account
and quotes, positions rebuilt from the journal's open trades, :func:`pt_strategy.decide_all`,
then every order as *intent committed → submitted → its answer recorded* (DESIGN.md §6). The
journal is the source of truth for positions, DCA stage, the 24 h DCA window and the trailing
state, so a restart (or a crash) never forgets a peak.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pt_broker import Broker, BrokerAccount, OrderReport
from pt_config_schema import Settings
from pt_errors import ExchangeAuthError, PowerTraderError
from pt_journal import TradeJournal
from pt_journal_schema import ALLOWED_NEXT, JournalError, OrderRecord, OrderState, TradeRecord
from pt_notify_format import Notification, dca, trade_closed, trade_opened
from pt_risk import DrawdownState, RiskLimits, gate_buys
from pt_signals import SignalsSnapshot
from pt_strategy import (
    Account,
    Decision,
    MarketView,
    PositionState,
    StrategyConfig,
    TrailingState,
    decide_all,
)
from pt_trader_risk import RiskDesk
from pt_types import OrderTag, Side, Signal

log = logging.getLogger(__name__)

Clock = Callable[[], float]
TRAILING_KEY = "trader/trailing/"  # + coin: the persisted TrailingState
CHECK_KEYS = "check your keys"


def _no_crash(point: str) -> None:
    """The default crash hook: does nothing (pt_trader installs a test-only one)."""


def no_notify(n: Notification) -> None:
    """The default notification sink: sends nothing (pt_trader passes its channels')."""


def fill_notification(order: OrderRecord, trade: TradeRecord | None) -> Notification | None:
    """What to tell the user about an order that just finished with fills: a trade opened, a
    DCA, or a trade closed with its PnL, each with the decision's reason. None for a sell that
    left the trade open (a partial fill that ended; the next tick decides again)."""
    price = order.avg_price
    if price is None:
        return None
    coin, qty, mode, at = order.coin, order.filled_quantity, order.mode.value, order.updated_at
    if order.side is Side.BUY:
        if order.tag is OrderTag.DCA:
            stage = trade.dca_count if trade is not None else 0
            return dca(coin, qty, price, stage, reason=order.reason, mode=mode, at=at)
        return trade_opened(coin, qty, price, reason=order.reason, mode=mode, at=at)
    if trade is None or trade.is_open:
        return None
    return trade_closed(coin, qty, price, trade.realized_pnl_usd, trade.realized_pnl_pct,
                        reason=order.reason or trade.exit_reason, mode=mode, at=at)  # fmt: skip


def trailing_to_json(state: TrailingState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "active": state.active,
        "line": state.line,
        "peak": state.peak,
        "was_above": state.was_above,
        "settings": list(state.settings),
    }


def trailing_from_json(data: Any) -> TrailingState | None:
    """A stored trailing state, or None when there is none or it is unreadable (re-armed)."""
    if not isinstance(data, dict):
        return None
    try:
        a, b, c = (float(x) for x in data["settings"])
        return TrailingState(
            bool(data["active"]),
            float(data["line"]),
            float(data["peak"]),
            bool(data["was_above"]),
            (a, b, c),
        )
    except (KeyError, TypeError, ValueError):
        log.warning("unreadable trailing state %r: re-armed", data)
        return None


@dataclass(frozen=True)
class CoinView:
    """What the status file shows for one coin after a tick."""

    coin: str
    market: MarketView | None
    position: PositionState | None
    signal: Signal | None
    decision: Decision | None
    problem: str = ""


@dataclass(frozen=True)
class TickResult:
    """One tick: when (the mode's now), the account, each coin, and what stopped trading."""

    now: float
    account: Account | None
    coins: tuple[CoinView, ...]
    problem: str = ""
    orders: tuple[OrderReport, ...] = ()
    risk: DrawdownState | None = None


class Trader:
    """The per-tick logic (module doc). Collaborators come in; nothing here opens a file.

    ``signals`` returns the thinker's newest snapshot (None: none yet); its wall age over
    ``max_signal_age_s`` means no entries and no neural DCAs. ``clock`` is the mode's now (the
    simulated clock in demo), ``wall`` real time; ``time_scale`` is how many of ``clock``'s
    seconds pass per wall second (the demo speed), so age limits hold in wall seconds.
    ``crash_hook`` is called at each step of an order's life, so a test can stop the process
    at exactly that point (tests/test_trader_crash.py kills the process there). ``reference``
    gives a coin's median price at the other venues (live mode: the broker's price is checked
    against it); when it fails, that coin is not traded. ``notify`` gets a notification for
    every order that finishes with fills (:func:`fill_notification`); it must not block.
    Before any buy goes out it passes the risk limits (:func:`pt_risk.gate_buys`);
    ``venue_gap`` and ``resume_requested`` go to its :class:`pt_trader_risk.RiskDesk`."""

    def __init__(
        self,
        *,
        broker: Broker,
        journal: TradeJournal,
        signals: Callable[[], SignalsSnapshot | None],
        clock: Clock,
        settings: Callable[[], Settings],
        wall: Clock = time.time,
        time_scale: Callable[[], float] = lambda: 1.0,
        max_signal_age_s: float | None = None,
        wait_deadline_s: float = 30.0,
        reject_cooldown_s: float = 60.0,
        auth_backoff_s: float = 60.0,
        crash_hook: Callable[[str], None] = _no_crash,
        reference: Callable[[str], float] | None = None,
        notify: Callable[[Notification], None] = no_notify,
        venue_gap: Callable[[str], float] | None = None,
        resume_requested: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.broker, self.journal = broker, journal
        self._signals, self._clock, self._settings = signals, clock, settings
        self._wall, self._scale = wall, time_scale
        self.max_signal_age_s = max_signal_age_s
        self.wait_deadline_s = wait_deadline_s
        self.reject_cooldown_s = reject_cooldown_s
        self.auth_backoff_s = auth_backoff_s
        self._crash = crash_hook
        self._reference = reference
        self._notify = notify
        self.risk = RiskDesk(
            journal, notify, venue_gap=venue_gap, resume_requested=resume_requested
        )
        self._cooldown: dict[str, tuple[float, str]] = {}  # coin -> (wall until, why)
        self._auth_until = -math.inf
        self.auth_problem = ""
        self._saved: dict[str, Any] = {}
        self.last: TickResult | None = None

    # -- restart reconciliation ----------------------------------------------------------------

    def reconcile(self) -> tuple[str, ...]:
        """Settle every unfinished journal order with the broker, by client order id.

        Run at start, before anything else, and at the start of each tick (a submit that raised
        a temporary error leaves its order unfinished). An order the broker never received is
        marked failed and NOT resent: the decision that made it may be stale (prices moved,
        settings changed, hours passed while the trader was down); the next tick decides afresh
        from the journal and the market. An order the broker knows gets its fills recorded
        (idempotent by venue fill id) and its state; one not yet terminal is waited for until
        ``wait_deadline_s``, then left unfinished for the next pass. Returns what was done."""
        done: list[str] = []
        for order in self.journal.unfinished_orders():
            cid = order.client_order_id
            report = self.broker.order(cid)
            if report is None:
                why = "never reached the broker (crash or error before sending); not resent"
                self.journal.mark_order_state(cid, OrderState.FAILED, detail=why)
                log.warning("order %s %s %s: %s", cid, order.side.value, order.coin, why)
                done.append(f"{cid}: failed, {why}")
                continue
            if not report.terminal:
                report = self.broker.wait(cid, self.wait_deadline_s)
            state = self._settle(cid, report)
            log.info("order %s reconciled with the broker: %s", cid, state.value)
            done.append(f"{cid}: {state.value}")
        return tuple(done)

    def _record_report(self, cid: str, report: OrderReport) -> OrderState:
        """Write what the broker said about an order into the journal; safe to repeat."""
        record = self.journal.order(cid)
        if record is None:
            raise JournalError(f"order {cid} is not in the journal")
        if report.rejected:
            if not record.state.finished:
                self.journal.mark_order_state(cid, OrderState.REJECTED, detail=report.message)
            return OrderState.REJECTED
        with self.journal.transaction():
            self.journal.mark_sent(cid, report.venue_order_id)
            for fill_id, fill in report.fills:
                self.journal.record_fill(replace(fill, client_order_id=cid), fill_id)
            current = self.journal.order(cid)
            assert current is not None
            target = report.state
            if target is OrderState.FAILED and current.state is OrderState.PARTIALLY_FILLED:
                target = OrderState.CANCELED  # what it kept is a partial fill that ended
            movable = target is not current.state and target in ALLOWED_NEXT[current.state]
            if report.terminal and movable:
                self.journal.mark_order_state(cid, target, detail=report.message)
            final = self.journal.order(cid)
        assert final is not None
        return final.state

    def _settle(self, cid: str, report: OrderReport) -> OrderState:
        """Record the answer to an order that was unfinished until now, and notify the user
        when it finished with fills (a failure to notify never stops the recording)."""
        state = self._record_report(cid, report)
        try:
            order = self.journal.order(cid)
            if order is not None and order.state.finished and order.filled_quantity > 0:
                n = fill_notification(order, self.journal.trade(order.trade_group_id))
                if n is not None:
                    self._notify(n)
        except Exception:
            log.exception("notification for order %s failed", cid)
        return state

    # -- one tick ------------------------------------------------------------------------------

    def tick(self, *, paused: bool = False) -> TickResult:
        """Decide and trade once (``paused``: decide and report, but send nothing)."""
        settings = self._settings()
        now = self._clock()
        wall = self._wall()
        if wall < self._auth_until:
            return self._done(TickResult(now, None, (), f"{self.auth_problem}: {CHECK_KEYS}"))
        try:
            self.reconcile()
            account = self.broker.account()
        except ExchangeAuthError as exc:
            return self._auth_failed(now, wall, exc)
        except (PowerTraderError, OSError) as exc:
            log.warning("tick skipped: %s", exc)
            return self._done(TickResult(now, None, (), f"tick skipped: {exc}"))
        self.auth_problem = ""
        config = self._config(settings)
        trades = {t.coin: t for t in self.journal.open_trades()}
        coins = tuple(dict.fromkeys((*config.coins, *trades)))
        markets, problems = self._quotes(coins)
        positions = {c: self._position(t) for c, t in trades.items()}
        snapshot = self._signals()
        signals, stale = self._fresh_signals(
            snapshot, config.coins, self._signal_age_limit(settings)
        )
        cash = account.cash_usd
        held = {c: p.quantity * markets[c].bid for c, p in positions.items() if c in markets}
        value = cash + sum(held.values())
        strategy_account = Account(cash, value, account.buying_power_usd)
        limits = RiskLimits.from_settings(settings)
        priced = all(c in markets for c in positions)  # a missing price is no fall in value
        risk = self.risk.track(limits, value, now=now, wall=wall) if priced else self.risk.drawdown
        halted = risk.reason if risk is not None and risk.halted else ""
        decisions = decide_all(
            config,
            markets=markets,
            signals=signals,
            positions=positions,
            account=strategy_account,
            now=now,
        )
        decisions, refused = gate_buys(
            decisions,
            limits,
            account_value=value,
            positions=held,
            markets=markets,
            inputs=self.risk.inputs(snapshot, decisions, held, limits, now),
            halted=halted,
        )
        problems.update(refused)
        stopped = paused or bool(halted and limits.drawdown_pause_all)
        reports: list[OrderReport] = []
        for d in decisions:
            if stopped or not d.intents:
                continue
            try:
                reports.extend(self._execute(d, signals.get(d.coin), now, wall, problems))
            except ExchangeAuthError as exc:
                return self._auth_failed(now, wall, exc)
            except (PowerTraderError, OSError) as exc:
                log.warning("order for %s not completed: %s", d.coin, exc)
                problems[d.coin] = f"order not completed: {exc} (reconciled next tick)"
        self._save_trailing(decisions)
        self._mark(now, account, markets)
        views = tuple(
            CoinView(
                d.coin,
                markets.get(d.coin),
                positions.get(d.coin),
                signals.get(d.coin),
                d,
                problems.get(d.coin) or d.problem or self._cooling(d.coin, wall),
            )
            for d in decisions
        )
        problem = "paused by the hub: no new orders" if paused else (halted or stale)
        result = TickResult(now, strategy_account, views, problem, tuple(reports), risk)
        return self._done(result)

    def _done(self, result: TickResult) -> TickResult:
        self.last = result
        return result

    def _auth_failed(self, now: float, wall: float, exc: Exception) -> TickResult:
        first = not self.auth_problem  # CRITICAL (notified) once, not at every retry
        self.auth_problem = f"the broker refused the credentials ({exc})"
        self._auth_until = wall + self.auth_backoff_s
        level = logging.CRITICAL if first else logging.ERROR
        log.log(level, "%s: trading stopped, %s", self.auth_problem, CHECK_KEYS)
        return self._done(TickResult(now, None, (), f"{self.auth_problem}: {CHECK_KEYS}"))

    def _signal_age_limit(self, settings: Settings) -> float:
        """Wall seconds after which signals are stale (the constructor's value wins, for tests)."""
        if self.max_signal_age_s is not None:
            return self.max_signal_age_s
        return settings.trader.max_signal_age_seconds

    def _config(self, settings: Settings) -> StrategyConfig:
        scale = max(self._scale(), 1e-9)  # the strategy's ages are on the mode's clock
        return StrategyConfig.from_settings(
            settings,
            max_signal_age=self._signal_age_limit(settings) * scale,
            max_quote_age=settings.trader.max_quote_age_seconds * scale,
            max_spread_pct=settings.trader.max_spread_pct,
            max_deviation_pct=settings.trader.max_quote_deviation_pct,
        )

    def _quotes(self, coins: tuple[str, ...]) -> tuple[dict[str, MarketView], dict[str, str]]:
        markets: dict[str, MarketView] = {}
        problems: dict[str, str] = {}
        for coin in coins:
            try:
                q = self.broker.quote(coin)
            except (PowerTraderError, OSError) as exc:
                problems[coin] = f"no price: {exc}"
                continue
            ref: float | None = None
            if self._reference is not None:
                try:
                    ref = self._reference(coin)
                except (PowerTraderError, OSError) as exc:
                    problems[coin] = f"no reference price from the other venues: {exc}"
                    continue
            markets[coin] = MarketView(q.bid, q.ask, q.time, ref)
        return markets, problems

    def _fresh_signals(
        self, snapshot: SignalsSnapshot | None, coins: tuple[str, ...], max_age: float
    ) -> tuple[dict[str, Signal], str]:
        if snapshot is None:
            return {}, "no signals from the thinker yet: no entries, no neural DCA"
        age = snapshot.age(self._wall())
        if age > max_age:
            return {}, (
                f"signals are stale ({age:.0f} s old, max {max_age:g} s): no entries, no neural DCA"
            )
        found = {c: snapshot.signal(c) for c in coins}
        return {c: s for c, s in found.items() if s is not None}, ""

    def _position(self, trade: TradeRecord) -> PositionState:
        """The strategy's position from the journal: its lots, DCA count, DCA times, trailing."""
        dca_times: dict[str, float] = {}
        for f in self.journal.fills(trade_group_id=trade.trade_group_id):
            if f.tag is OrderTag.DCA:
                dca_times.setdefault(f.client_order_id, f.time)
        stored = self.journal.load_state(TRAILING_KEY + trade.coin)
        self._saved[trade.coin] = stored
        return PositionState(
            trade.coin,
            trade.quantity,
            trade.open_cost_usd,
            trade.dca_count,
            tuple(sorted(dca_times.values())),
            trade.opened_at,
            trailing_from_json(stored),
        )

    def _cooling(self, coin: str, wall: float) -> str:
        until, why = self._cooldown.get(coin, (0.0, ""))
        return f"last order rejected: {why}" if wall < until else ""

    def _execute(
        self,
        decision: Decision,
        signal: Signal | None,
        now: float,
        wall: float,
        problems: dict[str, str],
    ) -> list[OrderReport]:
        """Intent committed → submitted → answer recorded, for each intent of one decision."""
        coin = decision.coin
        if self._cooling(coin, wall):
            log.info("no order for %s: %s", coin, self._cooling(coin, wall))
            return []
        reports = []
        for intent in decision.intents:
            cid = self.journal.record_intent(intent, signal=signal, now=now)
            self._crash("after_intent")
            report = self.broker.submit(replace(intent, client_order_id=cid), cid)
            self._crash("after_submit")
            if not report.terminal and not report.rejected:
                report = self.broker.wait(cid, self.wait_deadline_s)
            self._settle(cid, report)
            self._crash("after_fill_record")
            reports.append(report)
            if report.rejected:
                log.warning("order %s for %s rejected: %s", cid, coin, report.message)
                self._cooldown[coin] = (wall + self.reject_cooldown_s, report.message)
                problems[coin] = f"order rejected: {report.message}"
        return reports

    def _save_trailing(self, decisions: tuple[Decision, ...]) -> None:
        """Persist each coin's trailing state when it changed (a restart keeps the peak)."""
        for d in decisions:
            data = trailing_to_json(d.trailing)
            if self._saved.get(d.coin, None) != data or d.coin not in self._saved:
                self.journal.save_state(TRAILING_KEY + d.coin, data)
                self._saved[d.coin] = data

    def _mark(self, now: float, before: BrokerAccount, markets: Mapping[str, MarketView]) -> None:
        """Equity (cash + Σ quantity × bid of the bot's trades) and each open trade's mark."""
        try:
            cash = self.broker.account().cash_usd
        except (PowerTraderError, OSError):
            cash = before.cash_usd
        value = 0.0
        for trade in self.journal.open_trades():
            market = markets.get(trade.coin)
            if market is None or not (market.bid > 0 and math.isfinite(market.bid)):
                continue
            value += trade.quantity * market.bid
            self.journal.mark_price(trade.trade_group_id, market.bid, now)
        self.journal.record_equity(now, cash + value, cash, value)
