"""The trade journal at scale: a generated journal with 1 000 000 fills.

Run from the repository root: ``python benchmarks/bench_journal.py [--fills N] [--runs N]``.
Generates about four years of a DCA bot on five coins (thousands of trades, each order filled
in many parts, hourly equity samples and price marks) in a temporary folder, then prints:

- the time to generate it (batched writes: the content is what the trader would have written);
- ``PerformanceTracker.get_dashboard_metrics()`` on a read-only journal (target < 300 ms);
- recording one fill, each in its own transaction as the trader does (target < 2 ms).

Figures are medians over ``--runs`` runs (min in brackets).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pt_analytics import PerformanceTracker  # noqa: E402
from pt_journal import TradeJournal  # noqa: E402
from pt_journal_schema import OrderState  # noqa: E402
from pt_types import DAY, HOUR, Fill, Mode, OrderIntent, OrderTag, Side  # noqa: E402

START = 1_609_459_200.0  # 2021-01-01 00:00 UTC
YEARS = 4
COINS = ("BTC", "ETH", "XRP", "BNB", "DOGE")
FEE = 0.001


@dataclass
class Order:
    hour: int
    coin: str
    side: Side
    tag: OrderTag
    quantity: float
    price: float


@dataclass
class Plan:
    """Pass one: the bot's decisions hour by hour, and the account it implies."""

    prices: np.ndarray
    orders: list[Order] = field(default_factory=list)
    equity: list[tuple[float, float, float]] = field(default_factory=list)


def simulate(seed: int = 1) -> Plan:
    """Random-walk prices; enter at random, DCA at −5 % steps (at most 4), exit at +2 % over
    cost, and a manual sell of any trade older than ten days (the losers)."""
    rng = np.random.default_rng(seed)
    hours = int(YEARS * 365 * 24)
    steps = rng.normal(0.0, 0.012, (hours, len(COINS)))
    prices = np.exp(np.cumsum(steps, axis=0)) * np.array([30_000, 700, 0.25, 40, 0.005])
    plan = Plan(prices)
    cash, held = 100_000.0, dict.fromkeys(COINS, 0.0)
    cost, last_buy, dcas = (
        dict.fromkeys(COINS, 0.0),
        dict.fromkeys(COINS, 0.0),
        dict.fromkeys(COINS, 0),
    )
    opened = dict.fromkeys(COINS, 0)
    for h in range(hours):
        for c, coin in enumerate(COINS):
            p = float(prices[h, c])
            if held[coin] == 0.0 and rng.random() < 0.1 and cash > 1_000:
                order = Order(h, coin, Side.BUY, OrderTag.ENTRY, 1_000.0 / p, p)
                opened[coin] = h
            elif held[coin] and h - opened[coin] > 240:
                order = Order(h, coin, Side.SELL, OrderTag.MANUAL, held[coin], p)
            elif (
                held[coin]
                and p < last_buy[coin] * 0.95
                and dcas[coin] < 4
                and cash > 2 * cost[coin]
            ):
                order = Order(h, coin, Side.BUY, OrderTag.DCA, held[coin], p)
            elif held[coin] and p * held[coin] > cost[coin] * 1.02:
                order = Order(h, coin, Side.SELL, OrderTag.TRAIL_SELL, held[coin], p)
            else:
                continue
            plan.orders.append(order)
            value = order.quantity * p
            if order.side is Side.BUY:
                cash -= value * (1 + FEE)
                held[coin] += order.quantity
                cost[coin] += value * (1 + FEE)
                last_buy[coin] = p
                dcas[coin] += order.tag is OrderTag.DCA
            else:
                cash += value * (1 - FEE)
                held[coin], cost[coin], dcas[coin] = 0.0, 0.0, 0
        positions = sum(held[coin] * float(prices[h, c]) for c, coin in enumerate(COINS))
        plan.equity.append((cash + positions, cash, positions))
    return plan


def generate(path: Path, target_fills: int) -> tuple[float, int, int]:
    """Pass two: write the plan through the journal's API, each order in equal partial fills."""
    started = time.perf_counter()
    plan = simulate()
    parts = max(1, math.ceil(target_fills / len(plan.orders)))
    by_hour: dict[int, list[Order]] = {}
    for order in plan.orders:
        by_hour.setdefault(order.hour, []).append(order)
    fills = 0
    with TradeJournal(path, mode=Mode.PAPER, clock=lambda: START) as j:
        for day_start in range(0, len(plan.equity), 24):
            with j.transaction():  # a day at a time: the file is the same, written faster
                for h in range(day_start, min(day_start + 24, len(plan.equity))):
                    t = START + h * HOUR
                    for o in by_hour.get(h, ()):
                        fills += _write_order(j, o, t, parts)
                    for trade in j.open_trades():
                        c = COINS.index(trade.coin)
                        j.mark_price(trade.trade_group_id, float(plan.prices[h, c]) * 0.999, t)
                    j.record_equity(t + HOUR - 1, *plan.equity[h])
    return time.perf_counter() - started, fills, len(plan.orders)


def _write_order(j: TradeJournal, o: Order, t: float, parts: int) -> int:
    intent = OrderIntent(o.coin, o.side, o.tag, f"{o.tag.value} {o.coin}", quantity=o.quantity)
    cid = j.record_intent(intent, signal={"long": 4, "short": 0}, now=t)
    j.mark_sent(cid, f"v-{cid[:12]}", now=t)
    q = o.quantity / parts
    for i in range(parts):
        qty = q if i < parts - 1 else o.quantity - q * (parts - 1)
        fill = Fill(cid, o.coin, o.side, qty, o.price, qty * o.price * FEE, t + i * 0.01)
        j.record_fill(fill, f"f{i}")
    j.mark_order_state(cid, OrderState.FILLED, now=t)
    return parts


def time_dashboard(path: Path, runs: int) -> tuple[list[float], float]:
    with TradeJournal.open_readonly(path) as reader:
        tracker = PerformanceTracker(reader, tz=UTC)
        now = START + YEARS * 365 * DAY
        started = time.perf_counter()
        d = tracker.get_dashboard_metrics(now)  # the first, cold call
        cold = time.perf_counter() - started
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            d = tracker.get_dashboard_metrics(now)
            times.append(time.perf_counter() - started)
    k = d.kpis
    print(
        f"  dashboard: {k.total_trades:,} closed trades, win rate {k.win_rate:.1%}, "
        f"max drawdown {k.max_drawdown:.1%}, {len(d.dates):,} daily points, {len(d.coins)} coins"
    )
    return times, cold


def time_single_fills(path: Path, runs: int, per_run: int = 200) -> list[float]:
    """Median of ``per_run`` single-fill inserts, each its own transaction, per run."""
    medians = []
    with TradeJournal(path, mode=Mode.PAPER) as j:
        t = START + YEARS * 365 * DAY
        for r in range(runs):
            cid = j.record_intent(
                OrderIntent("ADA", Side.BUY, OrderTag.MANUAL, "bench", quantity=1e9)
            )
            times = []
            for i in range(per_run):
                fill = Fill(cid, "ADA", Side.BUY, 1.0, 0.5, 0.0005, t + r * per_run + i)
                started = time.perf_counter()
                j.record_fill(fill, f"single-{i}")
                times.append(time.perf_counter() - started)
            medians.append(statistics.median(times))
    return medians


def fmt(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:.2f} ms ({min(times) * 1000:.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="write the journal here and keep it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = (args.keep or Path(folder)) / "journal.sqlite3"
        if path.exists():
            sys.exit(f"{path} exists; choose an empty folder for --keep")
        seconds, fills, orders = generate(path, args.fills)
        with TradeJournal.open_readonly(path) as reader:
            c = reader.counts()
        size = path.stat().st_size / 1e6
        print(
            f"generated in {seconds:.1f} s: {c.fills:,} fills ({fills:,} written) in "
            f"{orders:,} orders, {c.trades:,} trades, {c.equity_samples:,} equity rows kept; "
            f"{size:.0f} MB"
        )
        dashboard, cold = time_dashboard(path, args.runs)
        print(
            f"get_dashboard_metrics(): {fmt(dashboard)} over {args.runs} runs; "
            f"first call {cold * 1000:.0f} ms  [target < 300 ms]"
        )
        singles = time_single_fills(path, args.runs)
        print(
            f"one fill in its own transaction: {fmt(singles)} (median of 200 per run, "
            f"{args.runs} runs)  [target < 2 ms]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
