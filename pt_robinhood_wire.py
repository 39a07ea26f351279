"""Robinhood Crypto Trading API v1 wire format: signing, error bodies, answers as frozen values.

Kept apart from the client (:mod:`pt_robinhood`, which does the talking) so the formats can be
read and tested on their own: the Ed25519 message (spec §4.1), the one query encoding, the error
body ``{"type", "errors": [{"detail", "attr"}]}`` (§4.4) and the answers (§4.5, §4.6).
Raw JSON stays here and in the client; everything above them sees these dataclasses.
Every number is parsed with ``Decimal(str(x))`` because the documentation renders some fields as
numbers while real answers carry strings, and some fields are ``null`` (spec §4.5): a quantity
that went through a float would no longer be a multiple of the pair's increment.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlencode

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pt_errors import ExchangeAuthError, PermanentExchangeError, TemporaryExchangeError
from pt_http import retry_after_seconds

Params = Sequence[tuple[str, str]]

_INCREMENT_IN_TEXT = re.compile(r"(?:nearest|multiple of)\s+(\d*\.?\d+(?:[eE]-?\d+)?)", re.I)
AUTH_HINT = (
    "check the API key, the private key, and this computer's clock: Robinhood rejects a "
    "timestamp more than 30 s away from its own"
)
# Documented order states (spec §4.6); anything else (e.g. a "pending" some clients report) is
# treated as still in flight, so the worst case of an unknown state is waiting until a deadline.
TERMINAL_STATES = frozenset({"filled", "canceled", "failed"})


class RobinhoodOrderError(PermanentExchangeError):
    """Robinhood refused an order (or we refused to send it); ``detail`` is the venue's text."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class OrderTooSmallError(RobinhoodOrderError):
    """The quantity, rounded down to the pair's increment, is below the minimum order size."""


class OrderTooLargeError(RobinhoodOrderError):
    """The quantity is above the pair's maximum order size."""


class InsufficientFundsError(RobinhoodOrderError):
    """Not enough buying power (buy) or holding (sell) for the order."""


class OrderNotFoundError(PermanentExchangeError):
    """No order with that id (yet): orders can take a moment to become visible."""


def dec(value: Any, field: str = "value") -> Decimal:
    """A venue number (string or number) as an exact Decimal; garbage is a temporary error."""
    if value is None or isinstance(value, bool):
        raise TemporaryExchangeError(f"robinhood: {field} is missing from the answer")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise TemporaryExchangeError(f"robinhood: {field} is not a number: {value!r}") from None
    if not result.is_finite():
        raise TemporaryExchangeError(f"robinhood: {field} is not finite: {value!r}")
    return result


def opt_dec(value: Any, field: str = "value") -> Decimal | None:
    return None if value is None or value == "" else dec(value, field)


def round_down(quantity: Decimal, increment: Decimal) -> Decimal:
    """``quantity`` rounded DOWN to a multiple of ``increment``: never more than asked for, so a
    sell of a whole holding can never exceed the holding (original fault §6.17)."""
    if increment <= 0:
        raise ValueError(f"increment must be positive, got {increment}")
    steps = (quantity / increment).to_integral_value(rounding=ROUND_DOWN)
    return (steps * increment).quantize(increment)


def format_quantity(quantity: Decimal) -> str:
    """Plain decimal text, never exponent notation (``1E-8`` would be refused)."""
    text = f"{quantity:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _obj(raw: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise TemporaryExchangeError(f"robinhood: {what} is not an object: {str(raw)[:80]}")
    return raw


@dataclass(frozen=True)
class Account:
    account_number: str
    status: str  # active | deactivated | sell_only
    buying_power: Decimal
    currency: str

    @classmethod
    def parse(cls, raw: Any) -> Account:
        d = _obj(raw, "account")
        return cls(
            str(d.get("account_number", "")),
            str(d.get("status", "")),
            dec(d.get("buying_power"), "buying_power"),
            str(d.get("buying_power_currency") or "USD"),
        )


@dataclass(frozen=True)
class Holding:
    asset_code: str
    total_quantity: Decimal
    quantity_available_for_trading: Decimal

    @classmethod
    def parse(cls, raw: Any) -> Holding:
        d = _obj(raw, "holding")
        total = dec(d.get("total_quantity"), "total_quantity")
        available = opt_dec(d.get("quantity_available_for_trading"), "quantity_available")
        return cls(str(d.get("asset_code", "")), total, total if available is None else available)


@dataclass(frozen=True)
class TradingPair:
    symbol: str
    asset_code: str
    quote_code: str
    asset_increment: Decimal
    quote_increment: Decimal
    min_order_size: Decimal
    max_order_size: Decimal
    status: str

    @property
    def tradable(self) -> bool:
        return self.status == "tradable"

    def round_quantity(self, quantity: Decimal) -> Decimal:
        return round_down(quantity, self.asset_increment)

    def order_quantity(self, quantity: Decimal | float | str) -> Decimal:
        """``quantity`` rounded down to the pair's increment, or a clear error before sending."""
        try:
            asked = Decimal(str(quantity))
        except InvalidOperation:
            raise ValueError(f"not a quantity: {quantity!r}") from None
        if not asked.is_finite() or asked <= 0:
            raise OrderTooSmallError(f"{self.symbol}: quantity must be positive, got {quantity}")
        rounded = self.round_quantity(asked)
        if rounded < self.min_order_size:
            raise OrderTooSmallError(
                f"{self.symbol}: {format_quantity(asked)} {self.asset_code} rounds down to "
                f"{format_quantity(rounded)}, below Robinhood's minimum order size "
                f"{format_quantity(self.min_order_size)}"
            )
        if rounded > self.max_order_size:
            raise OrderTooLargeError(
                f"{self.symbol}: {format_quantity(rounded)} {self.asset_code} is above "
                f"Robinhood's maximum order size {format_quantity(self.max_order_size)}"
            )
        return rounded

    @classmethod
    def parse(cls, raw: Any) -> TradingPair:
        d = _obj(raw, "trading pair")
        return cls(
            str(d.get("symbol", "")),
            str(d.get("asset_code", "")),
            str(d.get("quote_code", "")),
            dec(d.get("asset_increment"), "asset_increment"),
            dec(d.get("quote_increment"), "quote_increment"),
            dec(d.get("min_order_size"), "min_order_size"),
            dec(d.get("max_order_size"), "max_order_size"),
            str(d.get("status", "")),
        )


@dataclass(frozen=True)
class BestBidAsk:
    """``bid`` is what a sell fills at, ``ask`` what a buy pays: both include Robinhood's spread
    (``bid_inclusive_of_sell_spread`` / ``ask_inclusive_of_buy_spread``)."""

    symbol: str
    price: Decimal | None
    bid: Decimal
    ask: Decimal
    sell_spread: Decimal | None
    buy_spread: Decimal | None
    timestamp: str | None

    @classmethod
    def parse(cls, raw: Any) -> BestBidAsk:
        d = _obj(raw, "quote")
        return cls(
            str(d.get("symbol", "")),
            opt_dec(d.get("price"), "price"),
            dec(d.get("bid_inclusive_of_sell_spread"), "bid_inclusive_of_sell_spread"),
            dec(d.get("ask_inclusive_of_buy_spread"), "ask_inclusive_of_buy_spread"),
            opt_dec(d.get("sell_spread"), "sell_spread"),
            opt_dec(d.get("buy_spread"), "buy_spread"),
            None if d.get("timestamp") is None else str(d["timestamp"]),
        )


@dataclass(frozen=True)
class EstimatedPrice:
    """What a market order of ``quantity`` would pay: side ``ask`` is a buy, ``bid`` a sell."""

    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    timestamp: str | None

    @classmethod
    def parse(cls, raw: Any) -> EstimatedPrice:
        d = _obj(raw, "estimated price")
        return cls(
            str(d.get("symbol", "")),
            str(d.get("side", "")),
            dec(d.get("quantity"), "quantity"),
            dec(d.get("price"), "price"),
            None if d.get("timestamp") is None else str(d["timestamp"]),
        )


@dataclass(frozen=True)
class Execution:
    effective_price: Decimal
    quantity: Decimal
    timestamp: str

    @classmethod
    def parse(cls, raw: Any) -> Execution:
        d = _obj(raw, "execution")
        return cls(
            dec(d.get("effective_price"), "effective_price"),
            dec(d.get("quantity"), "quantity"),
            str(d.get("timestamp", "")),
        )


@dataclass(frozen=True)
class Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    state: str
    asset_quantity: Decimal | None  # what was asked for (market_order_config)
    filled_asset_quantity: Decimal
    average_price: Decimal | None
    executions: tuple[Execution, ...]
    created_at: str
    updated_at: str

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def filled_quantity(self) -> Decimal:
        """From the executions when there are any (they are the fills), else the summary field."""
        if self.executions:
            return sum((e.quantity for e in self.executions), Decimal(0))
        return self.filled_asset_quantity

    @property
    def fill_price(self) -> Decimal | None:
        """Quantity-weighted average of the executions, else ``average_price``."""
        qty = sum((e.quantity for e in self.executions), Decimal(0))
        if qty > 0:
            return sum((e.quantity * e.effective_price for e in self.executions), Decimal(0)) / qty
        return self.average_price

    @classmethod
    def parse(cls, raw: Any) -> Order:
        d = _obj(raw, "order")
        config = d.get("market_order_config") or {}
        executions = d.get("executions") or []
        if not isinstance(executions, list):
            raise TemporaryExchangeError("robinhood: order executions is not a list")
        return cls(
            id=str(d.get("id", "")),
            client_order_id=str(d.get("client_order_id", "")),
            symbol=str(d.get("symbol", "")),
            side=str(d.get("side", "")),
            type=str(d.get("type", "")),
            state=str(d.get("state", "")),
            asset_quantity=opt_dec(config.get("asset_quantity"), "asset_quantity")
            if isinstance(config, Mapping)
            else None,
            filled_asset_quantity=opt_dec(d.get("filled_asset_quantity"), "filled") or Decimal(0),
            average_price=opt_dec(d.get("average_price"), "average_price"),
            executions=tuple(Execution.parse(e) for e in executions),
            created_at=str(d.get("created_at", "")),
            updated_at=str(d.get("updated_at", "")),
        )


@dataclass(frozen=True)
class OrderWait:
    """The last order seen while waiting, and whether it reached a terminal state in time."""

    order: Order
    terminal: bool


# ---------------------------------------------------------------------- signing and errors


def private_key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    """The signing key from a 32-byte seed, or a 64-byte seed‖public key (tweetnacl, §4.3)."""
    if len(seed) not in (32, 64):
        raise ValueError(f"the private key must be 32 or 64 bytes, got {len(seed)}")
    return Ed25519PrivateKey.from_private_bytes(seed[:32])


def sign(key: Ed25519PrivateKey, message: str) -> str:
    """Base64 of the 64-byte Ed25519 signature of the UTF-8 message (spec §4.1)."""
    return base64.b64encode(key.sign(message.encode("utf-8"))).decode("ascii")


def encode_query(params: Params) -> str:
    """The one encoding of a query string: what is signed is exactly what is sent."""
    return urlencode(list(params), quote_via=quote, safe="")


class RobinhoodRequestError(PermanentExchangeError):
    """A 4xx answer; ``errors`` holds the venue's ``(attr, detail)`` pairs (spec §4.4)."""

    def __init__(self, message: str, *, status: int, errors: tuple[tuple[str, str], ...]) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors

    @property
    def detail(self) -> str:
        return "; ".join(d for _, d in self.errors)


def venue_errors(response: requests.Response) -> tuple[tuple[str, str], ...]:
    """``(attr, detail)`` from Robinhood's error body; a short text excerpt otherwise."""
    try:
        body = response.json()
    except ValueError:
        text = " ".join(response.text.split())
        return (("", text[:160] or "(empty body)"),)
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        found = tuple(
            (str(e.get("attr") or ""), str(e.get("detail") or e))
            for e in body["errors"]
            if isinstance(e, dict)
        )
        if found:
            return found
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return (("", body["detail"]),)
    return (("", json.dumps(body)[:160]),)


def raise_for_status(what: str, response: requests.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    errors = venue_errors(response)
    detail = "; ".join(f"{a}: {d}" if a and a != "non_field_errors" else d for a, d in errors)
    reason = f"{what}: HTTP {status}: {detail}"
    if status in (401, 403):
        raise ExchangeAuthError(f"{reason} ({AUTH_HINT})")
    if status == 429 or status >= 500:
        raise TemporaryExchangeError(reason, retry_after=retry_after_seconds(response.headers))
    raise RobinhoodRequestError(reason, status=status, errors=errors)


def parse_json(what: str, response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise TemporaryExchangeError(f"{what}: answer is not JSON (cut off?)") from None


def precision_increment(exc: RobinhoodRequestError) -> Decimal | None:
    """The increment a "too much precision" refusal names ("nearest X"), if it does."""
    for _, detail in exc.errors:
        if "too much precision" in detail.lower():
            match = _INCREMENT_IN_TEXT.search(detail)
            if match:
                increment = Decimal(match.group(1))
                return increment if increment > 0 else None
    return None


def order_error(symbol: str, exc: RobinhoodRequestError) -> RobinhoodOrderError:
    """A refused order as the error that says what to do (the wording is the venue's)."""
    detail = exc.detail
    text = detail.lower()
    message = f"robinhood refused the {symbol} order: {detail}"
    if "greater than or equal to" in text or "minimum" in text:
        return OrderTooSmallError(message, detail=detail)
    if "insufficient" in text or "buying power" in text:
        return InsufficientFundsError(message, detail=detail)
    return RobinhoodOrderError(message, detail=detail)
