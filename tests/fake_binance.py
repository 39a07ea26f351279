"""A loopback Binance spot venue speaking the real wire format (spec §2) over real candles.

It serves ``/api/v3/klines``, ``/api/v3/ticker/24hr`` and ``/api/v3/ticker/bookTicker`` from
bundled hourly history, resampled per interval, never showing a candle that opens after
``now``. Parameters are checked the way Binance checks them (its error codes and messages, HTTP
400), every answer carries ``X-MBX-USED-WEIGHT-1M``, too much weight in a minute earns a 429
with ``Retry-After`` and then a 418 ban, and ``geo_blocked`` answers 451 like Binance does from
a restricted country. Prices are 8-decimal strings, times integer milliseconds (microseconds
when a request sends ``X-MBX-TIME-UNIT: MICROSECOND``), JSON compact as Binance sends it.

Only the seven trading intervals are served; any other interval is answered with -1120 as if
Binance did not know it. ``startTime`` after ``endTime`` is answered with an empty list.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from pt_candles import resample
from pt_types import HOUR, Candles, Timeframe
from tests.fake_http import FakeVenue, Reply, Request

DEFAULT_LIMIT, MAX_LIMIT = 500, 1000
WEIGHT_PER_MINUTE = 6000
BAN_SECONDS = 120
_SYMBOL_RE = re.compile(r"^[A-Z0-9-_.]{1,20}$")
_NUMBER_RE = re.compile(r"^[0-9]{1,20}$")
GEO_BLOCK_MSG = (
    "Service unavailable from a restricted location according to 'b. Eligibility' in "
    "https://www.binance.com/en/terms. Please contact customer service if you believe you "
    "received this message in error."
)
TOO_MUCH_WEIGHT_MSG = (
    "Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API."
)
BANNED_MSG = (
    "Way too much request weight used; IP banned until {until}. "
    "Please use WebSocket Streams for live updates to avoid bans."
)


class BinanceError(Exception):
    """A request Binance would refuse: HTTP status, its error code and message."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def _dec(x: float) -> str:
    """Binance's decimal strings: always 8 places."""
    return f"{x:.8f}"


def _compact(data: Any, status: int, headers: Mapping[str, str]) -> Reply:
    return Reply(status, json.dumps(data, separators=(",", ":")).encode(), dict(headers))


class FakeBinance(FakeVenue):
    """Binance on 127.0.0.1 serving ``hourly`` candles per coin; use as a context manager.

    Knobs (plain attributes, change them between requests): ``now`` (epoch seconds),
    ``price_factor`` (multiplies every price), ``drop_times`` (candle open times not served, a
    gap), ``empty_pages`` (every klines answer is ``[]``), ``geo_blocked``, ``weight_limit``,
    ``ticker_patch`` (fields overwritten in every ticker object, for garbage quotes) and
    ``spread`` (relative bid/ask distance from the last price).
    """

    def __init__(
        self,
        hourly: Mapping[str, Candles],
        *,
        now: int,
        price_factor: float = 1.0,
        drop_times: Collection[int] = (),
        empty_pages: bool = False,
        weight_limit: int = WEIGHT_PER_MINUTE,
    ) -> None:
        self.hourly = {f"{coin.upper()}USDT": c for coin, c in hourly.items()}
        self.now = now
        self.price_factor = price_factor
        self.drop_times: set[int] = set(drop_times)
        self.empty_pages = empty_pages
        self.geo_blocked = False
        self.weight_limit = weight_limit
        self.ticker_patch: dict[str, Any] = {}
        self.spread = 0.0001
        self._weight = 0
        self._window = time.monotonic()
        self._limited = False
        self._banned_until = 0.0
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, Timeframe, int], Candles] = {}
        super().__init__()
        self.server.route("GET", "/api/v3/klines", self._guard(self._klines, self._klines_weight))
        self.server.route("GET", "/api/v3/ticker/24hr", self._guard(self._ticker, self._t24_weight))
        self.server.route(
            "GET", "/api/v3/ticker/bookTicker", self._guard(self._book, self._book_weight)
        )

    # ------------------------------------------------------------------ plumbing

    def requests_to(self, path_prefix: str) -> list[Request]:
        return self.server.requests_to(path_prefix)

    def weight_header(self) -> dict[str, str]:
        return {"X-MBX-USED-WEIGHT-1M": str(self._weight)}

    def error_reply(
        self, status: int, code: int, msg: str, retry_after: int | None = None
    ) -> Reply:
        """A Binance error answer with its headers, for a queued ``Fault``."""
        headers = self.weight_header()
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return _compact({"code": code, "msg": msg}, status, headers)

    def rate_limited_reply(self, retry_after: int = 1) -> Reply:
        msg = TOO_MUCH_WEIGHT_MSG.format(limit=self.weight_limit)
        return self.error_reply(429, -1003, msg, retry_after)

    def banned_reply(self, retry_after: int = BAN_SECONDS) -> Reply:
        until = (int(time.time()) + retry_after) * 1000
        return self.error_reply(418, -1003, BANNED_MSG.format(until=until), retry_after)

    def geo_block_reply(self) -> Reply:
        return self.error_reply(451, 0, GEO_BLOCK_MSG)

    def _guard(self, handler: Any, weight: Any) -> Any:
        """Weight accounting, bans and geo-blocking around a route; Binance errors as 400s."""

        def serve(request: Request) -> Reply:
            if self.geo_blocked:
                return self.geo_block_reply()
            refusal = self._spend(int(weight(request)))
            if refusal is not None:
                return refusal
            try:
                return _compact(handler(request), 200, self.weight_header())
            except BinanceError as exc:
                return self.error_reply(exc.status, exc.code, exc.msg)

        return serve

    def _spend(self, weight: int) -> Reply | None:
        """Binance's per-minute weight: over the limit → 429; asking on regardless → 418."""
        with self._lock:
            clock = time.monotonic()
            if clock < self._banned_until:
                return self.banned_reply(math.ceil(self._banned_until - clock))
            if clock - self._window >= 60:
                self._window, self._weight, self._limited = clock, 0, False
            self._weight += weight
            if self._weight <= self.weight_limit:
                return None
            if self._limited:
                self._banned_until = clock + BAN_SECONDS
                return self.banned_reply(BAN_SECONDS)
            self._limited = True
            return self.rate_limited_reply(math.ceil(60 - (clock - self._window)))

    # ------------------------------------------------------------------ parameters

    def _symbol(self, request: Request, name: str = "symbol") -> str:
        symbol = request.param(name)
        if not symbol:
            raise BinanceError(
                -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
            )
        return self._known(symbol, name)

    def _known(self, symbol: str, name: str = "symbol") -> str:
        if not _SYMBOL_RE.match(symbol):
            raise BinanceError(
                -1100,
                f"Illegal characters found in parameter '{name}'; "
                "legal range is '^[A-Z0-9-_.]{1,20}$'.",
            )
        if symbol not in self.hourly:
            raise BinanceError(-1121, "Invalid symbol.")
        return symbol

    @staticmethod
    def _int(request: Request, name: str) -> int | None:
        value = request.param(name)
        if value is None:
            return None
        if not _NUMBER_RE.match(value):
            raise BinanceError(
                -1100,
                f"Illegal characters found in parameter '{name}'; "
                "legal range is '^[0-9]{1,20}$'.",
            )
        return int(value)

    @staticmethod
    def _klines_weight(request: Request) -> int:
        return 2

    @staticmethod
    def _t24_weight(request: Request) -> int:
        if request.param("symbol"):
            return 2
        symbols = request.param("symbols")
        try:
            count = len(json.loads(symbols)) if symbols else 101
        except (ValueError, TypeError):
            count = 1
        return 2 if count <= 20 else 40 if count <= 100 else 80

    @staticmethod
    def _book_weight(request: Request) -> int:
        return 2 if request.param("symbol") else 4

    # ------------------------------------------------------------------ klines

    def series(self, symbol: str, tf: Timeframe) -> Candles:
        """What this venue knows of ``symbol`` at ``now`` in ``tf`` (before the knobs)."""
        key = (symbol, tf, self.now)
        if key not in self._cache:
            hourly = self.hourly[symbol].until(self.now)
            if tf is not Timeframe.H1:
                hourly = resample(hourly, tf, now=self.now, base_step=HOUR)
            self._cache[key] = hourly
        return self._cache[key]

    def _klines(self, request: Request) -> list[list[Any]]:
        symbol = self._symbol(request)
        interval = request.param("interval")
        if not interval:
            raise BinanceError(
                -1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed."
            )
        if interval not in {tf.value for tf in Timeframe}:
            raise BinanceError(-1120, "Invalid interval.")
        limit = self._int(request, "limit")
        limit = DEFAULT_LIMIT if limit is None else limit
        if not 1 <= limit <= MAX_LIMIT:
            raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
        scale = (
            1_000_000
            if request.headers.get("x-mbx-time-unit", "").upper() == "MICROSECOND"
            else 1000
        )
        start, end = self._int(request, "startTime"), self._int(request, "endTime")
        if self.empty_pages:
            return []
        return self.rows(symbol, Timeframe(interval), start, end, limit, scale=scale)

    def rows(
        self,
        symbol: str,
        tf: Timeframe,
        start: int | None,
        end: int | None,
        limit: int = MAX_LIMIT,
        *,
        scale: int = 1000,
    ) -> list[list[Any]]:
        """Kline rows exactly as Binance sends them (``start``/``end`` in ``scale`` units).

        Without times: the newest ``limit``; with ``startTime``: the oldest from it; with
        ``endTime`` only: the newest up to it; with both: like ``startTime`` but not past
        ``endTime`` (rest-api.md "General information on endpoints").
        """
        c = self.series(symbol, tf)
        t = c.time * scale
        lo = 0 if start is None else int(np.searchsorted(t, start, side="left"))
        hi = len(t) if end is None else int(np.searchsorted(t, end, side="right"))
        index = np.arange(lo, max(lo, hi))
        if self.drop_times:
            index = index[~np.isin(c.time[index], list(self.drop_times))]
        index = index[:limit] if start is not None else index[-limit:]
        f, step = self.price_factor, tf.seconds
        return [
            [
                int(c.time[i]) * scale,
                _dec(c.open[i] * f),
                _dec(c.high[i] * f),
                _dec(c.low[i] * f),
                _dec(c.close[i] * f),
                _dec(c.volume[i]),
                (int(c.time[i]) + step) * scale - 1,
                _dec(c.volume[i] * c.close[i] * f),
                int(c.volume[i] * 10) + 1,
                _dec(c.volume[i] / 2),
                _dec(c.volume[i] * c.close[i] * f / 2),
                "0",
            ]
            for i in index
        ]

    # ------------------------------------------------------------------ tickers

    def _symbols(self, request: Request) -> list[str]:
        """``symbol`` XOR ``symbols`` (a JSON array), or every symbol when neither is sent."""
        one, many = request.param("symbol"), request.param("symbols")
        if one is not None and many is not None:
            raise BinanceError(-1128, "Combination of optional parameters invalid.")
        if one is not None:
            return [self._symbol(request)]
        if many is None:
            return sorted(self.hourly)
        try:
            names = json.loads(many)
        except ValueError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
            raise BinanceError(
                -1100,
                "Illegal characters found in parameter 'symbols'; legal range is "
                '\'^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$\'.',
            )
        return [self._known(n, "symbols") for n in names]

    def _ticker(self, request: Request) -> Any:
        objects = [self.ticker(s) for s in self._symbols(request)]
        return objects[0] if request.param("symbol") is not None else objects

    def _book(self, request: Request) -> Any:
        keys = ("symbol", "bidPrice", "bidQty", "askPrice", "askQty")
        objects = [{k: self.ticker(s)[k] for k in keys} for s in self._symbols(request)]
        return objects[0] if request.param("symbol") is not None else objects

    def ticker(self, symbol: str) -> dict[str, Any]:
        """The 24 h ticker at ``now``: last = close of the newest hourly candle served."""
        day = self.series(symbol, Timeframe.H1).until(self.now)
        day = day.slice(int(np.searchsorted(day.time, self.now - 86400, side="right")))
        if len(day) == 0:
            raise BinanceError(-1121, "Invalid symbol.")
        f = self.price_factor
        last = float(day.close[-1]) * f
        first_open = float(day.open[0]) * f
        volume = float(day.volume.sum())
        quote_volume = float((day.volume * day.close).sum()) * f
        ticker: dict[str, Any] = {
            "symbol": symbol,
            "priceChange": _dec(last - first_open),
            "priceChangePercent": f"{(last / first_open - 1) * 100:.3f}",
            "weightedAvgPrice": _dec(quote_volume / volume if volume else last),
            "prevClosePrice": _dec(first_open),
            "lastPrice": _dec(last),
            "lastQty": "0.01000000",
            "bidPrice": _dec(last * (1 - self.spread / 2)),
            "bidQty": "1.50000000",
            "askPrice": _dec(last * (1 + self.spread / 2)),
            "askQty": "2.25000000",
            "openPrice": _dec(first_open),
            "highPrice": _dec(float(day.high.max()) * f),
            "lowPrice": _dec(float(day.low.min()) * f),
            "volume": _dec(volume),
            "quoteVolume": _dec(quote_volume),
            "openTime": (self.now - 86400) * 1000,
            "closeTime": self.now * 1000,
            "firstId": 28385,
            "lastId": 28385 + len(day) * 100,
            "count": len(day) * 100 + 1,
        }
        ticker.update(self.ticker_patch)
        return ticker
