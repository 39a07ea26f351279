"""One backtest: history through the thinker's predictor and the trader's strategy (pure, no I/O).

What runs is what runs live: :mod:`pt_backtest_predictor` replays :mod:`pt_patterns` (learning
online as candles close, so every prediction is out of sample), :func:`pt_strategy.decide_all`
makes the decisions, :func:`pt_risk.gate_buys` applies the risk limits and
:class:`pt_fills.FillModel` fills the orders exactly as the paper broker does. Several coins
share one wallet, as live.

**The simulated clock.** Time advances in steps of ``step_seconds`` (default 10 minutes) through
each hour; the price at each step lies on the conservative path of :mod:`pt_price_path`
(open → nearer extreme → other extreme → close, linear in each third of the hour). The step
must divide 20 minutes, so both of the hour's extremes are always visited: a trailing stop or a
DCA tier the candle touched is seen, and the trailing peak is the real high, reached only after
the low when the low was nearer the open. Between two steps the price moves along a straight
line, so a fill can be up to one step's move away from the exact crossing; live, the trader
ticks every second. Quotes are the path price ± half of ``demo.spread_pct`` (demo mode's
replay), the fill model adds the paper broker's slippage and fee on top.

What is not simulated: the wall clock (signal and quote ages are always fresh, a rejected
order is not cooled down for a minute), the other venues (the venue gap is 0) and hours missing
from the data (no price: nothing trades, as live during an outage).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import partial
from itertools import chain
from typing import Protocol

import numpy as np

from pt_backtest_predictor import CoinReplay, HourTable, HourView
from pt_config_schema import Settings
from pt_errors import PowerTraderError
from pt_fills import FillModel, FillRefused
from pt_market_state import daily_needed
from pt_metrics import EquitySeries
from pt_patterns import PatternConfig
from pt_price_path import LEGS, prices_at
from pt_risk import CoinRiskInputs, DrawdownState, RiskLimits, gate_buys, track_drawdown
from pt_strategy import (
    Account,
    Decision,
    MarketView,
    PositionState,
    StrategyConfig,
    decide_all,
    quiet_hold,
)
from pt_types import HOUR, Candles, Fill, OrderIntent, OrderTag, Side, Signal

LEG_SECONDS = HOUR // LEGS  # 20 minutes: the path's corners are at multiples of this
DEFAULT_STEP_SECONDS = 600


class BacktestError(PowerTraderError):
    """The backtest cannot run as asked; the message says what to change."""


class BacktestStoppedError(BacktestError):
    """A stop was requested (the caller's ``should_stop``)."""


@dataclass(frozen=True)
class BacktestSpec:
    """Everything one run depends on, validated (build it with :meth:`from_settings`)."""

    coins: tuple[str, ...]
    start: int  # first hour traded (UTC epoch seconds, on the hour)
    end: int  # end of the last hour traded (exclusive)
    strategy: StrategyConfig
    pattern: PatternConfig
    fills: FillModel
    quote_spread_pct: float
    starting_cash: float
    risk: RiskLimits
    step_seconds: int = DEFAULT_STEP_SECONDS
    atr_period: int = 14
    atr_window: int = 91

    def __post_init__(self) -> None:
        if self.start % HOUR or self.end % HOUR:
            raise BacktestError("the span must start and end on the hour (UTC)")
        if self.end <= self.start:
            raise BacktestError("the span is empty: its end must be after its start")
        if self.step_seconds <= 0 or LEG_SECONDS % self.step_seconds:
            raise BacktestError(
                f"step_seconds must divide {LEG_SECONDS} s (60, 120, 300, 600, 1200 …), "
                f"so the hour's extremes are visited; got {self.step_seconds}"
            )
        if not self.coins:
            raise BacktestError("no coins to backtest")

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        start: int,
        end: int,
        coins: Sequence[str] | None = None,
        step_seconds: int = DEFAULT_STEP_SECONDS,
    ) -> BacktestSpec:
        """The run the settings describe (strategy, predictor, paper costs, risk limits)."""
        if coins is not None:
            settings = settings.model_copy(update={"coins": tuple(c.upper() for c in coins)})
        p = settings.predictor
        return cls(
            coins=tuple(settings.coins),
            start=start,
            end=end,
            strategy=StrategyConfig.from_settings(
                settings,
                max_spread_pct=settings.trader.max_spread_pct,
                max_deviation_pct=settings.trader.max_quote_deviation_pct,
            ),
            pattern=PatternConfig(
                pattern_length=p.pattern_length,
                target_matches=p.target_matches,
                distance=p.distance,
                bound_pct=p.bound_pct,
            ),
            fills=FillModel(settings.paper.fee_pct, settings.paper.spread_pct),
            quote_spread_pct=settings.demo.spread_pct,
            starting_cash=settings.paper.starting_cash_usd,
            risk=RiskLimits.from_settings(settings),
            step_seconds=step_seconds,
            atr_period=settings.sizing.atr_period,
            atr_window=daily_needed(settings.sizing),
        )


@dataclass(frozen=True)
class ExecutedOrder:
    """An order the strategy sent: its fill, or why it was rejected (``fill`` None)."""

    intent: OrderIntent
    fill: Fill | None
    message: str
    signal: Signal | None
    time: float


@dataclass(frozen=True)
class BacktestResult:
    """A run's orders, marks and hourly equity, for the journal writer and the reports."""

    spec: BacktestSpec
    orders: tuple[ExecutedOrder, ...]
    marks: tuple[tuple[float, str, float], ...]  # (time, coin, bid) when a trade's MFD deepened
    equity: EquitySeries  # at each hour's end and after each fill
    refused: int  # buys the risk limits refused
    deepest_dca: int  # the most DCA buys any one trade made
    notes: tuple[str, ...]

    @property
    def fills(self) -> tuple[ExecutedOrder, ...]:
        return tuple(o for o in self.orders if o.fill is not None)


@dataclass
class _Book:
    """The simulated wallet and the strategy's positions (what the journal holds live)."""

    cash: float
    holdings: dict[str, float] = field(default_factory=dict)
    positions: dict[str, PositionState] = field(default_factory=dict)
    worst: dict[str, float] = field(default_factory=dict)  # per open trade: its MFD so far

    def value(self, bids: Mapping[str, float]) -> float:
        return self.cash + sum(p.quantity * bids[c] for c, p in self.positions.items())


class _Run:
    """The loop of :func:`run_backtest` and its state."""

    def __init__(self, spec: BacktestSpec) -> None:
        self.spec = spec
        self.book = _Book(spec.starting_cash)
        self.orders: list[ExecutedOrder] = []
        self.marks: list[tuple[float, str, float]] = []
        self.equity: list[tuple[float, float, float]] = []
        self.bids: dict[str, float] = {}
        self.drawdown: DrawdownState | None = None
        self.refused = 0
        self.deepest = 0
        steps = HOUR // spec.step_seconds
        self.fractions = np.arange(steps) / steps
        self.half_spread = spec.quote_spread_pct / 200

    def hour(self, t: int, views: dict[str, HourView], paths: dict[str, np.ndarray]) -> None:
        for k in range(len(self.fractions)):
            now = t + k * self.spec.step_seconds
            self.point(now, {c: float(path[k]) for c, path in paths.items()}, views)
        self.sample(t + HOUR - self.spec.step_seconds)

    def point(self, now: int, prices: dict[str, float], views: dict[str, HourView]) -> None:
        """One tick of the trader at ``now``. A coin that provably makes no order here (flat
        below no entry, or held with a quiet trailing margin and no DCA trigger: the
        strategy's own :func:`pt_strategy.quiet_hold`) skips the full decision and its texts."""
        book, half, cfg = self.book, self.half_spread, self.spec.strategy
        markets: dict[str, MarketView] = {}
        signals: dict[str, Signal] = {}
        for coin, price in prices.items():
            if not (math.isfinite(price) and price > 0):
                continue
            self.bids[coin] = price * (1 - half)
            view = views[coin]
            position = book.positions.get(coin)
            if position is None and not (view.active and view.may_enter(price)):
                continue  # flat and no entry possible at this price: decide() would say so
            market = MarketView(price * (1 - half), price * (1 + half), now)
            if position is not None:
                long_level = view.long_level(price) if view.active else None
                kept = quiet_hold(cfg, position, market, long_level, now)
                if kept is not None:
                    if kept != position.trailing:
                        book.positions[coin] = replace(position, trailing=kept)
                    continue
            markets[coin] = market
            if view.active:
                signals[coin] = view.signal(coin, price, now)
        if markets:
            self.decide(now, markets, signals, views)
        self.mark(now)

    def decide(
        self,
        now: int,
        markets: dict[str, MarketView],
        signals: dict[str, Signal],
        views: dict[str, HourView],
    ) -> None:
        """decide_all, the risk gate and the fills, as in :meth:`pt_trader_core.Trader.tick`."""
        book = self.book
        value = book.value(self.bids)
        account = Account(book.cash, value, self.spec.fills.spendable(book.cash))
        halted = self.track(value, now)
        decisions = decide_all(
            self.spec.strategy,
            markets=markets,
            signals=signals,
            positions=book.positions,
            account=account,
            now=now,
        )
        if any(i.side is Side.BUY for d in decisions for i in d.intents):
            decisions = self.gate(decisions, value, markets, views, halted)
        stopped = bool(halted and self.spec.risk.drawdown_pause_all)
        for d in decisions:
            position = book.positions.get(d.coin)
            if d.coin not in markets:
                continue
            if position is not None and not d.intents:
                book.positions[d.coin] = replace(position, trailing=d.trailing)
            if stopped or not d.intents:
                continue
            for intent in d.intents:
                self.execute(intent, markets[d.coin], signals.get(d.coin), now)

    def track(self, value: float, now: int) -> str:
        if self.spec.risk.drawdown_stop_pct <= 0:
            return ""
        if all(c in self.bids for c in self.book.positions):
            self.drawdown = track_drawdown(self.drawdown, value, self.spec.risk, now=now, wall=now)
        state = self.drawdown
        return state.reason if state is not None and state.halted else ""

    def gate(
        self,
        decisions: tuple[Decision, ...],
        value: float,
        markets: Mapping[str, MarketView],
        views: Mapping[str, HourView],
        halted: str,
    ) -> tuple[Decision, ...]:
        held = {c: p.quantity * self.bids[c] for c, p in self.book.positions.items()}
        inputs = {c: CoinRiskInputs(v.atr_pct, 0.0, None) for c, v in views.items()}
        gated, refused = gate_buys(
            decisions,
            self.spec.risk,
            account_value=value,
            positions=held,
            markets=markets,
            inputs=inputs,
            halted=halted,
        )
        self.refused += len(refused)
        return gated

    def execute(
        self, intent: OrderIntent, market: MarketView, signal: Signal | None, now: int
    ) -> None:
        """Fill like the paper broker (pt_fills), and book it like the journal does."""
        book, costs, coin = self.book, self.spec.fills, intent.coin
        try:
            if intent.side is Side.BUY:
                usd, quantity = intent.usd_amount, intent.quantity
                qty = float(costs.buy_quantity(usd, quantity, market.ask, coin))
                price = costs.buy_price(market.ask)
            else:
                held = book.holdings.get(coin, 0.0)
                qty = float(costs.sell_quantity(intent.quantity, held, coin))
                price = costs.sell_price(market.bid)
            fee = costs.fee(qty, price)
            if intent.side is Side.BUY and qty * price + fee > book.cash + 1e-9:
                raise FillRefused(
                    f"insufficient cash: buying {qty} {coin} costs {qty * price + fee:.2f} USD "
                    f"with the fee, the paper wallet has {book.cash:.2f} USD"
                )
        except FillRefused as refused:
            self.orders.append(ExecutedOrder(intent, None, str(refused), signal, now))
            return
        fill = Fill("", coin, intent.side, qty, price, fee, now)
        message = f"{intent.side.value} {qty} {coin} at {price:.8g} (fee {fee:.4f} USD)"
        self.orders.append(ExecutedOrder(intent, fill, message, signal, now))
        self.book_fill(intent, fill)
        self.sample(now)

    def book_fill(self, intent: OrderIntent, fill: Fill) -> None:
        book, coin, q, p, now = self.book, fill.coin, fill.quantity, fill.price, fill.time
        held = book.holdings.get(coin, 0.0)
        position = book.positions.get(coin)
        if fill.side is Side.BUY:
            cost = q * p + fill.fee_usd
            book.cash -= cost
            book.holdings[coin] = _add(held, q)
            if position is None:
                book.positions[coin] = PositionState(coin, q, cost, 0, (), now, None)
                book.worst[coin] = 0.0
                return
            dca = intent.tag is OrderTag.DCA
            book.positions[coin] = replace(
                position,
                quantity=position.quantity + q,
                cost_usd=position.cost_usd + cost,
                dca_stage=position.dca_stage + int(dca),
                dca_times=(*position.dca_times, now) if dca else position.dca_times,
                trailing=None,
            )
            self.deepest = max(self.deepest, position.dca_stage + int(dca))
            return
        book.cash += q * p - fill.fee_usd
        left = _add(held, -q)
        if left > 0:
            book.holdings[coin] = left
        else:
            book.holdings.pop(coin, None)
        book.positions.pop(coin, None)
        book.worst.pop(coin, None)

    def mark(self, now: int) -> None:
        """A trade's floating drawdown, recorded when it deepens (the journal's mark_price)."""
        book = self.book
        for coin, p in book.positions.items():
            bid = self.bids.get(coin)
            if bid is None or p.cost_usd <= 0:
                continue
            dd = (p.cost_usd - p.quantity * bid) / p.cost_usd
            if dd > book.worst.get(coin, 0.0):
                book.worst[coin] = dd
                self.marks.append((float(now), coin, bid))

    def sample(self, now: int) -> None:
        book = self.book
        held = sum(p.quantity * self.bids.get(c, 0.0) for c, p in book.positions.items())
        self.equity.append((float(now), book.cash + held, book.cash))


def _add(a: float, b: float) -> float:
    """Quantities summed the way the paper wallet sums them (exact decimals, then float)."""
    return float(Decimal(repr(a)) + Decimal(repr(b)))


@dataclass(frozen=True, eq=False)
class CoinHours:
    """One coin's predictor over the span (module pt_backtest_predictor) and its candles."""

    coin: str
    table: HourTable
    hourly: Candles  # repaired: what the price path follows
    notes: tuple[str, ...]


@dataclass(frozen=True)
class HoursKey:
    """Everything of a spec that one coin's :class:`CoinHours` depends on, besides its candles.

    :func:`coin_hours` reads the spec only through this key, so two specs with equal keys (say,
    an optimisation's trials that differ only in DCA levels or trailing margins) give identical
    tables for the same candles: a cache keyed by it cannot serve a table built differently."""

    coin: str
    start: int
    end: int
    pattern: PatternConfig
    start_level: int
    atr_period: int
    atr_window: int

    @classmethod
    def of(cls, spec: BacktestSpec, coin: str) -> HoursKey:
        return cls(
            coin,
            spec.start,
            spec.end,
            spec.pattern,
            spec.strategy.trade_start_level,
            spec.atr_period,
            spec.atr_window,
        )


def coin_hours(spec: BacktestSpec, coin: str, hourly: Candles) -> CoinHours:
    """Warm the coin's memories up on the history before the span, then replay the span.
    Independent of the other coins and of the trading: safe to run in another process."""
    return hours_for(HoursKey.of(spec, coin), hourly)


def hours_for(key: HoursKey, hourly: Candles) -> CoinHours:
    """:func:`coin_hours` from the key alone (nothing else of the spec is in reach here)."""
    coin = key.coin
    replay = CoinReplay(
        coin,
        hourly,
        key.pattern,
        start_level=key.start_level,
        atr_period=key.atr_period,
        atr_window=key.atr_window,
    )
    learned = replay.warm_up(key.start)
    notes = [
        f"{coin}: memories learned {learned} closed candles before the start"
        if learned
        else f"{coin}: no history before the start; the predictor learns from nothing"
    ]
    notes.extend(f"{coin}: {r}" for r in replay.repairs)
    return CoinHours(coin, replay.table(key.start, key.end), replay.hourly, tuple(notes))


class HoursStore(Protocol):
    """Where :func:`run_backtest` finds coins' tables built before and keeps the new ones.

    A table is most of a run's time (the warm-up on all history before the span) and depends
    only on its :class:`HoursKey` and the candles, so runs that differ only in the trading
    settings can share it. ``hourly`` is the very object the table was built from: a store
    must not serve a table for other candles, even equal-looking ones."""

    def get(self, key: HoursKey, hourly: Candles) -> CoinHours | None: ...

    def put(self, key: HoursKey, hourly: Candles, hours: CoinHours) -> None: ...


Mapper = Callable[..., Iterable[CoinHours]]


def run_backtest(
    spec: BacktestSpec,
    hourly: Mapping[str, Candles],
    *,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    mapper: Mapper = map,
    tables: HoursStore | None = None,
) -> BacktestResult:
    """Replay ``hourly`` candles (whole histories; only what has closed is read) over the span.

    The coins' predictors run first, through ``mapper`` (``map``; a process pool's ``map``
    runs them in parallel), then the shared wallet trades hour by hour. ``progress(done,
    total)`` counts coins in the first phase and hours in the second. A coin whose table is
    in ``tables`` is not replayed again; the ones built here are put there (by this process,
    so a process pool's ``map`` still works with a store)."""
    missing = [c for c in spec.coins if c not in hourly]
    if missing:
        raise BacktestError(f"no candles for {', '.join(missing)}")
    hours = range(spec.start, spec.end, HOUR)
    total = len(spec.coins) + len(hours)
    coins: dict[str, CoinHours] = {}
    keys = {c: HoursKey.of(spec, c) for c in spec.coins}
    kept = {c: tables.get(keys[c], hourly[c]) if tables is not None else None for c in spec.coins}
    todo = [c for c in spec.coins if kept[c] is None]
    built = mapper(partial(coin_hours, spec), todo, [hourly[c] for c in todo])
    for done in chain((h for h in kept.values() if h is not None), built):
        if tables is not None and kept[done.coin] is None:
            tables.put(keys[done.coin], hourly[done.coin], done)
        coins[done.coin] = done
        if should_stop():
            raise BacktestStoppedError("stop requested")
        if progress is not None:
            progress(len(coins), total)
    run = _Run(spec)
    # The account before the first hour, dated the second before it: the daily series (and so
    # total return and CAGR) starts from the starting cash, not from the first day's close.
    run.equity.append((float(spec.start - 1), spec.starting_cash, spec.starting_cash))
    rows = {c: _hour_rows(h.hourly, spec.start, spec.end) for c, h in coins.items()}
    paths = {c: _paths(coins[c].hourly, rows[c], run.fractions) for c in spec.coins}
    for i, t in enumerate(hours):
        if i % 512 == 0:
            if should_stop():
                raise BacktestStoppedError("stop requested")
            if progress is not None:
                progress(len(coins) + i, total)
        views = {c: coins[c].table.view(i) for c in spec.coins}
        here = {c: paths[c][i] for c in spec.coins if rows[c][i] >= 0}
        run.hour(t, views, here)
    if progress is not None:
        progress(total, total)
    times, equity, cash = (np.array(col, dtype=np.float64) for col in zip(*run.equity, strict=True))
    return BacktestResult(
        spec,
        tuple(run.orders),
        tuple(run.marks),
        EquitySeries(times, equity, cash, equity - cash),
        run.refused,
        run.deepest,
        tuple(note for c in spec.coins for note in coins[c].notes),
    )


def _hour_rows(hourly: Candles, start: int, end: int) -> np.ndarray:
    """For each hour of the span, its row in ``hourly`` (−1: missing from the data)."""
    hours = np.arange(start, end, HOUR)
    if not len(hourly):
        return np.full(len(hours), -1)
    idx = np.searchsorted(hourly.time, hours)
    clipped = np.minimum(idx, len(hourly.time) - 1)
    found = (idx < len(hourly.time)) & (hourly.time[clipped] == hours)
    return np.where(found, idx, -1)


def _paths(hourly: Candles, rows: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """The path price at each step of each hour of the span (NaN for a missing hour)."""
    out = np.full((len(rows), len(fractions)), np.nan)
    have = rows >= 0
    if not np.any(have):
        return out
    r = rows[have]
    o, h, lo, c = hourly.open[r], hourly.high[r], hourly.low[r], hourly.close[r]
    for k, f in enumerate(fractions.tolist()):
        out[have, k] = prices_at(o, h, lo, c, f)
    return out
