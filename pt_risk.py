"""Risk limits, checked by the trader before every buy, and the drawdown stop.

Pure: the account, the positions and the coin's market in; a verdict with its reason out. Every
limit is off (or permissive) by default, because the original strategy deliberately has no stop
loss; the user switches each on in the settings (``risk`` section).

Only buys (entries and DCAs) are checked: a sell never adds risk, and blocking one would keep a
position the user wanted out of. The exception is the drawdown stop with ``drawdown_pause_all``,
which the user asks for explicitly: then the trader sends nothing at all until resumed.

When a limit is on and the figure it needs is unknown (no ATR yet, no second venue's price),
the buy is refused and the reason says what is missing: when in doubt, do not trade.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pt_format import price_text
from pt_strategy import Decision, MarketView
from pt_types import OrderIntent, OrderTag, Side

if TYPE_CHECKING:
    from pt_config_schema import Settings


@dataclass(frozen=True)
class RiskLimits:
    """The ``risk`` settings (percents of the account value; 0 or 100 means off)."""

    max_exposure_pct: float = 100.0
    max_coin_pct: float = 100.0
    volatility_position_pct: float = 0.0
    target_atr_pct: float = 3.0
    max_spread_pct: float = 0.0
    max_venue_gap_pct: float = 0.0
    drawdown_stop_pct: float = 0.0
    drawdown_pause_all: bool = False
    correlation_threshold: float = 0.8
    block_correlated_entries: bool = False
    correlation_days: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> RiskLimits:
        """The ``risk`` section (same names) and the sizing's target ATR %."""
        return cls(**settings.risk.model_dump(), target_atr_pct=settings.sizing.target_atr_pct)


@dataclass(frozen=True)
class BuyCheck:
    """One buy as the risk rules see it.

    ``positions`` are the bot's holdings valued at the bid (coin → USD); ``venue_gap_pct`` is
    how far apart the venues' prices are (None: unknown); ``correlations`` maps each held coin
    to its return correlation with ``coin`` (a coin missing or None: unknown)."""

    coin: str
    usd: float
    entry: bool
    account_value: float
    positions: Mapping[str, float]
    bid: float
    ask: float
    atr_pct: float | None = None
    venue_gap_pct: float | None = None
    correlations: Mapping[str, float | None] | None = None


@dataclass(frozen=True)
class RiskVerdict:
    """``allowed`` False: ``rule`` names the limit and ``reason`` says why; ``notes`` are
    warnings that did not block (a diversification alert)."""

    allowed: bool
    rule: str = ""
    reason: str = ""
    notes: tuple[str, ...] = ()


def _usd(x: float) -> str:
    return f"${x:,.2f}"


def check_buy(buy: BuyCheck, limits: RiskLimits) -> RiskVerdict:
    """The first limit this buy breaks, or allowed (with any diversification notes)."""
    if not (math.isfinite(buy.account_value) and buy.account_value > 0):
        return RiskVerdict(False, "account", f"account value {buy.account_value!r} is unknown")
    notes, blocked = _correlation(buy, limits)
    for rule in (_exposure, _concentration, _volatility, _liquidity):
        verdict = rule(buy, limits)
        if verdict is not None:
            return replace(verdict, notes=notes)
    return blocked or RiskVerdict(True, notes=notes)


def _share(value: float, account: float) -> float:
    return value / account * 100.0


def _exposure(buy: BuyCheck, limits: RiskLimits) -> RiskVerdict | None:
    if limits.max_exposure_pct >= 100:
        return None
    held = sum(v for v in buy.positions.values() if v > 0)
    after = _share(held + buy.usd, buy.account_value)
    if after <= limits.max_exposure_pct:
        return None
    return RiskVerdict(False, "max_exposure_pct", (
        f"exposure would be {after:.1f}% of the account ({_usd(held)} in trades + {_usd(buy.usd)}"
        f" of {_usd(buy.account_value)}), limit {limits.max_exposure_pct:g}%"))  # fmt: skip


def _position_after(buy: BuyCheck) -> tuple[float, float]:
    value = max(buy.positions.get(buy.coin, 0.0), 0.0) + buy.usd
    return value, _share(value, buy.account_value)


def _concentration(buy: BuyCheck, limits: RiskLimits) -> RiskVerdict | None:
    if limits.max_coin_pct >= 100:
        return None
    value, share = _position_after(buy)
    if share <= limits.max_coin_pct:
        return None
    return RiskVerdict(False, "max_coin_pct", (
        f"{buy.coin} would be {share:.1f}% of the account ({_usd(value)} of "
        f"{_usd(buy.account_value)}), limit {limits.max_coin_pct:g}%"))  # fmt: skip


def volatility_cap_pct(atr_pct: float, limits: RiskLimits) -> float:
    """A position's largest share of the account: the set percent at the target ATR %, less
    for a more volatile coin, more for a calmer one (never above 100 %)."""
    return min(limits.volatility_position_pct * limits.target_atr_pct / atr_pct, 100.0)


def _volatility(buy: BuyCheck, limits: RiskLimits) -> RiskVerdict | None:
    if limits.volatility_position_pct <= 0:
        return None
    atr = buy.atr_pct
    if atr is None or not math.isfinite(atr) or atr <= 0:
        return RiskVerdict(False, "volatility_position_pct", (
            f"the volatility limit is on but {buy.coin}'s ATR % is not known yet "
            "(the thinker computes it from daily candles)"))  # fmt: skip
    cap = volatility_cap_pct(atr, limits)
    value, share = _position_after(buy)
    if share <= cap:
        return None
    return RiskVerdict(False, "volatility_position_pct", (
        f"{buy.coin} would be {share:.1f}% of the account ({_usd(value)}); with ATR {atr:.2f}% "
        f"its cap is {limits.volatility_position_pct:g}% × {limits.target_atr_pct:g}/{atr:.2f}"
        f" = {cap:.1f}%"))  # fmt: skip


def _liquidity(buy: BuyCheck, limits: RiskLimits) -> RiskVerdict | None:
    if limits.max_spread_pct > 0:
        spread = (buy.ask - buy.bid) / buy.bid * 100.0 if buy.bid > 0 else math.inf
        if not spread <= limits.max_spread_pct:
            quote = f"bid {price_text(buy.bid)}, ask {price_text(buy.ask)}"
            return RiskVerdict(False, "max_spread_pct", (
                f"{buy.coin} spread {spread:.3f}% ({quote}) is over the limit "
                f"{limits.max_spread_pct:g}%"))  # fmt: skip
    if limits.max_venue_gap_pct > 0:
        gap = buy.venue_gap_pct
        if gap is None or not math.isfinite(gap):
            return RiskVerdict(False, "max_venue_gap_pct", (
                f"the venue-gap limit is on but {buy.coin}'s prices at the other venues are "
                "not known"))  # fmt: skip
        if gap > limits.max_venue_gap_pct:
            return RiskVerdict(False, "max_venue_gap_pct", (
                f"{buy.coin}'s venues are {gap:.3f}% apart, over the limit "
                f"{limits.max_venue_gap_pct:g}%"))  # fmt: skip
    return None


def _correlation(buy: BuyCheck, limits: RiskLimits) -> tuple[tuple[str, ...], RiskVerdict | None]:
    """Diversification alerts for a new entry (notes), and the refusal when that is on."""
    if not buy.entry or not buy.correlations:
        return (), None
    held = [c for c, v in buy.positions.items() if v > 0 and c != buy.coin]
    found = sorted(
        ((rho, c) for c in held
         if (rho := buy.correlations.get(c)) is not None and rho > limits.correlation_threshold),
        reverse=True,
    )  # fmt: skip
    notes = tuple(
        f"{buy.coin} moves with {c} (correlation {rho:.2f} > {limits.correlation_threshold:g}):"
        " little diversification"
        for rho, c in found
    )
    if notes and limits.block_correlated_entries:
        return notes, RiskVerdict(False, "block_correlated_entries", notes[0])
    return notes, None


# -- the drawdown stop -------------------------------------------------------------------------


@dataclass(frozen=True)
class DrawdownState:
    """The account's peak value, and the stop once it tripped (latched until resumed).

    ``halted_at`` is the mode's time, ``halted_wall`` real time (a resume request from the hub
    counts only when it is newer)."""

    peak: float
    halted_at: float | None = None
    halted_wall: float | None = None
    reason: str = ""

    @property
    def halted(self) -> bool:
        return self.halted_at is not None

    def drawdown_pct(self, value: float) -> float:
        return (self.peak - value) / self.peak * 100.0 if self.peak > 0 else 0.0


def track_drawdown(
    state: DrawdownState | None, value: float, limits: RiskLimits, *, now: float, wall: float
) -> DrawdownState:
    """The new peak, and the stop if the value fell ``drawdown_stop_pct`` below it.

    An unusable value (not a positive number) changes nothing. Switching the limit off
    releases a stop that tripped."""
    if state is None:
        state = DrawdownState(value if math.isfinite(value) and value > 0 else 0.0)
    if not (math.isfinite(value) and value > 0):
        return state
    if limits.drawdown_stop_pct <= 0:
        return DrawdownState(max(state.peak, value))
    state = replace(state, peak=max(state.peak, value))
    fall = state.drawdown_pct(value)
    if state.halted or fall < limits.drawdown_stop_pct:
        return state
    reason = (
        f"drawdown stop: the account is {fall:.1f}% below its peak ({_usd(value)} vs "
        f"{_usd(state.peak)}, limit {limits.drawdown_stop_pct:g}%); "
        + ("the trader is paused" if limits.drawdown_pause_all else "no new entries or DCAs")
        + " until you resume"
    )
    return replace(state, halted_at=now, halted_wall=wall, reason=reason)


def resume_drawdown(value: float) -> DrawdownState:
    """After the user resumes, the drawdown is measured from the value at that moment."""
    return DrawdownState(value if math.isfinite(value) and value > 0 else 0.0)


def drawdown_to_json(state: DrawdownState) -> dict[str, object]:
    return {
        "peak": state.peak,
        "halted_at": state.halted_at,
        "halted_wall": state.halted_wall,
        "reason": state.reason,
    }


def drawdown_from_json(data: object) -> DrawdownState | None:
    """A stored state, or None when there is none or it is unreadable (a new peak is taken)."""
    if not isinstance(data, dict):
        return None
    try:
        peak = float(data["peak"])
        at, wall = data.get("halted_at"), data.get("halted_wall")
        return DrawdownState(
            peak if math.isfinite(peak) and peak > 0 else 0.0,
            None if at is None else float(at),
            None if wall is None else float(wall),
            str(data.get("reason", "")),
        )
    except (KeyError, TypeError, ValueError):
        return None


# -- applied to a tick's decisions -------------------------------------------------------------


@dataclass(frozen=True)
class CoinRiskInputs:
    """What the thinker and the venues know about a coin beyond its quote (None: unknown)."""

    atr_pct: float | None = None
    venue_gap_pct: float | None = None
    correlations: Mapping[str, float | None] | None = None


def gate_buys(
    decisions: tuple[Decision, ...],
    limits: RiskLimits,
    *,
    account_value: float,
    positions: Mapping[str, float],
    markets: Mapping[str, MarketView],
    inputs: Mapping[str, CoinRiskInputs],
    halted: str = "",
) -> tuple[tuple[Decision, ...], dict[str, str]]:
    """The decisions with every buy that breaks a limit removed (sells untouched), and why
    per coin. ``halted`` (the drawdown stop's reason) removes every buy. A buy allowed with a
    diversification note keeps the note in its reason (journal and notification show it).
    Buys earlier in the tick count toward the limits of later ones."""
    gate = _Gate(limits, account_value, dict(positions), markets, inputs, halted)
    return tuple(gate.decision(d) for d in decisions), gate.refused


@dataclass
class _Gate:
    limits: RiskLimits
    account_value: float
    held: dict[str, float]
    markets: Mapping[str, MarketView]
    inputs: Mapping[str, CoinRiskInputs]
    halted: str
    refused: dict[str, str] = field(default_factory=dict)

    def decision(self, d: Decision) -> Decision:
        if not any(i.side is Side.BUY for i in d.intents):
            return d
        intents = tuple(kept for i in d.intents if (kept := self._intent(d.coin, i)) is not None)
        if d.coin in self.refused and not intents:
            return replace(d, intents=(), reason=f"{d.reason} — refused: {self.refused[d.coin]}")
        return replace(d, intents=intents)

    def _intent(self, coin: str, intent: OrderIntent) -> OrderIntent | None:
        if intent.side is not Side.BUY:
            return intent
        verdict = self._judge(coin, intent)
        if not verdict.allowed:
            self.refused[coin] = f"risk limit ({verdict.rule}): {verdict.reason}"
            return None
        self.held[coin] = self.held.get(coin, 0.0) + (intent.usd_amount or 0.0)
        if verdict.notes:
            return replace(intent, reason=f"{intent.reason}; note: {'; '.join(verdict.notes)}")
        return intent

    def _judge(self, coin: str, intent: OrderIntent) -> RiskVerdict:
        if self.halted:
            return RiskVerdict(False, "drawdown_stop_pct", self.halted)
        market = self.markets.get(coin)
        if market is None:  # the strategy makes no buy without a quote; kept for safety
            return RiskVerdict(False, "quote", f"no price for {coin}")
        extra = self.inputs.get(coin, CoinRiskInputs())
        check = BuyCheck(
            coin=coin,
            usd=intent.usd_amount or 0.0,
            entry=intent.tag is OrderTag.ENTRY,
            account_value=self.account_value,
            positions=self.held,
            bid=market.bid,
            ask=market.ask,
            atr_pct=extra.atr_pct,
            venue_gap_pct=extra.venue_gap_pct,
            correlations=extra.correlations,
        )
        return check_buy(check, self.limits)
