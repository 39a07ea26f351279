"""Coinbase Advanced Trade public market data as a :class:`pt_exchanges.MarketSource`.

Coinbase is the USD venue of the three (KuCoin and Binance quote in USDT), so its prices keep
the others honest. Only the public, unauthenticated endpoints are used (spec §3):

- ``GET /api/v3/brokerage/market/products/{COIN}-USD/candles``: rows newest first, every field a
  string, ``start``/``end`` required. The documented maximum is 350 buckets, but clients report
  rejections above 300, so windows here never span more than 300.
- ``GET /api/v3/brokerage/market/products/{id}/ticker?limit=1``: best bid/ask and the last trade.
- ``GET /api/v3/brokerage/market/products/{id}``: product details, for the 24 h volume.

The public candle endpoint has no 4h (the authenticated one lists FOUR_HOUR, the public one does
not), 8h, 12h or 1w candles; those are built from hourly (or daily, for weeks) candles with
``pt_candles.resample`` so they share the project's UTC bucket rule (weeks start on Monday).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import requests

from pt_candles import numbers, repair_candles, resample
from pt_errors import MarketDataError, PermanentExchangeError, TemporaryExchangeError
from pt_exchanges import mark_forming, page_windows
from pt_http import HttpClient, RateLimiter
from pt_types import Candles, Quote, Timeframe

log = logging.getLogger(__name__)

_PRODUCTS = "/api/v3/brokerage/market/products/"
WINDOW_BUCKETS = 300  # documented max is 350; >=300 has been seen rejected (spec §3.1 caveat)
MAX_LIMIT = 350
_FIELDS = ("open", "high", "low", "close", "volume")
_COLUMNS = ("time", *_FIELDS)
_ROW_KEYS = ("start", *_FIELDS)

# Our timeframe -> (granularity requested from Coinbase, its length in seconds).
_GRANULARITY: dict[Timeframe, tuple[str, int]] = {
    Timeframe.H1: ("ONE_HOUR", 3600),
    Timeframe.H2: ("TWO_HOUR", 7200),
    Timeframe.H4: ("ONE_HOUR", 3600),
    Timeframe.H8: ("ONE_HOUR", 3600),
    Timeframe.H12: ("ONE_HOUR", 3600),
    Timeframe.D1: ("ONE_DAY", 86400),
    Timeframe.W1: ("ONE_DAY", 86400),
}
_RFC3339 = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", flags=re.IGNORECASE
)


def _venue_error(body: Any) -> str | None:
    """The message of a Coinbase error body (``error``/``message``/``error_details`` or
    ``errors: [{id, message}]``), or None when the body is not an error."""
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        parts = [
            str(e.get("message") or e.get("id")) if isinstance(e, dict) else str(e) for e in errors
        ]
        return "; ".join(parts)
    if "error" in body:
        message = body.get("message") or body.get("error_details") or ""
        return f"{body['error']}: {message}" if message else str(body["error"])
    return None


def _positive(value: object) -> float | None:
    """A venue string as a finite positive float, else None."""
    number = float(numbers([value])[0])
    return number if np.isfinite(number) and number > 0 else None


def _epoch(text: object) -> float | None:
    """RFC3339 (``2024-04-04T01:00:03.123456789Z``, any number of fraction digits) -> seconds."""
    match = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if not match:
        return None
    zone = "+00:00" if match[3].upper() == "Z" else match[3]
    try:
        whole = datetime.fromisoformat(match[1] + zone).timestamp()
    except ValueError:
        return None
    return whole + (float("0" + match[2]) if match[2] else 0.0)


class CoinbaseVenue:
    """Coinbase Advanced Trade public endpoints: candles for every timeframe, and quotes."""

    name = "coinbase"
    quote_currency = "USD"

    def __init__(
        self,
        base_url: str = "https://api.coinbase.com",
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        http: HttpClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
        taker_fee_pct: float = 0.6,
    ) -> None:
        # Public limit is 10 requests/s per IP; 8/s leaves room for the user's other tools.
        limiter = RateLimiter(8.0, 8.0, sleep=sleep)
        self.http = http or HttpClient(
            self.name, base_url, timeout=timeout, limiter=limiter, sleep=sleep
        )
        self.taker_fee_pct = taker_fee_pct
        self._clock = clock

    # ------------------------------------------------------------------ candles

    def candles(self, coin: str, timeframe: Timeframe, start: int, end: int) -> Candles:
        """Candles opening in ``[start, end)``; 4h/8h/12h/1w are resampled from finer ones."""
        product = self._product(coin)
        granularity, step = _GRANULARITY[timeframe]
        now = self._clock()
        first = timeframe.candle_open(start)
        first += 0 if first == start else timeframe.seconds
        # The source span covers every bucket opening before ``end``, but nothing after "now".
        stop = timeframe.candle_open(end - 1) + timeframe.seconds
        stop = min(stop, int(now) - int(now) % step + step)
        if end <= start or stop <= first:
            return Candles.empty()
        table = self._fetch(product, granularity, step, first, stop)
        if step != timeframe.seconds:
            table = resample(table, timeframe, now=int(now), base_step=step)
        lo, hi = np.searchsorted(table.time, [start, end])
        return mark_forming(table.slice(int(lo), int(hi)), timeframe, now)

    def _fetch(self, product: str, granularity: str, step: int, start: int, stop: int) -> Candles:
        """Every row in ``[start, stop)``, page by page, oldest window first, each ascending."""
        parts: list[Candles] = []
        path = f"{_PRODUCTS}{product}/candles"
        for lo, hi in page_windows(start, stop, step, WINDOW_BUCKETS):
            # ``end`` is one second before the next window: whether Coinbase treats ``end`` as
            # inclusive or not, the bucket opening at ``hi`` is then never part of this window.
            params = {
                "start": str(lo),
                "end": str(hi - 1),
                "granularity": granularity,
                "limit": str(MAX_LIMIT),
            }
            body = self.http.get_json(path, params, check=_expect_list("candles"))
            part, reasons = repair_candles(_parse_rows(body["candles"]), step)
            keep = (part.time >= lo) & (part.time < hi)
            if not np.all(keep):
                reasons.append(f"{int((~keep).sum())} row(s) outside the window asked for")
                part = _rows(part, keep)
            for reason in reasons:
                log.warning(
                    "coinbase %s %s candles %s..%s: %s", product, granularity, lo, hi, reason
                )
            parts.append(part)
        if not parts:
            return Candles.empty()
        return _table([np.concatenate([getattr(p, f) for p in parts]) for f in _COLUMNS])

    # ------------------------------------------------------------------ quote

    def quote(self, coin: str) -> Quote:
        """Best bid/ask and last trade now, with 24 h volumes when the product call answers."""
        product = self._product(coin)
        body = self.http.get_json(
            f"{_PRODUCTS}{product}/ticker", {"limit": "1"}, check=_expect_list("trades")
        )
        bid, ask = _positive(body.get("best_bid")), _positive(body.get("best_ask"))
        if bid is None or ask is None or bid > ask:
            raise TemporaryExchangeError(
                f"coinbase {product}: bad quote bid={body.get('best_bid')!r} "
                f"ask={body.get('best_ask')!r}"
            )
        trade = body["trades"][0] if body["trades"] else None
        last = _positive(trade.get("price")) if isinstance(trade, dict) else None
        when = _epoch(trade.get("time")) if isinstance(trade, dict) else None
        if last is None or when is None:
            raise TemporaryExchangeError(f"coinbase {product}: no usable last trade in {trade!r}")
        base_volume, quote_volume = self._volumes(product, last)
        coin_name = coin.strip().upper()
        return Quote(coin_name, self.name, bid, ask, last, when, base_volume, quote_volume)

    def _volumes(self, product: str, last: float) -> tuple[float | None, float | None]:
        """24 h base volume, and quote volume as base volume x price.

        Coinbase gives no 24 h quote volume publicly, so ``volume_24h * price`` is an
        approximation (the true figure weights each trade by its own price). Volumes are a
        nice-to-have: if this call fails, the quote stands without them.
        """
        try:
            body = self.http.get_json(f"{_PRODUCTS}{product}", check=_expect_keys("volume_24h"))
        except MarketDataError as exc:
            log.warning("coinbase %s: no 24 h volume (%s)", product, exc)
            return None, None
        volume = float(numbers([body.get("volume_24h")])[0])
        if not np.isfinite(volume) or volume < 0:
            log.warning("coinbase %s: bad volume_24h %r", product, body.get("volume_24h"))
            return None, None
        price = _positive(body.get("price")) or last
        return volume, volume * price

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _product(coin: str) -> str:
        name = coin.strip().upper()
        if not name.isascii() or not name.isalnum():
            raise PermanentExchangeError(f"coinbase: {coin!r} is not a coin symbol")
        return f"{name}-USD"


def _expect_list(key: str) -> Callable[[Any, requests.Response], None]:
    """A body check: a venue error is permanent; a missing ``key`` list is a glitch."""

    def check(body: Any, response: requests.Response) -> None:
        _raise_venue_error(body, response)
        if not isinstance(body, dict) or not isinstance(body.get(key), list):
            raise TemporaryExchangeError(
                f"coinbase {response.url}: answer has no {key!r} list: {str(body)[:120]}"
            )

    return check


def _expect_keys(key: str) -> Callable[[Any, requests.Response], None]:
    def check(body: Any, response: requests.Response) -> None:
        _raise_venue_error(body, response)
        if not isinstance(body, dict) or key not in body:
            raise TemporaryExchangeError(f"coinbase {response.url}: answer has no {key!r}")

    return check


def _raise_venue_error(body: Any, response: requests.Response) -> None:
    message = _venue_error(body)
    if message is not None:
        raise PermanentExchangeError(f"coinbase {response.url}: {message}")


def _parse_rows(rows: list[Any]) -> Candles:
    """Newest-first rows of strings -> a table (repair_candles checks it); a row without a
    whole-number ``start`` gets time -1, which repair_candles drops as out of range."""
    columns = [numbers([r.get(k) if isinstance(r, dict) else None for r in rows[::-1]])
               for k in _ROW_KEYS]  # fmt: skip
    t = columns[0]
    columns[0] = np.where(np.isfinite(t) & (t == np.floor(t)) & (np.abs(t) < 2**62), t, -1)
    return _table(columns)


def _table(columns: list[Any]) -> Candles:
    """A candle table from ``[time, open, high, low, close, volume]`` arrays."""
    t, o, h, lo, c, v = columns
    return Candles(np.asarray(t, dtype=np.int64), o, h, lo, c, v)


def _rows(table: Candles, keep: Any) -> Candles:
    return _table([getattr(table, f)[keep] for f in _COLUMNS])
