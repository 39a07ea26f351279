"""The thinker's market watch: each coin's volume and volatility state, refreshed once per
closed hour, and the coins' correlations, refreshed once per closed day.

It asks the market for candles only when a new candle can have closed (so at most once per
hour per coin), keeps the last good state when a fetch fails (with the failure as its reason,
the figures themselves are old by at most the state's candle time), and reports each volume
anomaly once per candle so the thinker can notify it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from pt_config_schema import Settings
from pt_correlation import CorrelationMatrix
from pt_errors import PowerTraderError
from pt_market_state import (
    MarketState,
    VolumeState,
    closed,
    correlations,
    daily_needed,
    hourly_needed,
    market_state,
)
from pt_types import Candles, Timeframe

log = logging.getLogger(__name__)

H1, D1 = Timeframe.parse("1h"), Timeframe.parse("1d")
RETRY_SECONDS = 60.0  # the mode's seconds before a failed fetch is tried again


class CandleSource(Protocol):
    """Candles by coin and timeframe (``pt_thinker_exchanges.MarketData``; tests pass fakes)."""

    def get_candle_from_exchanges(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int = 120,
    ) -> Candles: ...


@dataclass(frozen=True)
class Anomaly:
    coin: str
    volume: VolumeState


class MarketWatch:
    """Market states of the configured coins (see the module doc)."""

    def __init__(self, market: CandleSource) -> None:
        self.market = market
        self._states: dict[str, MarketState] = {}
        self._daily: dict[str, Candles] = {}
        self._hour: dict[str, tuple[int, object]] = {}  # coin -> (hour fetched, settings key)
        self._day: tuple[int, tuple[str, ...]] | None = None
        self._announced: dict[str, int] = {}  # coin -> candle time of the last anomaly reported
        self._retry_at: dict[str, float] = {}
        self.correlations: tuple[CorrelationMatrix, ...] = ()

    def state(self, coin: str) -> MarketState | None:
        return self._states.get(coin)

    def refresh(self, coins: Sequence[str], settings: Settings, now: float) -> list[Anomaly]:
        """Bring every coin up to the last closed hour; returns the anomalies not yet reported."""
        for coin in [c for c in self._states if c not in coins]:
            kept = (self._states, self._daily, self._hour, self._announced, self._retry_at)
            for per_coin in kept:
                per_coin.pop(coin, None)
        key = (settings.volume, settings.sizing.atr_period)
        hour = int(now // H1.seconds)
        for coin in coins:
            due = self._hour.get(coin) != (hour, key) and now >= self._retry_at.get(coin, 0.0)
            if due and self._refresh_coin(coin, settings, now):
                self._hour[coin] = (hour, key)
        day = (int(now // D1.seconds), tuple(coins))
        if day != self._day:
            self.correlations = correlations({c: self._daily[c] for c in coins if c in self._daily})
            self._day = day
        return self._new_anomalies(coins)

    def _fetch(self, coin: str, tf: Timeframe, closed_wanted: int, now: float) -> Candles:
        candles = self.market.get_candle_from_exchanges(coin, tf, limit=closed_wanted + 1)
        return closed(candles, tf, now)

    def _refresh_coin(self, coin: str, settings: Settings, now: float) -> bool:
        try:
            hourly = self._fetch(coin, H1, hourly_needed(settings.volume), now)
            daily = self._fetch(coin, D1, daily_needed(settings.sizing), now)
        except (PowerTraderError, ValueError, OSError) as exc:
            log.info("%s: market state not refreshed: %s", coin, exc)
            old = self._states.get(coin)
            why = f"candles unavailable: {exc}"
            self._states[coin] = (
                replace(old, volume_reason=why, atr_reason=why)
                if old is not None
                else MarketState(None, why, None, why)
            )
            self._retry_at[coin] = now + RETRY_SECONDS
            return False
        self._daily[coin] = daily
        self._states[coin] = market_state(hourly, daily, settings.volume, settings.sizing)
        return True

    def _new_anomalies(self, coins: Sequence[str]) -> list[Anomaly]:
        found = []
        for coin in coins:
            state = self._states.get(coin)
            volume = state.volume if state is not None else None
            if volume is None or not volume.anomalous:
                continue
            if self._announced.get(coin) != volume.candle_time:
                self._announced[coin] = volume.candle_time
                found.append(Anomaly(coin, volume))
        return found
