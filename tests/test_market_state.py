"""The market state beside each signal: volume and ATR % from closed candles only, refreshed once
per hour, anomalies reported once per candle, correlations in the signals file."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from pt_config import parse
from pt_config_schema import SizingSettings, VolumeSettings
from pt_errors import MarketDataError
from pt_market_state import closed, daily_needed, hourly_needed, market_state
from pt_market_watch import MarketWatch
from pt_ohlcv import load_bundled
from pt_position_sizing import volatility
from pt_signals import (
    CoinSignal,
    CoinStatus,
    SignalsSnapshot,
    Stage,
    snapshot_from_data,
    snapshot_to_data,
)
from pt_types import HOUR, Candles, Timeframe
from pt_volume import Trend, VolumeAnalyzer

BTC_H = load_bundled("BTC", Timeframe.H1)
BTC_D = load_bundled("BTC", Timeframe.D1)
ETH_D = load_bundled("ETH", Timeframe.D1)
NOW = int(BTC_H.time[-2000])  # an hour boundary well inside the bundled history


def spiked(candles: Candles, factor: float) -> Candles:
    """The same candles with the newest volume multiplied by ``factor``."""
    volume = candles.volume.copy()
    volume[-1] *= factor
    return replace(candles, volume=volume)


def test_closed_drops_the_forming_candle() -> None:
    upto = BTC_H.until(NOW)  # the last row opened at NOW: it is forming
    got = closed(upto, Timeframe.H1, NOW + 10)
    assert len(got) == len(upto) - 1 and got.time[-1] == NOW - HOUR
    assert len(closed(upto, Timeframe.H1, NOW + HOUR)) == len(upto)


def test_market_state_matches_the_calculations_it_is_made_of() -> None:
    vcfg, scfg = VolumeSettings(), SizingSettings()
    hourly = closed(BTC_H.until(NOW), Timeframe.H1, NOW).slice(-hourly_needed(vcfg))
    daily = closed(BTC_D.until(NOW), Timeframe.D1, NOW).slice(-daily_needed(scfg))
    state = market_state(hourly, daily, vcfg, scfg)
    assert state.atr_pct == pytest.approx(volatility(daily, 14).atr_pct, rel=1e-12)
    v = state.volume
    assert v is not None and v.candle_time == NOW - HOUR
    z = VolumeAnalyzer().detect_anomaly(hourly.volume).z
    assert v.z == pytest.approx(z, rel=1e-12)
    assert v.relative == pytest.approx(hourly.volume[-1] / hourly.volume[-50:].mean(), rel=1e-9)
    loud = market_state(spiked(hourly, 50.0), daily, vcfg, scfg).volume
    assert loud is not None and loud.anomalous and loud.z is not None and loud.z > 3
    assert loud.summary.startswith("vol ") and "z +" in loud.summary


def test_short_flat_and_missing_history_give_reasons_not_nan() -> None:
    vcfg, scfg = VolumeSettings(), SizingSettings()
    empty = Candles.empty()
    state = market_state(empty, empty, vcfg, scfg)
    assert (state.volume, state.atr_pct) == (None, None)
    assert state.volume_reason == "no hourly candles" and state.atr_reason == "no daily candles"
    short = market_state(BTC_H.slice(0, 5), BTC_D.slice(0, 5), vcfg, scfg)
    assert short.atr_pct is None and "not enough data" in short.atr_reason
    assert short.volume is not None and short.volume.z is None
    assert short.volume.relative is None and short.volume.trend is Trend.UNKNOWN
    assert "not enough data" in short.volume.reason
    flat = replace(BTC_H.slice(0, 80), volume=np.zeros(80))
    quiet = market_state(flat, empty, vcfg, scfg).volume
    assert quiet is not None and quiet.z is None and not quiet.anomalous


class HistoryMarket:
    """Bundled candles up to the clock (the forming candle last, as the venues give them)."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.calls: list[tuple[str, str, int]] = []
        self.fail = False
        self.tables = {
            ("BTC", "1h"): BTC_H,
            ("BTC", "1d"): BTC_D,
            ("ETH", "1h"): load_bundled("ETH", Timeframe.H1),
            ("ETH", "1d"): ETH_D,
        }
        self.loud: set[int] = set()  # hours whose volume is multiplied by 50

    def get_candle_from_exchanges(self, symbol: str, timeframe: Timeframe | str, *,
                                  start: int | None = None, end: int | None = None,
                                  limit: int = 120) -> Candles:  # fmt: skip
        tf = timeframe if isinstance(timeframe, Timeframe) else Timeframe.parse(timeframe)
        self.calls.append((symbol, tf.value, limit))
        if self.fail:
            raise MarketDataError("fake venue: down")
        table = self.tables[(symbol, tf.value)].until(int(self.now))
        table = table.slice(len(table) - limit)
        volume = table.volume.copy()
        for i, t in enumerate(table.time):
            if int(t) in self.loud:
                volume[i] *= 50
        return replace(table, volume=volume)


def test_the_watch_fetches_once_per_hour_and_reports_an_anomaly_once() -> None:
    settings = parse({"coins": ["BTC", "ETH"]})
    market = HistoryMarket(NOW + 60)
    watch = MarketWatch(market)
    assert watch.refresh(("BTC", "ETH"), settings, market.now) == []
    assert len(market.calls) == 4
    btc = watch.state("BTC")
    assert btc is not None and btc.atr_pct is not None and btc.volume is not None
    market.now += 600
    watch.refresh(("BTC", "ETH"), settings, market.now)
    assert len(market.calls) == 4  # the same hour: nothing fetched
    market.loud.add(NOW)  # the hour that closes next is loud
    market.now = NOW + HOUR + 5
    found = watch.refresh(("BTC", "ETH"), settings, market.now)
    assert [(a.coin, a.volume.candle_time) for a in found] == [("BTC", NOW), ("ETH", NOW)]
    assert len(market.calls) == 8
    market.now += 60
    changed = parse({"coins": ["BTC", "ETH"], "volume": {"anomaly_z": 4}})
    assert watch.refresh(("BTC", "ETH"), changed, market.now) == []  # refetched, not re-reported
    assert len(market.calls) == 12
    corr = {m.periods: m for m in watch.correlations}
    assert sorted(corr) == [7, 30, 90] and corr[30].coins == ("BTC", "ETH")
    rho = corr[30].get("BTC", "ETH")
    assert rho is not None and 0 < rho <= 1


def test_a_failed_fetch_keeps_the_last_state_with_the_reason_and_retries_later() -> None:
    settings = parse({"coins": ["BTC"]})
    market = HistoryMarket(NOW + 60)
    watch = MarketWatch(market)
    watch.refresh(("BTC",), settings, market.now)
    before = watch.state("BTC")
    market.fail, market.now = True, NOW + HOUR + 1
    watch.refresh(("BTC",), settings, market.now)
    after = watch.state("BTC")
    assert after is not None and before is not None and after.atr_pct == before.atr_pct
    assert after.atr_reason == "candles unavailable: fake venue: down"
    calls = len(market.calls)
    watch.refresh(("BTC",), settings, market.now + 10)
    assert len(market.calls) == calls  # waits before trying again
    market.fail = False
    watch.refresh(("BTC",), settings, market.now + 61)
    fresh = watch.state("BTC")
    assert fresh is not None and fresh.atr_reason == "" and len(market.calls) == calls + 2
    new_coin = MarketWatch(market)
    market.fail = True
    new_coin.refresh(("BTC",), settings, market.now)
    state = new_coin.state("BTC")
    assert state is not None and state.volume is None and state.atr_pct is None


def test_market_state_and_correlations_round_trip_through_the_signals_file() -> None:
    settings = parse({"coins": ["BTC", "ETH"]})
    market = HistoryMarket(NOW + 60)
    market.loud.add(NOW - HOUR)
    watch = MarketWatch(market)
    watch.refresh(("BTC", "ETH"), settings, market.now)
    coins = tuple(
        CoinSignal(c, CoinStatus.READY, "", NOW, "m", 100.0, 3, 0, market=watch.state(c))
        for c in ("BTC", "ETH")
    )
    snap = SignalsSnapshot(Stage.READY, "", NOW, coins, correlations=watch.correlations)
    data = json.loads(json.dumps(snapshot_to_data(snap), allow_nan=False))
    back = snapshot_from_data(data)
    assert back.coins == snap.coins and back.correlations == snap.correlations
    signal = back.signal("BTC")
    assert signal is not None and signal.atr_pct == watch.state("BTC").atr_pct  # type: ignore[union-attr]
    m30 = back.correlation(30)
    assert m30 is not None and m30.get("BTC", "BTC") == 1.0 and back.correlation(14) is None
    data["correlations"][0]["values"] = [[1.0]]
    with pytest.raises(ValueError, match="square"):
        snapshot_from_data(data)
    old = json.loads(json.dumps(snapshot_to_data(snap)))
    del old["correlations"], old["coins"]["BTC"]["market"]  # a file from before this version
    older = snapshot_from_data(old)
    assert older.correlations == () and older.coin("BTC").market is None  # type: ignore[union-attr]
