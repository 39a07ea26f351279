"""ExchangeManager: order, fallback, health and cooldown, and honest "all failed" reasons."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pytest

from pt_errors import (
    AllVenuesFailedError,
    ExchangeAuthError,
    MarketDataError,
    PermanentExchangeError,
    TemporaryExchangeError,
)
from pt_exchanges import ExchangeManager, mark_forming, page_windows
from pt_types import Candles, Quote, Timeframe


@dataclass
class ScriptedVenue:
    """A venue whose next answers are scripted: an exception to raise, or a price to quote."""

    name: str
    price: float = 100.0
    errors: list[MarketDataError] = field(default_factory=list)
    calls: int = 0
    quote_currency: str = "USDT"
    taker_fee_pct: float = 0.1

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)

    def quote(self, coin: str) -> Quote:
        self._maybe_fail()
        return Quote(coin, self.name, self.price - 0.5, self.price + 0.5, self.price, 0.0)

    def candles(self, coin: str, timeframe: Timeframe, start: int, end: int) -> Candles:
        self._maybe_fail()
        t = np.arange(start, end, timeframe.seconds, dtype=np.int64)
        p = np.full(len(t), self.price)
        return Candles(t, p, p, p, p, p)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_first_healthy_venue_answers() -> None:
    a, b = ScriptedVenue("kucoin", 100), ScriptedVenue("binance", 101)
    manager = ExchangeManager([a, b], clock=Clock())
    assert manager.quote("BTC").venue == "kucoin"
    assert b.calls == 0


def test_falls_back_and_logs_why(caplog: pytest.LogCaptureFixture) -> None:
    a = ScriptedVenue("kucoin", errors=[TemporaryExchangeError("kucoin: HTTP 503")])
    b = ScriptedVenue("binance", 101)
    manager = ExchangeManager([a, b], clock=Clock())
    with caplog.at_level(logging.WARNING):
        assert manager.quote("BTC").venue == "binance"
    assert "kucoin failed for BTC quote, trying the next venue: kucoin: HTTP 503" in caplog.text
    health = {h.venue: h for h in manager.health()}
    assert health["kucoin"].consecutive_failures == 1 and health["binance"].successes == 1


def test_a_failing_venue_cools_down_then_is_tried_first_again() -> None:
    clock = Clock()
    a = ScriptedVenue("kucoin", errors=[TemporaryExchangeError("down")])
    b = ScriptedVenue("binance", 101)
    manager = ExchangeManager([a, b], cooldown=60, clock=clock)
    manager.quote("BTC")
    clock.now += 30
    assert manager.quote("BTC").venue == "binance"  # kucoin still cooling: not asked
    assert a.calls == 1
    clock.now += 31
    assert manager.quote("BTC").venue == "kucoin"  # cooled down, healthy again
    assert manager.health()[0].consecutive_failures == 0


def test_all_failed_names_every_venue_and_reason() -> None:
    venues = [
        ScriptedVenue("kucoin", errors=[TemporaryExchangeError("kucoin: timeout")]),
        ScriptedVenue("binance", errors=[PermanentExchangeError("binance: HTTP 451")]),
        ScriptedVenue("coinbase", errors=[PermanentExchangeError("coinbase: unknown product")]),
    ]
    with pytest.raises(AllVenuesFailedError) as info:
        ExchangeManager(venues, clock=Clock()).candles("XYZ", Timeframe.H1, 0, 7200)
    assert info.value.reasons == (
        ("kucoin", "kucoin: timeout"),
        ("binance", "binance: HTTP 451"),
        ("coinbase", "coinbase: unknown product"),
    )
    assert "all venues failed for XYZ 1h candles" in str(info.value)


def test_auth_errors_are_raised_not_fallen_back_from() -> None:
    a = ScriptedVenue("kucoin", errors=[ExchangeAuthError("bad key")])
    b = ScriptedVenue("binance")
    with pytest.raises(ExchangeAuthError):
        ExchangeManager([a, b], clock=Clock()).quote("BTC")
    assert b.calls == 0


def test_all_quotes_collects_answers_and_failures() -> None:
    a = ScriptedVenue("kucoin", 100)
    b = ScriptedVenue("binance", errors=[TemporaryExchangeError("binance: HTTP 500")])
    c = ScriptedVenue("coinbase", 100.2, quote_currency="USD")
    quotes, failures = ExchangeManager([a, b, c], clock=Clock()).all_quotes("BTC")
    assert [q.venue for q in quotes] == ["kucoin", "coinbase"]
    assert failures == [("binance", "binance: HTTP 500")]


def test_needs_a_venue() -> None:
    with pytest.raises(ValueError, match="at least one venue"):
        ExchangeManager([])


def test_page_windows_are_aligned_and_bounded() -> None:
    assert page_windows(3_601, 3600 * 10, 3600, 4) == [
        (3600, 3600 * 5),
        (3600 * 5, 3600 * 9),
        (3600 * 9, 3600 * 10),
    ]
    assert page_windows(0, 0, 3600, 4) == []
    with pytest.raises(ValueError, match="positive"):
        page_windows(0, 10, 0, 4)


def test_mark_forming_follows_now() -> None:
    t = np.array([0, 3600], dtype=np.int64)
    p = np.ones(2)
    candles = Candles(t, p, p, p, p, p)
    assert mark_forming(candles, Timeframe.H1, now=7199).forming
    assert not mark_forming(candles, Timeframe.H1, now=7200).forming
    assert not mark_forming(Candles.empty(), Timeframe.H1, now=0).forming
