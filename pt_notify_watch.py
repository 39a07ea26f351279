"""Notifications that come from watching, not from one event: the daily summary (trader) and
arbitrage spotted between venues (thinker).

Each watcher is called once per loop with the mode's ``now`` and decides for itself whether
there is something to say, so the loops stay as they are. Neither raises: a failure to build a
notification is logged and the bot trades on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from pt_journal_reader import JournalReader
from pt_notify_format import Notification, arbitrage, daily_summary
from pt_thinker_exchanges import ArbitrageOpportunity

log = logging.getLogger(__name__)

__all__ = ["ArbitrageWatch", "DailySummary"]

DAY = 86_400
Notify = Callable[[Notification], None]


class DailySummary:
    """At the first loop of each UTC day (the mode's clock: simulated in demo), a summary of
    the day before: trades closed, wins, realized PnL, open trades and the account value at
    the day's end. The day the bot starts in is not summarised (it saw only part of it)."""

    def __init__(self, notify: Notify) -> None:
        self._notify = notify
        self._day: int | None = None

    def check(self, now: float, journal: JournalReader, mode: str) -> None:
        day = int(now // DAY)
        if self._day is None or day <= self._day:
            self._day = day if self._day is None else self._day
            return
        start, end = (day - 1) * DAY, day * DAY
        self._day = day
        try:
            closed = journal.trades(status="closed", since=start, until=end)
            equity = journal.equity_series(since=start, until=end)
            value = float(equity.equity[-1]) if len(equity.equity) else None
            n = daily_summary(
                datetime.fromtimestamp(start, tz=UTC).strftime("%Y-%m-%d"),
                closed=len(closed),
                wins=sum(t.result == "win" for t in closed),
                pnl=sum(t.realized_pnl_usd for t in closed),
                equity=value,
                open_trades=len(journal.open_trades()),
                mode=mode,
                at=now,
            )
        except Exception:
            log.exception("daily summary failed")
            return
        self._notify(n)


@runtime_checkable
class ArbitrageSource(Protocol):
    def detect_arbitrage_opportunities(
        self, symbols: Iterable[str], min_spread_pct: float = 0.5
    ) -> list[ArbitrageOpportunity]: ...


class ArbitrageWatch:
    """Looks for gaps between venues every ``every_s`` wall seconds and says each one once per
    ``cooldown_s`` (per coin and venue pair), so a gap that lasts an hour is one message."""

    def __init__(
        self,
        notify: Notify,
        *,
        every_s: float = 60.0,
        cooldown_s: float = 3600.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._notify, self._every, self._cooldown, self._wall = notify, every_s, cooldown_s, wall
        self._next = 0.0
        self._said: dict[tuple[str, str, str], float] = {}

    def check(self, market: object, coins: Iterable[str], min_pct: float) -> None:
        """``market``: anything with ``detect_arbitrage_opportunities`` (the live venues; the
        demo's replayed history has one price, so there is nothing to find)."""
        wall = self._wall()
        if wall < self._next or not isinstance(market, ArbitrageSource):
            return
        self._next = wall + self._every
        try:
            found = market.detect_arbitrage_opportunities(coins, min_spread_pct=min_pct)
        except Exception as exc:  # a venue failing must not stop the predictions
            log.warning("arbitrage check failed: %s", exc)
            return
        for o in found:
            key = (o.coin, o.buy_venue, o.sell_venue)
            if wall < self._said.get(key, -float("inf")) + self._cooldown:
                continue
            self._said[key] = wall
            self._notify(arbitrage(o.coin, (o.buy_venue, o.buy_ask), (o.sell_venue, o.sell_bid),
                                   o.net_spread_pct, mixed_currencies=o.mixed_currencies,
                                   at=o.time))  # fmt: skip
