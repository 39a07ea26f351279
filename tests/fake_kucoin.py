"""A loopback KuCoin that answers the public market endpoints in KuCoin's own wire format.

It serves real bundled hourly candles, aggregated per requested ``type`` the way KuCoin does
(UTC buckets from the epoch, so ``1week`` candles open on Thursdays), as newest-first rows of
strings ``[time, open, close, high, low, volume, turnover]``, at most 1500 per answer, and
never a candle that opens after ``now``. Errors follow KuCoin: ``400100`` for a bad ``type``
or parameter, ``900001`` with HTTP 200 for an unknown symbol on the candle endpoint, ``"data":
null`` for an unknown symbol on the level-1 ticker, and an empty list when ``startAt`` or
``endAt`` is left out (KuCoin's documented default of 0).

Knobs: ``now``, ``price_factor`` (a venue that is off by that factor), ``drop_times`` (candle
open times the venue has no data for), ``empty_pages``, ``end_inclusive`` (KuCoin's ``endAt``
inclusivity is undocumented, so tests run both ways), ``mangle_rows`` (corrupt the rows of a
candle answer) and ``ticker_overrides`` (replace fields of a coin's ticker). Faults come from
:class:`tests.fake_http.FakeServer`; :meth:`FakeKucoin.rate_limit_reply` is KuCoin's 429.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from pt_types import HOUR, Candles, FloatArray
from tests.fake_http import FakeVenue, Reply, Request

CANDLES_PATH = "/api/v1/market/candles"
LEVEL1_PATH = "/api/v1/market/orderbook/level1"
ALL_TICKERS_PATH = "/api/v1/market/allTickers"
MAX_ROWS = 1500
# Types served from hourly data (bucket seconds); KuCoin's finer types and 1month exist but
# cannot be built from hourly candles, so they answer an empty list, as for an idle market.
SERVED_TYPES = {
    "1hour": HOUR,
    "2hour": 2 * HOUR,
    "4hour": 4 * HOUR,
    "6hour": 6 * HOUR,
    "8hour": 8 * HOUR,
    "12hour": 12 * HOUR,
    "1day": 24 * HOUR,
    "1week": 7 * 24 * HOUR,
}
UNSERVED_TYPES = {"1min", "3min", "5min", "15min", "30min", "1month"}
SPREAD = 1e-5  # half the bid/ask spread, as a fraction of the last price

Rows = list[list[Any]]


def fmt(x: float) -> str:
    """A number as KuCoin writes it: the shortest decimal that round-trips, no exponent."""
    return str(np.format_float_positional(float(x), trim="-"))


def error_reply(code: str, msg: str, status: int = 200) -> Reply:
    return Reply.json({"code": code, "msg": msg}, status)


def aggregate(hourly: Candles, size: int) -> Candles:
    """Buckets of ``size`` seconds counted from the epoch, as KuCoin cuts them."""
    t = hourly.time
    if size == HOUR or not len(t):
        return hourly
    bucket = t - t % size
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    ends = np.concatenate((starts[1:], [len(t)])) - 1
    volume: FloatArray = np.add.reduceat(hourly.volume, starts)
    return Candles(
        bucket[starts],
        hourly.open[starts],
        np.maximum.reduceat(hourly.high, starts),
        np.minimum.reduceat(hourly.low, starts),
        hourly.close[ends],
        np.round(volume, 8),
    )


class FakeKucoin(FakeVenue):
    """KuCoin's candle, level-1 and all-tickers endpoints over bundled hourly candles."""

    def __init__(
        self,
        hourly: Mapping[str, Candles],
        *,
        now: int,
        price_factor: float = 1.0,
        end_inclusive: bool = True,
    ) -> None:
        self.hourly = {coin.upper(): table for coin, table in hourly.items()}
        self.now = now
        self.price_factor = price_factor
        self.end_inclusive = end_inclusive
        self.drop_times: set[int] = set()
        self.empty_pages = False
        self.mangle_rows: Callable[[Rows], list[Any]] | None = None
        self.ticker_overrides: dict[str, dict[str, Any]] = {}
        super().__init__()
        self.server.route("GET", CANDLES_PATH, self._candles)
        self.server.route("GET", LEVEL1_PATH, self._level1)
        self.server.route("GET", ALL_TICKERS_PATH, self._all_tickers)

    def requests_to(self, path: str) -> list[Request]:
        return self.server.requests_to(path)

    @staticmethod
    def rate_limit_reply(reset_ms: int = 1500, *, status: int = 429) -> Reply:
        """KuCoin's answer when the public pool is used up (rate limit 2.0)."""
        headers = {
            "gw-ratelimit-limit": "2000",
            "gw-ratelimit-remaining": "0",
            "gw-ratelimit-reset": str(reset_ms),
        }
        return Reply.json({"code": "429000", "msg": "Too Many Requests"}, status, headers)

    def served(self, coin: str, size: int) -> Candles:
        """The candles of ``size`` seconds this venue has at ``now`` (before price_factor)."""
        return aggregate(self.hourly[coin].until(self.now), size)

    # ------------------------------------------------------------------ routes

    def _coin(self, symbol: str | None) -> str | None:
        coin, dash, quote = (symbol or "").partition("-")
        return coin if dash and quote == "USDT" and coin in self.hourly else None

    def _candles(self, request: Request) -> Reply:
        symbol, kind = request.param("symbol"), request.param("type")
        if not symbol or not kind:
            return error_reply("400100", "Invalid Parameter.", 400)
        if kind not in SERVED_TYPES and kind not in UNSERVED_TYPES:
            return error_reply("400100", "This type of Candlestick is currently not provided.", 400)
        coin = self._coin(symbol)
        if coin is None:
            return error_reply("900001", f"Symbol [{symbol}] not exists")
        try:
            start, end = int(request.param("startAt") or 0), int(request.param("endAt") or 0)
        except ValueError:
            return error_reply("400100", "Invalid Parameter.", 400)
        if kind in UNSERVED_TYPES or not start or not end or self.empty_pages:
            return Reply.json({"code": "200000", "data": []})
        rows: list[Any] = self._rows(self.served(coin, SERVED_TYPES[kind]), start, end)
        if self.mangle_rows:
            rows = self.mangle_rows(rows)
        return Reply.json({"code": "200000", "data": rows})

    def _rows(self, table: Candles, start: int, end: int) -> Rows:
        t = table.time
        keep = (t >= start) & ((t <= end) if self.end_inclusive else (t < end))
        keep &= ~np.isin(t, list(self.drop_times))
        newest_first = np.flatnonzero(keep)[::-1][:MAX_ROWS]
        f = self.price_factor
        return [
            [
                str(int(t[i])),
                fmt(table.open[i] * f),
                fmt(table.close[i] * f),
                fmt(table.high[i] * f),
                fmt(table.low[i] * f),
                fmt(table.volume[i]),
                fmt(round(table.volume[i] * table.close[i] * f, 8)),
            ]
            for i in newest_first
        ]

    def _last_day(self, coin: str) -> Candles | None:
        hours = self.hourly[coin].until(self.now)
        return hours.slice(max(0, len(hours) - 24)) if len(hours) else None

    def _level1(self, request: Request) -> Reply:
        coin = self._coin(request.param("symbol"))
        day = self._last_day(coin) if coin else None
        if coin is None or day is None:
            return Reply.json({"code": "200000", "data": None})
        last = float(day.close[-1]) * self.price_factor
        data = {
            "time": self.now * 1000,
            "sequence": "14609309753",
            "price": fmt(last),
            "size": "0.000025",
            "bestBid": fmt(round(last * (1 - SPREAD), 8)),
            "bestBidSize": "0.000025",
            "bestAsk": fmt(round(last * (1 + SPREAD), 8)),
            "bestAskSize": "1.24808993",
        }
        data.update(self.ticker_overrides.get(coin, {}))
        return Reply.json({"code": "200000", "data": data})

    def _ticker(self, coin: str, day: Candles) -> dict[str, Any]:
        f = self.price_factor
        last, first = float(day.close[-1]) * f, float(day.open[0]) * f
        turnover = float(np.sum(day.volume * day.close)) * f
        volume = float(np.sum(day.volume))
        item = {
            "symbol": f"{coin}-USDT",
            "symbolName": f"{coin}-USDT",
            "buy": fmt(round(last * (1 - SPREAD), 8)),
            "bestBidSize": "0.000025",
            "sell": fmt(round(last * (1 + SPREAD), 8)),
            "bestAskSize": "1.24949204",
            "changeRate": fmt(round((last - first) / first, 4)),
            "changePrice": fmt(round(last - first, 8)),
            "high": fmt(float(day.high.max()) * f),
            "low": fmt(float(day.low.min()) * f),
            "vol": fmt(round(volume, 8)),
            "volValue": fmt(round(turnover, 8)),
            "last": fmt(last),
            "averagePrice": fmt(round(turnover / volume, 8) if volume else last),
            "takerFeeRate": "0.001",
            "makerFeeRate": "0.001",
            "takerCoefficient": "1",
            "makerCoefficient": "1",
        }
        item.update(self.ticker_overrides.get(coin, {}))
        return item

    def _all_tickers(self, request: Request) -> Reply:
        tickers = []
        for coin in sorted(self.hourly):
            day = self._last_day(coin)
            if day is not None:
                tickers.append(self._ticker(coin, day))
        data = {"time": self.now * 1000, "ticker": tickers}
        return Reply.json({"code": "200000", "data": data})
