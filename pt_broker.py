"""Brokers: what the trader asks of a venue, and the frozen values that come back.

The trader is written against :class:`Broker` only, so the same trader runs on paper (the
:class:`pt_broker_paper.PaperBroker`, in demo and paper modes) and live
(:class:`pt_broker_robinhood.RobinhoodBroker`). Raw venue answers stay inside those adapters.

The contract, and why:

- Orders are market orders. A buy is sized in USD (``usd_amount``; converted to a quantity at
  the quoted ask and rounded down to the venue's increment) or, when the intent gives one, in
  quantity; a sell is sized in quantity and never sells more than is held.
- ``submit`` is idempotent by ``client_order_id``: the trader commits that id to the journal
  *before* it submits (DESIGN.md §6), and after a crash it may submit the same id again; that
  must never make a second order.
- A business refusal (not enough cash, more than held, below the minimum, a bad quote, the
  venue refused the order) is an :class:`OrderReport` with ``state`` rejected and a message, not
  an exception: the trader logs it, shows it, and goes on. Credentials refused, a venue down, an
  unknown answer: those are pt_errors and propagate (auth → stop, temporary → retry later and
  reconcile with :meth:`Broker.order`).
- ``order`` answers "did the venue ever receive this id?" (None: never) for crash
  reconciliation; ``wait`` is bounded by a deadline (original fault §6.24: an unbounded wait).
- Fills carry a venue fill id that is stable across calls, so the journal records each once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from pt_errors import PermanentExchangeError
from pt_journal_schema import OrderState
from pt_types import Fill, OrderIntent, Quote

__all__ = [
    "Broker",
    "BrokerAccount",
    "BrokerQuote",
    "OrderRefused",
    "OrderReport",
    "OrderState",
    "UnknownOrderError",
    "broker_quote",
    "quote_problem",
]


class OrderRefused(Exception):  # noqa: N818 - a decision, not a fault
    """Raised inside a broker's ``submit`` to refuse an order; caught there and turned into a
    rejected :class:`OrderReport`. Never escapes a broker."""


class UnknownOrderError(PermanentExchangeError):
    """The broker has no order with that client order id (``wait`` on an id never submitted)."""


def _frozen_map(values: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType({str(k).upper(): float(v) for k, v in values.items()})


@dataclass(frozen=True)
class BrokerAccount:
    """Cash and every holding at the broker (the trader filters the coins it manages).

    ``holdings`` is the total per coin; ``available`` what can be sold now (Robinhood's
    ``quantity_available_for_trading``; the paper broker's are the same). ``buying_power_usd``
    is the most a buy's notional may be when the broker adds its fee on top (None: the cash)."""

    cash_usd: float
    holdings: Mapping[str, float] = field(default_factory=dict)
    available: Mapping[str, float] | None = None
    buying_power_usd: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "holdings", _frozen_map(self.holdings))
        available = self.holdings if self.available is None else self.available
        object.__setattr__(self, "available", _frozen_map(available))

    def quantity(self, coin: str) -> float:
        return float(self.holdings.get(coin.strip().upper(), 0.0))

    def sellable(self, coin: str) -> float:
        assert self.available is not None  # set in __post_init__
        return float(self.available.get(coin.strip().upper(), 0.0))


@dataclass(frozen=True)
class BrokerQuote:
    """Best bid (what a sell gets) and ask (what a buy pays) of one coin, quoted at ``time``."""

    coin: str
    bid: float
    ask: float
    time: float


def broker_quote(quote: Quote) -> BrokerQuote:
    """A market-data quote (the demo replay, the live venues) as the paper broker's price."""
    return BrokerQuote(quote.symbol.strip().upper(), quote.bid, quote.ask, quote.time)


def quote_problem(quote: BrokerQuote, coin: str) -> str:
    """Why this quote must not be traded on ("" when it may): bad input never trades (§6)."""
    name = coin.strip().upper()
    if quote.coin.strip().upper() != name:
        return f"the quote is for {quote.coin}, not {name}"
    for label, value in (("bid", quote.bid), ("ask", quote.ask)):
        if isinstance(value, bool) or not math.isfinite(value):
            return f"{name} {label} is not a finite number ({value!r})"
        if value <= 0:
            return f"{name} {label} is {value!r}, not a price"
    if quote.bid > quote.ask:
        return f"{name} bid {quote.bid!r} is above the ask {quote.ask!r} (crossed quote)"
    return ""


@dataclass(frozen=True)
class OrderReport:
    """An order as the broker knows it now.

    ``state`` uses the journal's values: ``sent`` (accepted, nothing filled yet),
    ``partially_filled``, ``filled``, ``canceled``, ``failed`` (the venue gave up) or
    ``rejected`` (refused before it became an order; ``message`` says why). ``fills`` are
    ``(venue_fill_id, Fill)`` pairs, the id unique within the order and the same on every call.
    ``terminal``: nothing about this order will change any more."""

    client_order_id: str
    venue_order_id: str | None
    state: OrderState
    filled_quantity: float = 0.0
    average_price: float | None = None
    fee_usd: float = 0.0
    fills: tuple[tuple[str, Fill], ...] = ()
    terminal: bool = False
    message: str = ""

    @property
    def rejected(self) -> bool:
        return self.state is OrderState.REJECTED

    @property
    def filled_usd(self) -> float:
        """Σ quantity × price of the fills (fees not included)."""
        return sum(f.quantity * f.price for _, f in self.fills)

    @classmethod
    def rejection(cls, client_order_id: str, message: str) -> OrderReport:
        return cls(client_order_id, None, OrderState.REJECTED, terminal=True, message=message)


@runtime_checkable
class Broker(Protocol):
    """What the trader needs of a broker (module doc for the contract)."""

    @property
    def name(self) -> str: ...

    def account(self) -> BrokerAccount:
        """Cash in USD and every holding."""
        ...

    def quote(self, coin: str) -> BrokerQuote:
        """The coin's best bid and ask at this broker (raises pt_errors when it has none)."""
        ...

    def min_order_usd(self, coin: str) -> float:
        """The smallest buy the venue accepts, in USD."""
        ...

    def submit(self, intent: OrderIntent, client_order_id: str) -> OrderReport:
        """Send a market order, or return the one already sent with this id."""
        ...

    def order(self, client_order_id: str) -> OrderReport | None:
        """The order sent with this id; None when the broker never received it."""
        ...

    def wait(self, client_order_id: str, deadline_s: float) -> OrderReport:
        """Poll until the order is terminal or ``deadline_s`` passed; the last state seen."""
        ...
