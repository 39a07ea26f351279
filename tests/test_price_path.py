"""The in-candle path model, checked against hand-computed prices."""

from __future__ import annotations

import numpy as np
import pytest

import pt_ohlcv
from pt_price_path import partial_candle, path_points, price_at, prices_at

# open 100 is 10 from the low and 30 from the high: the low comes first.
LOW_FIRST = (100.0, 130.0, 90.0, 110.0)  # path 100 -> 90 -> 130 -> 110
# open 120 is 5 from the high and 30 from the low: the high comes first.
HIGH_FIRST = (120.0, 125.0, 90.0, 100.0)  # path 120 -> 125 -> 90 -> 100


@pytest.mark.parametrize(
    ("candle", "fraction", "expected"),
    [
        (LOW_FIRST, 0.0, 100.0),
        (LOW_FIRST, 1 / 6, 95.0),  # half-way down to the low
        (LOW_FIRST, 1 / 3, 90.0),  # at the low
        (LOW_FIRST, 0.5, 110.0),  # half-way from the low up to the high
        (LOW_FIRST, 2 / 3, 130.0),  # at the high
        (LOW_FIRST, 5 / 6, 120.0),  # half-way from the high down to the close
        (LOW_FIRST, 1.0, 110.0),
        (HIGH_FIRST, 0.0, 120.0),
        (HIGH_FIRST, 1 / 6, 122.5),
        (HIGH_FIRST, 1 / 3, 125.0),
        (HIGH_FIRST, 0.5, 107.5),
        (HIGH_FIRST, 2 / 3, 90.0),
        (HIGH_FIRST, 5 / 6, 95.0),
        (HIGH_FIRST, 1.0, 100.0),
    ],
)
def test_price_follows_open_nearer_extreme_other_extreme_close(
    candle: tuple[float, float, float, float], fraction: float, expected: float
) -> None:
    assert price_at(*candle, fraction) == pytest.approx(expected, rel=1e-12)


def test_ends_are_exactly_open_and_close() -> None:
    assert price_at(*LOW_FIRST, 0.0) == 100.0
    assert price_at(*LOW_FIRST, 1.0) == 110.0
    assert price_at(*HIGH_FIRST, 1.0) == 100.0


def test_equal_distance_goes_to_the_low_first() -> None:
    candle = (100.0, 110.0, 90.0, 105.0)
    assert path_points(*candle) == (100.0, 90.0, 110.0, 105.0)
    assert price_at(*candle, 1 / 6) == pytest.approx(95.0)


def test_flat_candle_stays_flat() -> None:
    for f in (0.0, 0.2, 1 / 3, 0.5, 0.9, 1.0):
        assert price_at(50.0, 50.0, 50.0, 50.0, f) == 50.0
        assert partial_candle(50.0, 50.0, 50.0, 50.0, f) == (50.0, 50.0, 50.0, 50.0)


@pytest.mark.parametrize(
    ("candle", "fraction", "expected"),
    [
        (LOW_FIRST, 0.0, (100.0, 100.0, 100.0, 100.0)),
        (LOW_FIRST, 1 / 6, (100.0, 100.0, 95.0, 95.0)),
        (LOW_FIRST, 0.5, (100.0, 110.0, 90.0, 110.0)),
        (LOW_FIRST, 5 / 6, (100.0, 130.0, 90.0, 120.0)),
        (LOW_FIRST, 1.0, (100.0, 130.0, 90.0, 110.0)),
        (HIGH_FIRST, 1 / 6, (120.0, 122.5, 120.0, 122.5)),
        (HIGH_FIRST, 0.5, (120.0, 125.0, 107.5, 107.5)),
        (HIGH_FIRST, 1.0, (120.0, 125.0, 90.0, 100.0)),
    ],
)
def test_partial_candle_shows_only_the_path_so_far(
    candle: tuple[float, float, float, float],
    fraction: float,
    expected: tuple[float, float, float, float],
) -> None:
    assert partial_candle(*candle, fraction) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("fraction", [-0.01, 1.01, float("nan")])
def test_fraction_outside_the_candle_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        price_at(*LOW_FIRST, fraction)
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        o, h, lo, c = (np.array([v]) for v in LOW_FIRST)
        prices_at(o, h, lo, c, fraction)


def test_vectorised_prices_match_the_scalar_ones_on_real_candles() -> None:
    btc = pt_ohlcv.load_bundled("BTC").slice(0, 2000)
    rng = np.random.default_rng(7)
    fractions = rng.random(len(btc))
    fractions[:4] = [0.0, 1 / 3, 2 / 3, 1.0]
    got = prices_at(btc.open, btc.high, btc.low, btc.close, fractions)
    expected = [
        price_at(float(o), float(h), float(lo), float(c), float(f))
        for o, h, lo, c, f in zip(btc.open, btc.high, btc.low, btc.close, fractions, strict=True)
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert np.all((got >= btc.low) & (got <= btc.high))
    np.testing.assert_array_equal(prices_at(btc.open, btc.high, btc.low, btc.close, 1.0), btc.close)
