"""Price aggregation and arbitrage maths, with hand-computed expectations."""

from __future__ import annotations

import pytest

from pt_errors import MarketDataError
from pt_thinker_exchanges import (
    InconsistentPriceError,
    aggregate_quotes,
    coin_of,
    find_arbitrage,
    split_outliers,
)
from pt_types import Quote


def q(venue: str, bid: float, ask: float, quote_volume: float | None = None) -> Quote:
    return Quote("BTC", venue, bid, ask, (bid + ask) / 2, 0.0, None, quote_volume)


CCY = {"kucoin": "USDT", "binance": "USDT", "coinbase": "USD"}


def test_median_and_volume_weighted_mid() -> None:
    quotes = [q("kucoin", 99, 101, 1e6), q("binance", 100, 102, 3e6), q("coinbase", 100.5, 101.5)]
    price = aggregate_quotes("BTC", quotes[:2], outlier_pct=2, currencies=CCY, now=5.0)
    # mids 100 and 101; weights 1e6 and 3e6 -> (100*1 + 101*3) / 4 = 100.75
    assert price.median_mid == 100.5
    assert price.vwap_mid == pytest.approx(100.75)
    assert (price.best_bid, price.best_ask) == (100, 101)
    assert price.quote_currencies == ("USDT", "USDT") and not price.mixed_currencies
    all_three = aggregate_quotes("BTC", quotes, outlier_pct=2, currencies=CCY, now=5.0)
    assert all_three.median_mid == 101.0
    assert all_three.vwap_mid is None  # coinbase gave no volume: no honest weighting
    assert all_three.mixed_currencies


def test_base_volume_is_weighted_by_price() -> None:
    a = Quote("BTC", "kucoin", 99, 101, 100, 0.0, base_volume_24h=10)  # 1000 USD
    b = Quote("BTC", "binance", 109, 111, 110, 0.0, base_volume_24h=10)  # 1100 USD
    price = aggregate_quotes("BTC", [a, b], outlier_pct=20, now=0)
    assert price.vwap_mid == pytest.approx((100 * 1000 + 110 * 1100) / 2100)


def test_a_venue_twenty_percent_off_is_dropped_and_reported() -> None:
    quotes = [q("kucoin", 99.9, 100.1), q("binance", 100.0, 100.2), q("coinbase", 119.9, 120.1)]
    kept, rejected = split_outliers(quotes, 2.0)
    assert [k.venue for k in kept] == ["kucoin", "binance"]
    assert rejected == [("coinbase", "120 is 19.88 % from the median 100.1")]
    price = aggregate_quotes("BTC", quotes, outlier_pct=2, now=0)
    assert price.median_mid == pytest.approx(100.05)


def test_two_venues_that_disagree_give_no_price() -> None:
    with pytest.raises(InconsistentPriceError, match=r"kucoin 100 and coinbase 120 disagree by 20"):
        aggregate_quotes(
            "BTC", [q("kucoin", 99, 101), q("coinbase", 119, 121)], outlier_pct=2, now=0
        )


def test_no_majority_gives_no_price() -> None:
    quotes = [q("kucoin", 99, 101), q("binance", 109, 111), q("coinbase", 129, 131)]
    with pytest.raises(InconsistentPriceError, match="no majority"):
        split_outliers(quotes, 2.0)


def test_failures_are_carried_and_no_quote_is_an_error() -> None:
    price = aggregate_quotes(
        "BTC", [q("kucoin", 99, 101)], outlier_pct=2, failures=[("binance", "HTTP 500")], now=0
    )
    assert price.rejected == (("binance", "HTTP 500"),) and price.median_mid == 100
    with pytest.raises(MarketDataError, match=r"no venue gave a quote \(binance: HTTP 500\)"):
        aggregate_quotes("BTC", [], outlier_pct=2, failures=[("binance", "HTTP 500")], now=0)


def test_arbitrage_net_of_fees_best_first() -> None:
    quotes = [q("kucoin", 99.0, 100.0), q("binance", 101.8, 101.9), q("coinbase", 102.0, 102.1)]
    fees = {"kucoin": 0.1, "binance": 0.1, "coinbase": 0.6}
    found = find_arbitrage(
        "BTC", quotes, fees_pct=fees, min_spread_pct=0.5, currencies=CCY, now=1.0
    )
    # kucoin ask 100 -> binance bid 101.8: gross 1.8 %, net 1.8 - 0.1 - 0.1 = 1.6 %
    # kucoin ask 100 -> coinbase bid 102: gross 2.0 %, net 2.0 - 0.1 - 0.6 = 1.3 %
    # binance ask 101.9 -> coinbase bid 102: gross 0.098 %, net below zero: not listed
    assert [(o.buy_venue, o.sell_venue) for o in found] == [
        ("kucoin", "binance"),
        ("kucoin", "coinbase"),
    ]
    first, second = found
    assert (first.gross_spread_pct, first.net_spread_pct) == pytest.approx((1.8, 1.6))
    assert (second.gross_spread_pct, second.net_spread_pct) == pytest.approx((2.0, 1.3))
    assert not first.mixed_currencies and second.mixed_currencies
    assert (first.buy_ask, first.sell_bid, first.time) == (100.0, 101.8, 1.0)
    assert find_arbitrage("BTC", quotes, fees_pct=fees, min_spread_pct=1.7, now=1.0) == []


@pytest.mark.parametrize("symbol", ["BTC", "btc", "BTC-USD", "BTC-USDT", "BTCUSDT", " btc "])
def test_coin_of(symbol: str) -> None:
    assert coin_of(symbol) == "BTC"
