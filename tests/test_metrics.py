"""The metrics of spec/metrics.md against hand-computed series, and against an independent
re-statement of the empyrical/quantstats formulas (daily returns, 365 periods)."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest

import pt_metrics as pm
from pt_types import DAY, HOUR

D0 = 19_723  # 2024-01-01 as a UTC day number
T0 = D0 * DAY


def table(*trades: tuple[str, float, float | None, float, float]) -> pm.TradeTable:
    """Trades as (coin, opened_at, closed_at or None, cost, pnl); MFD 0, no DCA."""
    n = len(trades)
    coins = [t[0] for t in trades]
    opened = [t[1] for t in trades]
    closed = [math.nan if t[2] is None else t[2] for t in trades]
    cost = np.array([t[3] for t in trades], dtype=np.float64)
    pnl = np.array([t[4] for t in trades], dtype=np.float64)
    is_open = np.isnan(np.array(closed, dtype=np.float64))
    return pm.TradeTable(
        trade_group_id=np.array([f"{c}-{i}" for i, c in enumerate(coins)], dtype=np.str_),
        coin=np.array(coins, dtype=np.str_),
        opened_at=np.array(opened, dtype=np.float64),
        closed_at=np.array(closed, dtype=np.float64),
        cost_usd=cost,
        open_cost_usd=np.where(is_open, cost, 0.0),
        realized_pnl_usd=pnl,
        realized_pnl_pct=np.divide(100 * pnl, cost, out=np.zeros(n), where=cost > 0),
        max_floating_drawdown=np.zeros(n),
        dca_count=np.zeros(n, dtype=np.int64),
        exit_reason=np.array([""] * n, dtype=np.str_),
    )


def daily(*values: float, first_day: int = D0) -> pm.DailyEquity:
    return pm.DailyEquity(
        np.arange(first_day, first_day + len(values), dtype=np.int64), np.array(values, float)
    )


def series(*points: tuple[float, float]) -> pm.EquitySeries:
    t = np.array([p[0] for p in points], dtype=np.float64)
    e = np.array([p[1] for p in points], dtype=np.float64)
    return pm.EquitySeries(t, e, e, np.zeros(len(points)))


# -- trades --------------------------------------------------------------------------------


def test_wins_losses_and_draws_are_decided_on_cents() -> None:
    pnl = np.array([0.004, -0.004, 0.006, -0.006, 12.5, -3.0, 0.0])
    assert pm.classify(pnl).tolist() == [0, 0, 1, -1, 1, -1, 0]


def test_a_mixed_series_by_hand() -> None:
    # three winners (+10, +20, +0.004 = a draw) and one loser (-10)
    trades = table(
        ("BTC", T0, T0 + 2 * HOUR, 100.0, 10.0),
        ("ETH", T0 + HOUR, T0 + 5 * HOUR, 200.0, 20.0),
        ("BTC", T0 + 3 * HOUR, T0 + 4 * HOUR, 100.0, -10.0),
        ("XRP", T0 + 6 * HOUR, T0 + 7 * HOUR, 50.0, 0.004),
    )
    s = pm.trade_stats(trades)
    assert (s.trades, s.wins, s.losses, s.draws) == (4, 2, 1, 1)
    assert s.win_rate == 0.5
    assert s.realized_pnl_usd == pytest.approx(20.004)
    assert (s.gross_profit_usd, s.gross_loss_usd) == (30.0, 10.0)
    assert s.profit_factor == 3.0
    assert s.expectancy_usd == pytest.approx(20.004 / 4)
    assert (s.avg_win_usd, s.avg_loss_usd) == (15.0, -10.0)
    assert s.expectancy_ratio == pytest.approx((1 + 15 / 10) * 0.5 - 1)  # 0.25
    # holds: 2 h, 4 h, 1 h, 1 h
    assert s.avg_hold_s == 2 * HOUR
    assert s.median_hold_s == 1.5 * HOUR
    assert s.longest_hold_s == 4 * HOUR
    assert s.best is not None and s.worst is not None
    assert (s.best.coin, s.best.realized_pnl_usd, s.best.realized_pnl_pct) == ("ETH", 20.0, 10.0)
    assert (s.worst.coin, s.worst.realized_pnl_usd, s.worst.closed_at) == (
        "BTC",
        -10.0,
        T0 + 4 * HOUR,
    )


def test_only_winners_have_an_infinite_profit_factor_and_no_expectancy_ratio() -> None:
    s = pm.trade_stats(table(("BTC", T0, T0 + HOUR, 100, 5), ("BTC", T0, T0 + HOUR, 100, 7)))
    assert s.win_rate == 1.0
    assert s.profit_factor == math.inf
    assert s.expectancy_ratio is None  # no loss to divide by
    assert pm.fmt_ratio(s.profit_factor) == "∞"


def test_only_losers_have_a_zero_profit_factor() -> None:
    s = pm.trade_stats(table(("BTC", T0, T0 + HOUR, 100, -5), ("ETH", T0, T0 + HOUR, 100, -7)))
    assert (s.wins, s.losses, s.win_rate) == (0, 2, 0.0)
    assert s.profit_factor == 0.0
    assert s.realized_pnl_usd == -12.0
    assert s.expectancy_ratio == -1.0  # (1 + 0 / 6) × 0 − 1
    assert s.worst is not None and s.worst.realized_pnl_usd == -7


def test_flat_trades_are_draws_with_no_profit_factor() -> None:
    s = pm.trade_stats(table(("BTC", T0, T0 + HOUR, 100, 0.0), ("ETH", T0, T0 + HOUR, 100, 0.001)))
    assert (s.trades, s.wins, s.losses, s.draws) == (2, 0, 0, 2)
    assert s.win_rate == 0.0
    assert s.profit_factor is None  # 0 / 0
    assert pm.fmt_ratio(s.profit_factor) == "—"


def test_one_trade() -> None:
    s = pm.trade_stats(table(("DOGE", T0, T0 + 90 * 60, 40, -1.25)))
    assert (s.trades, s.losses, s.win_rate, s.profit_factor) == (1, 1, 0.0, 0.0)
    assert s.expectancy_usd == -1.25
    assert s.avg_hold_s == s.median_hold_s == s.longest_hold_s == 5400
    assert s.best == s.worst


def test_no_trades_leaves_every_ratio_undefined() -> None:
    s = pm.trade_stats(pm.TradeTable.empty())
    assert (s.trades, s.wins, s.losses, s.realized_pnl_usd) == (0, 0, 0, 0.0)
    assert s.win_rate is s.profit_factor is s.expectancy_usd is s.expectancy_ratio is None
    assert s.avg_hold_s is s.median_hold_s is s.max_floating_drawdown is None
    assert s.best is s.worst is None


def test_open_trades_are_not_counted_as_closed() -> None:
    s = pm.trade_stats(table(("BTC", T0, None, 100, 0.0), ("ETH", T0, T0 + HOUR, 100, 3.0)))
    assert s.trades == 1 and s.wins == 1


# -- the daily series ----------------------------------------------------------------------


def test_daily_equity_keeps_the_last_sample_of_each_day_and_carries_gaps() -> None:
    samples = series(
        (T0 + 5 * HOUR, 100.0),
        (T0 + 23 * HOUR, 104.0),  # last of day 0
        (T0 + 2 * DAY + HOUR, 90.0),  # days 1 missing; day 2
        (T0 + 2 * DAY + 20 * HOUR, 95.0),  # last of day 2
        (T0 + 5 * DAY, 101.0),  # days 3, 4 missing; day 5
    )
    d = pm.daily_equity(samples)
    assert d.days.tolist() == list(range(D0, D0 + 6))
    assert d.equity.tolist() == [104.0, 104.0, 95.0, 95.0, 95.0, 101.0]
    assert d.dates[0] == "2024-01-01" and d.dates[-1] == "2024-01-06"
    r = pm.daily_returns(d)
    assert r.tolist() == pytest.approx([0.0, 95 / 104 - 1, 0.0, 0.0, 101 / 95 - 1])


def test_daily_equity_of_nothing_is_empty() -> None:
    d = pm.daily_equity(pm.EquitySeries.empty())
    assert len(d.days) == 0 and d.dates == ()
    stats = pm.account_stats(d)
    assert stats.max_drawdown is None and stats.days == 0
    assert stats.sharpe is stats.sortino is stats.cagr is stats.calmar is stats.total_return is None


def test_max_drawdown_with_its_dates_and_recovery_by_hand() -> None:
    dd = pm.max_drawdown(daily(100, 110, 110, 99, 105, 121, 80))
    # the 1 − 80/121 fall at the end is deeper than 1 − 99/110 = 0.1
    assert dd.max_drawdown == pytest.approx(1 - 80 / 121)
    assert (dd.peak_date, dd.trough_date) == ("2024-01-06", "2024-01-07")
    assert dd.recovery_date is None and not dd.recovered
    assert "not recovered" in dd.describe()

    dd = pm.max_drawdown(daily(100, 110, 110, 99, 105, 121))
    assert dd.max_drawdown == pytest.approx(0.1)
    # the peak is the last high before the trough; recovery the first day back at it
    assert (dd.peak_date, dd.trough_date, dd.recovery_date) == (
        "2024-01-03",
        "2024-01-04",
        "2024-01-06",
    )
    assert dd.days_to_recover == 2 and dd.recovered


def test_a_rising_or_flat_series_has_no_drawdown() -> None:
    for values in ((100, 100, 100), (100, 101, 150)):
        dd = pm.max_drawdown(daily(*values))
        assert dd.max_drawdown == 0.0 and dd.peak_date is None and dd.recovered
    assert pm.drawdown_series(np.array([100.0, 50.0, 75.0, 120.0])).tolist() == [0, 0.5, 0.25, 0]


def test_sharpe_sortino_cagr_calmar_by_hand() -> None:
    # equity 100 → 110 → 99 → 108.9: returns +10 %, −10 %, +10 %
    stats = pm.account_stats(daily(100, 110, 99, 108.9))
    mean = 0.1 / 3
    std = math.sqrt(((0.1 - mean) ** 2 * 2 + (-0.1 - mean) ** 2) / 2)  # ddof = 1
    assert stats.days == 3
    assert stats.sharpe == pytest.approx(mean / std * math.sqrt(365))
    assert stats.sharpe == pytest.approx(5.51513, abs=1e-5)
    downside = math.sqrt(0.1**2 / 3)  # over all three days
    assert stats.sortino == pytest.approx(mean / downside * math.sqrt(365))
    assert stats.sortino == pytest.approx(11.03026, abs=1e-5)
    assert stats.total_return == pytest.approx(0.089)
    assert stats.cagr == pytest.approx(1.089 ** (365 / 3) - 1)
    assert stats.max_drawdown == pytest.approx(0.1)
    assert stats.calmar == pytest.approx((1.089 ** (365 / 3) - 1) / 0.1)


def test_cagr_over_a_year_of_days_is_the_yearly_growth() -> None:
    values = np.linspace(100.0, 121.0, 366)  # 365 daily returns
    stats = pm.account_stats(pm.DailyEquity(np.arange(D0, D0 + 366, dtype=np.int64), values))
    assert stats.cagr == pytest.approx(0.21)
    assert stats.max_drawdown == 0.0 and stats.calmar is None


def test_undefined_ratios() -> None:
    one_day = pm.account_stats(daily(100))  # N = 0
    assert one_day.cagr is one_day.sharpe is one_day.sortino is None
    two_days = pm.account_stats(daily(100, 90))  # N = 1: no std
    assert two_days.sharpe is None and two_days.sortino == pytest.approx(-math.sqrt(365))
    flat = pm.account_stats(daily(100, 100, 100))  # std = 0, no negative day, no drawdown
    assert flat.sharpe is flat.sortino is flat.calmar is None and flat.cagr == 0.0
    rising = pm.account_stats(daily(100, 101, 103))
    assert rising.sortino is None and rising.sharpe is not None
    constant_growth = pm.account_stats(daily(100, 110, 121, 133.1))  # std is rounding noise
    assert constant_growth.sharpe is None


def _reference(equity: list[float]) -> dict[str, float]:
    """empyrical's formulas with 365 periods, restated with the statistics module."""
    r = [b / a - 1 for a, b in itertools.pairwise(equity)]
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in r) / len(r)) * math.sqrt(365)
    cumulative, peak, worst = 1.0, 1.0, 0.0
    for x in r:
        cumulative *= 1 + x
        peak = max(peak, cumulative)
        worst = min(worst, (cumulative - peak) / peak)
    years = len(r) / 365
    return {
        "sharpe": statistics.mean(r) / statistics.stdev(r) * math.sqrt(365),
        "sortino": statistics.mean(r) * 365 / downside,
        "max_drawdown": -worst,
        "cagr": (equity[-1] / equity[0]) ** (1 / years) - 1,
    }


def test_the_ratios_equal_the_empyrical_definitions() -> None:
    rng = np.random.default_rng(7)
    equity = (10_000 * np.cumprod(1 + rng.normal(0.001, 0.03, 400))).tolist()
    stats = pm.account_stats(daily(*equity))
    ref = _reference(equity)
    assert stats.sharpe == pytest.approx(ref["sharpe"], rel=1e-9)
    assert stats.sortino == pytest.approx(ref["sortino"], rel=1e-9)
    assert stats.max_drawdown == pytest.approx(ref["max_drawdown"], rel=1e-9)
    assert stats.cagr == pytest.approx(ref["cagr"], rel=1e-9)
    assert stats.calmar == pytest.approx(ref["cagr"] / ref["max_drawdown"], rel=1e-9)


# -- equity change, exposure, capital --------------------------------------------------------


def test_equity_change_since_a_time() -> None:
    s = series(
        (T0, 100.0), (T0 + 10 * HOUR, 90.0), (T0 + DAY + HOUR, 95.0), (T0 + DAY + 2 * HOUR, 97.0)
    )
    midnight = T0 + DAY
    assert pm.equity_change(s, midnight, T0 + DAY + 3 * HOUR) == 7.0  # 97 − 90 (last before)
    assert pm.equity_change(s, midnight, T0 + DAY + 90 * 60) == 5.0  # "now" cuts later samples
    assert pm.equity_change(s, None, T0 + 2 * DAY) == -3.0
    assert pm.equity_change(s, T0 - DAY, T0 + DAY) == -10.0  # started later: from the first
    assert pm.equity_change(pm.EquitySeries.empty(), midnight, T0) is None


def test_exposure_is_the_union_of_trade_lifetimes() -> None:
    trades = table(
        ("BTC", T0, T0 + 10, 1, 0),
        ("ETH", T0 + 5, T0 + 15, 1, 0),  # overlaps the first: 0..15 covered
        ("BTC", T0 + 20, T0 + 22, 1, 0),
        ("XRP", T0 + 21, T0 + 30, 1, 0),  # 20..30 covered
        ("DOGE", T0 + 35, None, 1, 0),  # open until "now" = 40
    )
    assert pm.exposure(trades, T0, T0 + 40) == pytest.approx(30 / 40)
    assert pm.exposure(trades, T0 + 12, T0 + 40) == pytest.approx((3 + 10 + 5) / 28)
    assert pm.exposure(pm.TradeTable.empty(), T0, T0 + 40) == 0.0
    assert pm.exposure(trades, T0, T0) is None


def test_capital_deployed_counts_what_was_open_when_the_window_began() -> None:
    deployed = pm.DeployedSeries(
        coin=np.array(["*", "*", "*", "BTC", "BTC"], dtype=np.str_),
        day=np.array([D0, D0 + 2, D0 + 5, D0, D0 + 2], dtype=np.int64),
        max_open_cost=np.array([500.0, 900.0, 300.0, 500.0, 700.0]),
        last_open_cost=np.array([400.0, 800.0, 0.0, 400.0, 0.0]),
    )
    assert pm.capital_deployed(deployed, None, T0 + 10 * DAY) == 900.0
    assert pm.capital_deployed(deployed, T0 + 3 * DAY, T0 + 4 * DAY) == 800.0  # carried
    assert pm.capital_deployed(deployed, T0 + 5 * DAY, T0 + 6 * DAY) == 800.0  # 800 at the start
    assert pm.capital_deployed(deployed, T0 + 6 * DAY, T0 + 9 * DAY) == 0.0
    assert pm.capital_deployed(deployed, None, T0 + DAY, "BTC") == 500.0
    assert pm.capital_deployed(deployed, None, T0 + 10 * DAY, "ETH") == 0.0


def test_period_metrics_of_a_window() -> None:
    trades = table(
        ("BTC", T0, T0 + DAY, 100, 4.0),  # closed before the window
        ("BTC", T0 + 2 * DAY, T0 + 8 * DAY, 100, -2.0),
        ("ETH", T0 + 9 * DAY, T0 + 9 * DAY + HOUR, 100, 3.0),
        ("ETH", T0 + 9 * DAY + 2 * HOUR, None, 100, 0.0),
    )
    equity = series(*((T0 + i * DAY + 12 * HOUR, 1000.0 + i) for i in range(10)))
    now = T0 + 9 * DAY + 20 * HOUR
    p = pm.period_metrics(
        "7d", trades, equity, pm.DeployedSeries.empty(), start=now - 7 * DAY, now=now
    )
    assert p.trades.trades == 2 and p.trades.realized_pnl_usd == 1.0
    assert p.equity_change_usd == 7.0  # 1009 − 1002 (last sample before the start)
    assert p.account.days == 8  # from the close of the day before the window's first day
    assert p.account.start_equity == 1001.0 and p.account.end_equity == 1009.0
    eth = pm.period_metrics(
        "all", trades, equity, pm.DeployedSeries.empty(), start=None, now=now, coin="ETH"
    )
    assert eth.trades.trades == 1 and eth.trades.realized_pnl_usd == 3.0


def test_formatting() -> None:
    assert pm.fmt_usd(-1234.5) == "-$1,234.50" and pm.fmt_usd(2, signed=True) == "+$2.00"
    assert pm.fmt_pct(0.1234) == "12.34%" and pm.fmt_pct(None) == "—"
    assert pm.fmt_ratio(math.inf) == "∞" and pm.fmt_ratio(1.234) == "1.23"
    assert pm.fmt_duration(90061) == "1d 1h" and pm.fmt_duration(3720) == "1h 2m"
    assert pm.fmt_duration(45) == "45s"
