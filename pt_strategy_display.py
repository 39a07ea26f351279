"""What the hub shows about the strategy: the next DCA line and how many DCA stages fit.

Pure helpers over the same settings and rules as :mod:`pt_strategy` (one rule for the neural
trigger, §6.11), so the trades table can never show a line the trader does not act on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pt_strategy import PositionState, StrategyConfig
from pt_types import Signal


@dataclass(frozen=True)
class DcaLine:
    """The next DCA line as the hub shows it (spec §3.7 "Display line")."""

    price: float | None
    source: str  # "HARD", "NEURAL N<k>" or "N/A"
    hard_pct: float | None = None
    neural_level: int | None = None
    pct_from_cost: float | None = None
    off: bool = False  # DCA is switched off (max_dca_buys_per_24h or dca_multiplier is 0)

    @property
    def display(self) -> str:
        """e.g. ``-2.50% / N4`` (the neural part only while it can still trigger)."""
        if self.off:
            return "DCA off"
        if self.hard_pct is None:
            return "N/A"
        text = f"{self.hard_pct:+.2f}%"
        return f"{text} / N{self.neural_level}" if self.neural_level is not None else text


def neural_lines(signal: Signal | None) -> tuple[float, ...]:
    """The long lines N1..N7: the active low bounds, highest first, without duplicates."""
    if signal is None:
        return ()
    lows = {tf.low_bound for tf in signal.timeframes if math.isfinite(tf.low_bound)}
    return tuple(sorted((x for x in lows if x > 0), reverse=True))


def dca_line(
    config: StrategyConfig, position: PositionState | None, signal: Signal | None
) -> DcaLine:
    """The hard tier price or the neural line, whichever the falling price reaches first.

    The neural trigger also needs a loss, so a neural line above the cost basis is shown at the
    cost basis: the original drew it higher, where no DCA could happen.
    """
    if position is None or position.quantity <= 0 or position.avg_cost <= 0:
        return DcaLine(None, "N/A")
    if config.max_dca_buys_per_24h == 0 or config.dca_multiplier <= 0:
        return DcaLine(None, "N/A", off=True)
    acb, stage = position.avg_cost, position.dca_stage
    hard = config.hard_level(stage)
    need = config.neural_level(stage)
    price, source = acb * (1 + hard / 100), "HARD"
    lines = neural_lines(signal)
    if need is not None and len(lines) >= need and lines[need - 1] > price:
        price, source = min(lines[need - 1], acb), f"NEURAL N{need}"
    return DcaLine(price, source, hard, need, (price - acb) / acb * 100)


@dataclass(frozen=True)
class DcaAffordability:
    """How many DCA stages the account can pay for (spec §4.4)."""

    spread: int  # every managed coin in a trade at once
    single: int  # one coin alone


def dca_affordability(config: StrategyConfig, total_value: float) -> DcaAffordability:
    """Count how often the first buy can grow by ``1 + dca_multiplier`` within the account."""
    alloc = max(config.min_order, total_value * config.start_allocation_pct / 100)
    factor = 1 + config.dca_multiplier

    def count(required: float) -> int:
        if config.dca_multiplier <= 0 or not math.isfinite(total_value):
            return 0  # a DCA of 0x buys nothing (the original looped forever here)
        n = 0
        while required > 0 and required * factor <= total_value + 1e-9:
            required *= factor
            n += 1
        return n

    return DcaAffordability(count(alloc * len(config.coins)), count(alloc))
