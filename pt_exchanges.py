"""Market-data venues behind one interface, and the manager that falls back between them.

Each venue (``pt_venue_kucoin``, ``pt_venue_binance``, ``pt_venue_coinbase``, and the demo
``pt_replay``) turns its own wire format into the project's candle table and :class:`Quote`.
:class:`ExchangeManager` tries them in the user's order, remembers which are failing, and when
all fail says why for each one, so "no price" always comes with a reason.

The venue SDKs (kucoin-python, python-binance, coinbase-advanced-py) are deliberately not used:
each of the few endpoints needed is a plain GET, the SDKs are unmaintained or heavy, and one of
them hard-codes https, which would keep the tests from running against local fake venues.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from pt_errors import (
    AllVenuesFailedError,
    ExchangeAuthError,
    MarketDataError,
    PermanentExchangeError,
)
from pt_types import Candles, Quote, Timeframe

log = logging.getLogger(__name__)

T = TypeVar("T")


class MarketSource(Protocol):
    """What the thinker, trader and hub need from a place that knows prices."""

    name: str
    quote_currency: str  # "USDT" or "USD": venues are compared knowing the difference
    taker_fee_pct: float

    def candles(self, coin: str, timeframe: Timeframe, start: int, end: int) -> Candles:
        """Candles whose open time is in ``[start, end)``, ascending, paged as needed.

        The last candle is marked ``forming`` when its period has not ended at the source's
        "now". Gaps are left as gaps. Raises the ``pt_errors`` exceptions.
        """
        ...

    def quote(self, coin: str) -> Quote:
        """Best bid/ask and last price now."""
        ...


def page_windows(start: int, end: int, step: int, max_rows: int) -> list[tuple[int, int]]:
    """Split ``[start, end)`` into windows of at most ``max_rows`` candles, oldest first.

    ``start`` is rounded down to a candle boundary of ``step`` so every window is aligned.
    """
    if step <= 0 or max_rows <= 0:
        raise ValueError(f"step and max_rows must be positive (got {step}, {max_rows})")
    first = start - start % step
    span = step * max_rows
    return [(s, min(s + span, end)) for s in range(first, end, span)]


def mark_forming(candles: Candles, timeframe: Timeframe, now: float) -> Candles:
    """The same table with ``forming`` set when its last candle has not closed at ``now``."""
    forming = bool(len(candles)) and int(candles.time[-1]) + timeframe.seconds > now
    return candles if candles.forming == forming else replace(candles, forming=forming)


@dataclass(frozen=True)
class VenueHealth:
    """How a venue has been doing, for the fallback order and the hub's status."""

    venue: str
    successes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str = ""
    last_failure_at: float = 0.0


class ExchangeManager:
    """Venues in the user's order, with health tracking and fallback.

    A venue that failed recently is tried after the healthy ones (for ``cooldown`` seconds), so
    one dead venue does not add its timeout to every request. Auth errors are not fallen back
    from silently: they are raised, because the user has to fix something.
    """

    def __init__(
        self,
        venues: Sequence[MarketSource],
        *,
        cooldown: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not venues:
            raise ValueError("ExchangeManager needs at least one venue")
        self.venues = tuple(venues)
        self.cooldown = cooldown
        self._clock = clock
        self._health = {v.name: VenueHealth(v.name) for v in self.venues}

    def health(self) -> tuple[VenueHealth, ...]:
        return tuple(self._health[v.name] for v in self.venues)

    def _order(self) -> list[MarketSource]:
        now = self._clock()

        def cooling(venue: MarketSource) -> bool:
            h = self._health[venue.name]
            return h.consecutive_failures > 0 and now - h.last_failure_at < self.cooldown

        return sorted(self.venues, key=cooling)  # stable: the user's order within each group

    def _record(self, venue: str, error: Exception | None) -> None:
        h = self._health[venue]
        if error is None:
            self._health[venue] = replace(h, successes=h.successes + 1, consecutive_failures=0)
        else:
            self._health[venue] = replace(
                h,
                failures=h.failures + 1,
                consecutive_failures=h.consecutive_failures + 1,
                last_error=str(error),
                last_failure_at=self._clock(),
            )

    def first_success(self, what: str, call: Callable[[MarketSource], T]) -> tuple[T, str]:
        """``call`` on each venue in order until one answers; its result and the venue name."""
        reasons: list[tuple[str, str]] = []
        for venue in self._order():
            try:
                result = call(venue)
            except ExchangeAuthError:
                raise
            except MarketDataError as exc:
                self._record(venue.name, exc)
                reasons.append((venue.name, str(exc)))
                level = logging.INFO if isinstance(exc, PermanentExchangeError) else logging.WARNING
                log.log(level, "%s failed for %s, trying the next venue: %s", venue.name, what, exc)
                continue
            self._record(venue.name, None)
            return result, venue.name
        raise AllVenuesFailedError(what, reasons)

    def candles(self, coin: str, timeframe: Timeframe, start: int, end: int) -> Candles:
        what = f"{coin} {timeframe.value} candles"
        result, _ = self.first_success(what, lambda v: v.candles(coin, timeframe, start, end))
        return result

    def quote(self, coin: str) -> Quote:
        result, _ = self.first_success(f"{coin} quote", lambda v: v.quote(coin))
        return result

    def all_quotes(self, coin: str) -> tuple[list[Quote], list[tuple[str, str]]]:
        """A quote from every venue that answers, and ``(venue, reason)`` for those that did not."""
        quotes: list[Quote] = []
        failures: list[tuple[str, str]] = []
        for venue in self.venues:
            try:
                quotes.append(venue.quote(coin))
            except ExchangeAuthError:
                raise
            except MarketDataError as exc:
                self._record(venue.name, exc)
                failures.append((venue.name, str(exc)))
                continue
            self._record(venue.name, None)
        return quotes, failures
