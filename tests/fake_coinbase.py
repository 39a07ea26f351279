"""A fake Coinbase Advanced Trade public API on 127.0.0.1 (spec §3), serving real candles.

The bundled history is KuCoin/Binance **USDT** candles; this fake serves them as if they were
Coinbase **USD** candles (``price_factor`` can move them off). It answers in Coinbase's wire
format: ``{"candles": [...]}`` with rows newest first and every field a string, ``start``/``end``
required, at most 350 buckets per ``start..end`` window, error bodies
``{"error", "code", "message", "error_details"}`` and ``x-ratelimit-*`` headers.

Candle windows are taken as inclusive of ``end`` (a bucket opening exactly at ``end`` is served):
the documentation does not say, and the harder case catches clients that rely on exclusivity.
ONE_HOUR, TWO_HOUR and ONE_DAY are served from the hourly history; the other documented
granularities (minutes, SIX_HOUR) answer an empty list, since the bundled data cannot make them.
FOUR_HOUR is rejected like an unknown value: the public endpoint's enum leaves it out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from pt_candles import resample
from pt_types import HOUR, Candles, Timeframe
from tests.fake_http import FakeVenue, Reply, Request, html_429_page

PRODUCTS = "/api/v3/brokerage/market/products/"
MAX_BUCKETS = 350
GRANULARITY_SECONDS = {
    "ONE_MINUTE": 60,
    "FIVE_MINUTE": 300,
    "FIFTEEN_MINUTE": 900,
    "THIRTY_MINUTE": 1800,
    "ONE_HOUR": 3600,
    "TWO_HOUR": 7200,
    "SIX_HOUR": 21600,
    "ONE_DAY": 86400,
}
SERVED = {"ONE_HOUR": Timeframe.H1, "TWO_HOUR": Timeframe.H2, "ONE_DAY": Timeframe.D1}
SPREAD = 0.0001  # bid and ask sit this fraction below and above the last trade


def error_body(error: str, message: str, code: int) -> dict[str, Any]:
    """Coinbase's gRPC-gateway error body as observed (spec §3.4)."""
    return {"error": error, "code": code, "message": message, "error_details": message}


def _num(x: float) -> str:
    """A float as the shortest string that reads back as the same float."""
    return repr(float(x))


def _rfc3339(t: float) -> str:
    stamp = np.datetime64(int(t * 1_000_000), "us")
    return str(stamp) + "Z"


class FakeCoinbase(FakeVenue):
    """Coinbase's public market endpoints over ``hourly`` candles per coin; a context manager.

    Knobs (plain attributes, change them any time): ``now`` (no candle opening later is served),
    ``price_factor``, ``drop_times`` (bucket open times left out, i.e. gaps), ``empty_pages``,
    ``mangle_rows`` (a function given each page of rows, newest first, returning what to send),
    ``unknown_product_status`` (404, or 400 as some endpoints answer), ``product_reply`` (what
    the product-details endpoint answers instead, e.g. an error).
    """

    def __init__(
        self,
        hourly: Mapping[str, Candles],
        *,
        now: float,
        price_factor: float = 1.0,
        drop_times: Iterable[int] = (),
    ) -> None:
        self.hourly = {coin.upper(): c for coin, c in hourly.items()}
        self.now = now
        self.price_factor = price_factor
        self.drop_times = set(drop_times)
        self.empty_pages = False
        self.mangle_rows: Callable[[list[dict[str, str]]], list[Any]] | None = None
        self.unknown_product_status = 404
        self.product_reply: Reply | None = None
        super().__init__()
        self.server.route_prefix("GET", PRODUCTS, self._route)

    def candle_requests(self) -> list[Request]:
        return [r for r in self.server.requests_to(PRODUCTS) if r.path.endswith("/candles")]

    # ------------------------------------------------------------------ canned replies

    def rate_limited(self, *, html: bool = False, retry_after: float | None = None) -> Reply:
        """A 429 as Coinbase sends it: JSON or an HTML page, with the rate-limit headers."""
        headers = {**self._ratelimit_headers(remaining=0)}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if html:
            page = html_429_page()
            return Reply(429, page.body, headers, page.content_type)
        body = {"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}
        return Reply.json(body, 429, headers)

    def ticker_body(self, coin: str) -> dict[str, Any]:
        """The normal ticker answer for ``coin`` now (tests edit it to make bad quotes)."""
        last = self._last_price(coin.upper())
        trade = {
            "trade_id": "34b080bf-fcfd-445a-832b-46b5ddc65601",
            "product_id": f"{coin.upper()}-USD",
            "price": _num(last),
            "size": "0.0125",
            "time": _rfc3339(self.now - 1.5),
            "side": "BUY",
            "bid": "",
            "ask": "",
            "exchange": "coinbase",
        }
        return {
            "trades": [trade],
            "best_bid": _num(last * (1 - SPREAD)),
            "best_ask": _num(last * (1 + SPREAD)),
        }

    def volume_24h(self, coin: str) -> float:
        """Base volume of the hourly candles that opened in the 24 h up to ``now``."""
        c = self.hourly[coin.upper()].until(int(self.now))
        return round(float(c.volume[c.time > self.now - 24 * HOUR].sum()), 8)

    # ------------------------------------------------------------------ routing

    def _route(self, request: Request) -> Reply:
        parts = request.path[len(PRODUCTS) :].split("/")
        product = parts[0]
        coin = product.removesuffix("-USD")
        if not product.endswith("-USD") or coin not in self.hourly:
            message = f"ProductID {product} could not be found"
            return self._reply(error_body("NOT_FOUND", message, 5), self.unknown_product_status)
        if len(parts) == 1:
            return self.product_reply or self._reply(self._product(coin))
        if parts[1:] == ["candles"]:
            return self._candles(coin, request)
        if parts[1:] == ["ticker"]:
            limit = request.param("limit")
            if limit is None or not limit.isdigit():
                return self._invalid("limit argument is invalid")
            return self._reply(self.ticker_body(coin))
        return self._reply(error_body("NOT_FOUND", "Not Found", 5), 404)

    def _candles(self, coin: str, request: Request) -> Reply:
        start, end = request.param("start"), request.param("end")
        granularity = request.param("granularity") or ""
        limit = request.param("limit") or str(MAX_BUCKETS)
        if start is None or end is None or not start.isdigit() or not end.isdigit():
            return self._invalid("start and end argument is invalid")
        if granularity not in GRANULARITY_SECONDS:
            return self._invalid("granularity argument is invalid")
        if not limit.isdigit() or not 0 < int(limit) <= MAX_BUCKETS:
            return self._invalid("limit argument is invalid")
        lo, hi, step = int(start), int(end), GRANULARITY_SECONDS[granularity]
        if hi < lo or (hi - lo) / step > MAX_BUCKETS:
            return self._invalid(
                "start and end argument is invalid - number of candles requested should be "
                f"less than {MAX_BUCKETS}"
            )
        rows = [] if self.empty_pages else self._rows(coin, granularity, lo, hi)[: int(limit)]
        page: list[Any] = self.mangle_rows(rows) if self.mangle_rows else rows
        return self._reply({"candles": page})

    def _rows(self, coin: str, granularity: str, start: int, end: int) -> list[dict[str, str]]:
        """Buckets opening in ``[start, end]`` and by ``now``, newest first, as strings."""
        tf = SERVED.get(granularity)
        if tf is None:
            return []
        hourly = self.hourly[coin].until(int(self.now))
        first = start - start % tf.seconds
        lo, hi = np.searchsorted(hourly.time, [first, end - end % tf.seconds + tf.seconds])
        c = resample(hourly.slice(int(lo), int(hi)), tf, now=int(self.now), base_step=HOUR)
        f = self.price_factor
        rows = [
            {"start": str(t), "low": _num(lo_ * f), "high": _num(h * f),
             "open": _num(o * f), "close": _num(cl * f), "volume": _num(v)}
            for t, o, h, lo_, cl, v in zip(
                c.time.tolist(), c.open, c.high, c.low, c.close, c.volume, strict=True
            )
            if start <= t <= end and t not in self.drop_times
        ]  # fmt: skip
        return rows[::-1]

    def _product(self, coin: str) -> dict[str, Any]:
        return {
            "product_id": f"{coin}-USD",
            "price": _num(self._last_price(coin)),
            "price_percentage_change_24h": "1.25%",
            "volume_24h": _num(self.volume_24h(coin)),
            "volume_percentage_change_24h": "-3.1%",
            "base_increment": "0.00000001",
            "quote_increment": "0.01",
            "quote_min_size": "1",
            "quote_max_size": "150000000",
            "base_min_size": "0.00000001",
            "base_max_size": "3400",
            "base_name": coin,
            "quote_name": "US Dollar",
            "status": "online",
            "trading_disabled": False,
            "product_type": "SPOT",
            "quote_currency_id": "USD",
            "base_currency_id": coin,
        }

    def _last_price(self, coin: str) -> float:
        """Close of the last hourly candle that opened by ``now``, times ``price_factor``."""
        c = self.hourly[coin].until(int(self.now))
        return float(c.close[-1]) * self.price_factor

    def _ratelimit_headers(self, remaining: int) -> dict[str, str]:
        return {
            "x-ratelimit-limit": "10",
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(int(self.now) + 1),
        }

    def _reply(self, body: Any, status: int = 200) -> Reply:
        return Reply.json(body, status, self._ratelimit_headers(remaining=9))

    def _invalid(self, message: str) -> Reply:
        return self._reply(error_body("INVALID_ARGUMENT", message, 3), 400)
