"""The trading strategy: tiered DCA with a trailing profit margin (spec §3.6-3.8), as pure logic.

State goes in (frozen settings, prices, the thinker's signal, the bot's own position and its
trailing state, the account), decisions come out (order intents with a reason, and the trailing
state to persist). Nothing here reads a clock, a file or the network, so the same code runs live,
on paper, in the demo and in the backtester, and every rule can be tested with hand-worked numbers.

Faults of the original that this fixes: only managed coins are touched (§6.2), the neural DCA
trigger is one rule, ``trade_start_level + 1 + stage`` (§6.11), ``max_dca_buys_per_24h = 0``
disables DCA (§6.12), the trailing state is returned to be persisted (§6.15), and bad input
(stale signal, bad or wide prices) never trades.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pt_format import price_text as _price
from pt_position_sizing import VolatilitySizing, size_for_atr
from pt_types import DAY, OrderIntent, OrderTag, Side, Signal

if TYPE_CHECKING:
    from pt_config_schema import Settings

MIN_ORDER_USD = 0.50  # the original's floor for a first buy
MAX_LEVEL = 7  # LONG/SHORT levels run 0..7 (seven timeframes)
DEFAULT_MAX_SIGNAL_AGE = 120.0  # seconds; the thinker refreshes every few seconds
DEFAULT_MAX_QUOTE_AGE = 60.0
DEFAULT_MAX_SPREAD_PCT = 2.0
DEFAULT_MAX_DEVIATION_PCT = 2.0
_DEFAULT_DCA_LEVELS = (-2.5, -5.0, -10.0, -20.0, -30.0, -40.0, -50.0)
# The original's trading keys, same names in Settings (top level) and here.
_SETTINGS_KEYS = (
    "coins", "trade_start_level", "start_allocation_pct", "dca_multiplier", "dca_levels",
    "max_dca_buys_per_24h", "pm_start_pct_no_dca", "pm_start_pct_with_dca", "trailing_gap_pct",
)  # fmt: skip


@dataclass(frozen=True)
class StrategyConfig:
    """The trading settings the strategy obeys; rebuilt on every settings change (hot reload)."""

    coins: tuple[str, ...]
    trade_start_level: int = 3
    start_allocation_pct: float = 0.005
    dca_multiplier: float = 2.0
    dca_levels: tuple[float, ...] = _DEFAULT_DCA_LEVELS
    max_dca_buys_per_24h: int = 2
    pm_start_pct_no_dca: float = 5.0
    pm_start_pct_with_dca: float = 2.5
    trailing_gap_pct: float = 0.5
    min_order_usd: float = MIN_ORDER_USD
    venue_min_order_usd: float | None = None
    max_signal_age: float = DEFAULT_MAX_SIGNAL_AGE
    max_quote_age: float = DEFAULT_MAX_QUOTE_AGE
    max_spread_pct: float = DEFAULT_MAX_SPREAD_PCT
    max_deviation_pct: float = DEFAULT_MAX_DEVIATION_PCT
    sizing: VolatilitySizing | None = None  # None: entries use start_allocation_pct

    def __post_init__(self) -> None:
        object.__setattr__(self, "coins", tuple(c.strip().upper() for c in self.coins))
        if not self.dca_levels:
            raise ValueError("dca_levels needs at least one level")
        if not 1 <= self.trade_start_level <= MAX_LEVEL:
            raise ValueError(f"trade_start_level must be 1..7, not {self.trade_start_level}")

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        venue_min_order_usd: float | None = None,
        max_signal_age: float = DEFAULT_MAX_SIGNAL_AGE,
        max_quote_age: float = DEFAULT_MAX_QUOTE_AGE,
        max_spread_pct: float = DEFAULT_MAX_SPREAD_PCT,
        max_deviation_pct: float = DEFAULT_MAX_DEVIATION_PCT,
    ) -> StrategyConfig:
        """The strategy's view of the settings; the input limits have no settings key yet."""
        trading = {key: getattr(settings, key) for key in _SETTINGS_KEYS}
        s = settings.sizing
        sizing = (
            VolatilitySizing(s.base_pct, s.min_pct, s.max_pct, s.target_atr_pct, s.atr_period)
            if s.method == "volatility"
            else None
        )
        return cls(
            **trading,
            sizing=sizing,
            venue_min_order_usd=venue_min_order_usd,
            max_signal_age=max_signal_age,
            max_quote_age=max_quote_age,
            max_spread_pct=max_spread_pct,
            max_deviation_pct=max_deviation_pct,
        )

    @property
    def min_order(self) -> float:
        """The smallest buy the strategy asks for: our floor or the venue's, whichever is higher."""
        return max(self.min_order_usd, self.venue_min_order_usd or 0.0)

    @property
    def trailing_settings(self) -> tuple[float, float, float]:
        """What a trailing state was built with; a change re-arms it (spec §3.3 step 1)."""
        return (self.pm_start_pct_no_dca, self.pm_start_pct_with_dca, self.trailing_gap_pct)

    def hard_level(self, stage: int) -> float:
        """The hard DCA tier (PnL %) for a stage; the last level repeats forever."""
        return self.dca_levels[min(max(stage, 0), len(self.dca_levels) - 1)]

    def neural_level(self, stage: int) -> int | None:
        """LONG level that triggers the DCA at ``stage`` (one rule, §6.11); None above 7."""
        level = self.trade_start_level + 1 + max(stage, 0)
        return level if level <= MAX_LEVEL else None


@dataclass(frozen=True)
class MarketView:
    """The coin's best bid and ask at the broker, and when they were quoted (the mode's clock).

    ``reference`` is the other venues' median mid price when the broker is not itself priced
    from them (live: Robinhood); a broker mid too far from it means one side is wrong."""

    bid: float
    ask: float
    time: float
    reference: float | None = None


@dataclass(frozen=True)
class TrailingState:
    """The trailing profit margin of one position (spec §3.6); persisted so a restart keeps it."""

    active: bool
    line: float
    peak: float
    was_above: bool
    settings: tuple[float, float, float]


@dataclass(frozen=True)
class PositionState:
    """What the bot holds in one coin and the state of its current trade.

    ``cost_usd`` includes fees; ``dca_times`` are the times of DCA buys (older ones and those
    before ``opened_at`` are ignored by the 24 h rule); ``trailing`` None means not armed yet.
    """

    coin: str
    quantity: float
    cost_usd: float
    dca_stage: int = 0
    dca_times: tuple[float, ...] = ()
    opened_at: float = 0.0
    trailing: TrailingState | None = None

    @property
    def avg_cost(self) -> float:
        return self.cost_usd / self.quantity if self.quantity > 0 else 0.0

    def dca_buys_in_window(self, now: float) -> int:
        """DCA buys of the current trade in the rolling 24 h before ``now``."""
        return sum(1 for t in self.dca_times if t >= self.opened_at and now - t < DAY)


@dataclass(frozen=True)
class Account:
    """Cash and total value (cash + positions at the bid). ``spendable`` is what buys may cost
    before the broker adds its fee (the paper broker charges it on top); None: all the cash."""

    cash: float
    total_value: float
    spendable: float | None = None

    @property
    def buying_power(self) -> float:
        return self.cash if self.spendable is None else min(self.spendable, self.cash)


@dataclass(frozen=True)
class Decision:
    """What to do for one coin this tick.

    ``trailing`` is the state to persist for the coin (None: no state). After a trailing sell it
    stays armed, so a sell that fails is tried again on the next tick; once the coin is flat the
    next decision drops it. ``problem`` is set when bad input stopped trading (show it).
    """

    coin: str
    intents: tuple[OrderIntent, ...]
    trailing: TrailingState | None
    reason: str
    problem: str = ""


# --- input checks -------------------------------------------------------------------------------


def quote_problem(market: MarketView | None, now: float, config: StrategyConfig) -> str:
    """Why these prices must not be traded on, or "" when they are fine."""
    if market is None:
        return "no price"
    bid, ask = market.bid, market.ask
    if not (math.isfinite(bid) and bid > 0 and math.isfinite(ask) and ask > 0):
        return f"bad price (bid {bid!r}, ask {ask!r})"
    if ask < bid:
        return f"ask {_price(ask)} below bid {_price(bid)}"
    spread = (ask - bid) / bid * 100
    if spread > config.max_spread_pct:
        prices = f"bid {_price(bid)}, ask {_price(ask)}"
        return f"spread {spread:.2f}% over {config.max_spread_pct:g}% ({prices})"
    age = now - market.time
    if not math.isfinite(age) or age > config.max_quote_age:
        return f"price is stale ({age:.0f} s old, max {config.max_quote_age:g} s)"
    return _deviation_problem(market, config)


def _deviation_problem(market: MarketView, config: StrategyConfig) -> str:
    ref = market.reference
    if ref is None:
        return ""
    if not (math.isfinite(ref) and ref > 0):
        return f"bad reference price from the other venues ({ref!r})"
    mid = (market.bid + market.ask) / 2
    deviation = abs(mid - ref) / ref * 100
    if deviation > config.max_deviation_pct:
        return (
            f"broker price {_price(mid)} is {deviation:.2f}% from the other venues' median "
            f"{_price(ref)} (max {config.max_deviation_pct:g}%)"
        )
    return ""


def signal_problem(signal: Signal | None, coin: str, now: float, config: StrategyConfig) -> str:
    """Why the thinker's signal must not be acted on, or "" when it is fine."""
    if signal is None:
        return "no signal from the thinker"
    if signal.coin.upper() != coin:
        return f"signal is for {signal.coin}, not {coin}"
    if not (0 <= signal.long_level <= MAX_LEVEL and 0 <= signal.short_level <= MAX_LEVEL):
        return f"signal levels out of range (LONG {signal.long_level}, SHORT {signal.short_level})"
    age = now - signal.time
    if not math.isfinite(age) or age > config.max_signal_age:
        return f"signal is stale ({age:.0f} s old, max {config.max_signal_age:g} s)"
    return ""


# --- trailing profit margin (spec §3.6) ---------------------------------------------------------


def base_line(config: StrategyConfig, avg_cost: float, stage: int) -> float:
    pm = config.pm_start_pct_no_dca if stage == 0 else config.pm_start_pct_with_dca
    return avg_cost * (1 + pm / 100)


@dataclass(frozen=True)
class TrailingStep:
    state: TrailingState
    sell: bool
    base_line: float


def step_trailing(
    config: StrategyConfig, state: TrailingState | None, avg_cost: float, stage: int, bid: float
) -> TrailingStep:
    """One tick of the trailing margin, in the original's order (spec §3.6)."""
    base = base_line(config, avg_cost, stage)
    if state is None or state.settings != config.trailing_settings:
        state = TrailingState(False, base, 0.0, False, config.trailing_settings)
    # Inactive: the line follows the base line; active: it never goes down.
    line = max(state.line, base) if state.active else base
    active, peak = state.active, state.peak
    above_now = bid >= line
    if not active and above_now:
        active, peak = True, bid
    sell = False
    if active:
        peak = max(peak, bid)
        line = max(line, peak * (1 - config.trailing_gap_pct / 100), base)
        sell = state.was_above and bid < line
    return TrailingStep(TrailingState(active, line, peak, above_now, state.settings), sell, base)


def trailing_settings_changed(old: StrategyConfig, new: StrategyConfig) -> bool:
    return old.trailing_settings != new.trailing_settings


def reset_trailing_on_settings_change(
    old: StrategyConfig, new: StrategyConfig, states: Mapping[str, TrailingState | None]
) -> dict[str, TrailingState | None]:
    """Like the original (§3.3 step 1): a changed trailing setting clears every trailing state."""
    if trailing_settings_changed(old, new):
        return dict.fromkeys(states)
    return dict(states)


# --- decisions ----------------------------------------------------------------------------------


def buy_pnl_pct(avg_cost: float, ask: float) -> float:
    """PnL at the ask, used for DCA (spec §3.5); 0 without a cost basis."""
    return (ask - avg_cost) / avg_cost * 100 if avg_cost > 0 else 0.0


def sell_pnl_pct(avg_cost: float, bid: float) -> float:
    """PnL at the bid, shown to the user (spec §3.5); 0 without a cost basis."""
    return (bid - avg_cost) / avg_cost * 100 if avg_cost > 0 else 0.0


def buy_quantity(usd: float, ask: float, decimals: int = 8) -> float:
    """The original's USD -> asset conversion at the ask (the broker rounds to the venue)."""
    return round(usd / ask, decimals)


def decide(
    config: StrategyConfig,
    coin: str,
    *,
    market: MarketView | None,
    signal: Signal | None,
    position: PositionState | None,
    account: Account,
    now: float,
) -> Decision:
    """The orders for one coin this tick, with the reason and the trailing state to persist."""
    coin = coin.upper()
    held = position is not None and position.quantity > 0
    kept = position.trailing if position is not None and held else None
    if coin not in config.coins:
        return Decision(coin, (), kept, f"{coin} is not managed by the bot: left alone")
    bad_price = quote_problem(market, now, config)
    if bad_price:
        return Decision(coin, (), kept, f"no order for {coin}: {bad_price}", bad_price)
    assert market is not None  # checked by quote_problem
    tick = _Tick(config, coin, market, signal, account, now)
    if position is None or not held:
        return _decide_entry(tick)
    return _decide_held(tick, position)


def decide_all(
    config: StrategyConfig,
    *,
    markets: Mapping[str, MarketView],
    signals: Mapping[str, Signal],
    positions: Mapping[str, PositionState],
    account: Account,
    now: float,
) -> tuple[Decision, ...]:
    """Decisions for every managed coin in settings order; other holdings are never looked at.

    Cash spent by an earlier coin's buy this tick is not offered to the next one.
    """
    decisions: list[Decision] = []
    cash = account.buying_power
    for coin in config.coins:
        d = decide(
            config,
            coin,
            market=markets.get(coin),
            signal=signals.get(coin),
            position=positions.get(coin),
            account=replace(account, spendable=cash),
            now=now,
        )
        cash -= sum(i.usd_amount or 0.0 for i in d.intents if i.side is Side.BUY)
        decisions.append(d)
    return tuple(decisions)


@dataclass(frozen=True)
class _Tick:
    config: StrategyConfig
    coin: str
    market: MarketView
    signal: Signal | None
    account: Account
    now: float

    @property
    def signal_problem(self) -> str:
        return signal_problem(self.signal, self.coin, self.now, self.config)


def _decide_entry(t: _Tick) -> Decision:
    cfg, coin, signal, account = t.config, t.coin, t.signal, t.account
    bad_signal = t.signal_problem
    if bad_signal:
        return Decision(coin, (), None, f"no entry for {coin}: {bad_signal}", bad_signal)
    assert signal is not None  # checked by signal_problem
    levels = f"LONG {signal.long_level}, SHORT {signal.short_level}"
    if signal.long_level < cfg.trade_start_level:
        why = f"LONG {signal.long_level} < start level {cfg.trade_start_level}"
        return Decision(coin, (), None, f"no entry for {coin}: {why} ({levels})")
    if signal.short_level != 0:
        why = f"SHORT {signal.short_level} is not 0"
        return Decision(coin, (), None, f"no entry for {coin}: {why} ({levels})")
    trigger = (
        f"LONG {signal.long_level} ≥ start level {cfg.trade_start_level}{_crossed(signal)}"
        " and SHORT 0"
    )
    if not (math.isfinite(account.total_value) and account.total_value > 0):
        why = f"account value {account.total_value!r} is unknown"
        return Decision(coin, (), None, f"no entry for {coin}: {why}", why)
    pct, how = _entry_pct(cfg, signal)
    wanted = account.total_value * pct / 100
    amount = max(wanted, cfg.min_order)
    sizing = (
        f"{how}{pct:g}% of account {_usd(account.total_value)}"
        f" = {_usd(wanted)}, minimum {_usd(cfg.min_order)}"
    )
    cash = account.buying_power
    if not cash >= cfg.min_order:
        why = f"cash {_usd(cash)} is below the minimum order {_usd(cfg.min_order)}"
        return Decision(coin, (), None, f"no entry for {coin} ({trigger}): {why}", why)
    if amount > cash:
        sizing += f"; capped to the cash {_usd(cash)}"
        amount = cash
    reason = f"start {coin}: {trigger}; buy {_usd(amount)} at ask {_price(t.market.ask)} ({sizing})"
    intent = OrderIntent(coin, Side.BUY, OrderTag.ENTRY, reason, usd_amount=amount)
    return Decision(coin, (intent,), None, reason)


def _entry_pct(cfg: StrategyConfig, signal: Signal) -> tuple[float, str]:
    """The first buy's percent of the account and how it was chosen (a reason prefix)."""
    if cfg.sizing is None:
        return cfg.start_allocation_pct, ""
    size = size_for_atr(signal.atr_pct, cfg.sizing)
    if size.pct is None:
        return cfg.start_allocation_pct, f"{size.reason}, fixed "
    return round(size.pct, 4), f"volatility sizing ({size.reason}): "


def _decide_held(t: _Tick, position: PositionState) -> Decision:
    cfg, coin, bid = t.config, t.coin, t.market.bid
    acb, stage = position.avg_cost, position.dca_stage
    if acb <= 0:
        why = f"no cost basis for {coin} (cost {_usd(position.cost_usd)})"
        return Decision(coin, (), position.trailing, f"no trailing sell or DCA: {why}", why)
    step = step_trailing(cfg, position.trailing, acb, stage, bid)
    st = step.state
    pm = cfg.pm_start_pct_no_dca if stage == 0 else cfg.pm_start_pct_with_dca
    base_txt = f"base line {_price(step.base_line)} = avg cost {_price(acb)} + {pm:g}%"
    if step.sell:
        reason = (
            f"trailing sell {coin}: bid {_price(bid)} fell under the line {_price(st.line)}"
            f" after being above it (peak {_price(st.peak)}, gap {cfg.trailing_gap_pct:g}%,"
            f" {base_txt}); sell all {position.quantity:.8g} {coin}"
        )
        qty = position.quantity
        intent = OrderIntent(coin, Side.SELL, OrderTag.TRAIL_SELL, reason, quantity=qty)
        return Decision(coin, (intent,), replace(st, was_above=True), reason)
    trail_txt = (
        f"trailing active, line {_price(st.line)}, peak {_price(st.peak)}"
        if st.active
        else f"trailing waits for bid ≥ {_price(st.line)} ({base_txt})"
    )
    dca = _dca(t, position)
    if isinstance(dca, OrderIntent):
        return Decision(coin, (dca,), None, f"{dca.reason}; trailing reset")
    return Decision(coin, (), st, f"hold {coin}: {trail_txt}; {dca}")


def _dca(t: _Tick, position: PositionState) -> OrderIntent | str:
    """A DCA buy, or the reason (text) why none is made (spec §3.7)."""
    cfg, coin, stage, ask = t.config, t.coin, position.dca_stage, t.market.ask
    pnl = buy_pnl_pct(position.avg_cost, ask)
    pnl_txt = f"buy PnL {pnl:+.2f}% (ask {_price(ask)} vs avg cost {_price(position.avg_cost)})"
    hard, need = cfg.hard_level(stage), cfg.neural_level(stage)
    bad_signal = t.signal_problem
    long_level = t.signal.long_level if t.signal is not None and not bad_signal else None
    trigger = dca_trigger(cfg, position, ask, long_level, t.signal)
    if not trigger:
        if bad_signal:
            neural = f"neural ignored: {bad_signal}"
        elif need is None:
            neural = "no neural trigger past level 7"
        elif long_level is not None and long_level < need:
            neural = f"LONG {long_level} < N{need}"
        else:
            neural = f"LONG {long_level} ≥ N{need} but PnL is not negative"
        return f"no DCA: {pnl_txt} above hard tier {stage + 1} {hard:+.2f}%, {neural}"
    head = f"DCA stage {stage + 1} trigger ({trigger}, {pnl_txt})"
    limit = cfg.max_dca_buys_per_24h
    if limit == 0:
        return f"{head} but DCA is off (max_dca_buys_per_24h = 0)"
    done = position.dca_buys_in_window(t.now)
    if done >= limit:
        return f"{head} but {done} of {limit} DCA buys already made in the last 24 h"
    value = position.quantity * t.market.bid
    amount = value * cfg.dca_multiplier
    sizing = f"{_usd(amount)} = value {_usd(value)} × {cfg.dca_multiplier:g}"
    if amount < cfg.min_order:
        return f"{head} but {sizing} is below the minimum order {_usd(cfg.min_order)}"
    if amount > t.account.buying_power:
        return f"{head} but {sizing} is more than the cash {_usd(t.account.buying_power)}"
    reason = (
        f"DCA {coin} stage {stage + 1}: {trigger}, {pnl_txt}; buy {sizing}"
        f" ≈ {buy_quantity(amount, ask):.8f} {coin} at the ask; DCA buys in 24 h:"
        f" {done + 1}/{limit}"
    )
    return OrderIntent(coin, Side.BUY, OrderTag.DCA, reason, usd_amount=amount)


def dca_trigger(
    config: StrategyConfig,
    position: PositionState,
    ask: float,
    long_level: int | None,
    signal: Signal | None = None,
) -> str:
    """What makes this ask a DCA (spec §3.7: the hard tier, or the neural level while the
    buy PnL is negative), as text; "" when nothing does. ``long_level`` None: no usable signal."""
    stage = position.dca_stage
    pnl = buy_pnl_pct(position.avg_cost, ask)
    hard, need = config.hard_level(stage), config.neural_level(stage)
    if pnl <= hard:
        return f"hard tier {stage + 1} {hard:+.2f}%"
    if need is not None and long_level is not None and long_level >= need and pnl < 0:
        return f"neural N{need}: LONG {long_level} ≥ {need}{_crossed(signal)}, PnL < 0"
    return ""


def quiet_hold(
    config: StrategyConfig,
    position: PositionState,
    market: MarketView,
    long_level: int | None,
    now: float,
) -> TrailingState | None:
    """The trailing state a held coin keeps when :func:`decide` would send no order this tick,
    or None when decide has something to do or say (a sell, a DCA trigger, a bad quote or
    cost basis). The same rules without the reason texts: the backtester asks this at every
    step of the simulated clock and calls decide only when it answers None."""
    if quote_problem(market, now, config) or position.avg_cost <= 0:
        return None
    step = step_trailing(
        config, position.trailing, position.avg_cost, position.dca_stage, market.bid
    )
    if step.sell or dca_trigger(config, position, market.ask, long_level):
        return None
    return step.state


def _crossed(signal: Signal | None) -> str:
    """ " (2h, 4h below their low bound)" — the timeframes behind a LONG level."""
    if signal is None:
        return ""
    names = [
        tf.timeframe.value
        for tf in signal.timeframes
        if math.isfinite(tf.low_bound) and tf.low_bound > signal.price
    ]
    return f" ({', '.join(names)} below their low bound)" if names else ""


def _usd(x: float) -> str:
    return f"${x:,.2f}"
