"""The accuracy scoreboard against hand-computed values: coverage, MAE, baselines, the table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pt_accuracy import (
    TRAILING,
    ReportRow,
    Score,
    TimeframeAccuracy,
    format_report,
    previous_moves,
    score,
    score_walk,
    trailing_mean,
)
from pt_patterns import WalkResult

NAN = math.nan


def arr(*values: float) -> np.ndarray:
    return np.array(values, dtype=float)


def test_mae_and_coverage_by_hand() -> None:
    # high bounds: (1.01 * 1.005 - 1) * 100 = 1.505 and (1.02 * 1.005 - 1) * 100 = 2.51
    # low bounds: (0.99 * 0.995 - 1) * 100 = -1.495 and (0.995 * 0.995 - 1) * 100 = -0.9975
    s = score(arr(1.0, 2.0), arr(-1.0, -0.5), arr(1.2, 2.6), arr(-1.4, -1.2), 0.5)
    assert s.mae_high == pytest.approx((0.2 + 0.6) / 2)
    assert s.mae_low == pytest.approx((0.4 + 0.7) / 2)
    assert s.coverage_high == 0.5  # 1.2 <= 1.505 covered, 2.6 > 2.51 not
    assert s.coverage_low == 0.5  # -1.4 >= -1.495 covered, -1.2 < -0.9975 not


def test_coverage_is_the_price_rule() -> None:
    """prev close 100, predicted high +1 %: the bound is 100 * 1.01 * 1.005 = 101.505."""
    prev = 100.0
    highs = arr(101.50, 101.51)
    lows = arr(98.51, 98.49)  # low bound 100 * 0.99 * 0.995 = 98.505
    s = score(
        arr(1.0, 1.0), arr(-1.0, -1.0), (highs - prev) / prev * 100, (lows - prev) / prev * 100, 0.5
    )
    assert s.coverage_high == 0.5 and s.coverage_low == 0.5
    wide = score(
        arr(1.0, 1.0), arr(-1.0, -1.0), (highs - prev) / prev * 100, (lows - prev) / prev * 100, 0.6
    )
    assert wide.coverage_high == 1.0 and wide.coverage_low == 1.0


def test_nothing_to_score_gives_nan_not_an_error() -> None:
    s = score(arr(), arr(), arr(), arr(), 0.5)
    assert all(math.isnan(v) for v in (s.mae_high, s.mae_low, s.coverage_high, s.coverage_low))


def test_previous_moves_shift_by_one_row() -> None:
    actual = np.array([[NAN, NAN, NAN], [1.0, 2.0, -1.0], [3.0, 4.0, -2.0]])
    out = previous_moves(actual)
    assert np.isnan(out[:2]).all()  # row 1 repeats row 0, which has no move
    np.testing.assert_array_equal(out[1:], actual[:-1])


def test_trailing_mean_needs_a_full_window_of_moves() -> None:
    actual = np.array([[NAN] * 3, [1.0, 1.0, -1.0], [3.0, 5.0, -3.0], [5.0, 9.0, -5.0]])
    out = trailing_mean(actual, window=2)
    assert np.isnan(out[:3]).all()  # row 2's window holds row 0, which has no move
    np.testing.assert_allclose(out[3], [2.0, 3.0, -2.0])  # mean of rows 1 and 2
    assert np.isnan(trailing_mean(actual[:2], window=2)).all()


def walk(n: int, active_rows: list[int], predicted_high: float = 1.0) -> WalkResult:
    """Every candle moved +1 % high / -1 % low; the model predicts ``predicted_high``/-1."""
    actual = np.tile([0.0, 1.0, -1.0], (n, 1))
    actual[0] = NAN
    predicted = np.full((n, 3), NAN)
    predicted[active_rows] = [0.0, predicted_high, -1.0]
    stepped = np.zeros(n, dtype=bool)
    stepped[1:] = True
    return WalkResult(predicted, actual, stepped)


def test_score_walk_scores_model_and_baselines_on_the_same_steps() -> None:
    n = TRAILING + 11
    acc = score_walk(walk(n, [5, *range(TRAILING + 1, n)], predicted_high=1.5), 0.5)
    assert acc.steps == n - 1
    assert acc.active == 11  # row 5 plus the last 10
    assert acc.evaluated == 10  # row 5 has no trailing mean yet
    assert acc.active_share == pytest.approx(11 / (n - 1))
    assert acc.model.mae_high == pytest.approx(0.5) and acc.model.mae_low == 0.0
    assert acc.previous.mae_high == 0.0 and acc.trailing.mae_high == 0.0
    assert acc.previous.coverage_high == 1.0 and acc.model.coverage_low == 1.0
    assert not acc.beats_baselines


def test_beats_baselines_needs_lower_mae_on_both_sides() -> None:
    def acc(model: Score) -> TimeframeAccuracy:
        base = Score(1.0, 1.0, 0.9, 0.9)
        return TimeframeAccuracy(10, 10, 10, model, base, Score(0.8, 1.2, 0.9, 0.9))

    assert acc(Score(0.7, 0.9, 0.9, 0.9)).beats_baselines
    assert not acc(Score(0.9, 0.9, 0.9, 0.9)).beats_baselines  # 0.9 > trailing's 0.8
    assert not acc(Score(0.7, 1.1, 0.9, 0.9)).beats_baselines  # 1.1 > previous's 1.0


def test_meta_figures_leave_out_what_could_not_be_scored() -> None:
    empty = score_walk(walk(5, []), 0.5)
    figures = empty.as_dict()
    assert figures == {"steps": 4.0, "active": 0.0, "evaluated": 0.0, "active_share": 0.0}
    full = score_walk(walk(30, list(range(1, 30))), 0.5).as_dict()
    assert full["mae_high"] == 0.0 and full["trailing_coverage_low"] == 1.0
    assert all(math.isfinite(v) for v in full.values())


def test_report_table_is_aligned_with_three_lines_per_timeframe() -> None:
    good = score_walk(walk(40, list(range(1, 40)), predicted_high=1.0), 0.5)
    rows = [ReportRow("1h", 12, good), ReportRow("1w", 0, score_walk(walk(3, []), 0.5))]
    text = format_report(rows)
    lines = text.splitlines()
    header = lines[0]
    assert header.split()[:2] == ["tf", "predictor"] and "MAE high" in header
    assert lines[1] == "-" * len(header)
    assert lines[2].split()[:2] == ["1h", "model"]
    assert "previous candle" in lines[3] and f"mean of last {TRAILING}" in lines[4]
    assert lines[5].split()[:2] == ["1w", "model"]
    # numbers are right-aligned: every "MAE low" cell ends where the header does
    assert all(len(line) == len(header) for line in lines[2:5])
    assert "1h: the model does NOT beat both baselines" in text  # equal MAE is not better
    assert "1w: no prediction could be scored" in text
