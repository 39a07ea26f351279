"""Analytics over the trade journal: the dashboard figures, a text summary and CSV export.

:class:`PerformanceTracker` reads a journal (normally read-only: the hub and this command never
write) and returns the figures of ``spec/metrics.md``, computed by the pure :mod:`pt_metrics`,
as one frozen :class:`DashboardMetrics` that the ANALYTICS tab renders without doing any maths.
The journal itself is :class:`pt_journal.TradeJournal`, re-exported here under the name the
original fork used.

Command line (``--data-dir`` as everywhere: else ``$POWERTRADER_HOME``, else ``./user_data``)::

    python pt_analytics.py [--data-dir DIR] [--mode MODE] summary [--now 2024-05-01T12:00]
    python pt_analytics.py [--data-dir DIR] export trades|fills [--out FILE.csv]
                           [--since YYYY-MM-DD] [--until YYYY-MM-DD] [--coin BTC]

Exit status: 0 done; 1 no journal, or a journal that cannot be read (the message says why);
2 bad input (the message says which).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TextIO

import numpy as np

import pt_metrics as pm
from pt_journal import JournalCounts, TradeJournal, coin_name
from pt_journal_schema import (
    SCHEMA_VERSION,
    FillRecord,
    JournalError,
    JournalMissingError,
    OrderRecord,
    OrderState,
    PaperWallet,
    TradeRecord,
)
from pt_state import DataLayout, resolve_data_dir
from pt_types import FloatArray, Mode

__all__ = [
    "SCHEMA_VERSION", "CoinMetrics", "DashboardMetrics", "FillRecord", "JournalCounts",
    "JournalError", "JournalMissingError", "Kpis", "OrderRecord", "OrderState", "PaperWallet",
    "PerformanceTracker", "RecentTrade", "TradeJournal", "TradeRecord", "build_dashboard", "main",
    "summary_text",
]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# What the ANALYTICS tab shows


@dataclass(frozen=True)
class CoinMetrics:
    """All-time figures of one coin."""

    coin: str
    trades: pm.TradeStats
    open_cost_usd: float
    capital_deployed_usd: float
    exposure: float | None
    max_floating_drawdown: float | None


@dataclass(frozen=True)
class RecentTrade:
    """A row of the recent-trades table."""

    trade_group_id: str
    coin: str
    result: str  # "win", "loss", "draw" or "open"
    opened_at: float
    closed_at: float | None
    hold_s: float | None
    cost_usd: float
    realized_pnl_usd: float
    realized_pnl_pct: float
    dca_count: int
    max_floating_drawdown: float
    exit_reason: str


@dataclass(frozen=True)
class Kpis:
    """The figures of the tab's cards."""

    total_trades: int
    win_rate: float | None
    realized_pnl_usd: float
    today_realized_pnl_usd: float
    today_equity_change_usd: float | None
    max_drawdown: float | None
    profit_factor: float | None
    sharpe: float | None
    open_trades: int
    open_cost_usd: float
    equity_usd: float | None
    cash_usd: float | None
    positions_value_usd: float | None
    max_floating_drawdown: float | None


@dataclass(frozen=True)
class DashboardMetrics:
    """Everything the ANALYTICS tab shows at ``now``: plain values, tuples and small frozen
    records. ``dates``/``equity``/``drawdown`` are the daily series (UTC days, every day)."""

    now: float
    mode: str
    kpis: Kpis
    periods: tuple[pm.PeriodMetrics, ...]
    dates: tuple[str, ...]
    equity: tuple[float, ...]
    drawdown: tuple[float, ...]
    coins: tuple[CoinMetrics, ...]
    recent_trades: tuple[RecentTrade, ...]

    def period(self, label: str) -> pm.PeriodMetrics:
        for p in self.periods:
            if p.label == label:
                return p
        raise KeyError(f"no period {label!r}; the periods are {', '.join(pm.PERIOD_LABELS)}")


def _recent(trades: pm.TradeTable, limit: int) -> tuple[RecentTrade, ...]:
    """The ``limit`` trades with the latest activity (their close, or their open while open)."""
    closed = trades.is_closed
    order = np.argsort(-np.where(closed, trades.closed_at, trades.opened_at), kind="stable")
    kind = pm.classify(trades.realized_pnl_usd)
    names = {1: "win", -1: "loss", 0: "draw"}
    rows = []
    for i in order[: max(limit, 0)].tolist():
        done = bool(closed[i])
        rows.append(
            RecentTrade(
                trade_group_id=str(trades.trade_group_id[i]),
                coin=str(trades.coin[i]),
                result=names[int(kind[i])] if done else "open",
                opened_at=float(trades.opened_at[i]),
                closed_at=float(trades.closed_at[i]) if done else None,
                hold_s=float(trades.closed_at[i] - trades.opened_at[i]) if done else None,
                cost_usd=float(trades.cost_usd[i]),
                realized_pnl_usd=float(trades.realized_pnl_usd[i]),
                realized_pnl_pct=float(trades.realized_pnl_pct[i]),
                dca_count=int(trades.dca_count[i]),
                max_floating_drawdown=float(trades.max_floating_drawdown[i]),
                exit_reason=str(trades.exit_reason[i]),
            )
        )
    return tuple(rows)


def _per_coin(
    trades: pm.TradeTable, deployed: pm.DeployedSeries, now: float, start: float | None
) -> tuple[CoinMetrics, ...]:
    """All-time figures per coin, best realized PnL first; exposure over the account's life."""
    rows = []
    for coin in sorted(set(trades.coin.tolist())):
        mine = trades.select(trades.coin == coin)
        active = mine.select(pm.active_in(mine, None, now))
        rows.append(
            CoinMetrics(
                coin=coin,
                trades=pm.trade_stats(mine.select(mine.is_closed & (mine.closed_at <= now))),
                open_cost_usd=float(mine.open_cost_usd[pm.open_at(mine, now)].sum()),
                capital_deployed_usd=pm.capital_deployed(deployed, None, now, coin),
                exposure=None if start is None else pm.exposure(active, start, now),
                max_floating_drawdown=pm.worst(active.max_floating_drawdown),
            )
        )
    rows.sort(key=lambda c: -c.trades.realized_pnl_usd)
    return tuple(rows)


def build_dashboard(
    trades: pm.TradeTable,
    equity: pm.EquitySeries,
    deployed: pm.DeployedSeries,
    *,
    now: float,
    midnight: float,
    mode: str = "",
    recent_limit: int = 20,
) -> DashboardMetrics:
    """The whole tab at ``now`` from the journal's columns; pure (``midnight`` is passed in)."""
    starts = pm.period_starts(now, midnight)
    periods = tuple(
        pm.period_metrics(label, trades, equity, deployed, start=starts[label], now=now)
        for label in pm.PERIOD_LABELS
    )
    today, whole = periods[0], periods[-1]
    upto = equity.until(now)
    daily = pm.daily_equity(upto)
    holding = pm.open_at(trades, now)

    def last(column: FloatArray) -> float | None:
        return float(column[-1]) if column.size else None

    kpis = Kpis(
        total_trades=whole.trades.trades,
        win_rate=whole.trades.win_rate,
        realized_pnl_usd=whole.trades.realized_pnl_usd,
        today_realized_pnl_usd=today.trades.realized_pnl_usd,
        today_equity_change_usd=today.equity_change_usd,
        max_drawdown=whole.account.max_drawdown,
        profit_factor=whole.trades.profit_factor,
        sharpe=whole.account.sharpe,
        open_trades=int(holding.sum()),
        open_cost_usd=float(trades.open_cost_usd[holding].sum()),
        equity_usd=last(upto.equity),
        cash_usd=last(upto.cash),
        positions_value_usd=last(upto.positions_value),
        max_floating_drawdown=whole.max_floating_drawdown,
    )
    firsts = [float(upto.time[0])] if len(upto.time) else []
    firsts += [float(trades.opened_at.min())] if len(trades) else []
    return DashboardMetrics(
        now=now,
        mode=mode,
        kpis=kpis,
        periods=periods,
        dates=daily.dates,
        equity=tuple(daily.equity.tolist()),
        drawdown=tuple(pm.drawdown_series(daily.equity).tolist()),
        coins=_per_coin(trades, deployed, now, min(firsts) if firsts else None),
        recent_trades=_recent(trades.select(trades.opened_at <= now), recent_limit),
    )


class PerformanceTracker:
    """The metrics of ``spec/metrics.md`` over a journal (open it read-only unless you are the
    trader). ``mode`` None follows the journal: its own mode, else the mode of the newest
    activity. ``tz`` decides "today" (local midnight); None is the machine's time zone."""

    def __init__(
        self,
        journal: TradeJournal,
        *,
        mode: Mode | None = None,
        tz: tzinfo | None = None,
        recent_limit: int = 20,
    ) -> None:
        self.journal = journal
        self.mode = mode
        self.tz = tz
        self.recent_limit = recent_limit

    def midnight(self, now: float) -> float:
        """The local midnight that began the day ``now`` is in (DST-aware)."""
        if self.tz is None:  # the machine's zone: naive local times convert with its rules
            local = datetime.fromtimestamp(now)
            return datetime(local.year, local.month, local.day).timestamp()
        local = datetime.fromtimestamp(now, tz=self.tz)
        return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()

    def _load(self) -> tuple[Mode | None, pm.TradeTable, pm.EquitySeries, pm.DeployedSeries]:
        """Trades, equity and open cost from one snapshot of the journal."""
        j = self.journal
        with j.snapshot():
            mode = self.mode or j.mode or j.latest_mode()
            trades = j.trade_table(mode=mode)
            return mode, trades, j.equity_series(mode=mode), j.deployed_series(mode=mode)

    def get_dashboard_metrics(self, now: float) -> DashboardMetrics:
        """Everything the ANALYTICS tab shows, as one frozen object."""
        mode, trades, equity, deployed = self._load()
        return build_dashboard(
            trades,
            equity,
            deployed,
            now=now,
            midnight=self.midnight(now),
            mode=mode.value if mode else "",
            recent_limit=self.recent_limit,
        )

    def metrics(self, now: float, period: str = "all", coin: str | None = None) -> pm.PeriodMetrics:
        """Every figure for one period (today, 7d, 30d, all), of one coin or of all."""
        starts = pm.period_starts(now, self.midnight(now))
        if period not in starts:
            raise ValueError(f"unknown period {period!r}; use one of {', '.join(starts)}")
        _, trades, equity, deployed = self._load()
        name = None if coin is None else coin_name(coin)
        return pm.period_metrics(
            period, trades, equity, deployed, start=starts[period], now=now, coin=name
        )


# ---------------------------------------------------------------------------------------------
# Text summary


def _iso(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _trade_ref(ref: pm.TradeRef | None) -> str:
    if ref is None:
        return pm.DASH
    return (
        f"{ref.coin} {pm.fmt_usd(ref.realized_pnl_usd, signed=True)} ({ref.realized_pnl_pct:+.2f}%)"
    )


def summary_text(d: DashboardMetrics) -> str:
    """The dashboard as plain text: the KPIs, the period table and PnL per coin."""
    k, whole = d.kpis, d.period("all")
    tr, acc = whole.trades, whole.account
    usd, pct, ratio, dur = pm.fmt_usd, pm.fmt_pct, pm.fmt_ratio, pm.fmt_duration
    lines = [
        f"PowerTrader AI performance ({d.mode or 'nothing recorded yet'}) as of {_iso(d.now)}",
        "",
        f"Total trades         {k.total_trades} closed, {k.open_trades} open "
        f"(open cost {usd(k.open_cost_usd)})",
        f"Win rate             {pct(k.win_rate)} "
        f"({tr.wins} won, {tr.losses} lost, {tr.draws} even)",
        f"Realized PnL         {usd(k.realized_pnl_usd, signed=True)}",
        f"Today's PnL          {usd(k.today_realized_pnl_usd, signed=True)} realized, "
        f"{usd(k.today_equity_change_usd, signed=True)} equity",
        f"Equity               {usd(k.equity_usd)} (cash {usd(k.cash_usd)}, "
        f"positions {usd(k.positions_value_usd)})",
        f"Max drawdown         {pct(acc.max_drawdown)} ({acc.drawdown.describe()})",
        f"Profit factor        {ratio(tr.profit_factor)}",
        f"Expectancy           {usd(tr.expectancy_usd, signed=True)} per trade "
        f"(ratio {ratio(tr.expectancy_ratio)})",
        f"Sharpe / Sortino     {ratio(acc.sharpe)} / {ratio(acc.sortino)}",
        f"Calmar / CAGR        {ratio(acc.calmar)} / {pct(acc.cagr)}",
        f"Hold time            average {dur(tr.avg_hold_s)}, median {dur(tr.median_hold_s)}, "
        f"longest {dur(tr.longest_hold_s)}",
        f"Best / worst trade   {_trade_ref(tr.best)} / {_trade_ref(tr.worst)}",
        f"Max floating DD      {pct(k.max_floating_drawdown)} (the worst trade's)",
        f"Capital deployed     {usd(whole.capital_deployed_usd)} at most, "
        f"exposure {pct(whole.exposure)} of the time",
        "",
        f"{'period':<7}{'trades':>7}{'win rate':>10}{'realized':>13}{'PF':>7}"
        f"{'equity chg':>13}{'max DD':>9}{'Sharpe':>8}",
    ]
    for p in d.periods:
        t = p.trades
        lines.append(
            f"{p.label:<7}{t.trades:>7}{pct(t.win_rate):>10}"
            f"{usd(t.realized_pnl_usd, signed=True):>13}{ratio(t.profit_factor):>7}"
            f"{usd(p.equity_change_usd, signed=True):>13}{pct(p.account.max_drawdown):>9}"
            f"{ratio(p.account.sharpe):>8}"
        )
    if d.coins:
        lines += ["", f"{'coin':<7}{'trades':>7}{'win rate':>10}{'realized':>13}{'PF':>7}"
                  f"{'deployed':>13}{'max FDD':>9}"]  # fmt: skip
        for c in d.coins:
            t = c.trades
            lines.append(
                f"{c.coin:<7}{t.trades:>7}{pct(t.win_rate):>10}"
                f"{usd(t.realized_pnl_usd, signed=True):>13}{ratio(t.profit_factor):>7}"
                f"{usd(c.capital_deployed_usd):>13}{pct(c.max_floating_drawdown):>9}"
            )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Command line

EXIT_JOURNAL = 1
EXIT_BAD_INPUT = 2
TRADE_CSV = (
    "trade_group_id", "coin", "mode", "status", "result", "opened_at", "closed_at", "quantity",
    "cost_usd", "proceeds_usd", "fees_usd", "realized_pnl_usd", "realized_pnl_pct", "dca_count",
    "max_floating_drawdown", "exit_reason",
)  # fmt: skip
FILL_CSV = (
    "time", "coin", "side", "tag", "quantity", "price", "fee_usd", "value_usd",
    "client_order_id", "venue_fill_id", "trade_group_id",
)  # fmt: skip


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD") from None


def _moment(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time; use YYYY-MM-DDTHH:MM") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _coin_arg(text: str) -> str:
    try:
        return coin_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _mode_arg(text: str) -> Mode:
    try:
        return Mode(text.strip().lower())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a mode; use demo, paper or live"
        ) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pt_analytics.py", description="PowerTrader AI journal: summary and CSV export."
    )
    p.add_argument("--data-dir", help="data folder (default: $POWERTRADER_HOME, else ./user_data)")
    p.add_argument("--mode", type=_mode_arg, help="demo, paper or live (default: the latest used)")
    sub = p.add_subparsers(dest="command", required=True, metavar="summary|export")
    summary = sub.add_parser("summary", help="the KPIs, the period table and PnL per coin")
    summary.add_argument(
        "--now", type=_moment, help="as of this UTC time, YYYY-MM-DDTHH:MM (default: now)"
    )
    export = sub.add_parser("export", help="trades or fills as CSV")
    export.add_argument("what", choices=("trades", "fills"))
    export.add_argument("--out", type=Path, help="CSV file to write (default: standard output)")
    export.add_argument("--since", type=_day, help="first UTC day, YYYY-MM-DD (inclusive)")
    export.add_argument("--until", type=_day, help="last UTC day, YYYY-MM-DD (inclusive)")
    export.add_argument("--coin", type=_coin_arg, help="only this coin, e.g. BTC")
    return p


def _day_start(day: date | None) -> float | None:
    return None if day is None else datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _cells(row: tuple[object, ...]) -> tuple[object, ...]:
    """Floats as the shortest text of their value to 10 decimals: a spreadsheet should show
    33.49, not the binary leftovers of 33.49000000000001."""
    return tuple(f"{round(v, 10):.10f}".rstrip("0").rstrip(".") if isinstance(v, float) else v
                 for v in row)  # fmt: skip


def export_csv(
    journal: TradeJournal,
    what: str,
    out: TextIO,
    *,
    since: float | None = None,
    until: float | None = None,
    coin: str | None = None,
) -> int:
    """Write trades (in range by their close, or their open while open) or fills as CSV, with a
    header; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    n = 0
    if what == "trades":
        writer.writerow(TRADE_CSV)
        for t in journal.trades(since=since, until=until, coin=coin):
            writer.writerow(_cells((
                t.trade_group_id, t.coin, t.mode.value, t.status, t.result, _iso(t.opened_at),
                _iso(t.closed_at), t.quantity, t.cost_usd, t.proceeds_usd, t.fees_usd,
                t.realized_pnl_usd, t.realized_pnl_pct, t.dca_count, t.max_floating_drawdown,
                t.exit_reason,
            )))  # fmt: skip
            n += 1
        return n
    writer.writerow(FILL_CSV)
    for f in journal.iter_fills(since=since, until=until, coin=coin):
        writer.writerow(_cells((
            _iso(f.time), f.coin, f.side.value, f.tag.value, f.quantity, f.price, f.fee_usd,
            f.quantity * f.price, f.client_order_id, f.venue_fill_id, f.trade_group_id,
        )))  # fmt: skip
        n += 1
    return n


def _fail(message: str, code: int) -> int:
    print(f"pt_analytics: {message}", file=sys.stderr)  # noqa: T201
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # bad input: usage, a message naming it, exit 2
    if args.command == "export" and args.since and args.until and args.since > args.until:
        parser.error(f"--since {args.since} is after --until {args.until}")
    if args.command == "export" and args.out is not None and not args.out.parent.is_dir():
        missing = f"cannot write {args.out}: there is no folder {args.out.parent}"
        return _fail(missing, EXIT_BAD_INPUT)
    path = DataLayout(resolve_data_dir(args.data_dir)).journal_db
    try:
        with TradeJournal.open_readonly(path, mode=args.mode) as journal:
            if args.command == "summary":
                now = time.time() if args.now is None else args.now
                tracker = PerformanceTracker(journal, mode=args.mode)
                sys.stdout.write(summary_text(tracker.get_dashboard_metrics(now)))
                return 0
            since = _day_start(args.since)
            until = _day_start(args.until and args.until + timedelta(days=1))
            if args.out is None:
                export_csv(journal, args.what, sys.stdout, since=since, until=until, coin=args.coin)
                return 0
            with args.out.open("w", newline="", encoding="utf-8") as out:
                n = export_csv(journal, args.what, out, since=since, until=until, coin=args.coin)
            print(f"wrote {n} {args.what} to {args.out}", file=sys.stderr)  # noqa: T201
            return 0
    except JournalMissingError:
        nothing = f"no journal yet (nothing traded in this data folder: {path.parent})"
        return _fail(nothing, EXIT_JOURNAL)
    except JournalError as exc:
        return _fail(str(exc), EXIT_JOURNAL)


if __name__ == "__main__":
    sys.exit(main())
