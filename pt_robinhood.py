"""Robinhood Crypto Trading API v1 client: signed requests, every page, safe market orders.

Why it looks the way it does (spec §4, original faults §6):

- Every request is signed with Ed25519 over ``api_key + timestamp + path?query + METHOD + body``
  (§4.1). The exact path and body that are signed are the ones sent: the query string is
  encoded once (``encode_query``), and the body is sent as the very bytes that were signed.
- Lists are read to the last page by following ``next`` (§4.4; the original read only the first,
  fault §6.13). Only the path and query of ``next`` are used: requests always go to our own
  base URL, so a ``next`` naming another host can never receive our signed headers.
- Quantities are rounded DOWN to the pair's asset increment with Decimal, so a sell of a whole
  holding never asks for more than is held (fault §6.17); below the minimum is refused before
  anything is sent. A "too much precision" refusal is retried once with the increment the venue
  names; a minimum-size refusal is final.
- Waiting for a fill has a deadline (fault §6.24).
- A POST that got no answer may still have created the order, so before sending it again the
  order is looked up by its ``client_order_id``; the same id is reused, so a venue that enforces
  idempotency cannot create a second one either way.
- Errors become pt_errors; the API key, the private key and signatures never reach a log line or
  an exception (they are also registered with pt_logging's redactor).
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests

from pt_errors import PermanentExchangeError, TemporaryExchangeError
from pt_http import RateLimiter, RetryPolicy
from pt_logging import register_secret
from pt_robinhood_wire import (
    Account,
    BestBidAsk,
    EstimatedPrice,
    Holding,
    Order,
    OrderNotFoundError,
    OrderWait,
    Params,
    RobinhoodRequestError,
    TradingPair,
    encode_query,
    format_quantity,
    order_error,
    parse_json,
    precision_increment,
    private_key_from_seed,
    raise_for_status,
    sign,
)
from pt_types import Side

log = logging.getLogger(__name__)

ACCOUNTS = "/api/v1/crypto/trading/accounts/"
HOLDINGS = "/api/v1/crypto/trading/holdings/"
TRADING_PAIRS = "/api/v1/crypto/trading/trading_pairs/"
ORDERS = "/api/v1/crypto/trading/orders/"
BEST_BID_ASK = "/api/v1/crypto/marketdata/best_bid_ask/"
ESTIMATED_PRICE = "/api/v1/crypto/marketdata/estimated_price/"

MAX_PAGES = 1000  # a venue that keeps answering "next" must not keep us forever
_ORDER_ID = re.compile(r"[A-Za-z0-9-]{1,64}")


class RobinhoodClient:
    """The Robinhood Crypto Trading API v1 for one account; all collaborators are injectable."""

    def __init__(
        self,
        api_key: str,
        private_key_seed: bytes,
        *,
        base_url: str = "https://trading.robinhood.com",
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not api_key.strip():
            raise ValueError("the Robinhood API key is empty")
        register_secret(api_key)
        for form in {bytes(private_key_seed), bytes(private_key_seed[:32])}:
            register_secret(base64.b64encode(form).decode("ascii"))
        self._api_key = api_key.strip()
        self._key = private_key_from_seed(bytes(private_key_seed))
        parts = urlsplit(base_url.rstrip("/"))
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path
        self._clock, self._sleep, self.timeout = clock, sleep, timeout
        self._session = session or requests.Session()
        self._retry = retry or RetryPolicy()
        # Documented: 100 requests/min per account, bursts to 300 (spec §4.4); stay under it.
        self._limiter = limiter or RateLimiter(100 / 60, 100, sleep=sleep)
        self._rng = rng or random.Random()
        self._pairs: dict[str, TradingPair] = {}

    def __repr__(self) -> str:
        return f"RobinhoodClient(base_url={self._origin + self._prefix!r})"

    # ------------------------------------------------------------------ transport

    def _send(self, method: str, path: str, body: str = "") -> requests.Response:
        """One signed request for ``path`` (full path with query); raises pt_errors."""
        self._limiter.acquire()
        timestamp = str(int(self._clock()))
        message = f"{self._api_key}{timestamp}{path}{method}{body}"
        headers = {
            "x-api-key": self._api_key,
            "x-timestamp": timestamp,
            "x-signature": sign(self._key, message),
        }
        if body:
            headers["Content-Type"] = "application/json"
        what = f"robinhood {method} {path}"
        started = time.perf_counter()
        try:
            response = self._session.request(
                method,
                self._origin + path,
                data=body.encode("utf-8") if body else None,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.Timeout:
            raise TemporaryExchangeError(f"{what}: no answer within {self.timeout} s") from None
        except requests.RequestException as exc:
            raise TemporaryExchangeError(
                f"{what}: connection failed: {type(exc).__name__}"
            ) from None
        log.debug(
            "%s -> %s in %.0f ms",
            what,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        raise_for_status(what, response)
        return response

    def _path(self, path: str, params: Params = ()) -> str:
        query = encode_query(params)
        return self._prefix + path + (f"?{query}" if query else "")

    def _get(self, path: str, *, retry: bool = True) -> Any:
        """GET JSON with retries of temporary failures (backoff, ``Retry-After`` honoured)."""
        attempts = self._retry.attempts if retry else 1
        last: TemporaryExchangeError | None = None
        for attempt in range(attempts):
            if last is not None:
                wait = self._retry.delay(attempt - 1, last.retry_after, self._rng)
                if wait > self._retry.max_delay:
                    raise last
                log.info("%s; retrying in %.1f s", last, wait)
                self._sleep(wait)
            try:
                return parse_json(f"robinhood GET {path}", self._send("GET", path))
            except TemporaryExchangeError as exc:
                last = exc
        assert last is not None
        if attempts == 1:
            raise last
        raise TemporaryExchangeError(
            f"{last} (gave up after {attempts} attempts)", retry_after=last.retry_after
        ) from last

    def _pages(self, path: str, params: Params = ()) -> Iterator[list[Any]]:
        """Each page's ``results``, following ``next`` to the end (spec §4.4)."""
        current = self._path(path, params)
        seen = {current}
        for _ in range(MAX_PAGES):
            body = self._get(current)
            results = body.get("results") if isinstance(body, dict) else None
            if not isinstance(results, list):
                raise TemporaryExchangeError(f"robinhood GET {current}: no results list")
            yield results
            nxt = body.get("next")
            if not nxt:
                return
            parts = urlsplit(str(nxt))
            current = parts.path + (f"?{parts.query}" if parts.query else "")
            if current in seen:
                raise TemporaryExchangeError(f"robinhood GET {path}: pagination loops")
            seen.add(current)
        raise TemporaryExchangeError(f"robinhood GET {path}: more than {MAX_PAGES} pages")

    def _all(self, path: str, params: Params = ()) -> list[Any]:
        return [row for page in self._pages(path, params) for row in page]

    # ------------------------------------------------------------------ reads

    def account(self) -> Account:
        return Account.parse(self._get(self._path(ACCOUNTS)))

    def holdings(self, asset_codes: Iterable[str] = ()) -> list[Holding]:
        params = [("asset_code", c.upper()) for c in asset_codes]
        return [Holding.parse(row) for row in self._all(HOLDINGS, params)]

    def trading_pairs(self, symbols: Iterable[str] = ()) -> list[TradingPair]:
        params = [("symbol", s.upper()) for s in symbols]
        pairs = [TradingPair.parse(row) for row in self._all(TRADING_PAIRS, params)]
        self._pairs.update((p.symbol, p) for p in pairs)
        return pairs

    def trading_pair(self, symbol: str, *, refresh: bool = False) -> TradingPair:
        """One pair's increments and limits, cached (they change rarely)."""
        symbol = symbol.upper()
        if refresh or symbol not in self._pairs:
            self.trading_pairs([symbol])
        try:
            return self._pairs[symbol]
        except KeyError:
            raise PermanentExchangeError(f"robinhood: {symbol} is not a trading pair") from None

    def best_bid_ask(self, symbols: Iterable[str]) -> dict[str, BestBidAsk]:
        params = [("symbol", s.upper()) for s in symbols]
        body = self._get(self._path(BEST_BID_ASK, params))
        rows = body.get("results") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise TemporaryExchangeError("robinhood best_bid_ask: no results list")
        quotes = [BestBidAsk.parse(row) for row in rows]
        return {q.symbol: q for q in quotes}

    def estimated_price(
        self, symbol: str, side: str, quantities: Sequence[Decimal]
    ) -> list[EstimatedPrice]:
        """What market orders of these sizes would get; ``side`` is bid (sell), ask (buy), both."""
        if side not in ("bid", "ask", "both") or not 1 <= len(quantities) <= 10:
            raise ValueError("side must be bid, ask or both, with 1 to 10 quantities")
        params = [
            ("symbol", symbol.upper()),
            ("side", side),
            ("quantity", ",".join(format_quantity(q) for q in quantities)),
        ]
        body = self._get(self._path(ESTIMATED_PRICE, params))
        rows = body.get("results") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise TemporaryExchangeError("robinhood estimated_price: no results list")
        return [EstimatedPrice.parse(row) for row in rows]

    def orders(
        self,
        *,
        symbol: str | None = None,
        side: str | None = None,
        state: str | None = None,
        created_at_start: str | None = None,
        page_size: int | None = None,
    ) -> list[Order]:
        """Every order matching the filters, all pages."""
        return list(self._iter_orders(symbol, side, state, created_at_start, page_size))

    def _iter_orders(
        self,
        symbol: str | None,
        side: str | None,
        state: str | None,
        created_at_start: str | None,
        page_size: int | None,
    ) -> Iterator[Order]:
        params = [
            (name, value)
            for name, value in (
                ("symbol", symbol.upper() if symbol else None),
                ("side", side),
                ("state", state),
                ("created_at_start", created_at_start),
                ("limit", str(page_size) if page_size else None),
            )
            if value
        ]
        for page in self._pages(ORDERS, params):
            yield from (Order.parse(row) for row in page)

    def get_order(self, order_id: str, *, retry: bool = True) -> Order:
        if not _ORDER_ID.fullmatch(order_id):
            raise ValueError(f"not an order id: {order_id!r}")
        try:
            return Order.parse(self._get(self._path(f"{ORDERS}{order_id}/"), retry=retry))
        except RobinhoodRequestError as exc:
            if exc.status == 404:
                raise OrderNotFoundError(f"robinhood: no order {order_id}") from None
            raise

    def find_order_by_client_id(
        self, client_order_id: str, *, symbol: str | None = None
    ) -> Order | None:
        """The order we sent with this ``client_order_id``, scanning every page; None if none.

        The v1 orders list has no client-id filter, so this is how a restart learns whether an
        order it meant to send reached Robinhood."""
        for order in self._iter_orders(symbol, None, None, None, None):
            if order.client_order_id == client_order_id:
                return order
        return None

    # ------------------------------------------------------------------ orders

    def prepare_quantity(self, pair: TradingPair, quantity: Decimal | float | str) -> Decimal:
        """``quantity`` rounded down to the pair's increment, or a clear error before sending."""
        return pair.order_quantity(quantity)

    def place_market_order(
        self,
        symbol: str,
        side: Side | str,
        quantity: Decimal | float | str,
        client_order_id: str,
        *,
        attempts: int = 3,
    ) -> Order:
        """Send a market order sized in asset quantity (spec §4.6) and return it as accepted.

        A TemporaryExchangeError out of here means it is unknown whether Robinhood has the
        order: reconcile with :meth:`find_order_by_client_id` before deciding anything."""
        side = Side(side)
        uuid.UUID(client_order_id)  # a ValueError before anything is sent
        symbol = symbol.upper()
        pair = self.trading_pair(symbol)
        qty = self.prepare_quantity(pair, quantity)
        precision_retried = False
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._post_order(symbol, side, qty, client_order_id)
            except RobinhoodRequestError as exc:
                increment = precision_increment(exc)
                if increment is not None and not precision_retried:
                    precision_retried = True
                    pair = replace(pair, asset_increment=increment)
                    self._pairs[symbol] = pair
                    log.warning("%s: retrying with increment %s", exc, format_quantity(increment))
                    qty = self.prepare_quantity(pair, qty)
                    continue
                if any(attr == "client_order_id" for attr, _ in exc.errors):
                    found = self.find_order_by_client_id(client_order_id, symbol=symbol)
                    if found is not None:
                        return found  # the venue refused a duplicate: the original stands
                raise order_error(symbol, exc) from None
            except TemporaryExchangeError as exc:
                found = self.find_order_by_client_id(client_order_id, symbol=symbol)
                if found is not None:
                    return found  # it got through although the answer did not
                if attempt >= attempts:
                    raise
                wait = self._retry.delay(attempt - 1, exc.retry_after, self._rng)
                if wait > self._retry.max_delay:
                    raise
                log.info("%s; order not at the venue, sending again in %.1f s", exc, wait)
                self._sleep(wait)

    def _post_order(self, symbol: str, side: Side, qty: Decimal, client_order_id: str) -> Order:
        body = json.dumps(
            {
                "client_order_id": client_order_id,
                "side": side.value,
                "type": "market",
                "symbol": symbol,
                "market_order_config": {"asset_quantity": format_quantity(qty)},
            },
            separators=(",", ":"),
        )
        log.info(
            "placing market %s of %s %s (client_order_id %s)",
            side.value,
            format_quantity(qty),
            symbol,
            client_order_id,
        )
        path = self._path(ORDERS)
        return Order.parse(parse_json(f"robinhood POST {path}", self._send("POST", path, body)))

    def cancel_order(self, order_id: str) -> str:
        """Ask for a cancel; it is asynchronous, so confirm with :meth:`get_order` (spec §4.5)."""
        if not _ORDER_ID.fullmatch(order_id):
            raise ValueError(f"not an order id: {order_id!r}")
        try:
            return self._send("POST", self._path(f"{ORDERS}{order_id}/cancel/")).text
        except RobinhoodRequestError as exc:
            if exc.status == 404:
                raise OrderNotFoundError(f"robinhood: no order {order_id}") from None
            raise

    def wait_for_order(
        self,
        order_id: str,
        *,
        deadline_s: float,
        first_delay: float = 0.5,
        max_delay: float = 5.0,
    ) -> OrderWait:
        """Poll until the order is terminal or ``deadline_s`` seconds have passed, never longer
        than that plus one request's timeout (fault §6.24). Temporary failures and an order not
        yet visible are polled through; if it was never seen, the last error is raised."""
        deadline = self._clock() + deadline_s
        delay = first_delay
        last: Order | None = None
        error: Exception | None = None
        while True:
            try:
                last = self.get_order(order_id, retry=False)
                if last.terminal:
                    return OrderWait(last, True)
            except (TemporaryExchangeError, OrderNotFoundError) as exc:
                error = exc
                log.info("waiting for order %s: %s", order_id, exc)
            remaining = deadline - self._clock()
            if remaining <= 0:
                if last is None:
                    assert error is not None
                    raise error
                log.warning(
                    "order %s still %s after %.0f s; stopped waiting",
                    order_id,
                    last.state,
                    deadline_s,
                )
                return OrderWait(last, False)
            self._sleep(min(delay, remaining))
            delay = min(delay * 1.5, max_delay)
