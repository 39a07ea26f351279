"""Monte Carlo of a backtest: block-bootstrapped price paths and shuffled trade orders.

Real parts throughout: the bundled BTC and ETH history (cut to a few months so the backtests
stay short), the real engine and the real journal.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import pt_ohlcv
from pt_backtest_engine import BacktestResult, BacktestSpec, run_backtest
from pt_backtest_journal import write_journal
from pt_backtest_montecarlo import (
    bootstrap_candles,
    bootstrap_many,
    closed_trades,
    monte_carlo_paths,
    percentiles,
    ran_out_of_cash,
    shuffle_trades,
)
from pt_config_schema import Settings
from pt_strategy import StrategyConfig
from pt_types import HOUR, Candles, OrderTag, Side


def ts(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp())


def cut(coin: str, first: str, stop: str) -> Candles:
    h = pt_ohlcv.load_bundled(coin)
    return h.slice(int(np.searchsorted(h.time, ts(first))), int(np.searchsorted(h.time, ts(stop))))


START, END, BLOCK = ts("2022-05-01"), ts("2022-06-01"), 24  # the bootstrap tests' span
MC_START, MC_END = ts("2022-06-01"), ts("2022-06-15")  # the backtests' span (the June crash)


@pytest.fixture(scope="module")
def btc() -> Candles:
    return cut("BTC", "2022-03-01", "2022-07-01")


@pytest.fixture(scope="module")
def eth() -> Candles:
    return cut("ETH", "2022-03-01", "2022-07-01")


def settings(**update: object) -> Settings:
    return Settings().model_copy(update={"coins": ("BTC",), **update})


def spec_for(s: Settings, start: int = MC_START, end: int = MC_END) -> BacktestSpec:
    return BacktestSpec.from_settings(s, start=start, end=end)


def span_of(h: Candles, start: int = START, end: int = END) -> Candles:
    return h.slice(int(np.searchsorted(h.time, start)), int(np.searchsorted(h.time, end)))


def moves(h: Candles) -> np.ndarray:
    """Open, high, low, close as rows (4, n)."""
    return np.vstack([h.open, h.high, h.low, h.close])


def source_blocks(synthetic: Candles, real: Candles, block: int) -> list[int]:
    """For each block of the synthetic span, the start (row of the real span) of the one real
    window with the same relative moves; fails when there is none."""
    span, syn = span_of(real), span_of(synthetic, START, START + len(span_of(real)) * HOUR)
    windows = sliding_window_view(moves(span), block, axis=1)  # (4, starts, block)
    rel = windows / windows[0, :, :1][None]
    starts = []
    for b in range(0, len(syn), block):
        piece = moves(syn)[:, b : b + block]
        mine = piece / piece[0, 0]
        err = np.abs(rel[:, :, : piece.shape[1]] / mine[:, None, :] - 1).max(axis=(0, 2))
        best = int(np.argmin(err))
        assert err[best] < 1e-12, f"block at hour {b} matches no real window"
        assert np.sort(err)[1] > 1e-6  # and only one
        starts.append(best)
    return starts


# --- block bootstrap of the candles -------------------------------------------------------------


def test_bootstrap_keeps_history_rows_grid_and_candle_shape(btc: Candles) -> None:
    out = bootstrap_candles(
        btc, start=START, end=END, block_hours=BLOCK, rng=np.random.default_rng(1)
    )
    first = int(np.searchsorted(btc.time, START))
    n = len(span_of(btc))
    assert len(out) == first + n  # the history before, then as many hours as the span
    for name in ("time", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(out, name)[:first], getattr(btc, name)[:first])
    np.testing.assert_array_equal(out.time[first:], START + HOUR * np.arange(n))
    assert np.all(np.diff(out.time) == HOUR)  # contiguous through the seam too
    assert out.time.dtype == np.int64
    assert np.all(out.high >= np.maximum(out.open, out.close))
    assert np.all(out.low <= np.minimum(out.open, out.close))
    assert np.all(out.low > 0)
    assert out.open[first] == btc.close[first - 1]  # continues from the last real close
    seams = first + np.arange(BLOCK, n, BLOCK)
    np.testing.assert_allclose(out.open[seams], out.close[seams - 1], rtol=1e-14)


def test_each_block_repeats_one_real_block_moves(btc: Candles) -> None:
    out = bootstrap_candles(
        btc, start=START, end=END, block_hours=BLOCK, rng=np.random.default_rng(2)
    )
    starts = source_blocks(out, btc, BLOCK)
    assert len(starts) == math.ceil(len(span_of(btc)) / BLOCK)
    assert len(set(starts)) > 1  # drawn, not the real order
    # by hand, the second block: its candles are the source's scaled to the running price
    span, syn = span_of(btc), out.slice(int(np.searchsorted(out.time, START)))
    s, level = starts[1], syn.close[BLOCK - 1]
    for k in (0, 5, BLOCK - 1):
        assert syn.open[BLOCK + k] == pytest.approx(level * span.open[s + k] / span.open[s])
        assert syn.high[BLOCK + k] == pytest.approx(level * span.high[s + k] / span.open[s])
        assert syn.low[BLOCK + k] == pytest.approx(level * span.low[s + k] / span.open[s])
        assert syn.close[BLOCK + k] == pytest.approx(level * span.close[s + k] / span.open[s])
        assert syn.volume[BLOCK + k] == span.volume[s + k]


def test_bootstrap_is_reproducible_by_seed(btc: Candles) -> None:
    def draw(seed: int) -> Candles:
        rng = np.random.default_rng(seed)
        return bootstrap_candles(btc, start=START, end=END, block_hours=BLOCK, rng=rng)

    a, b, c = draw(5), draw(5), draw(6)
    np.testing.assert_array_equal(moves(a), moves(b))
    np.testing.assert_array_equal(a.volume, b.volume)
    assert not np.array_equal(moves(a), moves(c))


def test_bootstrap_many_draws_the_same_blocks_for_every_coin(btc: Candles, eth: Candles) -> None:
    out = bootstrap_many(
        {"BTC": btc, "ETH": eth},
        start=START,
        end=END,
        block_hours=BLOCK,
        rng=np.random.default_rng(3),
    )
    np.testing.assert_array_equal(out["BTC"].time, out["ETH"].time)
    assert source_blocks(out["BTC"], btc, BLOCK) == source_blocks(out["ETH"], eth, BLOCK)
    # one coin alone: exactly bootstrap_candles with the same seed
    alone = bootstrap_candles(
        btc, start=START, end=END, block_hours=BLOCK, rng=np.random.default_rng(3)
    )
    only = bootstrap_many(
        {"BTC": btc}, start=START, end=END, block_hours=BLOCK, rng=np.random.default_rng(3)
    )
    np.testing.assert_array_equal(moves(alone), moves(only["BTC"]))


def test_bootstrap_many_uses_the_hours_every_coin_has(btc: Candles, eth: Candles) -> None:
    gone = int(np.searchsorted(eth.time, START)) + 100  # ETH misses one hour of the span
    keep = np.ones(len(eth), dtype=bool)
    keep[gone] = False
    holey = Candles(
        *(getattr(eth, c)[keep] for c in ("time", "open", "high", "low", "close", "volume"))
    )
    out = bootstrap_many(
        {"BTC": btc, "ETH": holey},
        start=START,
        end=END,
        block_hours=BLOCK,
        rng=np.random.default_rng(4),
    )
    n = len(span_of(btc)) - 1
    for coin, real in (("BTC", btc), ("ETH", holey)):
        first = int(np.searchsorted(real.time, START))
        assert len(out[coin]) == first + n
        np.testing.assert_array_equal(out[coin].time[first:], START + HOUR * np.arange(n))


def test_bootstrap_refuses_what_it_cannot_do(btc: Candles) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="block_hours must be at least 1"):
        bootstrap_candles(btc, start=START, end=END, block_hours=0, rng=rng)
    with pytest.raises(ValueError, match="fewer than block_hours"):
        bootstrap_candles(btc, start=START, end=START + 10 * HOUR, block_hours=24, rng=rng)
    with pytest.raises(ValueError, match="on the hour"):
        bootstrap_candles(btc, start=START + 1, end=END, block_hours=24, rng=rng)
    with pytest.raises(ValueError, match="span is empty"):
        bootstrap_candles(btc, start=END, end=START, block_hours=24, rng=rng)


# --- Monte Carlo over price paths ---------------------------------------------------------------


def test_monte_carlo_paths_runs_the_backtest_on_each_path(btc: Candles) -> None:
    spec = spec_for(settings(start_allocation_pct=5.0))
    seen: list[tuple[int, int]] = []
    histories: list[Candles] = []

    def run(s: BacktestSpec, hourly: Mapping[str, Candles]) -> BacktestResult:
        histories.append(hourly["BTC"])
        return run_backtest(s, hourly)

    stats = monte_carlo_paths(
        spec, {"BTC": btc}, runs=3, seed=11, run=run, progress=lambda *a: seen.append(a)
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert len(stats.final_return) == len(stats.max_drawdown) == len(stats.out_of_cash) == 3
    assert np.all(np.isfinite(stats.final_return))
    assert np.all(np.isfinite(stats.max_drawdown))
    assert np.all(stats.max_drawdown >= 0)
    for p5, p50, p95 in (stats.return_percentiles, stats.drawdown_percentiles):
        assert p5 <= p50 <= p95
    assert 0 <= stats.probability_out_of_cash <= 1
    assert not np.array_equal(histories[0].close, histories[1].close)  # a new path each run
    assert all(len(h) == len(histories[0]) for h in histories)


def test_monte_carlo_paths_is_reproducible_by_seed(btc: Candles) -> None:
    spec = spec_for(settings(start_allocation_pct=5.0), end=MC_START + 7 * 24 * HOUR)

    def mc(seed: int) -> tuple[np.ndarray, np.ndarray]:
        s = monte_carlo_paths(spec, {"BTC": btc}, runs=2, block_hours=24, seed=seed)
        return s.final_return, s.max_drawdown

    a, b, c = mc(21), mc(21), mc(22)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_an_oversized_ladder_runs_out_of_cash_a_small_one_does_not(btc: Candles) -> None:
    # a first buy of half the account: the first DCA (2 × the position) can never be paid
    big = spec_for(settings(start_allocation_pct=50.0, dca_multiplier=2.0))
    assert monte_carlo_paths(big, {"BTC": btc}, runs=2, seed=1).probability_out_of_cash > 0
    # the default first buy ($0.50 minimum) leaves room for far more DCA stages than occur
    small = spec_for(settings())
    assert monte_carlo_paths(small, {"BTC": btc}, runs=2, seed=1).probability_out_of_cash == 0


def test_out_of_cash_definition_on_hand_built_samples() -> None:
    cfg = StrategyConfig(coins=("BTC",), dca_multiplier=2.0)
    power = np.array([1000.0, 700.0, 700.0])
    # a $300 position needs a $600 DCA: covered by $700
    assert not ran_out_of_cash(power, np.array([0.0, 300.0, 0.0]), cfg)
    # a $400 position needs $800: more than the cash
    assert ran_out_of_cash(power, np.array([0.0, 300.0, 400.0]), cfg)
    # no position: nothing to extend, however little cash
    assert not ran_out_of_cash(np.array([0.0]), np.array([0.0]), cfg)
    # a DCA below the minimum order is refused for its size, not for the cash
    assert not ran_out_of_cash(np.array([0.1]), np.array([0.2]), cfg)
    assert ran_out_of_cash(np.array([0.1]), np.array([0.3]), cfg)


def test_runs_must_be_positive(btc: Candles) -> None:
    spec = spec_for(settings())
    with pytest.raises(ValueError, match="runs must be at least 1, got 0"):
        monte_carlo_paths(spec, {"BTC": btc}, runs=0, seed=1)
    with pytest.raises(ValueError, match="no candles for BTC"):
        monte_carlo_paths(spec, {"ETH": btc}, runs=1, seed=1)


def test_percentiles_are_5_50_95() -> None:
    assert percentiles(np.arange(101, dtype=np.float64)) == (5.0, 50.0, 95.0)


# --- trade-order shuffle ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def churn(btc: Candles) -> BacktestResult:
    """A real run with wins and losses: no profit margin, so the trailing sell often exits
    under the cost once the spread and fees are paid."""
    s = settings(start_allocation_pct=5.0, pm_start_pct_no_dca=0.0, pm_start_pct_with_dca=0.0)
    return run_backtest(spec_for(s), {"BTC": btc})


def test_closed_trades_group_the_fills(churn: BacktestResult, tmp_path: Path) -> None:
    trades = closed_trades(churn)
    fills = [o for o in churn.orders if o.fill is not None]
    sells = [o for o in fills if o.intent.tag is OrderTag.TRAIL_SELL]
    assert len(trades) == len(sells) > 10
    assert sum(t.dca_count for t in trades) <= sum(o.intent.tag is OrderTag.DCA for o in fills)
    wins = [t.pnl_usd > 0 for t in trades]
    assert any(wins) and not all(wins)
    # by hand, the first trade: the buys up to the first sell
    upto = next(i for i, o in enumerate(fills) if o.fill is not None and o.fill.side is Side.SELL)
    buys = [o.fill for o in fills[:upto] if o.fill is not None]
    sell = fills[upto].fill
    assert sell is not None
    cost = sum(f.quantity * f.price + f.fee_usd for f in buys)
    first = trades[0]
    assert first.cost_usd == pytest.approx(cost)
    assert first.pnl_usd == pytest.approx(sell.quantity * sell.price - sell.fee_usd - cost)
    assert (first.opened_at, first.closed_at) == (buys[0].time, sell.time)
    assert first.equity_at_entry == churn.spec.starting_cash  # nothing sampled before it
    for t in trades:
        assert t.equity_step == pytest.approx(t.pnl_usd / t.equity_at_entry)
    # the same trades, the same PnL % as the journal's (one definition)
    journal = write_journal(churn, tmp_path / "bt.sqlite")
    try:
        records = journal.trades(status="closed")
    finally:
        journal.close()
    assert [r.closed_at for r in records] == [t.closed_at for t in trades]
    for r, t in zip(records, trades, strict=True):
        assert r.cost_usd == pytest.approx(t.cost_usd)
        assert r.realized_pnl_pct / 100 == pytest.approx(t.return_on_cost)


def test_shuffle_keeps_the_trades_and_the_final_return(churn: BacktestResult) -> None:
    stats = shuffle_trades(churn, runs=40, seed=5)
    step = np.array([t.equity_step for t in stats.trades])
    assert stats.steps.shape == (40, len(step))
    for row in stats.steps:  # the same multiset of trades in every run
        np.testing.assert_array_equal(np.sort(row), np.sort(step))
    assert len({tuple(row) for row in stats.steps.tolist()}) > 1  # in different orders
    # compounded on fractions of equity, the order does not change where it ends
    np.testing.assert_allclose(stats.final_return, np.prod(1 + step) - 1, rtol=1e-12)
    # ... but it changes the way there
    assert np.all(stats.max_drawdown >= 0)
    assert np.ptp(stats.max_drawdown) > 1e-6
    p5, p50, p95 = stats.drawdown_percentiles
    assert p5 <= p50 <= p95


def test_shuffle_is_reproducible_by_seed(churn: BacktestResult) -> None:
    a, b = shuffle_trades(churn, runs=10, seed=8), shuffle_trades(churn, runs=10, seed=8)
    np.testing.assert_array_equal(a.steps, b.steps)
    np.testing.assert_array_equal(a.max_drawdown, b.max_drawdown)
    c = shuffle_trades(churn, runs=10, seed=9)
    assert not np.array_equal(a.steps, c.steps)
    with pytest.raises(ValueError, match="runs must be at least 1, got 0"):
        shuffle_trades(churn, runs=0, seed=8)
