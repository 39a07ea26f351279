"""The project's own exceptions: what went wrong, worded so the caller knows what to do.

Vendor errors (HTTP statuses, venue error codes, ``requests`` exceptions) are translated into
these at the adapter, so no code above the adapters ever parses a venue's error format.

- :class:`TemporaryExchangeError`: try again later (timeouts, 5xx, rate limits, garbled bodies);
  ``retry_after`` is the venue's own hint in seconds when it gave one.
- :class:`PermanentExchangeError`: asking again will not help (bad symbol, geo-block, 4xx); fall
  back to another venue.
- :class:`ExchangeAuthError`: credentials are missing or refused; stop and tell the user.
- :class:`AllVenuesFailedError`: every venue failed; ``reasons`` says why for each.
"""

from __future__ import annotations


class PowerTraderError(Exception):
    """Base of every error the project raises on purpose."""


class MarketDataError(PowerTraderError):
    """Market data could not be had."""


class TemporaryExchangeError(MarketDataError):
    """A venue failed in a way that may pass: retry with backoff."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentExchangeError(MarketDataError):
    """A venue refused the request for good (bad symbol, geo-block, bad parameters)."""


class ExchangeAuthError(MarketDataError):
    """Credentials are missing, wrong or lack permission: the user has to act."""


class AllVenuesFailedError(MarketDataError):
    """No venue could answer; ``reasons`` holds ``(venue, reason)`` for each one tried."""

    def __init__(self, what: str, reasons: list[tuple[str, str]]) -> None:
        self.reasons = tuple(reasons)
        detail = "; ".join(f"{venue}: {reason}" for venue, reason in reasons) or "no venue enabled"
        super().__init__(f"all venues failed for {what} ({detail})")
