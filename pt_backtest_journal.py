"""A backtest's trades in a journal file of its own, and the summary read back from it.

The run's orders, fills, floating-drawdown marks and equity go through the same
:class:`pt_journal.TradeJournal` calls the trader and the paper broker make, in time order and
in one transaction, so :class:`pt_analytics.PerformanceTracker` computes every figure exactly
as the ANALYTICS tab does for live trading (one definition of each metric, spec/metrics.md).
The journal is written in ``paper`` mode: paper fills on a simulated clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import pt_metrics as pm
from pt_analytics import PerformanceTracker
from pt_backtest_engine import BacktestResult
from pt_journal import TradeJournal
from pt_journal_schema import OrderState
from pt_types import DAY, Mode, Side

log = logging.getLogger(__name__)

JOURNAL_MODE = Mode.PAPER
_ORDER, _MARK, _EQUITY = 0, 1, 2  # what comes first when events share a time


def write_journal(result: BacktestResult, path: Path) -> TradeJournal:
    """A new journal at ``path`` (an older file there is replaced) holding the run."""
    for old in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        old.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    clock_at = [float(result.spec.start)]
    journal = TradeJournal(path, mode=JOURNAL_MODE, clock=lambda: clock_at[0])
    events = [(o.time, _ORDER, i) for i, o in enumerate(result.orders)]
    events += [(m[0], _MARK, i) for i, m in enumerate(result.marks)]
    eq = result.equity
    events += [(float(eq.time[j]), _EQUITY, j) for j in _equity_rows(result).tolist()]
    events.sort()
    groups: dict[str, str] = {}
    with journal.transaction():
        for t, kind, i in events:
            clock_at[0] = t
            if kind == _ORDER:
                _write_order(journal, result, i, groups)
            elif kind == _MARK:
                _, coin, bid = result.marks[i]
                if coin in groups:
                    journal.mark_price(groups[coin], bid, t)
            else:
                e, c = float(eq.equity[i]), float(eq.cash[i])
                journal.record_equity(t, e, c, e - c)
    log.info("backtest journal %s: %d orders", path, len(result.orders))
    return journal


def _equity_rows(result: BacktestResult) -> np.ndarray:
    """Which equity samples to journal: every one after a fill and each UTC day's last (what
    the metrics need, spec/metrics.md), not the hourly curve the reports draw."""
    t = result.equity.time
    if not len(t):
        return np.array([], dtype=np.int64)
    day = (t // DAY).astype(np.int64)
    last_of_day = np.r_[day[1:] != day[:-1], True]
    fill_times = {o.time for o in result.fills}
    at_fill = np.fromiter((x in fill_times for x in t.tolist()), dtype=bool, count=len(t))
    return np.flatnonzero(last_of_day | at_fill)


def _write_order(
    journal: TradeJournal, result: BacktestResult, i: int, groups: dict[str, str]
) -> None:
    order = result.orders[i]
    now = order.time
    cid = journal.record_intent(order.intent, signal=order.signal, now=now)
    if order.fill is None:
        journal.mark_order_state(cid, OrderState.REJECTED, detail=order.message, now=now)
        return
    venue_id = f"backtest-{cid}"
    journal.mark_sent(cid, venue_id, now=now)
    journal.record_fill(replace(order.fill, client_order_id=cid), f"{venue_id}-1")
    journal.mark_order_state(cid, OrderState.FILLED, detail=order.message, now=now)
    record = journal.order(cid)
    coin = order.fill.coin
    if order.fill.side is Side.BUY and record is not None:
        groups[coin] = record.trade_group_id
    elif order.fill.side is Side.SELL:
        groups.pop(coin, None)


@dataclass(frozen=True)
class Summary:
    """The headline figures of a run (all from the journal) beside buy-and-hold's."""

    metrics: pm.PeriodMetrics
    buy_and_hold: pm.AccountStats
    deepest_dca: int
    refused: int
    rejected: int

    def figures(self) -> dict[str, float | int | str | None]:
        """The bot's figures by name (None where undefined): ``summary.json``'s and each
        optimisation trial's, so both always say the same thing."""
        m = self.metrics
        a, t = m.account, m.trades
        return {
            "final_equity_usd": a.end_equity,
            "total_return": a.total_return,
            "cagr": a.cagr,
            "max_drawdown": a.max_drawdown,
            "max_drawdown_dates": a.drawdown.describe(),
            "sharpe": a.sharpe,
            "sortino": a.sortino,
            "calmar": a.calmar,
            "max_floating_drawdown": m.max_floating_drawdown,
            "trades": t.trades,
            "win_rate": t.win_rate,
            "avg_hold_s": t.avg_hold_s,
            "longest_hold_s": t.longest_hold_s,
            "realized_pnl_usd": t.realized_pnl_usd,
            "deepest_dca": self.deepest_dca,
            "cash_needed_usd": m.capital_deployed_usd,
            "buys_refused_by_risk_limits": self.refused,
            "orders_rejected": self.rejected,
        }


def summarize(
    result: BacktestResult, journal: TradeJournal, buy_and_hold: pm.EquitySeries
) -> Summary:
    tracker = PerformanceTracker(journal, mode=JOURNAL_MODE)
    metrics = tracker.metrics(float(result.spec.end), "all")
    hold = pm.account_stats(pm.daily_equity(buy_and_hold))
    rejected = sum(1 for o in result.orders if o.fill is None)
    return Summary(metrics, hold, result.deepest_dca, result.refused, rejected)
