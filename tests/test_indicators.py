"""Volume, ATR/position sizing and correlation: hand-computed values on small series, the ``ta``
library's and pandas' values on the bundled history (within 1e-9 relative), and a defined
answer for every kind of bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import ta

import pt_indicators_cli
from pt_correlation import (
    CorrelationMatrix,
    aligned_returns,
    correlation_matrix,
    correlations_over,
    diversification_alerts,
    portfolio_correlation,
)
from pt_ohlcv import load_bundled
from pt_position_sizing import atr, recommend_size, true_range, volatility
from pt_types import Candles, Timeframe
from pt_volume import (
    Trend,
    VolumeAnalyzer,
    ema,
    sma,
    volume_metrics,
    vwap,
)

REL = 1e-9


def candles(close: list[float], volume: list[float], spread: float = 1.0) -> Candles:
    c = np.array(close, dtype=np.float64)
    t = np.arange(len(c), dtype=np.int64) * 3600
    return Candles(t, c, c + spread, c - spread, c, np.array(volume, dtype=np.float64))


def same(ours: np.ndarray, theirs: pd.Series) -> None:
    """Equal where both are defined, NaN at the same places, within 1e-9 relative."""
    ref = theirs.to_numpy(dtype=np.float64)
    assert np.array_equal(np.isnan(ours), np.isnan(ref))
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=REL, atol=0)


# -- by hand ----------------------------------------------------------------------------------


def test_small_series_by_hand() -> None:
    np.testing.assert_allclose(sma(np.array([1.0, 2, 3, 4]), 2), [np.nan, 1.5, 2.5, 3.5])
    # a = 2/3: e0 = 1, e1 = 2/3·2 + 1/3·1 = 5/3, e2 = 2/3·3 + 1/3·5/3 = 23/9
    np.testing.assert_allclose(ema(np.array([1.0, 2, 3]), 2), [np.nan, 5 / 3, 23 / 9])
    # typical prices 11, 12, 13 (close ± 1); volumes 1, 2, 3: (12·2 + 13·3) / 5 = 12.6
    bars = candles([11, 12, 13], [1, 2, 3])
    np.testing.assert_allclose(vwap(bars, 2), [np.nan, (11 + 24) / 3, 12.6])


def test_metrics_of_the_newest_candle() -> None:
    volume = [float(v) for v in range(1, 61)]  # 1 … 60
    m = volume_metrics(candles([100.0] * 60, volume))
    assert m is not None and m.note == ""
    assert (m.volume, m.sma_10, m.sma_50) == (60.0, 55.5, 35.5)
    assert m.relative_volume == pytest.approx(60 / 35.5, rel=REL)
    assert m.vwap == pytest.approx(100.0, rel=REL)  # one price: the VWAP is that price


def test_anomaly_by_hand() -> None:
    analyzer = VolumeAnalyzer(window=5, z_threshold=3.0)
    # before: 10, 12, 8, 10, 10 -> mean 10, population std sqrt(8/5); now 40 -> z = 30/1.2649
    spike = analyzer.detect_anomaly(np.array([10.0, 12, 8, 10, 10, 40]))
    assert spike.anomalous and spike.z == pytest.approx(30 / math.sqrt(1.6), rel=REL)
    assert spike.reason.startswith("anomaly: 23.7 σ above the mean of the last 5 candles")
    quiet = analyzer.detect_anomaly(np.array([10.0, 12, 8, 10, 10, 11]))
    assert not quiet.anomalous and quiet.z == pytest.approx(1 / math.sqrt(1.6), rel=REL)
    low = analyzer.detect_anomaly(np.array([10.0, 12, 8, 10, 10, 5]))
    assert low.anomalous and "below" in low.reason


def test_trend_by_the_slope_of_the_volume_sma() -> None:
    analyzer = VolumeAnalyzer(sma_period=3, lookback=4, trend_threshold_pct=10)
    rising = analyzer.calculate_trend(np.array([10.0, 10, 10, 20, 30, 40, 50]))
    # SMA 3 of the last 4: 40/3, 20, 30, 40 -> least-squares slope 45/5 = 9 per candle;
    # over 3 steps 27, of their mean 310/12: +104.516 %
    assert rising.trend is Trend.INCREASING
    assert rising.change_pct == pytest.approx(27 / (310 / 12) * 100, rel=REL)
    falling = analyzer.calculate_trend(np.array([50.0, 40, 30, 20, 10, 10, 10]))
    assert falling.trend is Trend.DECREASING
    flat = analyzer.calculate_trend(np.array([10.0, 11, 10, 11, 10, 11, 10]))
    assert flat.trend is Trend.STABLE


# -- against the ta library on the bundled history ------------------------------------------


@pytest.mark.parametrize("coin", ["BTC", "DOGE"])
def test_agrees_with_the_ta_library_on_bundled_history(coin: str) -> None:
    bars = load_bundled(coin, Timeframe.H1).slice(-20_000)
    v = pd.Series(bars.volume)
    high, low, close = pd.Series(bars.high), pd.Series(bars.low), pd.Series(bars.close)
    same(sma(bars.volume, 10), ta.trend.SMAIndicator(v, 10).sma_indicator())
    same(sma(bars.volume, 50), ta.trend.SMAIndicator(v, 50).sma_indicator())
    same(ema(bars.volume, 12), ta.trend.EMAIndicator(v, 12).ema_indicator())
    ref = ta.volume.VolumeWeightedAveragePrice(high, low, close, v, 20)
    same(vwap(bars, 20), ref.volume_weighted_average_price())


# -- bad input: a defined answer, never NaN ----------------------------------------------------


def test_too_little_history_zero_and_constant_volume_and_no_candles() -> None:
    assert volume_metrics(Candles.empty()) is None
    short = volume_metrics(candles([100.0] * 5, [1.0] * 5))
    assert short is not None and short.sma_10 is None and short.ema_12 is None
    assert short.note.startswith("not enough data (5 candles): SMA 10 needs 10 candles")
    zero = volume_metrics(candles([100.0] * 60, [0.0] * 60))
    assert zero is not None and zero.relative_volume is None and zero.vwap is None
    assert zero.note == "no volume traded in the last 50 candles: no relative volume"
    analyzer = VolumeAnalyzer(window=5)
    few = analyzer.detect_anomaly(np.array([1.0, 2.0]))
    assert (few.anomalous, few.z, few.reason) == (False, None, "not enough data: 2 candles, need 6")
    flat = analyzer.detect_anomaly(np.array([7.0] * 6))
    assert (flat.anomalous, flat.z) == (False, None) and "constant" in flat.reason
    assert analyzer.calculate_trend(np.array([1.0, 2.0])).trend is Trend.UNKNOWN
    assert analyzer.calculate_trend(np.zeros(30)).trend is Trend.STABLE
    for m in (short, zero):
        numbers = [getattr(m, f) for f in ("sma_10", "sma_50", "ema_12", "vwap", "relative_volume")]
        assert all(x is None or math.isfinite(x) for x in numbers)
    with pytest.raises(ValueError, match="window >= 2"):
        VolumeAnalyzer(window=1)


def test_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert pt_indicators_cli.volume_main(["btc", "--timeframe", "1d"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("BTC volume, candle of ") and "from bundled history" in out
    assert "anomaly " in out and "trend " in out
    assert pt_indicators_cli.volume_main(["FOO"]) == 2
    assert "no candles for FOO" in capsys.readouterr().err
    assert pt_indicators_cli.volume_main(["BTC", "--timeframe", "7m"]) == 2


# -- ATR and position sizing ---------------------------------------------------------------------


def bars(high: list[float], low: list[float], close: list[float]) -> Candles:
    n = len(close)
    c = np.array(close, dtype=np.float64)
    return Candles(np.arange(n, dtype=np.int64) * 86_400, c, np.array(high, dtype=np.float64),
                   np.array(low, dtype=np.float64), c, np.ones(n))  # fmt: skip


def test_true_range_and_wilder_atr_by_hand() -> None:
    b = bars(high=[12, 15, 13, 14], low=[10, 11, 9, 12], close=[11, 14, 10, 13])
    # TR: 2 (first: high - low); max(4, |15-11|, |11-11|) = 4; max(4, |13-14|, |9-14|) = 5;
    # max(2, |14-10|, |12-10|) = 4
    np.testing.assert_array_equal(true_range(b), [2.0, 4.0, 5.0, 4.0])
    # ATR 3: mean(2, 4, 5) = 11/3, then (11/3 · 2 + 4) / 3 = 34/9
    np.testing.assert_allclose(atr(b, 3), [np.nan, np.nan, 11 / 3, 34 / 9], rtol=REL)
    vol = volatility(b, 3)
    assert vol.atr == pytest.approx(34 / 9, rel=REL)
    assert vol.atr_pct == pytest.approx(34 / 9 / 13 * 100, rel=REL)


@pytest.mark.parametrize(("coin", "timeframe"), [("BTC", Timeframe.D1), ("XRP", Timeframe.H1)])
def test_atr_agrees_with_the_ta_library_on_bundled_history(coin: str, timeframe: Timeframe) -> None:
    b = load_bundled(coin, timeframe).slice(-20_000)
    ref = ta.volatility.AverageTrueRange(pd.Series(b.high), pd.Series(b.low),
                                         pd.Series(b.close), 14).average_true_range()  # fmt: skip
    ours = atr(b, 14)
    ref_values = ref.to_numpy(dtype=np.float64)
    assert np.isnan(ours[:13]).all() and (ref_values[:13] == 0).all()  # ta fills warm-up with 0
    np.testing.assert_allclose(ours[13:], ref_values[13:], rtol=REL, atol=0)


def test_recommended_size_scales_with_volatility_within_bounds() -> None:
    calm = bars(high=[101.0] * 20, low=[99.0] * 20, close=[100.0] * 20)  # ATR 2 = 2 %
    r = recommend_size(calm, base_pct=5.0, target_atr_pct=3.0)
    assert r.atr_pct == pytest.approx(2.0, rel=REL) and r.factor == pytest.approx(1.5, rel=REL)
    assert r.pct == pytest.approx(7.5, rel=REL)
    assert r.reason == "ATR 14 is 2.00% of the price (target 3%): 5% × 1.50 = 7.50% of the account"
    wild = bars(high=[110.0] * 20, low=[90.0] * 20, close=[100.0] * 20)  # 20 %: 5 × 0.15
    assert recommend_size(wild, base_pct=5.0).pct == 1.0  # raised to the 1 % floor
    assert "(at the lower bound)" in recommend_size(wild, base_pct=5.0).reason
    assert recommend_size(calm, base_pct=8.0).pct == 10.0  # 8 × 1.5 = 12: capped at 10 %
    with pytest.raises(ValueError, match="min_pct <= max_pct"):
        recommend_size(calm, base_pct=5.0, min_pct=5.0, max_pct=2.0)


def test_sizing_bad_input_gives_no_size_and_the_reason() -> None:
    few = recommend_size(bars([2.0] * 5, [1.0] * 5, [1.5] * 5), base_pct=5.0)
    assert few.pct is None and few.reason == (
        "no volatility size: not enough data: ATR 14 needs 14 candles, have 5"
    )
    flat = recommend_size(bars([5.0] * 20, [5.0] * 20, [5.0] * 20), base_pct=5.0)
    assert flat.pct is None and flat.reason == (
        "no volatility size: no price movement in the last 14 candles"
    )
    zero = recommend_size(bars([0.0] * 20, [0.0] * 20, [0.0] * 20), base_pct=5.0)
    assert zero.pct is None and "no usable price" in zero.reason
    none = recommend_size(Candles.empty(), base_pct=5.0)
    assert none.pct is None and "have 0" in none.reason


# -- correlation -------------------------------------------------------------------------------


def daily(closes: list[float], start: int = 0) -> Candles:
    c = np.array(closes, dtype=np.float64)
    t = (np.arange(len(c), dtype=np.int64) + start) * 86_400
    return Candles(t, c, c, c, c, np.ones(len(c)))


def test_correlation_matches_pandas_on_bundled_daily_returns() -> None:
    coins = ("BTC", "ETH", "XRP", "BNB", "DOGE")
    history = {c: load_bundled(c, Timeframe.D1) for c in coins}
    for periods in (7, 30, 90, 365):
        m = correlation_matrix(history, periods)
        names, returns = aligned_returns(history, periods)
        assert names == coins and len(returns) == periods == m.returns_used
        ref = pd.DataFrame(returns, columns=list(coins)).corr().to_numpy()
        ours = np.array([[np.nan if v is None else v for v in row] for row in m.values])
        np.testing.assert_allclose(ours, ref, rtol=REL, atol=1e-12)
    # the returns themselves: BTC's close-to-close return between the last two common days
    common = history["BTC"].time
    for coin in coins[1:]:
        common = np.intersect1d(common, history[coin].time)
    btc = history["BTC"]
    last, before = (int(np.searchsorted(btc.time, t)) for t in common[-1:-3:-1])
    assert returns[-1, 0] == pytest.approx(btc.close[last] / btc.close[before] - 1, rel=REL)
    assert set(correlations_over(history)) == {7, 30, 90}


def test_portfolio_correlation_weighted_by_position_value_by_hand() -> None:
    m = CorrelationMatrix(("A", "B", "C"), ((1.0, 0.5, 0.2), (0.5, 1.0, -0.4), (0.2, -0.4, 1.0)),
                          30, 30)  # fmt: skip
    # weights 100, 200, 300: pairs AB 20 000·0.5, AC 30 000·0.2, BC 60 000·(-0.4)
    expected = (20_000 * 0.5 + 30_000 * 0.2 + 60_000 * -0.4) / 110_000
    assert portfolio_correlation(m, {"A": 100, "B": 200, "C": 300}) == pytest.approx(expected)
    assert portfolio_correlation(m, {"A": 100}) is None  # one position: no pair
    assert portfolio_correlation(m, {"A": 100, "B": 0, "Z": 50}) is None


def test_diversification_alerts_above_the_threshold() -> None:
    a = [100.0, 101, 103, 102, 105, 107, 106, 110]
    b = [x * 2 + 1 for x in a]  # moves with A (returns almost the same)
    c = [100.0, 99, 101, 100, 98, 99, 101, 100]
    m = correlation_matrix({"A": daily(a), "B": daily(b), "C": daily(c)}, 7)
    alerts = diversification_alerts(m, "B", held=["A", "C", "B"])
    assert [x.held for x in alerts] == ["A"] and alerts[0].correlation > 0.99
    assert alerts[0].message.startswith("B moved with A (correlation 1.00 over 7 days)")
    assert diversification_alerts(m, "C", held=["A", "B"]) == []  # C moves its own way
    assert diversification_alerts(m, "B", held=["A"], threshold=1.0) == []  # strictly above


def test_correlation_bad_input_gives_none_with_the_reason() -> None:
    moving = daily([1.0, 2, 1, 3, 2, 4, 3, 5])
    flat = daily([5.0] * 8)
    m = correlation_matrix({"A": moving, "F": flat, "N": Candles.empty()}, 7)
    assert m.coins == ("A", "F") and m.get("A", "F") is None and m.get("F", "F") is None
    assert m.get("A", "A") == 1.0 and m.get("A", "N") is None
    assert m.notes == (
        "N: no candles",
        "F: the price did not move over the period (no correlation)",
    )
    short = correlation_matrix({"A": daily([1.0, 2]), "B": daily([2.0, 3])}, 30)
    assert short.get("A", "B") is None
    assert short.notes == ("not enough data: 1 common returns, need 3",)
    apart = correlation_matrix({"A": daily([1.0, 2, 3]), "B": daily([1.0, 2, 3], start=10)}, 7)
    assert apart.returns_used == 0 and apart.get("A", "B") is None  # no common days
    assert correlation_matrix({}, 7).coins == ()
