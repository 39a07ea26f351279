"""Monte Carlo views of a backtest: resampled price paths and reshuffled trade orders (pure).

One backtest is one path through history; these ask how much of its result was that path's luck.

**Block bootstrap of the price path** (:func:`monte_carlo_paths`). The span is rebuilt from
blocks of ``block_hours`` consecutive real hours drawn at random, with replacement, from the
span itself. A block keeps its own moves (each candle relative to the block's first open) but
starts where the previous block ended, so trends, volatility clusters and the shape of each hour
survive inside a block while the order of the blocks changes. All coins share the same draws,
so one hour's moves stay together across coins and their correlation survives. The real
backtest runs on each synthetic history; the predictor warms up on the real history before
the span, left unchanged.

**Trade-order shuffle** (:func:`shuffle_trades`). The run's closed trades are compounded in
random orders, each moving the equity by its PnL as a fraction of the equity when it opened.
The final return is then the same in every order (a product does not depend on the order);
the drawdown, which depends on how the losses cluster, is what varies.

Randomness comes only from a ``numpy.random.Generator`` (built from the caller's seed), so the
same seed gives the same figures.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from pt_backtest_engine import BacktestResult, BacktestSpec, run_backtest
from pt_metrics import BoolArray, daily_equity, drawdown_series, max_drawdown
from pt_strategy import StrategyConfig
from pt_types import HOUR, Candles, FloatArray, IntArray, OrderTag, Side

PERCENTILES = (5.0, 50.0, 95.0)
DEFAULT_BLOCK_HOURS = 24 * 7

RunBacktest = Callable[[BacktestSpec, Mapping[str, Candles]], BacktestResult]


def _check_runs(runs: int) -> None:
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")


def bootstrap_candles(
    hourly: Candles, *, start: int, end: int, block_hours: int, rng: np.random.Generator
) -> Candles:
    """A synthetic hourly history: the candles before ``start`` unchanged, then ``[start, end)``
    rebuilt from random blocks of its own hours (:func:`bootstrap_many` for one coin)."""
    return bootstrap_many({"": hourly}, start=start, end=end, block_hours=block_hours, rng=rng)[""]


def bootstrap_many(
    hourly: Mapping[str, Candles],
    *,
    start: int,
    end: int,
    block_hours: int,
    rng: np.random.Generator,
) -> dict[str, Candles]:
    """Each coin's synthetic history, built from the same block draws for every coin.

    The span is the hours in ``[start, end)`` that every coin has (an hour missing for one coin
    is left out for all, so the draws line up by time). Its N hours are rebuilt from
    ``ceil(N / block_hours)`` blocks of ``block_hours`` consecutive span hours, each starting at
    a uniformly drawn hour (the last block is cut to fit). A block's candles are its source
    candles divided by the source block's first open and multiplied by the running price: the
    last real close before ``start`` for the first block (the span's first open when there is
    no earlier candle), then the previous block's last synthetic close. Times are re-stamped
    hour by hour from ``start`` (so N < the span's hours ends the history early), volume is
    copied, high and low are kept outside open and close; candles from ``end`` on are dropped.
    """
    if start % HOUR or end % HOUR:
        raise ValueError("the span must start and end on the hour (UTC)")
    if end <= start:
        raise ValueError("the span is empty: its end must be after its start")
    if block_hours < 1:
        raise ValueError(f"block_hours must be at least 1, got {block_hours}")
    if not hourly:
        raise ValueError("no candles to resample")
    spans = [h.time[(h.time >= start) & (h.time < end)] for h in hourly.values()]
    common: IntArray = functools.reduce(np.intersect1d, spans)
    n = len(common)
    if n < block_hours:
        raise ValueError(f"the span has {n} common hours, fewer than block_hours={block_hours}")
    picks = rng.integers(0, n - block_hours + 1, size=-(-n // block_hours))
    return {
        coin: _rebuild(candles, np.searchsorted(candles.time, common), picks, start, block_hours)
        for coin, candles in hourly.items()
    }


def _rebuild(
    candles: Candles, rows: IntArray, picks: IntArray, start: int, block_hours: int
) -> Candles:
    """The history before ``start``, then the span hours ``rows`` rebuilt from the blocks that
    start at ``picks`` (indices into ``rows``)."""
    first, n = int(np.searchsorted(candles.time, start)), len(rows)
    block = np.arange(n) // block_hours
    src = rows[(picks[:, None] + np.arange(block_hours)).ravel()[:n]]  # whose moves each copies
    base = candles.open[rows[picks]]  # each source block's first open
    growth = candles.close[rows[picks + block_hours - 1]] / base
    anchor = float(candles.close[first - 1]) if first else float(base[0])
    # level[j] = level[j-1] * growth[j-1]: exactly the previous block's last synthetic close
    level = np.cumprod(np.r_[anchor, growth[:-1]])

    def scaled(column: FloatArray) -> FloatArray:
        return np.asarray(column[src] / base[block] * level[block], dtype=np.float64)

    o, h, lo, c = (scaled(x) for x in (candles.open, candles.high, candles.low, candles.close))
    h, lo = np.maximum.reduce([h, o, c]), np.minimum.reduce([lo, o, c])
    times = start + HOUR * np.arange(n, dtype=np.int64)
    pre = candles.slice(0, first)
    return Candles(
        np.r_[pre.time, times].astype(np.int64),
        np.r_[pre.open, o],
        np.r_[pre.high, h],
        np.r_[pre.low, lo],
        np.r_[pre.close, c],
        np.r_[pre.volume, candles.volume[src]],
    )


def percentiles(values: FloatArray) -> tuple[float, float, float]:
    """The 5th, 50th and 95th percentiles (linear interpolation)."""
    p5, p50, p95 = np.percentile(values, PERCENTILES).tolist()
    return float(p5), float(p50), float(p95)


@dataclass(frozen=True, eq=False)
class Outcomes:
    """Per run: the final return and the max drawdown, both fractions (``0.12`` is 12 %)."""

    final_return: FloatArray
    max_drawdown: FloatArray

    @property
    def return_percentiles(self) -> tuple[float, float, float]:
        return percentiles(self.final_return)

    @property
    def drawdown_percentiles(self) -> tuple[float, float, float]:
        return percentiles(self.max_drawdown)


@dataclass(frozen=True, eq=False)
class PathStats(Outcomes):
    """The backtests on resampled paths; ``out_of_cash`` per run, see :func:`ran_out_of_cash`."""

    out_of_cash: BoolArray

    @property
    def probability_out_of_cash(self) -> float:
        return float(np.mean(self.out_of_cash))


def ran_out_of_cash(power: FloatArray, positions_value: FloatArray, cfg: StrategyConfig) -> bool:
    """Whether the DCA ladder ran out of cash, judged on a run's equity samples.

    The engine records no reason for a DCA that triggered but was not bought, so this asks
    what can be measured: at some sample a position was open and the next DCA buy, sized as
    the strategy sizes it (``cfg.dca_multiplier`` × the position's value at the bid, at least
    ``cfg.min_order``), was more than the buying power ``power`` (the cash less room for the
    fee): a DCA triggered then would have been refused as "more than the cash". The positions
    value is the whole account's: with several coins held at once, the cash must cover the
    next DCA of all of them together.
    """
    need = cfg.dca_multiplier * positions_value
    short = (positions_value > 0) & (need >= cfg.min_order) & (need > power)
    return bool(np.any(short))


def run_figures(result: BacktestResult) -> tuple[float, float, bool]:
    """A run's final return (last equity / starting cash − 1), the max drawdown of its daily
    equity (:mod:`pt_metrics`; NaN without samples) and :func:`ran_out_of_cash`."""
    eq, spec = result.equity, result.spec
    final = float(eq.equity[-1]) / spec.starting_cash - 1 if len(eq.equity) else math.nan
    drawdown = max_drawdown(daily_equity(eq)).max_drawdown
    power = np.array([spec.fills.spendable(float(c)) for c in eq.cash], dtype=np.float64)
    dry = ran_out_of_cash(power, eq.positions_value, spec.strategy)
    return final, math.nan if drawdown is None else drawdown, dry


def monte_carlo_paths(
    spec: BacktestSpec,
    hourly: Mapping[str, Candles],
    *,
    runs: int,
    block_hours: int = DEFAULT_BLOCK_HOURS,
    seed: int,
    run: RunBacktest = run_backtest,
    progress: Callable[[int, int], None] | None = None,
) -> PathStats:
    """``runs`` backtests of ``spec``, each on a block bootstrap (:func:`bootstrap_many`) of
    the coins' span; ``progress(done, runs)`` after each."""
    _check_runs(runs)
    missing = [c for c in spec.coins if c not in hourly]
    if missing:
        raise ValueError(f"no candles for {', '.join(missing)}")
    coins = {c: hourly[c] for c in spec.coins}
    rng = np.random.default_rng(seed)
    final, drawdown, dry = np.empty(runs), np.empty(runs), np.zeros(runs, dtype=np.bool_)
    for k in range(runs):
        synthetic = bootstrap_many(
            coins, start=spec.start, end=spec.end, block_hours=block_hours, rng=rng
        )
        final[k], drawdown[k], dry[k] = run_figures(run(spec, synthetic))
        if progress is not None:
            progress(k + 1, runs)
    return PathStats(final, drawdown, dry)


@dataclass(frozen=True)
class ClosedTrade:
    """One closed trade of a run: its ENTRY buy, its DCA buys and the sell that closed it."""

    coin: str
    opened_at: float
    closed_at: float
    cost_usd: float  # the buys, fees included (the journal's cost_usd)
    pnl_usd: float  # the sale less its fee, less the cost
    equity_at_entry: float  # the account's equity just before the entry
    dca_count: int

    @property
    def return_on_cost(self) -> float:
        """PnL / cost: the journal's ``realized_pnl_pct`` as a fraction."""
        return self.pnl_usd / self.cost_usd

    @property
    def weight(self) -> float:
        """The share of the equity at entry the trade put to work (all its buys)."""
        return self.cost_usd / self.equity_at_entry

    @property
    def equity_step(self) -> float:
        """The trade's move of the equity: ``return_on_cost × weight`` (its PnL / equity at
        entry), the fraction of equity it is compounded on in :func:`shuffle_trades`."""
        return self.return_on_cost * self.weight


def closed_trades(result: BacktestResult) -> tuple[ClosedTrade, ...]:
    """The run's closed trades in closing order, from its fills: per coin in time order, a buy
    with nothing open starts a trade, later buys add to it, a sell (the strategy sells all)
    closes it. A trade still open at the end is left out."""
    held: dict[str, ClosedTrade] = {}
    out: list[ClosedTrade] = []
    for order in result.orders:
        f = order.fill
        if f is None:
            continue
        amount = f.quantity * f.price
        t = held.get(f.coin)
        if f.side is Side.BUY:
            if t is None:
                i = int(np.searchsorted(result.equity.time, f.time, side="left")) - 1
                equity = float(result.equity.equity[i]) if i >= 0 else result.spec.starting_cash
                t = ClosedTrade(f.coin, f.time, math.nan, 0.0, 0.0, equity, 0)
            dca = int(order.intent.tag is OrderTag.DCA)
            cost = t.cost_usd + amount + f.fee_usd
            held[f.coin] = replace(t, cost_usd=cost, dca_count=t.dca_count + dca)
        elif t is not None:
            del held[f.coin]
            out.append(replace(t, closed_at=f.time, pnl_usd=amount - f.fee_usd - t.cost_usd))
    return tuple(out)


@dataclass(frozen=True, eq=False)
class TradeShuffleStats(Outcomes):
    """The closed trades compounded in ``runs`` random orders.

    ``steps[k]`` is run ``k``'s trades' ``equity_step`` in its order; its equity curve starts
    at 1 and is multiplied by ``1 + step`` per trade."""

    trades: tuple[ClosedTrade, ...]
    steps: FloatArray  # (runs, trades)


def shuffle_trades(result: BacktestResult, *, runs: int, seed: int) -> TradeShuffleStats:
    """Compound the run's closed trades (:func:`closed_trades`) in ``runs`` random orders.

    Each trade moves the equity by its ``equity_step`` (return on cost × cost / equity at its
    entry: the fraction of equity it really used), so every order ends at the same final
    return, the product of ``1 + step``; the max drawdown of the compounded curve
    (:func:`pt_metrics.drawdown_series`, trade by trade) varies. No closed trade: all 0."""
    _check_runs(runs)
    trades = closed_trades(result)
    step = np.array([t.equity_step for t in trades], dtype=np.float64)
    rng = np.random.default_rng(seed)
    order = rng.permuted(np.tile(np.arange(len(step)), (runs, 1)), axis=1)
    steps = step[order]
    final = np.prod(1 + steps, axis=1) - 1
    curves = np.cumprod(1 + steps, axis=1)
    drawdown = np.array([drawdown_series(np.r_[1.0, c]).max() for c in curves])
    return TradeShuffleStats(final, drawdown, trades, steps)
