"""The kNN predictor's maths, each rule checked against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pt_patterns import (
    Memory,
    MemoryArrays,
    PatternConfig,
    candle_moves,
    levels,
    pattern_windows,
    relative_distance,
    spaced_bounds,
    walk_forward,
)
from pt_types import HOUR, Candles


def memory(
    patterns: list[list[float]],
    outcomes: list[list[float]],
    weights: list[list[float]] | None = None,
    *,
    threshold: float = 1.0,
    **config: object,
) -> Memory:
    w = weights if weights is not None else [[1.0, 1.0, 1.0]] * len(patterns)
    arrays = MemoryArrays(
        np.array(patterns, dtype=float).reshape(len(patterns), -1),
        np.array(outcomes, dtype=float).reshape(-1, 3),
        np.array(w, dtype=float).reshape(-1, 3),
        threshold,
    )
    return Memory(PatternConfig(**config), arrays)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- distance, matching


def test_relative_distance_is_the_originals_with_its_quirks() -> None:
    stored = np.array([[1.0], [-1.0], [0.5], [0.0]])
    d = relative_distance(stored, np.array([1.0]))[:, 0]
    # 1 vs 1: 0; -1 vs 1: a + b = 0 counts as perfect (quirk); 0.5 vs 1: 0.5 / 0.75 = 66.67 %;
    # 0 vs 1: 1 / 0.5 = 200 %
    assert d == pytest.approx([0.0, 0.0, 66.6666667, 200.0])


def test_absolute_matching_with_a_threshold() -> None:
    m = memory([[0.1], [0.3], [0.6]], [[0, 0, 0]] * 3, threshold=0.15, distance="absolute")
    assert m.match(np.array([0.2])).tolist() == [0, 1]


def test_longer_patterns_use_the_mean_distance() -> None:
    m = memory(
        [[0.1, 0.2], [0.5, 0.5]], [[0, 0, 0]] * 2, threshold=0.1, distance="absolute",
        pattern_length=2,
    )  # fmt: skip
    # |0.1-0.2| and |0.2-0.2| -> mean 0.05 (in); 0.3 and 0.3 -> mean 0.3 (out)
    assert m.match(np.array([0.2, 0.2])).tolist() == [0]


def test_relative_matching_threshold_in_percent() -> None:
    m = memory([[1.0], [1.2], [2.0]], [[0, 0, 0]] * 3, threshold=20.0)
    # 1.2 vs 1.0: 0.2 / 1.1 = 18.2 % (in); 2.0 vs 1.0: 1 / 1.5 = 66.7 % (out)
    assert m.match(np.array([1.0])).tolist() == [0, 1]


# --------------------------------------------------------------------------- prediction


def test_prediction_is_the_weighted_mean() -> None:
    m = memory(
        [[0.0], [0.0]],
        [[1.0, 2.0, -1.0], [3.0, 4.0, -3.0]],
        [[1.0, 1.0, 1.0], [3.0, 0.5, 1.0]],
    )
    p = m.predict(np.array([0.0]))
    assert p is not None and p.matches == 2
    assert p.close_pct == pytest.approx((1 * 1 + 3 * 3) / 4)  # 2.5
    assert p.high_pct == pytest.approx((1 * 2 + 0.5 * 4) / 1.5)  # 2.667
    assert p.low_pct == pytest.approx((-1 - 3) / 2)  # -2


def test_no_match_or_no_weight_means_inactive() -> None:
    m = memory([[5.0]], [[1, 1, 1]], threshold=1.0)
    assert m.predict(np.array([0.1])) is None
    zero = memory([[0.0]], [[1, 1, 1]], [[1.0, 0.0, 1.0]])
    assert zero.predict(np.array([0.0])) is None


# --------------------------------------------------------------------------- learning


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        # outcome (close 1.0, high 2.0, low -1.0), weights 1: the band is 10 % of each
        ((1.5, 2.5, -1.5), (1.25, 1.25, 1.25)),  # further than said on every column: more weight
        ((1.05, 2.1, -1.05), (1.0, 1.0, 1.0)),  # within 10 %: unchanged
        ((0.5, 1.0, -0.5), (0.75, 0.75, 0.75)),  # less far than said: less weight
        ((-2.0, 2.0, 0.5), (0.75, 1.0, 0.75)),  # wrong direction: less weight
    ],
)
def test_learning_moves_weights_by_a_quarter(
    actual: tuple[float, float, float], expected: tuple[float, float, float]
) -> None:
    m = memory([[0.0]], [[1.0, 2.0, -1.0]])
    m.learn(np.array([0.0]), m.match(np.array([0.0])), np.array(actual))
    assert m.arrays().weights[0] == pytest.approx(expected)


def test_the_close_rule_has_no_times_100_scale_fault() -> None:
    # The original compared the actual move with 100 * m * w: a 1 % outcome looked like 100 %.
    m = memory([[0.0]], [[1.0, 1.0, -1.0]])
    m.learn(np.array([0.0]), m.match(np.array([0.0])), np.array([1.5, 1.0, -1.0]))
    assert m.arrays().weights[0, 0] == 1.25


def test_weights_stay_between_zero_and_two() -> None:
    m = memory([[0.0], [0.0]], [[1.0, 1.0, -1.0]] * 2, [[2.0, 2.0, 2.0], [0.0, 0.0, 0.0]])
    matched = m.match(np.array([0.0]))
    m.learn(np.array([0.0]), matched, np.array([3.0, 3.0, -3.0]))
    assert m.arrays().weights.tolist() == [[2.0, 2.0, 2.0], [0.25, 0.25, 0.25]]
    m.learn(np.array([0.0]), matched, np.array([-3.0, -3.0, 3.0]))
    assert m.arrays().weights.min() == 0.0


def test_a_pattern_that_matched_nothing_becomes_a_memory() -> None:
    m = memory([[5.0]], [[1, 1, 1]], threshold=1.0)
    p = m.step(np.array([0.2]), np.array([0.3, 0.9, -0.4]))
    assert p is None and len(m) == 2
    arrays = m.arrays()
    assert arrays.patterns[1].tolist() == [0.2]
    assert arrays.outcomes[1].tolist() == [0.3, 0.9, -0.4]
    assert arrays.weights[1].tolist() == [1.0, 1.0, 1.0]


def test_memory_grows_past_its_initial_capacity() -> None:
    m = Memory(PatternConfig(distance="absolute", start_threshold=0.0))
    for i in range(600):  # patterns 1000 apart: the threshold (+0.01 a step) never reaches one
        m.step(np.array([1000.0 * i]), np.array([i, i + 1, i - 1], dtype=float))
    assert len(m) == 600
    assert m.arrays().patterns[599, 0] == 599_000.0
    assert m.arrays().outcomes[0].tolist() == [0, 1, -1]


# --------------------------------------------------------------------------- threshold


def test_threshold_narrows_when_too_many_match_with_a_finer_step_below_point_one() -> None:
    m = memory([[0.0]] * 3, [[0, 0, 0]] * 3, threshold=1.0, target_matches=2)
    m.learn(np.array([0.0]), m.match(np.array([0.0])), np.zeros(3))
    assert m.threshold == pytest.approx(0.99)
    m.threshold = 0.05
    m.learn(np.array([0.0]), m.match(np.array([0.0])), np.zeros(3))
    assert m.threshold == pytest.approx(0.049)
    m.threshold = 0.0
    m.learn(np.array([0.0]), m.match(np.array([0.0])), np.zeros(3))
    assert m.threshold == 0.0


def test_threshold_widens_when_too_few_match() -> None:
    m = memory([[0.0], [9.0], [9.0]], [[0, 0, 0]] * 3, threshold=1.0, target_matches=2)
    m.learn(np.array([0.0]), m.match(np.array([0.0])), np.zeros(3))
    assert m.threshold == pytest.approx(1.01)


def test_threshold_never_widens_while_the_memory_is_smaller_than_the_target() -> None:
    # Otherwise it runs away until everything matches and no new memory is ever made.
    m = memory([[0.0], [9.0]], [[0, 0, 0]] * 2, threshold=1.0, target_matches=20)
    m.learn(np.array([0.0]), m.match(np.array([0.0])), np.zeros(3))
    assert m.threshold == 1.0


# --------------------------------------------------------------------------- bounds and levels


def test_bound_spacing_reproduces_the_specs_worked_example() -> None:
    predicted_low = np.array([100.0, 99.9, 99.8, 99.7, 99.6, 99.5, 99.4])
    lows, _ = spaced_bounds(predicted_low, predicted_low + 1)
    assert lows == pytest.approx(
        [99.5, 99.2515, 98.7562, 98.0179, 97.0420, 95.8359, 94.4082], abs=1e-4
    )


def test_bound_gaps_grow_and_highs_are_pushed_up() -> None:
    predicted = np.full(7, 100.0)
    lows, highs = spaced_bounds(predicted, predicted)
    for bounds in (np.sort(lows)[::-1], np.sort(highs)):
        gaps = np.abs(np.diff(bounds)) / ((bounds[1:] + bounds[:-1]) / 2) * 100
        assert all(g >= 0.25 * (k + 1) - 1e-9 for k, g in enumerate(gaps))
    assert highs[0] == pytest.approx(100.5) and np.all(np.diff(highs) > 0)


def test_bounds_keep_timeframe_order_and_skip_inactive() -> None:
    predicted_low = np.array([99.0, np.nan, 100.0])
    lows, highs = spaced_bounds(predicted_low, np.array([101.0, np.nan, 102.0]))
    assert np.isnan(lows[1]) and np.isnan(highs[1])
    assert lows[2] == pytest.approx(99.5)  # the highest low stays where it is
    # 98.505 is already 1.0 % below 99.5 (more than the 0.25 % needed): not pushed
    assert lows[0] == pytest.approx(98.505) and highs[0] == pytest.approx(101.505)


def test_levels_count_bounds_on_each_side_of_the_price() -> None:
    lows = np.array([99.5, 99.25, 98.76, np.nan, 97.0, 95.8, 94.4])
    highs = np.array([100.5, 100.8, 101.3, np.nan, 102.0, 103.0, 104.0])
    assert levels(98.5, lows, highs) == (3, 0)  # 99.5, 99.25 and 98.76 are above 98.5
    assert levels(101.0, lows, highs) == (0, 2)
    assert levels(100.0, lows, highs) == (0, 0)


# --------------------------------------------------------------------------- walk forward


def candles_from(closes: list[float], *, times: list[int] | None = None) -> Candles:
    c = np.array(closes, dtype=float)
    o = np.concatenate([[c[0]], c[:-1]])
    t = np.array(times if times is not None else [i * HOUR for i in range(len(c))], dtype=np.int64)
    return Candles(t, o, np.maximum(o, c) * 1.01, np.minimum(o, c) * 0.99, c, np.ones(len(c)))


def test_moves_and_patterns_by_hand() -> None:
    candles = candles_from([100.0, 101.0, 99.99])
    moves = candle_moves(candles, HOUR)
    assert moves.body_pct.tolist() == pytest.approx([0.0, 1.0, -1.0])
    # row 2 vs previous close 101: close -1 %, high 101*1.01 -> +1 %, low 99.99*0.99 -> -1.99 %
    assert moves.outcome_pct[2] == pytest.approx([-1.0, 1.0, -1.99])
    patterns, usable = pattern_windows(moves, 2)
    assert usable.tolist() == [False, False, True]
    assert patterns[2].tolist() == pytest.approx([0.0, 1.0])


def test_an_outage_gap_makes_the_pattern_unusable() -> None:
    times = [0, HOUR, 2 * HOUR, 5 * HOUR, 6 * HOUR, 7 * HOUR]
    moves = candle_moves(candles_from([100, 101, 102, 103, 104, 105], times=times), HOUR)
    _, usable = pattern_windows(moves, 1)
    assert usable.tolist() == [False, True, True, False, True, True]


def test_walk_forward_predictions_never_see_their_own_candle() -> None:
    rng = np.random.default_rng(3)
    closes = list(100 * np.cumprod(1 + rng.normal(0, 0.01, 400)))
    honest = candles_from(closes)
    poisoned_close = closes[:250] + [c * 1000 for c in closes[250:]]
    poisoned = candles_from(poisoned_close)
    a = walk_forward(Memory(PatternConfig()), honest, HOUR)
    b = walk_forward(Memory(PatternConfig()), poisoned, HOUR)
    # Everything predicted up to and including row 250 was made before row 250 was seen.
    np.testing.assert_array_equal(a.predicted[:251], b.predicted[:251])
    assert not np.allclose(np.nan_to_num(a.predicted[251:]), np.nan_to_num(b.predicted[251:]))
    assert a.stepped.sum() == 399 and np.isfinite(a.predicted[1:, 0]).mean() > 0.5


def test_memory_arrays_are_validated() -> None:
    with pytest.raises(ValueError, match=r"expected \(n, 2\)"):
        Memory(PatternConfig(pattern_length=2), MemoryArrays(np.zeros((1, 1)), np.zeros((1, 3)),
               np.zeros((1, 3)), 1.0))  # fmt: skip
    with pytest.raises(ValueError, match="shape"):
        Memory(PatternConfig(), MemoryArrays(np.zeros((2, 1)), np.zeros((1, 3)), np.zeros((2, 3)),
               1.0))  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"pattern_length": 9}, "1..8"),
        ({"target_matches": 0}, "at least 1"),
        ({"distance": "cosine"}, "relative"),
    ],
)
def test_config_is_validated(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        PatternConfig(**kwargs)  # type: ignore[arg-type]
