"""KuCoin public market data (candles, best bid/ask) as a :class:`pt_exchanges.MarketSource`.

KuCoin is the first live venue because the original program traded on its candles. Its wire
format has traps that this module absorbs so nothing above it has to know them:

- candle rows are strings ``[time, open, close, high, low, volume, turnover]``: close comes
  *before* high and low; rows arrive newest first;
- at most 1500 rows per answer and no ``limit`` parameter: history is paged by time, and both
  ``startAt`` and ``endAt`` must always be sent (omitting them has returned an empty list);
- whether ``endAt`` is inclusive is not documented, so each window asks for
  ``[window start, window end - 1]``: inclusive or not, the boundary candle then belongs to
  exactly one window and no window can exceed 1500 candles (which would cost its oldest row);
- an error can come with HTTP 200 and a non-``200000`` ``code``;
- ``1week`` candles open on Thursdays (epoch-aligned), not on Mondays like every other source
  here, so weekly candles are built from daily ones with ``pt_candles.resample``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
import requests

from pt_candles import numbers, repair_candles, resample
from pt_errors import ExchangeAuthError, PermanentExchangeError, TemporaryExchangeError
from pt_exchanges import mark_forming, page_windows
from pt_http import Check, HttpClient, RateLimiter, retry_after_seconds
from pt_types import Candles, IntArray, Quote, Timeframe

log = logging.getLogger(__name__)

CANDLES_PATH = "/api/v1/market/candles"
LEVEL1_PATH = "/api/v1/market/orderbook/level1"
ALL_TICKERS_PATH = "/api/v1/market/allTickers"
MAX_ROWS = 1500
OK_CODE = "200000"

# KuCoin's names for our timeframes. Weekly candles are fetched as days (see the docstring).
INTERVALS = {
    Timeframe.H1: "1hour",
    Timeframe.H2: "2hour",
    Timeframe.H4: "4hour",
    Timeframe.H8: "8hour",
    Timeframe.H12: "12hour",
    Timeframe.D1: "1day",
    Timeframe.W1: "1week",
}
_FETCHED_AS = {Timeframe.W1: Timeframe.D1}

# 429000 pool exhausted, 500000 internal error; legacy limits: 200002 per endpoint, 1015 per IP.
_TEMPORARY_CODES = {"429000", "500000", "200002", "1015"}
_AUTH_CODES = {f"40000{i}" for i in range(1, 8)}
_MAX_WHOLE = 2.0**62  # beyond this a "time" cannot be an int64 timestamp


def _checker(what: str) -> Check:
    """KuCoin's ``code`` check for one request: errors can arrive with HTTP 200."""

    def check(body: Any, response: requests.Response) -> None:
        if not isinstance(body, dict) or "code" not in body:
            raise TemporaryExchangeError(f"{what}: unexpected answer without a code (garbled?)")
        code = str(body["code"])
        if code == OK_CODE:
            return
        msg = body.get("msg")
        reason = f"{what}: {msg if isinstance(msg, str) and msg else 'error'} (code {code})"
        if code in _TEMPORARY_CODES:
            raise TemporaryExchangeError(reason, retry_after=retry_after_seconds(response.headers))
        if code in _AUTH_CODES:
            raise ExchangeAuthError(reason)
        raise PermanentExchangeError(reason)

    return check


def _whole_times(values: list[Any]) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """Row times as int64 and the mask of rows whose time is a whole, finite number."""
    t = numbers(values)
    ok = np.isfinite(t) & (np.abs(t) < _MAX_WHOLE)
    ok[ok] = t[ok] == np.floor(t[ok])
    return np.where(ok, t, 0).astype(np.int64), ok


class KucoinVenue:
    """KuCoin spot market data for ``<COIN>-USDT`` pairs over its public REST API."""

    name = "kucoin"
    quote_currency = "USDT"

    def __init__(
        self,
        base_url: str = "https://api.kucoin.com",
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        http: HttpClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
        taker_fee_pct: float = 0.1,
    ) -> None:
        """``http`` replaces the default client (and with it ``base_url``/``timeout``/``sleep``).

        The default limiter allows 10 requests/s: the public pool is 2000 weight per 30 s and a
        candle request weighs 3, so this uses under half of it, leaving room for the other
        processes of the bot that share the same IP address.
        """
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
        return f"{coin.strip().upper()}-USDT"

    # ------------------------------------------------------------------ candles

    def candles(self, coin: str, timeframe: Timeframe, start: int, end: int) -> Candles:
        """Candles opening in ``[start, end)``, ascending; the last is forming if not closed."""
        tf = Timeframe(timeframe)
        symbol = self.symbol(coin)
        source = _FETCHED_AS.get(tf, tf)
        if source is tf:
            table = self._fetch(symbol, tf, start, end)
        else:
            first = tf.candle_open(start)
            first += 0 if first >= start else tf.seconds  # the first week opening at/after start
            stop = tf.candle_open(end - 1) + tf.seconds  # the end of the last week opening < end
            days = self._fetch(symbol, source, first, stop) if first < end else Candles.empty()
            weeks = resample(days, tf, now=int(self._clock()), base_step=source.seconds)
            table = _within(weeks, start, end)
        return mark_forming(table, tf, self._clock())

    def _fetch(self, symbol: str, tf: Timeframe, start: int, end: int) -> Candles:
        """``tf`` candles opening in ``[start, end)``, one request per window of 1500."""
        what = f"{self.name} {symbol} {INTERVALS[tf]} candles"
        pages = []
        for lo, hi in page_windows(start, end, tf.seconds, MAX_ROWS):
            params = {"symbol": symbol, "type": INTERVALS[tf], "startAt": lo, "endAt": hi - 1}
            body = self.http.get_json(CANDLES_PATH, params, check=_checker(what))
            rows = body.get("data")
            if not isinstance(rows, list):
                raise TemporaryExchangeError(f"{what}: 'data' is not a list of candles (garbled?)")
            page = self._parse_rows(rows, tf, what)
            kept = _within(page, max(lo, start), hi)
            if len(kept) < len(page):
                log.debug("%s: %d row(s) outside the window ignored", what, len(page) - len(kept))
            pages.append(kept)
        return _concat(pages)

    def _parse_rows(self, rows: list[Any], tf: Timeframe, what: str) -> Candles:
        """Newest-first string rows -> repaired ascending table; every drop is logged."""
        shaped = [r for r in reversed(rows) if isinstance(r, list) and len(r) >= 6]
        if len(shaped) < len(rows):
            log.warning(
                "%s: %d row(s) dropped: not a list of 7 fields", what, len(rows) - len(shaped)
            )
        cols: list[list[Any]] = [list(c) for c in zip(*shaped, strict=False)] or [[]] * 6
        t, ok = _whole_times(cols[0])
        if not np.all(ok):
            log.warning("%s: %d row(s) dropped: time is not a whole number", what, int((~ok).sum()))
        # KuCoin's column order: time, open, close, high, low, volume, turnover.
        o, c, h, lo, v = (numbers(cols[i])[ok] for i in (1, 2, 3, 4, 5))
        table, reasons = repair_candles(Candles(t[ok], o, h, lo, c, v), tf.seconds)
        for reason in reasons:
            log.warning("%s: %s", what, reason)
        return table

    # ------------------------------------------------------------------ quotes

    def quote(self, coin: str) -> Quote:
        """Best bid/ask and last trade price from the level-1 order book."""
        symbol = self.symbol(coin)
        what = f"{self.name} {symbol} ticker"
        body = self.http.get_json(LEVEL1_PATH, {"symbol": symbol}, check=_checker(what))
        data = body.get("data")
        if data is None:  # how KuCoin has answered an unknown symbol on this endpoint
            raise PermanentExchangeError(f"{what}: KuCoin has no market {symbol}")
        if not isinstance(data, dict):
            raise TemporaryExchangeError(f"{what}: 'data' is not an object (garbled?)")
        keys = ("bestBid", "bestAsk", "price")
        return self._make_quote(coin, data, keys=keys, time_ms=data.get("time"))

    def quotes(self, coins: Iterable[str]) -> dict[str, Quote]:
        """Quotes of several coins from one snapshot of all tickers; unknown coins are absent.

        A coin whose ticker is bad is left out with a warning rather than failing the others.
        """
        wanted = {self.symbol(c): c.strip().upper() for c in coins}
        if not wanted:
            return {}
        what = f"{self.name} all tickers"
        body = self.http.get_json(ALL_TICKERS_PATH, check=_checker(what))
        data = body.get("data")
        tickers = data.get("ticker") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(tickers, list):
            raise TemporaryExchangeError(f"{what}: no ticker list in the answer (garbled?)")
        found: dict[str, Quote] = {}
        for item in tickers:
            symbol = item.get("symbol") if isinstance(item, dict) else None
            if not isinstance(symbol, str) or symbol not in wanted:
                continue
            coin = wanted[symbol]
            try:
                found[coin] = self._make_quote(
                    coin,
                    item,
                    keys=("buy", "sell", "last"),
                    time_ms=data.get("time"),
                    volume_keys=("vol", "volValue"),
                )
            except TemporaryExchangeError as exc:
                log.warning("%s: %s left out: %s", what, coin, exc)
        return found

    def _make_quote(
        self,
        coin: str,
        data: dict[str, Any],
        *,
        keys: tuple[str, str, str],
        time_ms: Any,
        volume_keys: tuple[str, str] | None = None,
    ) -> Quote:
        """A validated Quote: a bad price is a glitch (TemporaryExchangeError), never passed on."""
        symbol = self.symbol(coin)
        bid, ask, last = (self._price(symbol, key, data.get(key)) for key in keys)
        if bid > ask:
            raise TemporaryExchangeError(
                f"{self.name} {symbol}: bid {bid} above ask {ask} (crossed book)"
            )
        stamp = float(numbers([time_ms])[0])
        if not math.isfinite(stamp) or stamp <= 0:
            raise TemporaryExchangeError(f"{self.name} {symbol}: bad ticker time {time_ms!r}")
        base_vol = quote_vol = None
        if volume_keys:
            base_vol, quote_vol = (_volume(data.get(key)) for key in volume_keys)
        return Quote(
            coin.strip().upper(), self.name, bid, ask, last, stamp / 1000, base_vol, quote_vol
        )

    def _price(self, symbol: str, field: str, value: Any) -> float:
        price = float(numbers([value])[0])
        if not math.isfinite(price) or price <= 0:
            raise TemporaryExchangeError(f"{self.name} {symbol}: bad {field} {value!r}")
        return price


def _volume(value: Any) -> float | None:
    """A 24 h volume, or None when the venue's field is missing or not a sane number."""
    volume = float(numbers([value])[0])
    return volume if math.isfinite(volume) and volume >= 0 else None


def _within(candles: Candles, start: int, end: int) -> Candles:
    """Rows whose open time is in ``[start, end)`` (times ascend)."""
    lo = int(np.searchsorted(candles.time, start, side="left"))
    hi = int(np.searchsorted(candles.time, end, side="left"))
    return candles if (lo, hi) == (0, len(candles)) else candles.slice(lo, hi)


def _concat(pages: list[Candles]) -> Candles:
    """Disjoint ascending pages, oldest first, as one table."""
    pages = [p for p in pages if len(p)]
    if not pages:
        return Candles.empty()
    if len(pages) == 1:
        return pages[0]
    return Candles(
        np.concatenate([p.time for p in pages]),
        np.concatenate([p.open for p in pages]),
        np.concatenate([p.high for p in pages]),
        np.concatenate([p.low for p in pages]),
        np.concatenate([p.close for p in pages]),
        np.concatenate([p.volume for p in pages]),
    )
