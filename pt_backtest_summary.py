"""Buy-and-hold over the same span, and the run's summary as text (pure).

Buy-and-hold is the honest yardstick for a long-only bot: the starting cash split evenly over
the same coins at the span's first price, bought through the same fill model (spread and fee),
held to the end and valued at the bid. Its figures use the same metric definitions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

import pt_metrics as pm
from pt_backtest_engine import BacktestSpec
from pt_types import HOUR, Candles


def buy_and_hold(spec: BacktestSpec, hourly: Mapping[str, Candles]) -> pm.EquitySeries:
    """Equity at each hour's close of holding the coins bought at the span's first open."""
    hours = np.arange(spec.start, spec.end, HOUR)
    share = spec.starting_cash / len(spec.coins)
    half = spec.quote_spread_pct / 200
    cash = 0.0
    value = np.zeros(len(hours))
    for coin in spec.coins:
        candles = hourly[coin]
        first = int(np.searchsorted(candles.time, spec.start))
        if first >= len(candles) or candles.time[first] >= spec.end:
            cash += share  # no price in the span: the share stays in cash
            continue
        ask = float(candles.open[first]) * (1 + half)
        usd = spec.fills.spendable(share)
        qty = float(spec.fills.buy_quantity(usd, None, ask, coin))
        price = spec.fills.buy_price(ask)
        cash += share - qty * price - spec.fills.fee(qty, price)
        closes = _closes_at(candles, hours)
        value += qty * closes * (1 - half)
    # As the bot's curve: the starting cash the second before the span, then each hour's close.
    times = np.r_[spec.start - 1, hours + HOUR].astype(np.float64)
    equity = np.r_[spec.starting_cash, cash + value]
    cash_column = np.r_[spec.starting_cash, np.full(len(hours), cash)]
    return pm.EquitySeries(times, equity, cash_column, np.r_[0.0, value])


def _closes_at(candles: Candles, hours: np.ndarray) -> np.ndarray:
    """Each hour's close, the last known one carried over a missing hour."""
    idx = np.searchsorted(candles.time, hours, side="right") - 1
    closes = candles.close[np.maximum(idx, 0)]
    return np.where(idx >= 0, closes, np.nan)


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x * 100:+.2f}%"


def _ratio(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.2f}"


def summary_lines(
    metrics: pm.PeriodMetrics,
    hold: pm.AccountStats,
    *,
    deepest_dca: int,
    starting_cash: float,
) -> list[str]:
    """The summary table: the bot beside buy-and-hold, one figure a line."""
    a, t = metrics.account, metrics.trades
    rows = [
        ("total return", _pct(a.total_return), _pct(hold.total_return)),
        ("CAGR", _pct(a.cagr), _pct(hold.cagr)),
        ("max drawdown", _pct(_neg(a.max_drawdown)), _pct(_neg(hold.max_drawdown))),
        ("Sharpe", _ratio(a.sharpe), _ratio(hold.sharpe)),
        ("Sortino", _ratio(a.sortino), _ratio(hold.sortino)),
        ("Calmar", _ratio(a.calmar), _ratio(hold.calmar)),
    ]
    lines = [f"{'':34}{'bot':>12}{'buy & hold':>14}"]
    lines += [f"{name:34}{bot:>12}{bh:>14}" for name, bot, bh in rows]
    deployed = metrics.capital_deployed_usd
    lines += [
        f"{'max drawdown dates':34}{a.drawdown.describe()}",
        f"{'max floating drawdown (a trade)':34}{_pct(_neg(metrics.max_floating_drawdown))}",
        f"{'closed trades':34}{t.trades}",
        f"{'win rate':34}{_share(t.win_rate)}",
        f"{'average time in a trade':34}{pm.fmt_duration(t.avg_hold_s)}",
        f"{'longest time in a trade':34}{pm.fmt_duration(t.longest_hold_s)}",
        f"{'deepest DCA (buys in one trade)':34}{deepest_dca}",
        f"{'cash needed at the deepest DCA':34}{pm.fmt_usd(deployed)}"
        f" ({deployed / starting_cash * 100:.1f}% of the starting cash)",
    ]
    return lines


def comparison_lines(
    runs: Sequence[tuple[str, pm.PeriodMetrics]], hold: tuple[str, pm.AccountStats]
) -> list[str]:
    """Several runs over the same span, one line each, buy-and-hold last: the figures a choice
    between settings turns on (the report has the rest)."""
    lines = [f"{'':22}{'return':>9}{'max DD':>9}{'Sharpe':>8}{'trades':>7}{'win rate':>9}"]
    for name, m in runs:
        a, t = m.account, m.trades
        lines.append(f"{name[:21]:22}{_pct(a.total_return):>9}{_pct(_neg(a.max_drawdown)):>9}"
                     f"{_ratio(a.sharpe):>8}{t.trades:>7}{_share(t.win_rate):>9}")  # fmt: skip
    name, h = hold
    lines.append(f"{name[:21]:22}{_pct(h.total_return):>9}{_pct(_neg(h.max_drawdown)):>9}"
                 f"{_ratio(h.sharpe):>8}{'':>7}{'':>9}")  # fmt: skip
    return lines


def _neg(x: float | None) -> float | None:
    return None if x is None else -x or 0.0  # no "-0.00%"


def _share(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"
