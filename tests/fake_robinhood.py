"""A fake Robinhood Crypto Trading API v1 on 127.0.0.1 (spec §4.7), checking every signature.

It verifies each request's Ed25519 signature over ``api_key + timestamp + path?query + METHOD +
body`` with the public key of the seed it was given, and answers in the documented formats:
400 plain text for missing headers, 401 ``client_error`` for a bad signature or a timestamp more
than 30 s from its clock (the real body is undocumented, spec §4.4), ``validation_error`` for
refused orders, paginated lists with an absolute ``next`` URL on its own base URL.

The server sees the query string parsed, so it rebuilds the signed text with one canonical
encoding (keys in first-seen order, repeated keys together, ``quote`` with nothing safe). That is
the encoding the client uses, and it is the one ``next`` links are built with.

Idempotency: a repeated ``client_order_id`` returns the original order (201), as the real API
is expected to do ("for idempotency validation", spec §4.6) though it is undocumented;
``duplicate_policy = "reject"`` answers a 400 ``validation_error`` on ``client_order_id`` instead,
so tests can show the client copes with both.

Knobs (attributes; change them any time): ``buying_power``, ``holdings``, ``pairs``, ``quotes``
(``set_quote``), ``page_size``, ``fill_after_polls`` (None: never fills), ``enforced_increment``
(an increment stricter than the one advertised, to provoke "too much precision"),
``numbers_as_strings``, ``duplicate_policy``, ``clock``. Faults come from FakeServer.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tests.fake_http import FakeVenue, Reply, Request

# The documented example key pair and API key (spec §4.2): public test data, not a real account.
TEST_SEED = base64.b64decode("xQnTJVeQLmw1/Mg2YimEViSpw/SdJcgNXZ5kQkAXNPU=")
TEST_API_KEY = "rh-api-6148effc-c0b1-486c-8940-a1d099456be6"

API = "/api/v1/crypto/"
ORDERS = API + "trading/orders/"
MISSING_HEADERS = (
    b"Request missing required headers. Required headers: x-api-key, x-signature, "
    b"x-timestamp. Please refer to API documentation for more information."
)
TIMESTAMP_WINDOW = 30

# Realistic shapes (strings, as real answers carry them); the values are plausible, not copied.
DEFAULT_PAIRS: dict[str, dict[str, str]] = {
    "BTC-USD": {
        "asset_code": "BTC",
        "quote_code": "USD",
        "quote_increment": "0.01",
        "asset_increment": "0.00000001",
        "max_order_size": "20",
        "min_order_size": "0.000001",
        "status": "tradable",
        "symbol": "BTC-USD",
    },
    "ETH-USD": {
        "asset_code": "ETH",
        "quote_code": "USD",
        "quote_increment": "0.01",
        "asset_increment": "0.000001",
        "max_order_size": "500",
        "min_order_size": "0.0001",
        "status": "tradable",
        "symbol": "ETH-USD",
    },
}


def canonical_query(query: dict[str, list[str]] | Any) -> str:
    return urlencode([(k, v) for k, vs in query.items() for v in vs], quote_via=quote, safe="")


def error(detail: str, attr: str | None = None, status: int = 400) -> Reply:
    kind = "validation_error" if status == 400 else "client_error"
    if status >= 500:
        kind = "server_error"
    return Reply.json({"type": kind, "errors": [{"detail": detail, "attr": attr}]}, status)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeRobinhood(FakeVenue):
    """One Robinhood account behind the v1 endpoints; use as a context manager."""

    def __init__(
        self,
        *,
        api_key: str = TEST_API_KEY,
        seed: bytes = TEST_SEED,
        clock: Callable[[], float] = time.time,
        buying_power: Decimal = Decimal("10000"),
        page_size: int = 2,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.public_key: Ed25519PublicKey = Ed25519PrivateKey.from_private_bytes(
            seed[:32]
        ).public_key()
        self.clock = clock
        self.account_number = "123456789"
        self.buying_power = buying_power
        self.holdings: dict[str, Decimal] = {}
        self.pairs: dict[str, dict[str, str]] = {k: dict(v) for k, v in DEFAULT_PAIRS.items()}
        self.quotes: dict[str, tuple[Decimal, Decimal]] = {
            "BTC-USD": (Decimal("59940.00"), Decimal("60060.00")),
            "ETH-USD": (Decimal("2997.00"), Decimal("3003.00")),
        }
        self.orders: list[dict[str, Any]] = []  # newest first, as the list endpoint answers
        self.polls: dict[str, int] = {}
        self.page_size = page_size
        self.fill_after_polls: int | None = 0
        self.enforced_increment: dict[str, Decimal] = {}
        self.numbers_as_strings = True
        self.duplicate_policy = "return_original"
        self.lock = threading.Lock()
        routes: list[tuple[str, str, Callable[[Request], Reply]]] = [
            ("GET", API + "trading/accounts/", self._account),
            ("GET", API + "trading/holdings/", self._holdings),
            ("GET", API + "trading/trading_pairs/", self._pairs),
            ("GET", API + "marketdata/best_bid_ask/", self._best_bid_ask),
            ("GET", API + "marketdata/estimated_price/", self._estimated_price),
            ("GET", ORDERS, self._list_orders),
            ("POST", ORDERS, self._place),
        ]
        for method, path, handler in routes:
            self.server.route(method, path, self._signed(handler))
        self.server.route_prefix("GET", ORDERS, self._signed(self._get_order))
        self.server.route_prefix("POST", ORDERS, self._signed(self._cancel))

    # ------------------------------------------------------------------ knobs

    def set_quote(self, symbol: str, bid: Decimal | str, ask: Decimal | str) -> None:
        self.quotes[symbol] = (Decimal(str(bid)), Decimal(str(ask)))

    def add_order(self, **fields: Any) -> dict[str, Any]:
        """An order already on the account (history), newest first like placed ones."""
        order = self._new_order(
            fields.pop("symbol", "BTC-USD"),
            fields.pop("side", "buy"),
            Decimal(str(fields.pop("quantity", "0.001"))),
            fields.pop("client_order_id", str(uuid.uuid4())),
        )
        order.update(fields)
        with self.lock:
            self.orders.insert(0, order)
        return order

    # ------------------------------------------------------------------ auth

    def _signed(self, handler: Callable[[Request], Reply]) -> Callable[[Request], Reply]:
        def check(request: Request) -> Reply:
            key = request.headers.get("x-api-key")
            signature = request.headers.get("x-signature")
            stamp = request.headers.get("x-timestamp")
            if not (key and signature and stamp):
                return Reply(400, MISSING_HEADERS, content_type="text/plain")
            try:
                off = abs(self.clock() - int(stamp))
            except ValueError:
                return error("Invalid timestamp.", status=401)
            if off > TIMESTAMP_WINDOW:
                return error("Timestamp is expired or invalid.", status=401)
            query = canonical_query(request.query)
            path = request.path + (f"?{query}" if query else "")
            message = f"{key}{stamp}{path}{request.method}".encode() + request.body
            try:
                if key != self.api_key:
                    raise InvalidSignature
                self.public_key.verify(base64.b64decode(signature, validate=True), message)
            except (InvalidSignature, ValueError):
                return error("Invalid API key or signature.", status=401)
            with self.lock:
                return handler(request)

        return check

    # ------------------------------------------------------------------ helpers

    def _num(self, value: Decimal) -> str | float:
        return str(value) if self.numbers_as_strings else float(value)

    def _page(self, request: Request, rows: list[dict[str, Any]]) -> Reply:
        size = int(request.param("limit") or self.page_size)
        cursor = request.param("cursor")
        start = int(cursor[1:], 16) if cursor else 0
        page = rows[start : start + size]
        nxt = None
        if start + size < len(rows):
            query = {k: v for k, v in request.query.items() if k != "cursor"}
            query["cursor"] = [f"c{start + size:x}"]
            nxt = f"{self.base_url}{request.path}?{canonical_query(query)}"
        return Reply.json({"next": nxt, "previous": None, "results": page})

    def _order_json(self, order: dict[str, Any]) -> dict[str, Any]:
        shown = dict(order)
        for key in ("average_price", "filled_asset_quantity"):
            if shown[key] is not None:
                shown[key] = self._num(Decimal(shown[key]))
        return shown

    def _new_order(self, symbol: str, side: str, qty: Decimal, cid: str) -> dict[str, Any]:
        now = _iso(self.clock())
        return {
            "id": str(uuid.uuid4()),
            "account_number": self.account_number,
            "symbol": symbol,
            "client_order_id": cid,
            "side": side,
            "type": "market",
            "state": "open",
            "average_price": None,
            "filled_asset_quantity": "0",
            "executions": [],
            "created_at": now,
            "updated_at": now,
            "market_order_config": {"asset_quantity": str(qty)},
        }

    def _progress(self, order: dict[str, Any]) -> None:
        """Each look at an open order counts as a poll; it fills on poll ``fill_after_polls``."""
        if order["state"] != "open" or self.fill_after_polls is None:
            return
        seen = self.polls.get(order["id"], 0) + 1
        self.polls[order["id"]] = seen
        if seen >= self.fill_after_polls:
            self._fill(order)

    def _fill(self, order: dict[str, Any]) -> None:
        bid, ask = self.quotes[order["symbol"]]
        qty = Decimal(order["market_order_config"]["asset_quantity"])
        asset = self.pairs[order["symbol"]]["asset_code"]
        price = ask if order["side"] == "buy" else bid
        if order["side"] == "buy":
            self.buying_power -= (qty * price).quantize(Decimal("0.01"))
            self.holdings[asset] = self.holdings.get(asset, Decimal(0)) + qty
        else:
            self.holdings[asset] = self.holdings.get(asset, Decimal(0)) - qty
            self.buying_power += (qty * price).quantize(Decimal("0.01"))
        now = _iso(self.clock())
        order.update(
            state="filled",
            average_price=str(price),
            filled_asset_quantity=str(qty),
            executions=[{"effective_price": str(price), "quantity": str(qty), "timestamp": now}],
            updated_at=now,
        )

    # ------------------------------------------------------------------ routes

    def _account(self, request: Request) -> Reply:
        return Reply.json(
            {
                "account_number": self.account_number,
                "status": "active",
                "buying_power": self._num(self.buying_power),
                "buying_power_currency": "USD",
            }
        )

    def _holdings(self, request: Request) -> Reply:
        wanted = set(request.query.get("asset_code", []))
        rows = [
            {
                "account_number": self.account_number,
                "asset_code": code,
                "total_quantity": self._num(qty),
                "quantity_available_for_trading": self._num(qty),
            }
            for code, qty in sorted(self.holdings.items())
            if not wanted or code in wanted
        ]
        return self._page(request, rows)

    def _pairs(self, request: Request) -> Reply:
        wanted = set(request.query.get("symbol", []))
        rows = [p for s, p in self.pairs.items() if not wanted or s in wanted]
        return self._page(request, rows)

    def _quote_row(self, symbol: str) -> dict[str, Any]:
        bid, ask = self.quotes[symbol]
        mid = (bid + ask) / 2
        return {
            "symbol": symbol,
            "price": self._num(mid),
            "bid_inclusive_of_sell_spread": self._num(bid),
            "sell_spread": self._num((mid - bid) / mid),
            "ask_inclusive_of_buy_spread": self._num(ask),
            "buy_spread": self._num((ask - mid) / mid),
            "timestamp": _iso(self.clock()),
        }

    def _best_bid_ask(self, request: Request) -> Reply:
        symbols = request.query.get("symbol") or sorted(self.quotes)
        unknown = [s for s in symbols if s not in self.quotes]
        if unknown:
            return error(f"Invalid symbol: {unknown[0]}.", "symbol")
        return Reply.json({"results": [self._quote_row(s) for s in symbols]})

    def _estimated_price(self, request: Request) -> Reply:
        symbol, side = request.param("symbol"), request.param("side")
        if symbol not in self.quotes or side not in ("bid", "ask", "both"):
            return error("Invalid symbol or side.", "symbol")
        rows = []
        for text in (request.param("quantity") or "").split(","):
            for one in ("bid", "ask") if side == "both" else (side,):
                row = self._quote_row(symbol)
                spread = (
                    "bid_inclusive_of_sell_spread"
                    if one == "bid"
                    else "ask_inclusive_of_buy_spread"
                )
                row.update(side=one, quantity=text, price=row[spread])
                rows.append(row)
        return Reply.json({"results": rows})

    def _list_orders(self, request: Request) -> Reply:
        rows = []
        for order in self.orders:
            if all(
                order.get(name) == request.param(name)
                for name in ("symbol", "side", "state", "id")
                if request.param(name)
            ):
                self._progress(order)
                rows.append(self._order_json(order))
        return self._page(request, rows)

    def _get_order(self, request: Request) -> Reply:
        order_id = request.path[len(ORDERS) :].strip("/")
        for order in self.orders:
            if order["id"] == order_id:
                self._progress(order)
                return Reply.json(self._order_json(order))
        return error("Not found.", status=404)

    def _cancel(self, request: Request) -> Reply:
        order_id = request.path[len(ORDERS) :].removesuffix("/cancel/")
        for order in self.orders:
            if order["id"] == order_id:
                if order["state"] == "open":
                    order.update(state="canceled", updated_at=_iso(self.clock()))
                text = f"Cancel request was submitted for order {order_id}"
                return Reply(200, text.encode(), content_type="text/plain")
        return error("Not found.", status=404)

    def _place(self, request: Request) -> Reply:
        try:
            body = json.loads(request.body)
            cid = str(uuid.UUID(body["client_order_id"]))
            symbol, side = body["symbol"], body["side"]
            qty = Decimal(body["market_order_config"]["asset_quantity"])
        except (ValueError, KeyError, TypeError, InvalidOperation):
            return error("Invalid order.", "non_field_errors")
        for order in self.orders:
            if order["client_order_id"] == cid:
                if self.duplicate_policy == "reject":
                    detail = "Order with this client_order_id already exists."
                    return error(detail, "client_order_id")
                return Reply.json(self._order_json(order), 201)
        refusal = self._refusal(body.get("type"), symbol, side, qty)
        if refusal is not None:
            return refusal
        order = self._new_order(symbol, side, qty, cid)
        self.orders.insert(0, order)
        if self.fill_after_polls == 0:
            self._fill(order)
        return Reply.json(self._order_json(order), 201)

    def _refusal(self, kind: Any, symbol: str, side: str, qty: Decimal) -> Reply | None:
        """Why the venue would refuse this order, checked in the order a venue would check."""
        pair = self.pairs.get(symbol)
        if kind != "market" or side not in ("buy", "sell") or pair is None:
            return error("Only market buy/sell orders of listed pairs are served here.", "type")
        increment = self.enforced_increment.get(symbol, Decimal(pair["asset_increment"]))
        if qty % increment:
            return error(
                f"Order quantity has too much precision. Please round to the nearest {increment}.",
                "asset_quantity",
            )
        minimum = Decimal(pair["min_order_size"])
        if qty < minimum:
            return error(
                f"Order quantity must be greater than or equal to {minimum}.", "asset_quantity"
            )
        if side == "buy" and qty * self.quotes[symbol][1] > self.buying_power:
            return error("Insufficient buying power.", "non_field_errors")
        if side == "sell" and qty > self.holdings.get(pair["asset_code"], Decimal(0)):
            return error("Insufficient holdings.", "non_field_errors")
        return None
