"""The risk limits: each rule refuses a buy that breaks it and lets through one that does not;
the drawdown stop latches until resumed. Hand-worked numbers throughout."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from pt_config import parse
from pt_risk import (
    BuyCheck,
    DrawdownState,
    RiskLimits,
    check_buy,
    drawdown_from_json,
    drawdown_to_json,
    resume_drawdown,
    track_drawdown,
    volatility_cap_pct,
)

# $10,000 account: $3,000 in BTC, $1,000 in ETH; buying $500.
BASE = BuyCheck(
    coin="BTC", usd=500.0, entry=False, account_value=10_000.0,
    positions={"BTC": 3_000.0, "ETH": 1_000.0}, bid=100.0, ask=100.1,
)  # fmt: skip
OFF = RiskLimits()


def test_defaults_allow_everything_and_come_from_the_settings() -> None:
    assert check_buy(BASE, OFF).allowed
    assert RiskLimits.from_settings(parse({})) == OFF
    got = RiskLimits.from_settings(parse({"risk": {"max_coin_pct": 25, "drawdown_stop_pct": 15},
                                          "sizing": {"target_atr_pct": 4}}))  # fmt: skip
    assert (got.max_coin_pct, got.drawdown_stop_pct, got.target_atr_pct) == (25, 15, 4)


def test_exposure_limit() -> None:
    # after the buy: 3000 + 1000 + 500 = 4500 = 45 % of the account
    assert check_buy(BASE, replace(OFF, max_exposure_pct=45)).allowed
    v = check_buy(BASE, replace(OFF, max_exposure_pct=40))
    assert (v.allowed, v.rule) == (False, "max_exposure_pct")
    assert "45.0% of the account" in v.reason and "limit 40%" in v.reason


def test_concentration_limit() -> None:
    # BTC after the buy: 3500 = 35 %
    assert check_buy(BASE, replace(OFF, max_coin_pct=35)).allowed
    v = check_buy(BASE, replace(OFF, max_coin_pct=30))
    assert (v.allowed, v.rule) == (False, "max_coin_pct") and "BTC would be 35.0%" in v.reason
    # a coin not held yet counts only the buy: 5 %
    assert check_buy(replace(BASE, coin="XRP"), replace(OFF, max_coin_pct=5)).allowed


def test_volatility_limit_scales_with_atr() -> None:
    limits = replace(OFF, volatility_position_pct=20, target_atr_pct=3)
    assert volatility_cap_pct(3.0, limits) == 20.0
    assert volatility_cap_pct(6.0, limits) == 10.0  # twice as volatile: half the cap
    assert volatility_cap_pct(0.1, limits) == 100.0  # never above the whole account
    calm = check_buy(replace(BASE, atr_pct=1.5), limits)  # cap 40 % >= 35 %
    assert calm.allowed
    wild = check_buy(replace(BASE, atr_pct=3.0), limits)  # cap 20 % < 35 %
    assert (wild.allowed, wild.rule) == (False, "volatility_position_pct")
    assert "cap is 20% × 3/3.00 = 20.0%" in wild.reason


def test_volatility_limit_refuses_when_the_atr_is_unknown() -> None:
    limits = replace(OFF, volatility_position_pct=20)
    for atr in (None, math.nan, 0.0):
        v = check_buy(replace(BASE, atr_pct=atr), limits)
        assert not v.allowed and "not known yet" in v.reason


def test_spread_limit() -> None:
    # spread (100.1 - 100) / 100 = 0.1 %
    assert check_buy(BASE, replace(OFF, max_spread_pct=0.1)).allowed
    v = check_buy(BASE, replace(OFF, max_spread_pct=0.05))
    assert (v.allowed, v.rule) == (False, "max_spread_pct") and "0.100%" in v.reason


def test_venue_gap_limit() -> None:
    limits = replace(OFF, max_venue_gap_pct=0.5)
    assert check_buy(replace(BASE, venue_gap_pct=0.4), limits).allowed
    v = check_buy(replace(BASE, venue_gap_pct=0.7), limits)
    assert (v.allowed, v.rule) == (False, "max_venue_gap_pct") and "0.700% apart" in v.reason
    unknown = check_buy(BASE, limits)
    assert not unknown.allowed and "not known" in unknown.reason


def test_correlated_entry_is_flagged_or_refused() -> None:
    entry = replace(BASE, coin="ETH", entry=True, positions={"BTC": 3_000.0},
                    correlations={"BTC": 0.91})  # fmt: skip
    flagged = check_buy(entry, OFF)
    assert flagged.allowed and flagged.notes == (
        "ETH moves with BTC (correlation 0.91 > 0.8): little diversification",
    )
    refused = check_buy(entry, replace(OFF, block_correlated_entries=True))
    assert (refused.allowed, refused.rule) == (False, "block_correlated_entries")
    below = check_buy(replace(entry, correlations={"BTC": 0.79}),
                      replace(OFF, block_correlated_entries=True))  # fmt: skip
    assert below.allowed and below.notes == ()
    dca = check_buy(replace(entry, entry=False), replace(OFF, block_correlated_entries=True))
    assert dca.allowed  # only new entries are judged on diversification


def test_an_unknown_account_value_buys_nothing() -> None:
    for value in (0.0, math.nan, -5.0):
        v = check_buy(replace(BASE, account_value=value), OFF)
        assert not v.allowed and v.rule == "account"


def test_drawdown_stop_latches_until_resumed() -> None:
    limits = replace(OFF, drawdown_stop_pct=20)
    s = track_drawdown(None, 10_000, limits, now=1.0, wall=100.0)
    s = track_drawdown(s, 12_000, limits, now=2.0, wall=101.0)
    assert (s.peak, s.halted) == (12_000, False)
    s = track_drawdown(s, 9_700, limits, now=3.0, wall=102.0)  # 19.2 % down
    assert not s.halted and s.drawdown_pct(9_700) == pytest.approx(19.1666, abs=1e-3)
    s = track_drawdown(s, 9_600, limits, now=4.0, wall=103.0)  # exactly 20 %
    assert s.halted and (s.halted_at, s.halted_wall) == (4.0, 103.0)
    assert "20.0% below its peak ($9,600.00 vs $12,000.00, limit 20%)" in s.reason
    assert "no new entries or DCAs until you resume" in s.reason
    s = track_drawdown(s, 12_500, limits, now=5.0, wall=104.0)  # recovering does not release
    assert s.halted and s.halted_at == 4.0 and s.peak == 12_500
    fresh = resume_drawdown(9_000)
    assert (fresh.peak, fresh.halted) == (9_000, False)


def test_drawdown_stop_off_releases_and_bad_values_change_nothing() -> None:
    limits = replace(OFF, drawdown_stop_pct=10, drawdown_pause_all=True)
    s = track_drawdown(DrawdownState(100.0), 80.0, limits, now=1, wall=1)
    assert s.halted and "the trader is paused" in s.reason
    assert track_drawdown(s, math.nan, limits, now=2, wall=2) == s
    assert track_drawdown(s, 0.0, limits, now=2, wall=2) == s
    released = track_drawdown(s, 80.0, OFF, now=3, wall=3)
    assert (released.halted, released.peak) == (False, 100.0)


def test_drawdown_state_survives_json_and_rejects_garbage() -> None:
    s = DrawdownState(12_000.0, 4.0, 103.0, "why")
    assert drawdown_from_json(drawdown_to_json(s)) == s
    assert drawdown_from_json(drawdown_to_json(DrawdownState(5.0))) == DrawdownState(5.0)
    bad: object
    for bad in (None, [], {"peak": "x"}, {"nope": 1}):
        assert drawdown_from_json(bad) is None
