"""The live broker: the :class:`pt_broker.Broker` contract over the Robinhood Crypto Trading API.

All talking, signing, paging and rounding is :class:`pt_robinhood.RobinhoodClient`'s; this
adapter turns the trader's intents into its calls and its answers into
:class:`pt_broker.OrderReport` values. Why it does what it does:

- Symbols are ``<COIN>-USD``. A USD-sized buy becomes an asset quantity at the current
  ``ask_inclusive_of_buy_spread`` (v1 market orders take only ``asset_quantity``, spec §4.6),
  rounded down to the pair's increment by the client.
- Business refusals (below the minimum, above the maximum, insufficient funds or holding, a bad
  quote, a validation refusal by Robinhood) come back as rejected reports, as from the paper
  broker. Auth, temporary and other permanent errors propagate as pt_errors: a temporary error
  out of ``submit`` means it is unknown whether the order exists, so the trader reconciles with
  :meth:`RobinhoodBroker.order` before anything else.
- Idempotency: the same ``client_order_id`` is always reused; Robinhood keeps it "for
  idempotency validation", and the client treats both a returned original and a duplicate
  refusal as the original order. Ids submitted by this object are remembered with their venue
  id, so ``submit``/``order``/``wait`` on them cost one GET; an id from before a restart is
  found by scanning every page of the orders list (``order``, ``wait``, and ``submit`` before
  it reports a refusal: a resubmitted sell that already filled would otherwise look like
  "more than held").
- Fills are the order's ``executions``; the venue fill id is ``<order id>-<index>`` (Robinhood
  appends executions, so the index of one never changes). v1 reports no fee (the spread is in the
  price), so ``fee_usd`` is 0.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

from pt_broker import (
    BrokerAccount,
    BrokerQuote,
    OrderRefused,
    OrderReport,
    UnknownOrderError,
    quote_problem,
)
from pt_errors import TemporaryExchangeError
from pt_journal_schema import OrderState
from pt_robinhood import RobinhoodClient
from pt_robinhood_wire import Order, RobinhoodOrderError, format_quantity
from pt_types import Fill, OrderIntent, Side

log = logging.getLogger(__name__)

_STATES = {
    "open": OrderState.SENT,
    "partially_filled": OrderState.PARTIALLY_FILLED,
    "filled": OrderState.FILLED,
    "canceled": OrderState.CANCELED,
    "failed": OrderState.FAILED,
}
CENT = Decimal("0.01")


def symbol_of(coin: str) -> str:
    return f"{coin.strip().upper()}-USD"


def coin_of(symbol: str) -> str:
    return symbol.strip().upper().removesuffix("-USD")


def venue_client_id(client_order_id: str) -> str | None:
    """The id as Robinhood stores it (a canonical, dashed UUID; the journal's own ids are
    hex), or None when it is not a UUID at all."""
    try:
        return str(uuid.UUID(str(client_order_id)))
    except ValueError:
        return None


def _epoch(text: str | None, fallback: float) -> float:
    """An ISO 8601 venue timestamp (``...Z``) as Unix seconds; ``fallback`` when absent/garbled."""
    if not text:
        return fallback
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return fallback


class RobinhoodBroker:
    """A :class:`pt_broker.Broker` for one Robinhood account (module doc)."""

    def __init__(self, client: RobinhoodClient, *, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: dict[str, str] = {}  # client order id -> Robinhood order id

    def __repr__(self) -> str:
        return f"RobinhoodBroker({self._client!r})"

    @property
    def name(self) -> str:
        return "robinhood"

    # -- reads ---------------------------------------------------------------------------------

    def account(self) -> BrokerAccount:
        account = self._client.account()
        holdings = self._client.holdings()
        return BrokerAccount(
            float(account.buying_power),
            {h.asset_code: float(h.total_quantity) for h in holdings},
            {h.asset_code: float(h.quantity_available_for_trading) for h in holdings},
        )

    def quote(self, coin: str) -> BrokerQuote:
        symbol = symbol_of(coin)
        quotes = self._client.best_bid_ask([symbol])
        if symbol not in quotes:  # a venue hiccup, like a garbled answer: try again later
            raise TemporaryExchangeError(f"robinhood: no {symbol} quote in the answer")
        q = quotes[symbol]
        return BrokerQuote(
            coin_of(symbol), float(q.bid), float(q.ask), _epoch(q.timestamp, self._clock())
        )

    def min_order_usd(self, coin: str) -> float:
        """The pair's minimum size plus one increment at the current ask, rounded up to a cent:
        a buy of this many USD still meets the minimum after rounding down."""
        pair = self._client.trading_pair(symbol_of(coin))
        ask = Decimal(repr(self.quote(coin).ask))
        usd = ((pair.min_order_size + pair.asset_increment) * ask).quantize(CENT, ROUND_CEILING)
        return float(usd)

    def order(self, client_order_id: str) -> OrderReport | None:
        found = self._find(client_order_id)
        return None if found is None else self._report(found, client_order_id)

    def wait(self, client_order_id: str, deadline_s: float) -> OrderReport:
        """Poll (``wait_for_order``) until terminal or ``deadline_s``; never longer than that
        plus one request's timeout. The report's ``terminal`` says which."""
        venue_id = self._sent.get(client_order_id)
        if venue_id is None:
            found = self._find(client_order_id)
            if found is None:
                raise UnknownOrderError(f"robinhood: no order with client id {client_order_id}")
            if found.terminal:
                return self._report(found, client_order_id)
            venue_id = found.id
        waited = self._client.wait_for_order(venue_id, deadline_s=deadline_s)
        return self._report(waited.order, client_order_id)

    def _find(self, client_order_id: str) -> Order | None:
        venue_id = self._sent.get(client_order_id)
        if venue_id is not None:
            return self._client.get_order(venue_id)
        venue_cid = venue_client_id(client_order_id)
        if venue_cid is None:
            return None  # not a UUID: it can never have been sent
        found = self._client.find_order_by_client_id(venue_cid)
        if found is not None:
            self._remember(client_order_id, found)
        return found

    def _remember(self, client_order_id: str, order: Order) -> None:
        with self._lock:
            self._sent[client_order_id] = order.id

    # -- orders --------------------------------------------------------------------------------

    def submit(self, intent: OrderIntent, client_order_id: str) -> OrderReport:
        """Send a market order (or get the one this id already made) and report it as accepted;
        call :meth:`wait` for the fill."""
        cid = str(client_order_id or intent.client_order_id)
        if not cid:
            raise ValueError("an order needs a client order id")
        venue_cid = venue_client_id(cid)
        if venue_cid is None:
            raise ValueError(f"a Robinhood client order id must be a UUID, got {cid!r}")
        if cid in self._sent:
            return self._report(self._client.get_order(self._sent[cid]), cid)
        side, coin = Side(intent.side), intent.coin.strip().upper()
        symbol = symbol_of(coin)
        try:
            pair = self._client.trading_pair(symbol)
            if not pair.tradable:
                raise OrderRefused(f"robinhood: {symbol} is {pair.status!r}, not tradable")
            qty = self._client.prepare_quantity(pair, self._asked_quantity(intent, side, coin))
            if side is Side.SELL:
                held = [h for h in self._client.holdings([coin]) if h.asset_code == coin]
                available = held[0].quantity_available_for_trading if held else Decimal(0)
                if qty > available:
                    raise OrderRefused(
                        f"cannot sell {format_quantity(qty)} {coin}: Robinhood has "
                        f"{format_quantity(available)} available"
                    )
            order = self._client.place_market_order(symbol, side, qty, venue_cid)
        except (OrderRefused, RobinhoodOrderError) as exc:
            # A resubmit after a restart of an order that went through (a sell now "more than
            # held", a buy now "insufficient funds") is that order, not a refusal.
            found = self._find(cid)
            if found is not None:
                return self._report(found, cid)
            log.warning("robinhood order %s rejected: %s", cid, exc)
            return OrderReport.rejection(cid, str(exc))
        self._remember(cid, order)
        return self._report(order, cid)

    def _asked_quantity(self, intent: OrderIntent, side: Side, coin: str) -> Decimal:
        """A USD buy as a quantity at the current ask; else the intent's quantity."""
        if side is Side.BUY and intent.usd_amount is not None:
            usd = float(intent.usd_amount)
            if not (math.isfinite(usd) and usd > 0):
                raise OrderRefused(f"the buy amount {usd!r} USD is not a positive number")
            quote = self.quote(coin)
            problem = quote_problem(quote, coin)
            if problem:
                raise OrderRefused(f"no order: {problem}")
            return Decimal(repr(usd)) / Decimal(repr(quote.ask))
        if intent.quantity is None:
            what = "a USD amount or a quantity" if side is Side.BUY else "a quantity"
            raise OrderRefused(f"a {side.value} needs {what}")
        return Decimal(repr(float(intent.quantity)))

    def _report(self, order: Order, client_order_id: str) -> OrderReport:
        """The venue's order as a report under the caller's id (the journal's spelling)."""
        coin, side = coin_of(order.symbol), Side(order.side)
        now = self._clock()
        fills: list[tuple[str, Fill]] = [
            (
                f"{order.id}-{i}",
                Fill(
                    client_order_id,
                    coin,
                    side,
                    float(e.quantity),
                    float(e.effective_price),
                    0.0,
                    _epoch(e.timestamp, now),
                ),
            )
            for i, e in enumerate(order.executions)
            if e.quantity > 0
        ]
        if not fills and order.terminal and order.filled_asset_quantity > 0:
            # Only the summary fields: one fill, id as the first execution would have.
            price = order.average_price
            if price is not None and price > 0:
                qty = float(order.filled_asset_quantity)
                fill = Fill(client_order_id, coin, side, qty, float(price), 0.0, now)
                fills.append((f"{order.id}-0", fill))
        state = _STATES.get(order.state, OrderState.SENT)
        if state is OrderState.SENT and fills:
            state = OrderState.PARTIALLY_FILLED
        average = order.fill_price
        return OrderReport(
            client_order_id=client_order_id,
            venue_order_id=order.id,
            state=state,
            filled_quantity=sum(f.quantity for _, f in fills),
            average_price=None if average is None else float(average),
            fee_usd=0.0,
            fills=tuple(fills),
            terminal=order.terminal,
            message=f"robinhood order {order.id} is {order.state}",
        )
