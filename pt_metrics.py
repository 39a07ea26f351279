"""Performance metrics, exactly as ``spec/metrics.md`` defines them; pure: arrays in, values out.

The ANALYTICS tab, the command-line summary, the backtest report and the notifications must show
the same number under the same name, so every formula lives here once. Nothing here reads a file
or a clock: the journal adapter (:mod:`pt_analytics`) loads the columns and passes ``now`` and the
local ``midnight`` it computed.

Units, so that nothing is guessed from a name: amounts are USD; ``*_pct`` values are percent
(``-2.5`` is −2.5 %); drawdowns, returns, win rates and exposure are fractions (``0.12`` is
12 %); times are UTC epoch seconds; daily series are indexed by UTC day number
(``epoch seconds // 86400``) and shown as ``YYYY-MM-DD``. Undefined figures are ``None``; a
profit factor with no losing trade is ``math.inf``, which the ``fmt_*`` helpers print as "∞".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from pt_types import DAY, FloatArray, IntArray

PERIODS_PER_YEAR = 365
# A standard deviation this small is a constant series whose ratio would be rounding noise.
STD_EPSILON = 1e-12
ALL_COINS = "*"
PERIOD_LABELS = ("today", "7d", "30d", "all")

StrArray = npt.NDArray[np.str_]
BoolArray = npt.NDArray[np.bool_]


def day_of(t: float) -> int:
    """UTC day number of epoch second ``t``."""
    return math.floor(t / DAY)


def date_of_day(day: int) -> str:
    return datetime.fromtimestamp(day * DAY, tz=UTC).date().isoformat()


# ---------------------------------------------------------------------------------------------
# Inputs: columns, as the journal stores them


@dataclass(frozen=True)
class TradeTable:
    """Trades as parallel columns (one row per trade group); ``closed_at`` is NaN while open.

    Columns rather than one object per trade: the dashboard summarises years of trades in a few
    milliseconds with numpy, where building an object per row would dominate the time."""

    trade_group_id: StrArray
    coin: StrArray
    opened_at: FloatArray
    closed_at: FloatArray
    cost_usd: FloatArray
    open_cost_usd: FloatArray
    realized_pnl_usd: FloatArray
    realized_pnl_pct: FloatArray
    max_floating_drawdown: FloatArray
    dca_count: IntArray
    exit_reason: StrArray

    def __post_init__(self) -> None:
        n = len(self.trade_group_id)
        for name in self.__dataclass_fields__:
            if len(getattr(self, name)) != n:
                rows = len(getattr(self, name))
                raise ValueError(f"trade column {name!r} has {rows} rows, not {n}")

    def __len__(self) -> int:
        return len(self.trade_group_id)

    @classmethod
    def empty(cls) -> TradeTable:
        s, f = np.array([], dtype=np.str_), np.array([], dtype=np.float64)
        return cls(s, s, f, f, f, f, f, f, f, np.array([], dtype=np.int64), s)

    def select(self, mask: BoolArray) -> TradeTable:
        return TradeTable(*(getattr(self, name)[mask] for name in self.__dataclass_fields__))

    @property
    def is_closed(self) -> BoolArray:
        return ~np.isnan(self.closed_at)


@dataclass(frozen=True)
class EquitySeries:
    """Mark-to-market account samples, ascending by time: equity = cash + positions value."""

    time: FloatArray
    equity: FloatArray
    cash: FloatArray
    positions_value: FloatArray

    @classmethod
    def empty(cls) -> EquitySeries:
        f = np.array([], dtype=np.float64)
        return cls(f, f, f, f)

    def until(self, t: float) -> EquitySeries:
        stop = int(np.searchsorted(self.time, t, side="right"))
        return EquitySeries(
            self.time[:stop], self.equity[:stop], self.cash[:stop], self.positions_value[:stop]
        )


@dataclass(frozen=True)
class DeployedSeries:
    """Per (coin, UTC day): the highest and the day's last Σ cost of open positions.

    The journal keeps it as fills happen (coin ``"*"`` is the whole account), so that capital
    deployed never needs a pass over the fills."""

    coin: StrArray
    day: IntArray
    max_open_cost: FloatArray
    last_open_cost: FloatArray

    @classmethod
    def empty(cls) -> DeployedSeries:
        f = np.array([], dtype=np.float64)
        return cls(np.array([], dtype=np.str_), np.array([], dtype=np.int64), f, f)


@dataclass(frozen=True)
class DailyEquity:
    """The last equity of each UTC day, every day from the first to the last present."""

    days: IntArray
    equity: FloatArray

    @property
    def dates(self) -> tuple[str, ...]:
        return tuple(np.datetime_as_string(self.days.astype("datetime64[D]")).tolist())


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class TradeRef:
    """One trade, named in a result (best and worst trade)."""

    trade_group_id: str
    coin: str
    realized_pnl_usd: float
    realized_pnl_pct: float
    closed_at: float


@dataclass(frozen=True)
class TradeStats:
    """Closed-trade metrics; wins and losses are decided on the PnL rounded to cents."""

    trades: int
    wins: int
    losses: int
    draws: int
    win_rate: float | None
    realized_pnl_usd: float
    gross_profit_usd: float
    gross_loss_usd: float
    profit_factor: float | None
    expectancy_usd: float | None
    expectancy_ratio: float | None
    avg_win_usd: float | None
    avg_loss_usd: float | None
    avg_hold_s: float | None
    median_hold_s: float | None
    longest_hold_s: float | None
    best: TradeRef | None
    worst: TradeRef | None
    max_floating_drawdown: float | None


@dataclass(frozen=True)
class Drawdown:
    """The deepest fall of the daily equity from a previous high, with its dates."""

    max_drawdown: float | None
    peak_date: str | None = None
    trough_date: str | None = None
    recovery_date: str | None = None
    days_to_recover: int | None = None

    @property
    def recovered(self) -> bool:
        return not self.max_drawdown or self.recovery_date is not None

    def describe(self) -> str:
        if self.max_drawdown is None:
            return "no equity recorded"
        if self.max_drawdown == 0:
            return "no drawdown"
        if self.recovery_date is None:
            return f"peak {self.peak_date}, trough {self.trough_date}, not recovered"
        return (
            f"peak {self.peak_date}, trough {self.trough_date}, "
            f"recovered in {self.days_to_recover} d ({self.recovery_date})"
        )


@dataclass(frozen=True)
class AccountStats:
    """Whole-account metrics on the daily mark-to-market equity (365 periods a year)."""

    start_equity: float | None
    end_equity: float | None
    days: int
    total_return: float | None
    cagr: float | None
    drawdown: Drawdown
    sharpe: float | None
    sortino: float | None
    calmar: float | None

    @property
    def max_drawdown(self) -> float | None:
        return self.drawdown.max_drawdown


@dataclass(frozen=True)
class PeriodMetrics:
    """Every figure for one window ``[start, end]`` (``start`` None: all time), one coin or all."""

    label: str
    start: float | None
    end: float
    trades: TradeStats
    account: AccountStats
    equity_change_usd: float | None
    capital_deployed_usd: float
    exposure: float | None
    max_floating_drawdown: float | None


# ---------------------------------------------------------------------------------------------
# Trade metrics


def classify(pnl_usd: FloatArray) -> IntArray:
    """+1 win, −1 loss, 0 draw: the sign of the PnL rounded to cents (metrics.md)."""
    return np.sign(np.round(pnl_usd, 2)).astype(np.int64)


def _mean(x: FloatArray) -> float | None:
    return float(np.mean(x)) if x.size else None


def _ref(trades: TradeTable, i: int) -> TradeRef:
    return TradeRef(
        str(trades.trade_group_id[i]),
        str(trades.coin[i]),
        float(trades.realized_pnl_usd[i]),
        float(trades.realized_pnl_pct[i]),
        float(trades.closed_at[i]),
    )


def profit_factor(gross_profit: float, gross_loss: float, wins: int, losses: int) -> float | None:
    """Σ wins / |Σ losses|; ∞ with no loss, 0 with no win, None with neither (0/0)."""
    if losses == 0:
        return math.inf if wins else None
    return gross_profit / gross_loss if wins else 0.0


def trade_stats(trades: TradeTable) -> TradeStats:
    """Metrics of the closed rows of ``trades`` (open rows are ignored)."""
    closed = trades.select(trades.is_closed)
    pnl = closed.realized_pnl_usd
    n = len(closed)
    kind = classify(pnl)
    wins, losses = pnl[kind > 0], pnl[kind < 0]
    gross_profit, gross_loss = float(wins.sum()), float(-losses.sum())
    win_rate = wins.size / n if n else None
    avg_win, avg_loss = _mean(wins), _mean(losses)
    ratio = None
    if win_rate is not None and avg_loss is not None:
        ratio = (1 + (avg_win or 0.0) / abs(avg_loss)) * win_rate - 1
    hold = closed.closed_at - closed.opened_at
    mfd = closed.max_floating_drawdown
    return TradeStats(
        trades=n,
        wins=int(wins.size),
        losses=int(losses.size),
        draws=int(n - wins.size - losses.size),
        win_rate=win_rate,
        realized_pnl_usd=float(pnl.sum()),
        gross_profit_usd=gross_profit,
        gross_loss_usd=gross_loss,
        profit_factor=profit_factor(gross_profit, gross_loss, int(wins.size), int(losses.size)),
        expectancy_usd=_mean(pnl),
        expectancy_ratio=ratio,
        avg_win_usd=avg_win,
        avg_loss_usd=avg_loss,
        avg_hold_s=_mean(hold),
        median_hold_s=float(np.median(hold)) if n else None,
        longest_hold_s=float(hold.max()) if n else None,
        best=_ref(closed, int(np.argmax(pnl))) if n else None,
        worst=_ref(closed, int(np.argmin(pnl))) if n else None,
        max_floating_drawdown=float(mfd.max()) if n else None,
    )


# ---------------------------------------------------------------------------------------------
# Account metrics on the daily equity


def daily_equity(series: EquitySeries) -> DailyEquity:
    """Last equity of each UTC day; a day without a sample carries the previous day's value."""
    if not len(series.time):
        return DailyEquity(np.array([], dtype=np.int64), np.array([], dtype=np.float64))
    order = np.argsort(series.time, kind="stable")
    t, e = series.time[order], series.equity[order]
    days = np.floor(t / DAY).astype(np.int64)
    last = np.r_[days[1:] != days[:-1], True]  # the last sample of each day present
    present, values = days[last], e[last]
    all_days = np.arange(present[0], present[-1] + 1, dtype=np.int64)
    index = np.searchsorted(present, all_days, side="right") - 1  # carry forward
    return DailyEquity(all_days, values[index])


def daily_returns(daily: DailyEquity) -> FloatArray:
    e = daily.equity
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(e[1:] / e[:-1] - 1, dtype=np.float64)


def drawdown_series(equity: FloatArray) -> FloatArray:
    """``1 − E_t / max_{s≤t} E_s`` for each point, as positive fractions."""
    if not equity.size:
        return np.array([], dtype=np.float64)
    peaks = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peaks > 0, 1 - equity / peaks, 0.0)
    return np.asarray(np.maximum(dd, 0.0), dtype=np.float64)


def max_drawdown(daily: DailyEquity) -> Drawdown:
    """Deepest drawdown; its peak is the last high before the trough, recovery the first day
    after the trough back at that high (days counted from the trough)."""
    e = daily.equity
    if not e.size:
        return Drawdown(None)
    dd = drawdown_series(e)
    trough = int(np.argmax(dd))
    if dd[trough] <= 0:
        return Drawdown(0.0)
    peak_value = float(np.max(e[: trough + 1]))
    peak = int(np.flatnonzero(e[: trough + 1] == peak_value)[-1])
    after = np.flatnonzero(e[trough + 1 :] >= peak_value)
    recovery = trough + 1 + int(after[0]) if after.size else None
    day = daily.days
    return Drawdown(
        max_drawdown=float(dd[trough]),
        peak_date=date_of_day(int(day[peak])),
        trough_date=date_of_day(int(day[trough])),
        recovery_date=None if recovery is None else date_of_day(int(day[recovery])),
        days_to_recover=None if recovery is None else recovery - trough,
    )


def _finite(r: FloatArray) -> bool:
    return bool(r.size) and bool(np.all(np.isfinite(r)))


def sharpe(returns: FloatArray) -> float | None:
    """``mean / std(ddof=1) × √365``, risk-free 0; None when N < 2 or the std is 0."""
    if returns.size < 2 or not _finite(returns):
        return None
    std = float(np.std(returns, ddof=1))
    if std <= STD_EPSILON:
        return None
    return float(np.mean(returns)) / std * math.sqrt(PERIODS_PER_YEAR)


def sortino(returns: FloatArray) -> float | None:
    """``mean / sqrt(mean(min(r, 0)²)) × √365`` over all N days; None when no day is negative."""
    if not _finite(returns) or not np.any(returns < 0):
        return None
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    return float(np.mean(returns)) / downside * math.sqrt(PERIODS_PER_YEAR)


def cagr(first: float, last: float, n_returns: int) -> float | None:
    """``(E_last / E_first)^(365 / N) − 1``; None when N = 0 or the start is not positive."""
    if n_returns <= 0 or first <= 0 or last < 0:
        return None
    return float((last / first) ** (PERIODS_PER_YEAR / n_returns) - 1)


def calmar(cagr_value: float | None, max_dd: float | None) -> float | None:
    if cagr_value is None or not max_dd:
        return None
    return cagr_value / max_dd


def account_stats(daily: DailyEquity) -> AccountStats:
    e = daily.equity
    r = daily_returns(daily)
    first = float(e[0]) if e.size else None
    last = float(e[-1]) if e.size else None
    total = last / first - 1 if first and last is not None else None
    growth = cagr(first, last, int(r.size)) if first is not None and last is not None else None
    dd = max_drawdown(daily)
    return AccountStats(
        start_equity=first,
        end_equity=last,
        days=int(r.size),
        total_return=total,
        cagr=growth,
        drawdown=dd,
        sharpe=sharpe(r),
        sortino=sortino(r),
        calmar=calmar(growth, dd.max_drawdown),
    )


def equity_at(series: EquitySeries, t: float) -> float | None:
    """The last equity sampled at or before ``t``."""
    i = int(np.searchsorted(series.time, t, side="right")) - 1
    return float(series.equity[i]) if i >= 0 else None


def equity_change(series: EquitySeries, since: float | None, now: float) -> float | None:
    """Equity at ``now`` minus equity at ``since`` (or at the first sample after it, when the
    account started later); None without samples."""
    upto = series.until(now)
    if not len(upto.time):
        return None
    base = None if since is None else equity_at(upto, since)
    if base is None:
        i = 0 if since is None else int(np.searchsorted(upto.time, since, side="left"))
        if i >= len(upto.time):
            return 0.0
        base = float(upto.equity[i])
    return float(upto.equity[-1]) - base


# ---------------------------------------------------------------------------------------------
# Exposure and capital


def active_in(trades: TradeTable, start: float | None, end: float) -> BoolArray:
    """Trades open at some moment of ``[start, end]``."""
    ends = np.where(trades.is_closed, trades.closed_at, np.inf)
    mask = trades.opened_at <= end
    if start is not None:
        mask &= ends >= start
    return np.asarray(mask, dtype=np.bool_)


def open_at(trades: TradeTable, t: float) -> BoolArray:
    """Trades holding a position at ``t`` (opened by then and not yet closed)."""
    closed_by = trades.is_closed & (trades.closed_at <= t)
    return np.asarray(~closed_by & (trades.opened_at <= t), dtype=np.bool_)


def exposure(trades: TradeTable, start: float, end: float) -> float | None:
    """Share of ``[start, end]`` with at least one open position (union of trade lifetimes)."""
    if end <= start:
        return None
    s = np.clip(trades.opened_at, start, end)
    e = np.clip(np.where(trades.is_closed, trades.closed_at, end), start, end)
    if not s.size:
        return 0.0
    order = np.argsort(s, kind="stable")
    s, e = s[order], e[order]
    reach = np.r_[start, np.maximum.accumulate(e)[:-1]]  # furthest end of the earlier trades
    covered = np.maximum(0.0, e - np.maximum(s, reach)).sum()
    return float(covered) / (end - start)


def capital_deployed(
    deployed: DeployedSeries, start: float | None, end: float, coin: str = ALL_COINS
) -> float:
    """Highest Σ cost of open positions in ``[start, end]`` (by UTC day), including what was
    already open when the window began."""
    mine = deployed.coin == coin
    days, high = deployed.day[mine], deployed.max_open_cost[mine]
    last = deployed.last_open_cost[mine]
    in_window = days <= day_of(end)
    carried = 0.0
    if start is not None:
        first = day_of(start)
        before = days < first
        if np.any(before):
            carried = float(last[before][int(np.argmax(days[before]))])
        in_window &= days >= first
    peak = float(high[in_window].max()) if np.any(in_window) else 0.0
    return max(carried, peak)


# ---------------------------------------------------------------------------------------------
# Putting it together


def worst(values: FloatArray) -> float | None:
    """The largest of positive drawdown fractions (None when there are none)."""
    return float(values.max()) if values.size else None


def period_metrics(
    label: str,
    trades: TradeTable,
    equity: EquitySeries,
    deployed: DeployedSeries,
    *,
    start: float | None,
    now: float,
    coin: str | None = None,
) -> PeriodMetrics:
    """Every figure for trades closed in ``[start, now]`` and the account over that window.

    Account figures are the whole account's even when ``coin`` is given: equity is not kept per
    coin. The daily series of a window starts with the close of the day before ``start``, so a
    7-day window has its seven (or eight) daily returns."""
    if coin is not None:
        trades = trades.select(trades.coin == coin)
    closed_in = trades.is_closed & (trades.closed_at <= now)
    if start is not None:
        closed_in &= trades.closed_at >= start
    upto = equity.until(now)
    daily = daily_equity(upto)
    if start is not None and daily.days.size:
        keep = daily.days >= day_of(start) - 1
        daily = DailyEquity(daily.days[keep], daily.equity[keep])
    window_start = start
    if window_start is None:
        firsts = [float(upto.time[0])] if len(upto.time) else []
        if len(trades):
            firsts.append(float(trades.opened_at.min()))
        window_start = min(firsts) if firsts else None
    active = trades.select(active_in(trades, start, now))
    return PeriodMetrics(
        label=label,
        start=start,
        end=now,
        trades=trade_stats(trades.select(closed_in)),
        account=account_stats(daily),
        equity_change_usd=equity_change(upto, start, now),
        capital_deployed_usd=capital_deployed(deployed, start, now, coin or ALL_COINS),
        exposure=None if window_start is None else exposure(active, window_start, now),
        max_floating_drawdown=worst(active.max_floating_drawdown),
    )


def period_starts(now: float, midnight: float) -> dict[str, float | None]:
    """Where each period of :data:`PERIOD_LABELS` starts (None: all time)."""
    return {"today": midnight, "7d": now - 7 * DAY, "30d": now - 30 * DAY, "all": None}


# ---------------------------------------------------------------------------------------------
# Formatting, shared by the tab and the command line

DASH = "—"


def fmt_usd(value: float | None, *, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return DASH
    sign = "-" if value < 0 else ("+" if signed and value > 0 else "")
    return f"{sign}${abs(value):,.2f}"


def fmt_pct(fraction: float | None, *, signed: bool = False) -> str:
    """A fraction as percent: ``0.1234`` → ``12.34%``."""
    if fraction is None or math.isnan(fraction):
        return DASH
    if math.isinf(fraction):
        return "∞" if fraction > 0 else "-∞"
    return f"{fraction * 100:{'+' if signed else ''}.2f}%"


def fmt_ratio(value: float | None) -> str:
    if value is None or math.isnan(value):
        return DASH
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.2f}"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return DASH
    s = round(seconds)
    d, rest = divmod(s, DAY)
    h, rest = divmod(rest, 3600)
    m = rest // 60
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m}m"
    return f"{m}m" if m else f"{s}s"
