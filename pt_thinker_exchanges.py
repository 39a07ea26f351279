"""What the thinker and the hub ask of the market: one price, candles, and spreads between venues.

Built on :class:`pt_exchanges.ExchangeManager` (live venues) or the demo replay; the maths is
in pure functions so the backtester and the tests use it directly:

- :func:`aggregate_quotes`: median and volume-weighted mid across venues. A venue more than
  ``outlier_pct`` from the median is dropped and reported. With only two venues nobody can tell
  which one is wrong, so two that disagree give **no price** (a trading bot's first duty: when in
  doubt, do not trade). Quotes in USD and in USDT are compared as equal, and the mix is noted.
- :func:`find_arbitrage`: best bid on one venue over best ask on another, net of both venues'
  taker fees. It spots; it never trades.
"""

from __future__ import annotations

import itertools
import logging
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pt_candle_cache import CandleCache
from pt_config_schema import ExchangeSettings, Settings
from pt_errors import MarketDataError
from pt_exchanges import ExchangeManager, MarketSource
from pt_replay import ReplayMarket, SimClock
from pt_state import DataLayout
from pt_types import Candles, Mode, Quote, Timeframe
from pt_venue_binance import BinanceVenue
from pt_venue_coinbase import CoinbaseVenue
from pt_venue_kucoin import KucoinVenue

log = logging.getLogger(__name__)


class InconsistentPriceError(MarketDataError):
    """Venues disagree too much to say what the price is."""


@dataclass(frozen=True)
class AggregatedPrice:
    """One coin's price across venues, with what was left out and why."""

    coin: str
    median_mid: float
    vwap_mid: float | None  # None when the venues gave no 24 h volume
    best_bid: float
    best_ask: float
    quotes: tuple[Quote, ...]
    rejected: tuple[tuple[str, str], ...]  # (venue, reason)
    quote_currencies: tuple[str, ...]
    time: float

    @property
    def mixed_currencies(self) -> bool:
        return len(set(self.quote_currencies)) > 1


@dataclass(frozen=True)
class ArbitrageOpportunity:
    coin: str
    buy_venue: str
    buy_ask: float
    sell_venue: str
    sell_bid: float
    gross_spread_pct: float
    net_spread_pct: float  # after both venues' taker fees
    mixed_currencies: bool  # USD on one side, USDT on the other: part of the spread may be basis
    time: float


def _deviation_pct(value: float, reference: float) -> float:
    return abs(value - reference) / reference * 100


def split_outliers(
    quotes: Sequence[Quote], outlier_pct: float
) -> tuple[list[Quote], list[tuple[str, str]]]:
    """Quotes within ``outlier_pct`` of the median mid, and the others with a reason.

    Raises :class:`InconsistentPriceError` when no majority agrees (for two venues: when they
    disagree by more than ``outlier_pct``).
    """
    if len(quotes) < 2:
        return list(quotes), []
    median = statistics.median(q.mid for q in quotes)
    if len(quotes) == 2:
        a, b = quotes
        gap = _deviation_pct(b.mid, a.mid)
        if gap > outlier_pct:
            raise InconsistentPriceError(
                f"{a.symbol}: {a.venue} {a.mid:g} and {b.venue} {b.mid:g} disagree by "
                f"{gap:.2f} % (limit {outlier_pct:g} %); no price until they agree"
            )
        return list(quotes), []
    kept = [q for q in quotes if _deviation_pct(q.mid, median) <= outlier_pct]
    rejected = [
        (q.venue, f"{q.mid:g} is {_deviation_pct(q.mid, median):.2f} % from the median {median:g}")
        for q in quotes
        if q not in kept
    ]
    if len(kept) * 2 <= len(quotes):
        detail = "; ".join(f"{v}: {why}" for v, why in rejected)
        raise InconsistentPriceError(f"{quotes[0].symbol}: no majority of venues agrees ({detail})")
    return kept, rejected


def _volume_weight(q: Quote) -> float | None:
    if q.quote_volume_24h is not None:
        return q.quote_volume_24h
    if q.base_volume_24h is not None:
        return q.base_volume_24h * q.mid
    return None


def aggregate_quotes(
    coin: str,
    quotes: Sequence[Quote],
    *,
    outlier_pct: float,
    failures: Iterable[tuple[str, str]] = (),
    currencies: dict[str, str] | None = None,
    now: float,
) -> AggregatedPrice:
    """Median and volume-weighted mid of the venues that agree (see :func:`split_outliers`)."""
    failed = list(failures)
    if not quotes:
        detail = "; ".join(f"{v}: {why}" for v, why in failed) or "no venue asked"
        raise MarketDataError(f"{coin}: no venue gave a quote ({detail})")
    kept, rejected = split_outliers(quotes, outlier_pct)
    weights = [_volume_weight(q) for q in kept]
    vwap = None
    if all(w is not None and w > 0 for w in weights):
        total = sum(w for w in weights if w is not None)
        vwap = sum(q.mid * (w or 0.0) for q, w in zip(kept, weights, strict=True)) / total
    ccy = currencies or {}
    return AggregatedPrice(
        coin=coin,
        median_mid=statistics.median(q.mid for q in kept),
        vwap_mid=vwap,
        best_bid=max(q.bid for q in kept),
        best_ask=min(q.ask for q in kept),
        quotes=tuple(kept),
        rejected=tuple(rejected + failed),
        quote_currencies=tuple(ccy.get(q.venue, "?") for q in kept),
        time=now,
    )


def find_arbitrage(
    coin: str,
    quotes: Sequence[Quote],
    *,
    fees_pct: dict[str, float],
    min_spread_pct: float,
    currencies: dict[str, str] | None = None,
    now: float,
) -> list[ArbitrageOpportunity]:
    """Every venue pair where selling at one's bid beats buying at another's ask by at least
    ``min_spread_pct`` after fees; best first."""
    ccy = currencies or {}
    found = []
    for buy, sell in itertools.permutations(quotes, 2):
        gross = (sell.bid - buy.ask) / buy.ask * 100
        net = gross - fees_pct.get(buy.venue, 0.0) - fees_pct.get(sell.venue, 0.0)
        if net >= min_spread_pct:
            found.append(
                ArbitrageOpportunity(
                    coin,
                    buy.venue,
                    buy.ask,
                    sell.venue,
                    sell.bid,
                    gross,
                    net,
                    ccy.get(buy.venue) != ccy.get(sell.venue),
                    now,
                )
            )
    return sorted(found, key=lambda o: o.net_spread_pct, reverse=True)


def coin_of(symbol: str) -> str:
    """``BTC``, ``btc``, ``BTC-USD``, ``BTC-USDT`` and ``BTCUSDT`` all mean the coin BTC."""
    s = symbol.strip().upper()
    for suffix in ("-USDT", "-USD", "USDT"):
        if s.endswith(suffix) and len(s) > len(suffix):
            return s[: -len(suffix)]
    return s


class CandleStore(Protocol):
    """The candle cache as seen from here (``pt_candle_cache.CandleCache``)."""

    def get(
        self, coin: str, timeframe: Timeframe, start: int, end: int, source: ExchangeManager
    ) -> Candles: ...


class MarketData:
    """The roadmap's exchange wrapper: prices, candles and spreads for the thinker and the hub."""

    def __init__(
        self,
        manager: ExchangeManager,
        *,
        cache: CandleStore | None = None,
        outlier_pct: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.manager = manager
        self.cache = cache
        self.outlier_pct = outlier_pct
        self._clock = clock
        self._currencies = {v.name: v.quote_currency for v in manager.venues}
        self._fees = {v.name: v.taker_fee_pct for v in manager.venues}

    def _quotes(self, coin: str) -> tuple[list[Quote], list[tuple[str, str]]]:
        quotes, failures = self.manager.all_quotes(coin)
        for venue, reason in failures:
            log.info("%s quote from %s unavailable: %s", coin, venue, reason)
        return quotes, failures

    def get_aggregated_current_price(self, symbol: str) -> AggregatedPrice:
        coin = coin_of(symbol)
        quotes, failures = self._quotes(coin)
        price = aggregate_quotes(
            coin,
            quotes,
            outlier_pct=self.outlier_pct,
            failures=failures,
            currencies=self._currencies,
            now=self._clock(),
        )
        for venue, reason in price.rejected:
            log.warning("%s: left %s out of the price: %s", coin, venue, reason)
        return price

    def get_candle_from_exchanges(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int = 120,
    ) -> Candles:
        """Candles in ``[start, end)``; by default the last ``limit`` up to now (forming last)."""
        tf = Timeframe.parse(timeframe) if isinstance(timeframe, str) else timeframe
        coin = coin_of(symbol)
        stop = int(self._clock()) + 1 if end is None else end
        first = tf.candle_open(stop - 1) - (limit - 1) * tf.seconds if start is None else start
        if self.cache is not None:
            return self.cache.get(coin, tf, first, stop, self.manager)
        return self.manager.candles(coin, tf, first, stop)

    def detect_arbitrage_opportunities(
        self, symbols: Iterable[str], min_spread_pct: float = 0.5
    ) -> list[ArbitrageOpportunity]:
        """Spreads worth a look across venues. The agreement rule of the price applies here too:
        an outlier venue is left out and venues that disagree by more than ``outlier_pct`` give
        no opportunity, because a gap that large is almost always a broken feed, not money."""
        found: list[ArbitrageOpportunity] = []
        for symbol in symbols:
            coin = coin_of(symbol)
            quotes, _ = self._quotes(coin)
            try:
                kept, _ = split_outliers(quotes, self.outlier_pct)
            except InconsistentPriceError as exc:
                log.warning("arbitrage check skipped: %s", exc)
                continue
            found += find_arbitrage(
                coin,
                kept,
                fees_pct=self._fees,
                min_spread_pct=min_spread_pct,
                currencies=self._currencies,
                now=self._clock(),
            )
        return sorted(found, key=lambda o: o.net_spread_pct, reverse=True)


def build_venues(
    exchanges: ExchangeSettings, *, clock: Callable[[], float] = time.time
) -> list[MarketSource]:
    """The live venues in the user's order, at the base URLs and timeout from the settings."""
    makers: dict[str, Callable[[], MarketSource]] = {
        "kucoin": lambda: KucoinVenue(
            exchanges.kucoin_url, timeout=exchanges.timeout_seconds, clock=clock
        ),
        "binance": lambda: BinanceVenue(
            exchanges.binance_url, timeout=exchanges.timeout_seconds, clock=clock
        ),
        "coinbase": lambda: CoinbaseVenue(
            exchanges.coinbase_url, timeout=exchanges.timeout_seconds, clock=clock
        ),
    }
    return [makers[name]() for name in exchanges.order]


def build_market(
    settings: Settings, layout: DataLayout, *, wall_clock: Callable[[], float] = time.time
) -> MarketData:
    """The market for the configured mode.

    Demo: the bundled history replayed on the hub's simulated clock, without the candle cache
    (the replay is already in memory, and demo candles must never mix into the live cache).
    Paper and live: the venues in the user's order, behind the candle cache.
    """
    if settings.mode is Mode.DEMO:
        sim_now = SimClock(layout, wall_clock=wall_clock).now
        replay = ReplayMarket(
            sim_now, spread_pct=settings.demo.spread_pct, cache_dir=layout.history_cache_dir
        )
        return MarketData(ExchangeManager([replay], clock=wall_clock), clock=sim_now)
    venues = build_venues(settings.exchanges, clock=wall_clock)
    return MarketData(
        ExchangeManager(venues, clock=wall_clock),
        cache=CandleCache(layout.candles_db, clock=wall_clock),
        outlier_pct=settings.exchanges.outlier_pct,
        clock=wall_clock,
    )
