"""pt_strategy / pt_strategy_display: every rule and worked example of spec §3.6-3.8 and §4.4.

All numbers are worked out by hand in the comments; the clock is a plain number passed in.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from pt_config import parse
from pt_config_schema import Settings
from pt_strategy import (
    Account,
    Decision,
    MarketView,
    PositionState,
    StrategyConfig,
    TrailingState,
    buy_pnl_pct,
    buy_quantity,
    decide,
    decide_all,
    quote_problem,
    reset_trailing_on_settings_change,
    sell_pnl_pct,
    step_trailing,
    trailing_settings_changed,
)
from pt_strategy_display import dca_affordability, dca_line, neural_lines
from pt_types import DAY, OrderTag, Side, Signal, Timeframe, TimeframeSignal

NOW = 1_700_000_000.0
CFG = StrategyConfig(coins=("BTC", "ETH"))
RICH = Account(cash=10_000.0, total_value=10_000.0)
# The spec's spaced low bounds (§2.6 worked example): N1..N7.
LOWS = (99.5, 99.2515, 98.7562, 98.0179, 97.0420, 95.8359, 94.4082)


def signal(
    long_level: int = 0,
    short_level: int = 0,
    *,
    coin: str = "BTC",
    time: float = NOW,
    price: float = 100.0,
    lows: tuple[float, ...] = (),
) -> Signal:
    tfs = tuple(
        TimeframeSignal(tf, 0, low * 1.02, low, low * 1.03, low)
        for tf, low in zip(Timeframe, lows, strict=False)
    )
    return Signal(coin, price, long_level, short_level, time, tfs)


def market(bid: float, ask: float, time: float = NOW) -> MarketView:
    return MarketView(bid=bid, ask=ask, time=time)


def held(
    qty: float,
    cost: float,
    *,
    stage: int = 0,
    dca_times: tuple[float, ...] = (),
    opened_at: float = 0.0,
    trailing: TrailingState | None = None,
    coin: str = "BTC",
) -> PositionState:
    return PositionState(coin, qty, cost, stage, dca_times, opened_at, trailing)


def run(
    pos: PositionState | None,
    mkt: MarketView | None,
    sig: Signal | None = None,
    *,
    config: StrategyConfig = CFG,
    account: Account = RICH,
    coin: str = "BTC",
) -> Decision:
    return decide(config, coin, market=mkt, signal=sig, position=pos, account=account, now=NOW)


# --- trailing profit margin (§3.6) --------------------------------------------------------------


def test_trailing_worked_example_sells_on_the_fourth_tick() -> None:
    # acb 100, no DCA: base line 105. Ticks 104, 105.2, 106, 105.4 (ask 0.1 above the bid).
    pos = held(1.0, 100.0)
    expected = [
        (False, 105.0, 0.0),  # 104 < 105: inactive, line at the base line
        (True, 105.0, 105.2),  # activates; 105.2 × 0.995 = 104.674 < 105 keeps the line
        (True, 105.47, 106.0),  # peak 106 -> line 106 × 0.995 = 105.47
    ]
    for bid, (active, line, peak) in zip((104.0, 105.2, 106.0), expected, strict=True):
        d = run(pos, market(bid, bid + 0.1), signal())
        assert d.intents == ()
        assert d.trailing is not None
        assert (d.trailing.active, d.trailing.peak) == (active, peak)
        assert d.trailing.line == pytest.approx(line)
        pos = held(1.0, 100.0, trailing=d.trailing)
    d = run(pos, market(105.4, 105.5), signal())  # was above, 105.4 < 105.47 -> SELL
    assert len(d.intents) == 1
    sell = d.intents[0]
    assert (sell.side, sell.tag, sell.quantity, sell.usd_amount) == (
        Side.SELL,
        OrderTag.TRAIL_SELL,
        1.0,
        None,
    )
    assert "bid 105.4 fell under the line 105.47" in sell.reason
    assert "peak 106" in sell.reason
    assert "base line 105 = avg cost 100 + 5%" in sell.reason
    assert d.reason == sell.reason


def test_sell_kept_armed_so_a_failed_sell_is_retried() -> None:
    armed = TrailingState(True, 105.47, 106.0, True, CFG.trailing_settings)
    d = run(held(1.0, 100.0, trailing=armed), market(105.4, 105.5))
    assert d.trailing is not None and d.trailing.was_above
    # The sell did not fill: the same state next tick sells again.
    d2 = run(held(1.0, 100.0, trailing=d.trailing), market(105.3, 105.4))
    assert [i.tag for i in d2.intents] == [OrderTag.TRAIL_SELL]


def test_no_sell_without_having_been_above_on_the_previous_tick() -> None:
    # Active, but the previous tick was already under the line: no sell (the original's rule).
    state = TrailingState(True, 105.47, 106.0, False, CFG.trailing_settings)
    step = step_trailing(CFG, state, 100.0, 0, 105.0)
    assert not step.sell
    assert not step.state.was_above
    assert step.state.line == pytest.approx(105.47)


def test_line_rises_only_once_the_peak_passes_base_over_0995() -> None:
    state = TrailingState(True, 105.0, 105.0, True, CFG.trailing_settings)
    # peak 105.5 -> 105.5 × 0.995 = 104.9725 < 105: line stays 105
    assert step_trailing(CFG, state, 100.0, 0, 105.5).state.line == pytest.approx(105.0)
    # peak 105.6 -> 105.6 × 0.995 = 105.072
    assert step_trailing(CFG, state, 100.0, 0, 105.6).state.line == pytest.approx(105.072)


def test_line_is_never_lowered_once_active_and_follows_base_while_inactive() -> None:
    active = TrailingState(True, 105.47, 106.0, True, CFG.trailing_settings)
    # A lower basis (acb 90, stage 1: base 92.25) does not pull an active line down.
    step = step_trailing(CFG, active, 90.0, 1, 105.6)
    assert step.base_line == pytest.approx(92.25)
    assert step.state.line == pytest.approx(105.47)
    # A higher base line lifts it: acb 102, stage 0 -> base 107.1 > 105.47.
    assert step_trailing(CFG, active, 102.0, 0, 105.6).state.line == pytest.approx(107.1)
    # Inactive at 105 (acb 100, stage 0); after a DCA (acb 95, stage 1) it follows the base line
    # down to 95 × 1.025 = 97.375.
    inactive = TrailingState(False, 105.0, 0.0, False, CFG.trailing_settings)
    step = step_trailing(CFG, inactive, 95.0, 1, 90.0)
    assert not step.state.active
    assert step.state.line == pytest.approx(97.375)


def test_base_line_uses_the_with_dca_margin_after_a_dca() -> None:
    # stage 1, acb 100: base 102.5; bid 102.6 activates, 103 then 102.4 sells (line 102.5).
    pos = held(2.0, 200.0, stage=1)
    d = run(pos, market(102.6, 102.7))
    assert d.trailing is not None and d.trailing.active
    assert d.trailing.line == pytest.approx(102.5)
    d = run(held(2.0, 200.0, stage=1, trailing=d.trailing), market(102.4, 102.5))
    assert [(i.tag, i.quantity) for i in d.intents] == [(OrderTag.TRAIL_SELL, 2.0)]


def test_changed_trailing_settings_reset_the_state() -> None:
    old = CFG
    new = StrategyConfig(coins=("BTC", "ETH"), trailing_gap_pct=1.0)
    armed = TrailingState(True, 105.47, 106.0, True, old.trailing_settings)
    assert trailing_settings_changed(old, new)
    assert reset_trailing_on_settings_change(old, new, {"BTC": armed}) == {"BTC": None}
    only_coins = StrategyConfig(coins=("BTC",))
    assert not trailing_settings_changed(old, only_coins)
    assert reset_trailing_on_settings_change(old, only_coins, {"BTC": armed}) == {"BTC": armed}
    # A persisted state built with other settings is treated as new (no sell at 105.4, line 105).
    step = step_trailing(new, armed, 100.0, 0, 105.4)
    assert not step.sell
    assert (step.state.active, step.state.peak) == (True, 105.4)
    assert step.state.line == pytest.approx(105.0)


# --- DCA (§3.7) ---------------------------------------------------------------------------------


def test_dca_worked_example() -> None:
    # 0.001 BTC at acb 100 000; ask 97 400 -> buy PnL -2.6 % ≤ -2.5 %; value 0.001 × 97 000 = 97
    # -> 97 × 2 = $194.00 -> 194 / 97 400 = 0.00199179 BTC.
    pos = held(0.001, 100.0)
    assert buy_pnl_pct(pos.avg_cost, 97_400) == pytest.approx(-2.6)
    assert sell_pnl_pct(pos.avg_cost, 97_000) == pytest.approx(-3.0)
    d = run(pos, market(97_000, 97_400), signal())
    assert len(d.intents) == 1
    buy = d.intents[0]
    assert (buy.side, buy.tag, buy.quantity) == (Side.BUY, OrderTag.DCA, None)
    assert buy.usd_amount == pytest.approx(194.0)
    assert buy_quantity(194.0, 97_400) == 0.00199179
    assert "hard tier 1 -2.50%" in buy.reason
    assert "buy PnL -2.60% (ask 97,400 vs avg cost 100,000)" in buy.reason
    assert "buy $194.00 = value $97.00 × 2" in buy.reason
    assert "0.00199179 BTC" in buy.reason
    assert "DCA buys in 24 h: 1/2" in buy.reason
    assert d.trailing is None  # a DCA resets the trailing state


@pytest.mark.parametrize(
    ("stage", "ask", "dca"),
    [
        (0, 97_500, True),  # -2.5 % ≤ -2.5 %
        (0, 97_600, False),  # -2.4 %
        (1, 96_000, False),  # -4 % > -5 %
        (1, 95_000, True),  # -5 %
        (3, 80_000, True),  # -20 %
        (6, 50_000, True),  # -50 %, the last level
        (9, 50_000, True),  # the last level repeats
        (9, 50_100, False),  # -49.9 %
    ],
)
def test_hard_tiers_by_stage(stage: int, ask: float, dca: bool) -> None:
    pos = held(0.001, 100.0, stage=stage)
    d = run(pos, market(ask - 100, ask), signal(), config=StrategyConfig(coins=("BTC",)))
    assert bool(d.intents) is dca, d.reason


@pytest.mark.parametrize(
    ("start", "stage", "need"),
    [(3, 0, 4), (3, 1, 5), (3, 2, 6), (3, 3, 7), (5, 0, 6), (5, 1, 7)],
)
def test_neural_trigger_is_start_level_plus_one_plus_stage(
    start: int, stage: int, need: int
) -> None:
    cfg = StrategyConfig(coins=("BTC",), trade_start_level=start)
    pos = held(0.001, 100.0, stage=stage)  # ask 99 000: -1 %, above every hard tier
    mkt = market(98_900, 99_000)
    assert run(pos, mkt, signal(need - 1), config=cfg).intents == ()
    d = run(pos, mkt, signal(need), config=cfg)
    assert [i.tag for i in d.intents] == [OrderTag.DCA]
    assert f"neural N{need}: LONG {need} ≥ {need}" in d.reason
    assert d.intents[0].usd_amount == pytest.approx(0.001 * 98_900 * 2)


@pytest.mark.parametrize(("start", "stage"), [(3, 4), (3, 6), (5, 2), (7, 0)])
def test_neural_trigger_stops_past_level_7(start: int, stage: int) -> None:
    cfg = StrategyConfig(coins=("BTC",), trade_start_level=start)
    d = run(held(0.001, 100.0, stage=stage), market(98_900, 99_000), signal(7), config=cfg)
    assert d.intents == ()
    assert "no neural trigger past level 7" in d.reason


def test_neural_trigger_needs_a_loss() -> None:
    # ask 100 050 > acb 100 000: PnL +0.05 %, LONG 7 does not add.
    d = run(held(0.001, 100.0), market(100_000, 100_050), signal(7))
    assert d.intents == ()
    assert "LONG 7 ≥ N4 but PnL is not negative" in d.reason


def test_start_level_5_ignores_the_originals_fixed_plus_four() -> None:
    cfg = StrategyConfig(coins=("BTC",), trade_start_level=5)
    d = run(held(0.001, 100.0), market(98_900, 99_000), signal(4), config=cfg)
    assert d.intents == ()
    assert "LONG 4 < N6" in d.reason


def test_24h_window_allows_two_then_refuses_then_rolls() -> None:
    t0 = NOW - 3_600.0
    pos0 = held(0.001, 100.0, opened_at=t0 - 10)
    first = run(pos0, market(97_000, 97_400))
    assert [i.tag for i in first.intents] == [OrderTag.DCA]
    # after the first DCA at t0: stage 1, acb 0.003 BTC for $294 = 98 000; ask 93 000 is -5.1 %
    pos1 = held(0.003, 294.0, stage=1, dca_times=(t0,), opened_at=t0 - 10)
    second = run(pos1, market(92_900, 93_000))
    assert [i.tag for i in second.intents] == [OrderTag.DCA]
    assert "DCA buys in 24 h: 2/2" in second.reason
    # after the second at t0 + 60: stage 2 (-10 %), acb 0.009 BTC for $851.40 = 94 600
    pos2 = held(0.009, 851.4, stage=2, dca_times=(t0, t0 + 60), opened_at=t0 - 10)
    mkt = market(80_000, 80_100)  # -15.3 %
    third = run(pos2, mkt)
    assert third.intents == ()
    assert "but 2 of 2 DCA buys already made in the last 24 h" in third.reason
    # Once t0 is 24 h old, one slot is free again.
    later = decide(
        CFG, "BTC", market=market(80_000, 80_100, t0 + DAY), signal=None, position=pos2,
        account=RICH, now=t0 + DAY,
    )  # fmt: skip
    assert [i.tag for i in later.intents] == [OrderTag.DCA]
    assert pos2.dca_buys_in_window(t0 + DAY - 1) == 2
    assert pos2.dca_buys_in_window(t0 + DAY) == 1


def test_dcas_before_the_trade_started_do_not_count() -> None:
    pos = held(0.001, 100.0, dca_times=(NOW - 2_000, NOW - 1_000), opened_at=NOW - 1_500)
    assert pos.dca_buys_in_window(NOW) == 1
    d = run(pos, market(97_000, 97_400))
    assert [i.tag for i in d.intents] == [OrderTag.DCA]


def test_zero_max_dca_buys_disables_dca() -> None:
    cfg = StrategyConfig(coins=("BTC",), max_dca_buys_per_24h=0)
    d = run(held(0.001, 100.0), market(50_000, 50_100), signal(7), config=cfg)
    assert d.intents == ()
    assert "DCA is off (max_dca_buys_per_24h = 0)" in d.reason
    assert StrategyConfig.from_settings(Settings(max_dca_buys_per_24h=0)).max_dca_buys_per_24h == 0


def test_dca_never_spends_more_than_the_cash() -> None:
    poor = Account(cash=100.0, total_value=197.0)
    d = run(held(0.001, 100.0), market(97_000, 97_400), account=poor)
    assert d.intents == ()
    assert "$194.00 = value $97.00 × 2 is more than the cash $100.00" in d.reason


def test_dca_below_the_minimum_order_is_skipped() -> None:
    # 0.000002 BTC × 97 000 × 2 = $0.388 < $0.50
    d = run(held(0.000002, 0.2), market(97_000, 97_400))
    assert d.intents == ()
    assert "$0.39 = value $0.19 × 2 is below the minimum order $0.50" in d.reason


def test_no_dca_in_the_same_tick_as_a_trailing_sell() -> None:
    # Active line 105.47, above last tick; a crash to bid 90 both sells and would add (-9.9 %).
    armed = TrailingState(True, 105.47, 106.0, True, CFG.trailing_settings)
    d = run(held(1.0, 100.0, trailing=armed), market(90.0, 90.1), signal(7))
    assert [i.tag for i in d.intents] == [OrderTag.TRAIL_SELL]


def test_hard_dca_and_trailing_still_work_without_a_fresh_signal() -> None:
    stale = signal(7, time=NOW - 121)
    d = run(held(0.001, 100.0), market(97_000, 97_400), stale)
    assert [i.tag for i in d.intents] == [OrderTag.DCA]
    # A neural-only DCA (-1 %) does not happen on a stale signal, and the reason says why.
    d = run(held(0.001, 100.0), market(98_900, 99_000), stale)
    assert d.intents == ()
    assert "neural ignored: signal is stale (121 s old, max 120 s)" in d.reason


# --- trade start (§3.8) -------------------------------------------------------------------------


def test_entry_on_long_at_start_level_and_short_zero() -> None:
    # LONG 3 from 2h, 4h, 8h (their low bounds above the price 100); 1h's low is below.
    sig = signal(3, lows=(99.0, 101.0, 102.0, 103.0))
    d = run(None, market(99.9, 100.0), sig)
    assert len(d.intents) == 1
    buy = d.intents[0]
    assert (buy.side, buy.tag, buy.usd_amount) == (Side.BUY, OrderTag.ENTRY, 0.5)
    assert "LONG 3 ≥ start level 3 (2h, 4h, 8h below their low bound) and SHORT 0" in buy.reason
    assert "0.005% of account $10,000.00 = $0.50, minimum $0.50" in buy.reason
    assert d.trailing is None


@pytest.mark.parametrize(
    ("long_level", "short_level", "why"),
    [(2, 0, "LONG 2 < start level 3"), (3, 1, "SHORT 1 is not 0"), (7, 2, "SHORT 2 is not 0")],
)
def test_no_entry_below_start_level_or_with_a_short(
    long_level: int, short_level: int, why: str
) -> None:
    d = run(None, market(99.9, 100.0), signal(long_level, short_level))
    assert d.intents == ()
    assert why in d.reason
    assert d.problem == ""


@pytest.mark.parametrize(
    ("total", "cash", "venue_min", "amount"),
    [
        (100_000.0, 50_000.0, None, 5.0),  # 0.005 % of 100 000
        (10_000.0, 10_000.0, None, 0.5),  # 0.005 % of 10 000 = 0.50
        (1_000.0, 1_000.0, None, 0.5),  # 0.05 -> the $0.50 floor
        (1_000.0, 1_000.0, 2.0, 2.0),  # the venue minimum is higher
        (100_000.0, 3.0, None, 3.0),  # capped to the cash
    ],
)
def test_entry_size(total: float, cash: float, venue_min: float | None, amount: float) -> None:
    cfg = StrategyConfig(coins=("BTC",), venue_min_order_usd=venue_min)
    d = run(None, market(99.9, 100.0), signal(4), config=cfg, account=Account(cash, total))
    assert [i.usd_amount for i in d.intents] == [pytest.approx(amount)]


@pytest.mark.parametrize(
    ("atr_pct", "amount", "said"),
    [
        (3.0, 200.0, "volatility sizing (ATR 14 is 3.00% of the price (target 3%): 2% × 1.00 = "
                     "2.00% of the account): 2% of account $10,000.00 = $200.00"),
        (6.0, 100.0, "2% × 0.50 = 1.00% of the account"),
        (12.0, 100.0, "2% × 0.25 = 1.00% of the account (at the lower bound)"),
        (0.3, 1_000.0, "2% × 10.00 = 10.00% of the account (at the upper bound)"),
        (None, 0.5, "no volatility size: ATR % unknown, fixed 0.005% of account"),
        (0.0, 0.5, "no volatility size: no price movement, fixed 0.005%"),
    ],
)  # fmt: skip
def test_volatility_sizing_of_entries(atr_pct: float | None, amount: float, said: str) -> None:
    settings = parse({"coins": ["BTC"], "sizing": {"method": "volatility"}})
    cfg = StrategyConfig.from_settings(settings)
    assert cfg.sizing is not None and cfg.sizing.base_pct == 2.0
    sig = replace(signal(4), atr_pct=atr_pct)
    d = run(None, market(99.9, 100.0), sig, config=cfg)
    assert [i.usd_amount for i in d.intents] == [pytest.approx(amount)]
    assert said in d.intents[0].reason
    fixed = StrategyConfig.from_settings(parse({"coins": ["BTC"]}))
    assert fixed.sizing is None
    assert [i.usd_amount for i in run(None, market(99.9, 100.0), sig, config=fixed).intents] == [
        0.5
    ]


def test_no_entry_when_cash_is_below_the_minimum() -> None:
    d = run(None, market(99.9, 100.0), signal(4), account=Account(0.4, 10_000.0))
    assert d.intents == ()
    assert "cash $0.40 is below the minimum order $0.50" in d.reason


def test_decide_all_does_not_spend_the_same_cash_twice() -> None:
    sigs = {"BTC": signal(4), "ETH": signal(4, coin="ETH")}
    mkts = {"BTC": market(99.9, 100.0), "ETH": market(9.99, 10.0)}
    ds = decide_all(
        CFG, markets=mkts, signals=sigs, positions={}, account=Account(0.8, 10_000.0), now=NOW
    )
    assert [d.coin for d in ds] == ["BTC", "ETH"]
    assert [i.usd_amount for i in ds[0].intents] == [0.5]
    assert ds[1].intents == ()
    assert "cash $0.30 is below the minimum order $0.50" in ds[1].reason


# --- managed coins only, bad input --------------------------------------------------------------


def test_unmanaged_holdings_are_left_alone() -> None:
    shib = held(1_000_000.0, 50.0, coin="SHIB")  # -90 %: would DCA if it were managed
    d = run(shib, market(0.000005, 0.0000051), signal(7, coin="SHIB"), coin="SHIB")
    assert d.intents == ()
    assert "SHIB is not managed by the bot: left alone" in d.reason
    ds = decide_all(
        CFG,
        markets={"SHIB": market(0.000005, 0.0000051)},
        signals={"SHIB": signal(7, coin="SHIB")},
        positions={"SHIB": shib},
        account=RICH,
        now=NOW,
    )
    assert [d.coin for d in ds] == ["BTC", "ETH"]
    assert all(d.intents == () for d in ds)


@pytest.mark.parametrize(
    ("mkt", "why"),
    [
        (None, "no price"),
        (MarketView(0.0, 100.0, NOW), "bad price (bid 0.0, ask 100.0)"),
        (MarketView(math.nan, 100.0, NOW), "bad price (bid nan, ask 100.0)"),
        (MarketView(99.0, math.inf, NOW), "bad price (bid 99.0, ask inf)"),
        (MarketView(100.0, 99.0, NOW), "ask 99 below bid 100"),
        (MarketView(100.0, 103.0, NOW), "spread 3.00% over 2% (bid 100, ask 103)"),
        (MarketView(99.9, 100.0, NOW - 61), "price is stale (61 s old, max 60 s)"),
        (
            MarketView(102.9, 103.1, NOW, reference=100.0),
            "broker price 103 is 3.00% from the other venues' median 100 (max 2%)",
        ),
        (
            MarketView(96.9, 97.1, NOW, reference=100.0),
            "broker price 97 is 3.00% from the other venues' median 100 (max 2%)",
        ),
        (
            MarketView(99.9, 100.0, NOW, reference=0.0),
            "bad reference price from the other venues (0.0)",
        ),
    ],
)
def test_bad_prices_never_trade(mkt: MarketView | None, why: str) -> None:
    armed = TrailingState(True, 105.47, 106.0, True, CFG.trailing_settings)
    for pos in (None, held(0.001, 100.0, trailing=armed)):
        d = run(pos, mkt, signal(7))
        assert d.intents == ()
        assert d.problem == why
        assert d.reason == f"no order for BTC: {why}"
        assert d.trailing == (armed if pos else None)  # state untouched


def test_a_broker_price_within_the_deviation_limit_trades() -> None:
    d = run(None, MarketView(101.8, 102.0, NOW, reference=100.0), signal(7))
    assert d.problem == "" and len(d.intents) == 1
    tight = replace(CFG, max_deviation_pct=1.0)
    assert "max 1%" in quote_problem(MarketView(101.8, 102.0, NOW, reference=100.0), NOW, tight)


@pytest.mark.parametrize(
    ("sig", "why"),
    [
        (None, "no signal from the thinker"),
        (signal(7, time=NOW - 300), "signal is stale (300 s old, max 120 s)"),
        (signal(7, coin="ETH"), "signal is for ETH, not BTC"),
        (signal(9), "signal levels out of range (LONG 9, SHORT 0)"),
    ],
)
def test_bad_signals_never_start_a_trade(sig: Signal | None, why: str) -> None:
    d = run(None, market(99.9, 100.0), sig)
    assert d.intents == ()
    assert d.problem == why
    assert d.reason == f"no entry for BTC: {why}"


def test_held_coin_without_cost_basis_does_nothing() -> None:
    d = run(held(0.001, 0.0), market(50_000, 50_100), signal(7))
    assert d.intents == ()
    assert "no cost basis for BTC" in d.problem


def test_hold_reason_names_the_line_and_the_dca_tier() -> None:
    d = run(held(0.001, 100.0), market(99_000, 99_100), signal(2))
    assert d.reason == (
        "hold BTC: trailing waits for bid ≥ 105,000 (base line 105,000 = avg cost 100,000 + 5%);"
        " no DCA: buy PnL -0.90% (ask 99,100 vs avg cost 100,000) above hard tier 1 -2.50%,"
        " LONG 2 < N4"
    )


def test_from_settings_copies_the_trading_keys() -> None:
    s = Settings(coins=("BTC", "SOL"), trade_start_level=4, dca_levels=(-1.0, -3.0))
    cfg = StrategyConfig.from_settings(s, venue_min_order_usd=1.0, max_spread_pct=0.5)
    assert cfg.coins == ("BTC", "SOL")
    assert (cfg.trade_start_level, cfg.dca_levels, cfg.dca_multiplier) == (4, (-1.0, -3.0), 2.0)
    assert cfg.trailing_settings == (5.0, 2.5, 0.5)
    assert (cfg.min_order, cfg.max_spread_pct, cfg.max_dca_buys_per_24h) == (1.0, 0.5, 2)
    assert (cfg.hard_level(0), cfg.hard_level(1), cfg.hard_level(5)) == (-1.0, -3.0, -3.0)
    assert (cfg.neural_level(0), cfg.neural_level(2), cfg.neural_level(3)) == (5, 7, None)


# --- display helpers (§3.7 display line, §4.4 affordability) ------------------------------------


def test_neural_lines_skip_inactive_timeframes() -> None:
    assert neural_lines(signal(lows=LOWS)) == LOWS
    assert neural_lines(signal(lows=(99.0, math.nan, 100.0, 99.0))) == (100.0, 99.0)
    assert neural_lines(None) == ()


@pytest.mark.parametrize(
    ("start", "stage", "price", "source", "display"),
    [
        (3, 0, 98.0179, "NEURAL N4", "-2.50% / N4"),  # N4 98.0179 above hard 97.5
        (3, 1, 97.0420, "NEURAL N5", "-5.00% / N5"),  # N5 above hard 95
        (3, 3, 94.4082, "NEURAL N7", "-20.00% / N7"),  # N7 above hard 80
        (3, 4, 70.0, "HARD", "-30.00%"),  # N8 does not exist
        (5, 0, 97.5, "HARD", "-2.50% / N6"),  # N6 95.8359 below hard 97.5
    ],
)
def test_dca_line_whichever_is_hit_first(
    start: int, stage: int, price: float, source: str, display: str
) -> None:
    cfg = StrategyConfig(coins=("BTC",), trade_start_level=start)
    line = dca_line(cfg, held(1.0, 100.0, stage=stage), signal(lows=LOWS))
    assert line.price == pytest.approx(price)
    assert (line.source, line.display) == (source, display)
    assert line.pct_from_cost == pytest.approx(price - 100.0)


def test_dca_line_edge_cases() -> None:
    pos = held(1.0, 100.0)
    # Too few active lines for N4: hard tier.
    assert dca_line(CFG, pos, signal(lows=(99.0, 98.0))).source == "HARD"
    # A neural line above the cost basis is shown at the cost (the trigger needs a loss).
    above = dca_line(CFG, pos, signal(lows=(104.0, 103.0, 102.0, 101.0)))
    assert (above.price, above.source) == (100.0, "NEURAL N4")
    assert dca_line(CFG, None, None).display == "N/A"
    off = StrategyConfig(coins=("BTC",), max_dca_buys_per_24h=0)
    assert dca_line(off, pos, None).display == "DCA off"


def test_dca_affordability() -> None:
    # $10 000, alloc $0.50, ×3 per stage. Single: 0.5·3^9 = 9841.5 ≤ 10 000 < 0.5·3^10 -> 9.
    # Spread (2 coins, $1.00): 3^8 = 6561 ≤ 10 000 < 19 683 -> 8.
    a = dca_affordability(CFG, 10_000.0)
    assert (a.spread, a.single) == (8, 9)
    five = StrategyConfig(coins=("BTC", "ETH", "XRP", "BNB", "DOGE"))
    # $100: spread 2.5·3^3 = 67.5 ≤ 100 < 202.5 -> 3; single 0.5·3^4 = 40.5 ≤ 100 < 121.5 -> 4.
    a = dca_affordability(five, 100.0)
    assert (a.spread, a.single) == (3, 4)
    # $100 000: alloc $5; spread 25·3^8 = 164 025 > 100 000 ≥ 25·3^7 = 54 675 -> 7;
    # single 5·3^9 = 98 415 ≤ 100 000 -> 9.
    a = dca_affordability(five, 100_000.0)
    assert (a.spread, a.single) == (7, 9)
    zero = StrategyConfig(coins=("BTC",), dca_multiplier=0.0)
    a = dca_affordability(zero, 10_000.0)
    assert (a.spread, a.single) == (0, 0)
