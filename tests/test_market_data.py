"""MarketData end to end: the real adapters over real HTTP against the three fake venues."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import pt_config
from pt_candle_cache import CandleCache
from pt_errors import AllVenuesFailedError
from pt_exchanges import ExchangeManager, MarketSource
from pt_http import HttpClient, RateLimiter, RetryPolicy
from pt_ohlcv import load_bundled
from pt_replay import start_clock
from pt_state import DataLayout
from pt_thinker_exchanges import InconsistentPriceError, MarketData, build_market, build_venues
from pt_types import Candles, Timeframe
from pt_venue_binance import BinanceVenue
from pt_venue_coinbase import CoinbaseVenue
from pt_venue_kucoin import KucoinVenue
from tests.fake_binance import FakeBinance
from tests.fake_coinbase import FakeCoinbase
from tests.fake_http import Fault, Reply
from tests.fake_kucoin import FakeKucoin

NOW = 1_704_110_400  # 2024-01-01 12:00 UTC
SPAN = (1_701_388_800, NOW + 3600)  # December 2023 up to the current hour


def december(coin: str) -> Candles:
    hourly = load_bundled(coin)
    lo, hi = np.searchsorted(hourly.time, SPAN)
    return hourly.slice(int(lo), int(hi))


def fast_http(venue: str, base_url: str) -> HttpClient:
    return HttpClient(
        venue,
        base_url,
        timeout=2.0,
        limiter=RateLimiter(1000, 1000),
        retry=RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.01),
    )


@dataclass
class Venues:
    kucoin: FakeKucoin
    binance: FakeBinance
    coinbase: FakeCoinbase

    def market(self, cache: CandleCache | None = None) -> MarketData:
        clock = lambda: float(NOW)  # noqa: E731
        venues: list[MarketSource] = [
            KucoinVenue(http=fast_http("kucoin", self.kucoin.base_url), clock=clock),
            BinanceVenue(http=fast_http("binance", self.binance.base_url), clock=clock),
            CoinbaseVenue(http=fast_http("coinbase", self.coinbase.base_url), clock=clock),
        ]
        return MarketData(ExchangeManager(venues, clock=clock), cache=cache, clock=clock)


@pytest.fixture
def venues() -> Iterator[Venues]:
    hourly = {coin: december(coin) for coin in ("BTC", "ETH")}
    with (
        FakeKucoin(hourly, now=NOW) as k,
        FakeBinance(hourly, now=NOW) as b,
        FakeCoinbase(hourly, now=NOW) as c,
    ):
        yield Venues(k, b, c)


def test_aggregated_price_from_three_venues(venues: Venues) -> None:
    price = venues.market().get_aggregated_current_price("BTC-USD")
    assert [q.venue for q in price.quotes] == ["kucoin", "binance", "coinbase"]
    assert price.rejected == ()
    assert price.mixed_currencies  # coinbase quotes USD, the others USDT
    hour = load_bundled("BTC").until(NOW)
    assert price.median_mid == pytest.approx(float(hour.close[-1]), rel=2e-4)


def test_a_venue_twenty_percent_off_is_left_out(
    venues: Venues, caplog: pytest.LogCaptureFixture
) -> None:
    venues.binance.price_factor = 1.2
    with caplog.at_level(logging.WARNING):
        price = venues.market().get_aggregated_current_price("BTC")
    assert [q.venue for q in price.quotes] == ["kucoin", "coinbase"]
    assert price.rejected[0][0] == "binance" and "from the median" in price.rejected[0][1]
    assert "left binance out of the price" in caplog.text


def test_two_venues_left_that_disagree_give_no_price(venues: Venues) -> None:
    venues.coinbase.price_factor = 1.2
    venues.binance.fail(Fault("/api/v3", times=10, reply=Reply.json({"msg": "down"}, 503)))
    with pytest.raises(InconsistentPriceError, match="disagree"):
        venues.market().get_aggregated_current_price("BTC")


def test_candles_fall_back_when_the_first_venue_is_down(venues: Venues) -> None:
    venues.kucoin.fail(Fault("/api/v1/market/candles", times=10, reply=Reply.json({}, 500)))
    market = venues.market()
    candles = market.get_candle_from_exchanges("BTC", "1h", limit=24)
    assert len(candles) == 24 and candles.forming
    assert int(candles.time[-1]) == NOW
    assert market.manager.health()[0].consecutive_failures == 1
    assert len(venues.binance.server.requests_to("/api/v3/klines")) == 1


def test_every_venue_down_says_why_for_each(venues: Venues) -> None:
    for fake, prefix in (
        (venues.kucoin, "/api/v1"),
        (venues.binance, "/api/v3"),
        (venues.coinbase, "/api/v3"),
    ):
        fake.fail(Fault(prefix, times=10, reply=Reply.json({"msg": "maintenance"}, 503)))
    with pytest.raises(AllVenuesFailedError) as info:
        venues.market().get_candle_from_exchanges("BTC", Timeframe.H4, limit=10)
    assert [venue for venue, _ in info.value.reasons] == ["kucoin", "binance", "coinbase"]
    assert all("HTTP 503" in reason for _, reason in info.value.reasons)


def test_arbitrage_detection_over_real_quotes(venues: Venues) -> None:
    market = venues.market()
    assert market.detect_arbitrage_opportunities(["BTC", "ETH"], min_spread_pct=0.1) == []
    venues.coinbase.price_factor = 1.015  # coinbase bids 1.5 % over the others' asks
    found = market.detect_arbitrage_opportunities(["BTC", "ETH"], min_spread_pct=0.1)
    assert {(o.coin, o.sell_venue) for o in found} == {("BTC", "coinbase"), ("ETH", "coinbase")}
    best = found[0]
    assert best.gross_spread_pct == pytest.approx(1.5, abs=0.05)
    assert best.net_spread_pct == pytest.approx(best.gross_spread_pct - 0.7)  # 0.1 + 0.6 fees
    assert best.mixed_currencies


def test_venues_are_built_from_the_settings() -> None:
    settings = pt_config.parse(
        {
            "exchanges": {
                "order": ["coinbase", "kucoin"],
                "kucoin_url": "http://127.0.0.1:9",
                "timeout_seconds": 3,
            }
        }
    )
    venues = build_venues(settings.exchanges)
    assert [v.name for v in venues] == ["coinbase", "kucoin"]
    kucoin = venues[1]
    assert isinstance(kucoin, KucoinVenue)
    assert kucoin.http.base_url == "http://127.0.0.1:9" and kucoin.http.timeout == 3


def test_cached_candles_are_fetched_once_and_then_only_new_ones(
    venues: Venues, tmp_path: Path
) -> None:
    market = venues.market(CandleCache(tmp_path / "candles.sqlite3", clock=lambda: float(NOW)))
    first = market.get_candle_from_exchanges("BTC", "1h", start=SPAN[0], end=NOW + 3600)
    asked = len(venues.kucoin.server.requests_to("/api/v1/market/candles"))
    assert len(first) == 744 + 13 and first.forming  # December, then 13 hours of 2024-01-01
    again = market.get_candle_from_exchanges("BTC", "1h", start=SPAN[0], end=NOW + 3600)
    requests = venues.kucoin.server.requests_to("/api/v1/market/candles")[asked:]
    assert len(requests) == 1  # only the forming hour is asked again
    assert int(requests[0].param("startAt") or 0) >= NOW
    assert np.array_equal(again.time, first.time) and np.array_equal(again.close, first.close)


def test_demo_market_replays_bundled_history_on_the_simulated_clock(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path).ensure()
    wall = [1_000_000.0]
    start_clock(layout, sim_start=NOW, speed=60, wall_clock=lambda: wall[0])
    market = build_market(pt_config.parse({}), layout, wall_clock=lambda: wall[0])
    wall[0] += 30  # 30 real seconds at 60x: 30 simulated minutes
    price = market.get_aggregated_current_price("BTC")
    assert [q.venue for q in price.quotes] == ["replay"] and price.time == NOW + 1800
    hour = load_bundled("BTC").until(NOW)
    assert float(hour.low[-1]) <= price.median_mid <= float(hour.high[-1])
    candles = market.get_candle_from_exchanges("BTC", Timeframe.D1, limit=3)
    assert int(candles.time[-1]) <= NOW + 1800 and candles.forming


def test_paper_market_uses_the_venues_and_the_cache(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path).ensure()
    market = build_market(pt_config.parse({"mode": "paper"}), layout)
    assert [v.name for v in market.manager.venues] == ["kucoin", "binance", "coinbase"]
    assert isinstance(market.cache, CandleCache)
    assert layout.candles_db.exists()
