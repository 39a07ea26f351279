"""The paper broker's cost model as plain arithmetic, shared by the paper broker and the backtester.

A buy fills at ``ask × (1 + spread_pct/100)``, a sell at ``bid × (1 − spread_pct/100)``; the fee
is ``fee_pct/100`` of the fill's notional, paid in USD on top of a buy and out of a sell's
proceeds. A USD-sized buy becomes a quantity at the quoted ask, rounded down to
``10^-quantity_decimals``; the spread then makes it cost slightly more than asked (slippage), as
it would at a venue. Keeping this in one place is what lets a backtest's fills equal demo mode's.

Pure: numbers in, numbers out; a refused order raises :class:`FillRefused` with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from pt_strategy import MIN_ORDER_USD


class FillRefused(Exception):  # noqa: N818 - a decision, not a fault
    """The order cannot fill; the message says why (shown to the user as the rejection)."""


def round_down(value: float, step: Decimal) -> Decimal:
    """``value`` rounded down to a multiple of ``step``. Float noise is forgiven first: a
    quantity that is a whole number of steps within a millionth of a step (0.1 + 0.2) is that
    number, so selling a journal's summed position never leaves a one-step dust behind."""
    steps = Decimal(repr(float(value))) / step
    nearest = steps.to_integral_value(rounding=ROUND_HALF_EVEN)
    whole = (
        nearest if abs(steps - nearest) <= Decimal("1e-6") else steps.to_integral_value(ROUND_DOWN)
    )
    return (whole * step).quantize(step)


def _pct(name: str, value: float) -> float:
    if isinstance(value, bool) or not math.isfinite(value) or not 0 <= value < 100:
        raise ValueError(f"{name} must be a percentage in [0, 100), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class FillModel:
    """Fee, slippage, quantity increment and minimum order of a paper fill (module doc)."""

    fee_pct: float = 0.1
    spread_pct: float = 0.05
    quantity_decimals: int = 8
    min_order_usd: float = MIN_ORDER_USD

    def __post_init__(self) -> None:
        _pct("fee_pct", self.fee_pct)
        _pct("spread_pct", self.spread_pct)
        if not (math.isfinite(self.min_order_usd) and self.min_order_usd >= 0):
            raise ValueError(f"min_order_usd must be at least 0, got {self.min_order_usd!r}")
        if not 0 <= self.quantity_decimals <= 18:
            raise ValueError(f"quantity_decimals must be 0..18, got {self.quantity_decimals!r}")

    @property
    def step(self) -> Decimal:
        return Decimal(1).scaleb(-self.quantity_decimals)

    def spendable(self, cash: float) -> float:
        """What a buy's notional may be with ``cash``: room left for the fee, down to cents."""
        return math.floor(cash / (1 + self.fee_pct / 100) * 100) / 100

    def buy_price(self, ask: float) -> float:
        return ask * (1 + self.spread_pct / 100)

    def sell_price(self, bid: float) -> float:
        return bid * (1 - self.spread_pct / 100)

    def fee(self, quantity: float, price: float) -> float:
        return quantity * price * (self.fee_pct / 100)

    def buy_quantity(
        self, usd: float | None, quantity: float | None, ask: float, coin: str
    ) -> Decimal:
        """USD at the quoted ask (or a quantity), rounded down; refused below the minimum."""
        minimum = self.min_order_usd - 1e-9
        if usd is not None:
            if not (math.isfinite(usd) and usd > 0):
                raise FillRefused(f"the buy amount {usd!r} USD is not a positive number")
            if usd < minimum:
                raise FillRefused(
                    f"a buy of {usd:.2f} USD is below the minimum {self.min_order_usd:.2f} USD"
                )
            return self._whole(round_down(usd / ask, self.step), coin)
        if quantity is None:
            raise FillRefused("a buy needs a USD amount or a quantity")
        qty = round_down(float(quantity), self.step)
        if float(qty) * ask < minimum:
            raise FillRefused(
                f"a buy of {qty} {coin} ({float(qty) * ask:.2f} USD) is below the minimum "
                f"{self.min_order_usd:.2f} USD"
            )
        return self._whole(qty, coin)

    def sell_quantity(self, quantity: float | None, held: float, coin: str) -> Decimal:
        """The quantity to sell, rounded down; refused beyond what is held."""
        if quantity is None:
            raise FillRefused("a sell needs a quantity")
        qty = round_down(float(quantity), self.step)
        have = Decimal(repr(held))
        if qty > have:
            raise FillRefused(f"cannot sell {qty} {coin}: the paper wallet holds {have}")
        return self._whole(qty, coin)

    def _whole(self, qty: Decimal, coin: str) -> Decimal:
        if qty <= 0:
            raise FillRefused(f"the order rounds down to 0 {coin} (increment {self.step})")
        return qty
