"""The trader's risk desk: the drawdown stop kept in the journal, and what the risk limits need
to know about each coin that wants to buy (ATR %, venue gap, correlations with the holdings).

The rules themselves are pure (:mod:`pt_risk`); this class holds their state across ticks and
reaches the journal, the thinker's snapshot, the venues and the notification sink for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from pt_errors import PowerTraderError
from pt_journal import TradeJournal
from pt_notify_format import Notification, risk_limit
from pt_risk import (
    CoinRiskInputs,
    DrawdownState,
    RiskLimits,
    drawdown_from_json,
    drawdown_to_json,
    resume_drawdown,
    track_drawdown,
)
from pt_signals import SignalsSnapshot
from pt_strategy import Decision
from pt_types import DAY, Side

log = logging.getLogger(__name__)

DRAWDOWN_KEY = "trader/risk/drawdown"  # the account's peak and the drawdown stop (pt_risk)
MARKET_STATE_MAX_AGE = 2 * DAY  # the mode's seconds an ATR % / correlation stays usable


class RiskDesk:
    """State and inputs of the risk limits for one trader (see the module doc).

    ``venue_gap`` gives a coin's spread across the venues in % (asked only when that limit is
    on); ``resume_requested`` the wall time the user last asked to resume (None: never)."""

    def __init__(
        self,
        journal: TradeJournal,
        notify: Callable[[Notification], None],
        *,
        venue_gap: Callable[[str], float] | None = None,
        resume_requested: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.journal, self._notify = journal, notify
        self._venue_gap, self._resume_requested = venue_gap, resume_requested
        self.drawdown: DrawdownState | None = None
        self._loaded = False

    def track(self, limits: RiskLimits, value: float, *, now: float, wall: float) -> DrawdownState:
        """The account's new peak and the drawdown stop, kept in the journal (a restart keeps
        a tripped stop). A stop is released when the user asked to resume after it tripped;
        tripping logs an error and sends a CRITICAL notification."""
        if not self._loaded:
            self.drawdown = drawdown_from_json(self.journal.load_state(DRAWDOWN_KEY))
            self._loaded = True
        before = state = self.drawdown
        asked = self._resume_requested()
        if state is not None and state.halted and asked is not None and (
            state.halted_wall is None or asked > state.halted_wall
        ):  # fmt: skip
            log.warning("drawdown stop released by the user: the peak is now $%.2f", value)
            state = resume_drawdown(value)
        state = track_drawdown(state, value, limits, now=now, wall=wall)
        if state.halted and (before is None or not before.halted):
            log.error("%s", state.reason)
            mode = self.journal.mode.value if self.journal.mode else ""
            self._notify(risk_limit(state.reason, mode=mode, at=now))
        if state != before:
            self.journal.save_state(DRAWDOWN_KEY, drawdown_to_json(state))
        self.drawdown = state
        return state

    def inputs(
        self,
        snapshot: SignalsSnapshot | None,
        decisions: tuple[Decision, ...],
        held: Mapping[str, float],
        limits: RiskLimits,
        now: float,
    ) -> dict[str, CoinRiskInputs]:
        """ATR %, venue gap and correlations with the holdings, for the coins that want to buy.
        Market state older than two days (the mode's time) counts as unknown."""
        buying = [d.coin for d in decisions if any(i.side is Side.BUY for i in d.intents)]
        if not buying:
            return {}
        matrix = None
        if snapshot is not None and now - snapshot.time <= MARKET_STATE_MAX_AGE:
            matrix = snapshot.correlation(limits.correlation_days)
        found = {}
        for coin in buying:
            state = snapshot.coin(coin) if snapshot is not None else None
            atr = None
            if state is not None and state.market is not None:
                atr = state.market.atr_pct if now - state.time <= MARKET_STATE_MAX_AGE else None
            correlations = {h: matrix.get(coin, h) for h in held} if matrix else None
            found[coin] = CoinRiskInputs(atr, self._gap(coin, limits), correlations)
        return found

    def _gap(self, coin: str, limits: RiskLimits) -> float | None:
        if self._venue_gap is None or limits.max_venue_gap_pct <= 0:
            return None
        try:
            return self._venue_gap(coin)
        except (PowerTraderError, OSError) as exc:
            log.info("%s: venue gap unknown: %s", coin, exc)
            return None
