"""Binance spot public market data (klines and tickers) as candle tables and quotes.

Binance is the second market-data venue after KuCoin: its klines come oldest first as arrays of
twelve fields with times in milliseconds and prices as strings, at most 1000 rows a call. Paging
asks for the next ``startTime`` right after the last candle received, which is the fewest
requests possible: Binance fills every answer up to ``limit`` from ``startTime`` on, whatever
gaps the history has, so a page shorter than the limit is the last one.

Binance answers errors with HTTP 4xx and ``{"code": -1121, "msg": "Invalid symbol."}``; the
shared :class:`pt_http.HttpClient` turns those (and 418/429 bans with ``Retry-After``, 451
geo-blocks and 403 WAF blocks) into ``pt_errors`` with the venue's message. Its weekly candles
open on Monday 00:00 UTC, the same anchor as ``Timeframe.W1``, so no re-bucketing is needed.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import requests

from pt_candles import numbers, repair_candles
from pt_errors import PermanentExchangeError, TemporaryExchangeError
from pt_exchanges import mark_forming
from pt_http import HttpClient, RateLimiter
from pt_types import Candles, FloatArray, IntArray, Quote, Timeframe

log = logging.getLogger(__name__)

KLINES_PATH = "/api/v3/klines"
TICKER_24HR_PATH = "/api/v3/ticker/24hr"
BOOK_TICKER_PATH = "/api/v3/ticker/bookTicker"
MAX_ROWS = 1000  # /api/v3/klines ``limit`` maximum
# Binance's interval names; ours happen to be spelled the same, but the mapping is the contract.
INTERVALS: dict[Timeframe, str] = {
    Timeframe.H1: "1h",
    Timeframe.H2: "2h",
    Timeframe.H4: "4h",
    Timeframe.H8: "8h",
    Timeframe.H12: "12h",
    Timeframe.D1: "1d",
    Timeframe.W1: "1w",
}
_MAX_SECONDS = 253_402_300_799  # 9999-12-31: a larger "second" is really a ms/µs timestamp


@dataclass
class _Rows:
    """Kline fields gathered over all pages (raw times in the venue's unit)."""

    time: list[float] = field(default_factory=list)
    ohlcv: list[list[object]] = field(default_factory=list)
    malformed: int = 0


def _seconds(t: float) -> int:
    """A venue timestamp as whole seconds: Binance sends ms, or µs if asked to."""
    while t > _MAX_SECONDS:
        t /= 1000
    return math.floor(t)


def _venue_error(what: str, body: Any) -> str | None:
    """The venue's own message if ``body`` is a Binance error object."""
    if isinstance(body, dict) and "code" in body and isinstance(body.get("msg"), str):
        return f"{what}: {body['msg']} (code {body['code']})"
    return None


class BinanceVenue:
    """Binance spot klines and tickers for ``<COIN>USDT`` (implements ``MarketSource``).

    ``http`` replaces the whole transport (tests inject a fast retry policy); otherwise a client
    with a token bucket of 10 requests/s is built: klines weigh 2 of Binance's 6000 per minute,
    so even long paging stays far below the limit that would earn a 429 and then an IP ban.
    """

    name = "binance"
    quote_currency = "USDT"

    def __init__(
        self,
        base_url: str = "https://api.binance.com",
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        http: HttpClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
        taker_fee_pct: float = 0.1,
    ) -> None:
        self.taker_fee_pct = taker_fee_pct
        self._clock = clock
        self.http = http or HttpClient(
            self.name,
            base_url,
            timeout=timeout,
            limiter=RateLimiter(10.0, 10.0, sleep=sleep),
            sleep=sleep,
        )

    @staticmethod
    def symbol(coin: str) -> str:
        name = coin.strip().upper()
        if not name.isalnum():
            raise PermanentExchangeError(f"binance: {coin!r} is not a coin symbol")
        return name + "USDT"

    # ------------------------------------------------------------------ candles

    def candles(self, coin: str, timeframe: Timeframe, start: int, end: int) -> Candles:
        """Candles opening in ``[start, end)``, ascending, the last one marked when forming."""
        symbol = self.symbol(coin)
        interval = INTERVALS[timeframe]
        rows = _Rows()
        cursor = start
        while cursor < end:
            page = self._klines(symbol, interval, cursor, end)
            before = len(rows.time)
            _collect(page, rows)
            received = [t for t in rows.time[before:] if math.isfinite(t)]
            if len(page) < MAX_ROWS or not received:
                break
            following = _seconds(max(received)) + timeframe.seconds
            if following <= cursor:
                break  # the venue did not move forward: stop rather than loop
            cursor = following
        table = self._repair(rows, symbol, interval, timeframe)
        inside = (table.time >= start) & (table.time < end)
        if not np.all(inside):
            kept = np.flatnonzero(inside)
            table = table.slice(int(kept[0]), int(kept[-1]) + 1) if len(kept) else Candles.empty()
        return mark_forming(table, timeframe, self._clock())

    def _klines(self, symbol: str, interval: str, start: int, end: int) -> list[Any]:
        params = {
            "symbol": symbol,
            "interval": interval,
            "startTime": start * 1000,
            "endTime": end * 1000 - 1,  # Binance's endTime is inclusive; ours is not
            "limit": MAX_ROWS,
        }
        body = self.http.get_json(KLINES_PATH, params, check=_expect_list)
        assert isinstance(body, list)  # _expect_list made sure
        return body

    def _repair(self, rows: _Rows, symbol: str, interval: str, tf: Timeframe) -> Candles:
        where = f"binance {symbol} {interval}"
        if rows.malformed:
            log.warning("%s: %d row(s) dropped: not a kline array", where, rows.malformed)
        times = numbers(rows.time)
        finite = np.isfinite(times)
        if not np.all(finite):
            log.warning("%s: %d row(s) dropped: open time is not a number", where, (~finite).sum())
        ms: IntArray = times[finite].astype(np.int64)
        fields: FloatArray = (
            numbers([v for row, ok in zip(rows.ohlcv, finite, strict=True) if ok for v in row])
            .reshape(-1, 5)
            .T
        )
        raw = Candles(ms // 1000, fields[0], fields[1], fields[2], fields[3], fields[4])
        table, reasons = repair_candles(raw, tf.seconds)
        for reason in reasons:
            log.warning("%s: %s", where, reason)
        return table

    # ------------------------------------------------------------------ quotes

    def quote(self, coin: str) -> Quote:
        """Best bid/ask, last price and 24 h volumes from the 24 h ticker."""
        symbol = self.symbol(coin)
        body = self.http.get_json(TICKER_24HR_PATH, {"symbol": symbol}, check=_expect_dict)
        return _quote(coin.strip().upper(), symbol, body)

    def book_ticker(self, coin: str) -> tuple[float, float]:
        """``(bid, ask)`` from the lighter book ticker, checked like a quote."""
        symbol = self.symbol(coin)
        body = self.http.get_json(BOOK_TICKER_PATH, {"symbol": symbol}, check=_expect_dict)
        bid = _price(body, "bidPrice", symbol)
        ask = _price(body, "askPrice", symbol)
        _check_spread(symbol, bid, ask)
        return bid, ask

    def quotes(self, coins: Iterable[str]) -> dict[str, Quote]:
        """Quotes for several coins in one request (``symbols`` as a JSON array).

        A coin whose ticker is unusable is left out with a warning rather than failing the
        others; a coin Binance does not list fails the whole request, as Binance answers it.
        """
        by_symbol = {self.symbol(c): c.strip().upper() for c in coins}
        if not by_symbol:
            return {}
        symbols = json.dumps(sorted(by_symbol), separators=(",", ":"))
        body = self.http.get_json(TICKER_24HR_PATH, {"symbols": symbols}, check=_expect_list)
        result: dict[str, Quote] = {}
        for item in body:
            symbol = item.get("symbol") if isinstance(item, dict) else None
            if symbol not in by_symbol:
                log.warning("binance %s: unexpected ticker entry %.80r", TICKER_24HR_PATH, item)
                continue
            try:
                result[by_symbol[symbol]] = _quote(by_symbol[symbol], symbol, item)
            except TemporaryExchangeError as exc:
                log.warning("%s", exc)
        return result


# ---------------------------------------------------------------------- wire-format checks


def _expect_list(body: Any, response: requests.Response) -> None:
    _expect(body, list, response)


def _expect_dict(body: Any, response: requests.Response) -> None:
    _expect(body, dict, response)


def _expect(body: Any, kind: type, response: requests.Response) -> None:
    """A 200 whose body is not the expected JSON shape: a venue error or a glitch."""
    if isinstance(body, kind) and _venue_error("", body) is None:
        return
    what = f"binance {response.request.path_url.split('?')[0]}"
    message = _venue_error(what, body)
    if message:
        raise PermanentExchangeError(message)
    raise TemporaryExchangeError(f"{what}: expected a JSON {kind.__name__}, got {body!r:.80}")


def _collect(page: Sequence[Any], rows: _Rows) -> None:
    """Append a page's open times and OHLCV fields; rows of the wrong shape are counted."""
    for row in page:
        if not isinstance(row, list) or len(row) < 6:
            rows.malformed += 1
            continue
        rows.time.append(_number(row[0]))
        rows.ohlcv.append(row[1:6])


def _number(value: object) -> float:
    return float(numbers([value])[0])


def _price(body: dict[str, Any], key: str, symbol: str) -> float:
    value = _number(body.get(key))
    if not (math.isfinite(value) and value > 0):
        raise TemporaryExchangeError(f"binance {symbol}: bad {key} {body.get(key)!r}")
    return value


def _check_spread(symbol: str, bid: float, ask: float) -> None:
    if bid > ask:
        raise TemporaryExchangeError(f"binance {symbol}: bid {bid} is above ask {ask}")


def _volume(body: dict[str, Any], key: str) -> float | None:
    value = _number(body.get(key))
    return value if math.isfinite(value) and value >= 0 else None


def _quote(coin: str, symbol: str, body: dict[str, Any]) -> Quote:
    """A 24 h ticker object as a Quote; any unusable price is a glitch, never passed on."""
    bid = _price(body, "bidPrice", symbol)
    ask = _price(body, "askPrice", symbol)
    last = _price(body, "lastPrice", symbol)
    _check_spread(symbol, bid, ask)
    close_time = _number(body.get("closeTime"))
    if not math.isfinite(close_time) or close_time <= 0:
        raise TemporaryExchangeError(f"binance {symbol}: bad closeTime {body.get('closeTime')!r}")
    return Quote(
        symbol=coin,
        venue=BinanceVenue.name,
        bid=bid,
        ask=ask,
        last=last,
        time=close_time / 1000,
        base_volume_24h=_volume(body, "volume"),
        quote_volume_24h=_volume(body, "quoteVolume"),
    )
