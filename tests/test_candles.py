"""pt_candles on small hand-built series whose expected results are worked out by hand."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from pt_candles import candle_problems, check_candles, drop_forming, find_gaps, resample
from pt_types import DAY, HOUR, WEEK, Candles, Gap, Timeframe

# 2024-01-01 00:00 UTC, a Monday.
MON = 1_704_067_200


def make(rows: Sequence[Sequence[float]], *, forming: bool = False) -> Candles:
    """Candles from ``(time, open, high, low, close, volume)`` rows."""
    a = np.array(rows, dtype=np.float64).reshape(-1, 6)
    o, h, lo, c, v = (a[:, i].copy() for i in range(1, 6))
    return Candles(a[:, 0].astype(np.int64), o, h, lo, c, v, forming=forming)


def hourly(start: int, hours: list[int], *, forming: bool = False) -> Candles:
    """Hour ``h`` of ``hours`` gets open h, high h + 0.5, low h - 0.25, close h + 0.25, volume 1.

    Prices are offset by 100 so they stay positive; every value is distinct and easy to follow.
    """
    rows = [
        (start + h * HOUR, 100 + h, 100.5 + h, 99.75 + h, 100.25 + h, 1.0 + h / 10) for h in hours
    ]
    return make(rows, forming=forming)


def rows_of(c: Candles) -> list[tuple[float, ...]]:
    return [
        (int(t), float(o), float(h), float(lo), float(cl), float(v))
        for t, o, h, lo, cl, v in zip(c.time, c.open, c.high, c.low, c.close, c.volume, strict=True)
    ]


# ---------------------------------------------------------------- find_gaps


def test_find_gaps_reports_each_run_of_missing_candles() -> None:
    c = hourly(MON, [0, 1, 3, 4, 8, 9])
    assert find_gaps(c, HOUR) == (Gap(MON + 2 * HOUR, 1), Gap(MON + 5 * HOUR, 3))


def test_find_gaps_of_a_complete_short_or_empty_series_is_empty() -> None:
    assert find_gaps(hourly(MON, list(range(30))), HOUR) == ()
    assert find_gaps(hourly(MON, [5]), HOUR) == ()
    assert find_gaps(Candles.empty(), HOUR) == ()


def test_find_gaps_in_daily_candles() -> None:
    c = make([(MON + d * DAY, 1, 1, 1, 1, 0) for d in (0, 1, 5)])
    assert find_gaps(c, DAY) == (Gap(MON + 2 * DAY, 3),)


def test_find_gaps_rejects_a_non_positive_step() -> None:
    with pytest.raises(ValueError, match="positive"):
        find_gaps(hourly(MON, [0, 1]), 0)


# ------------------------------------------------------------- check_candles


def test_check_candles_accepts_a_sound_table_and_an_empty_one() -> None:
    assert check_candles(hourly(MON, [0, 1, 2, 5]), HOUR) == []
    assert check_candles(Candles.empty(), HOUR) == []
    # equal prices and zero volume are legal (a candle without trades)
    assert check_candles(make([(MON, 5, 5, 5, 5, 0)]), HOUR) == []


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ((MON + 2 * HOUR, 10, 11, 9, 10, 1), "duplicate time"),
        ((MON + HOUR, 10, 11, 9, 10, 1), "time goes backwards"),
        ((MON + 3 * HOUR + 60, 10, 11, 9, 10, 1), "not aligned to 3600 s"),
        ((MON * 1000, 10, 11, 9, 10, 1), "milliseconds?"),
        ((MON + 3 * HOUR, 10, 9.5, 9, 10, 1), "high below max(open, close, low)"),
        ((MON + 3 * HOUR, 10, 11, 9, 12, 1), "high below max(open, close, low)"),
        ((MON + 3 * HOUR, 10, 11, 10.5, 10.7, 1), "low above min(open, close)"),
        ((MON + 3 * HOUR, 0, 11, 0, 10, 1), "price is zero or negative"),
        ((MON + 3 * HOUR, 10, math.nan, 9, 10, 1), "price is not a finite number"),
        ((MON + 3 * HOUR, 10, math.inf, 9, 10, 1), "price is not a finite number"),
        ((MON + 3 * HOUR, 10, 11, 9, 10, -0.5), "volume is negative"),
        ((MON + 3 * HOUR, 10, 11, 9, 10, math.nan), "volume is not a finite number"),
    ],
)
def test_check_candles_names_the_problem_and_the_row(row: tuple[float, ...], expected: str) -> None:
    good = [(MON + h * HOUR, 10, 11, 9, 10, 1) for h in range(3)]
    problems = check_candles(make([*good, row]), HOUR)
    assert len(problems) >= 1
    assert any(expected in p and p.startswith("row 3 (") for p in problems), problems


def test_check_candles_reports_each_kind_once_with_a_count() -> None:
    rows = [(MON + h * HOUR, 10, 9, 8, 10, 1) for h in range(4)]  # every high below open
    problems = candle_problems(make(rows), HOUR)
    assert [(p.what, p.row, p.count) for p in problems] == [
        ("high below max(open, close, low)", 0, 4)
    ]
    assert check_candles(make(rows), HOUR) == [
        "row 0 (2024-01-01 00:00 UTC): high below max(open, close, low) (and 3 more rows)"
    ]


def test_weekly_candles_must_open_on_monday() -> None:
    monday = make([(MON, 1, 1, 1, 1, 0), (MON + WEEK, 1, 1, 1, 1, 0)])
    assert check_candles(monday, WEEK) == []
    thursday = make([(MON + 3 * DAY, 1, 1, 1, 1, 0)])  # aligned to the epoch, not to Monday
    assert thursday.time[0] % WEEK == 0
    assert "not aligned" in check_candles(thursday, WEEK)[0]


# ------------------------------------------------------------------ resample


def test_resample_4h_with_a_gap_inside_a_bucket_and_a_whole_missing_bucket() -> None:
    # hours 0..3 complete, 4..7 all missing (no candle invented), 8..11 missing hour 9
    c = hourly(MON, [0, 1, 2, 3, 8, 10, 11])
    out = resample(c, Timeframe.H4)
    assert rows_of(out) == [
        (MON, 100, 103.5, 99.75, 103.25, 4.6),
        (MON + 8 * HOUR, 108, 111.5, 107.75, 111.25, 5.9),
    ]
    assert not out.forming  # the last source hour (11:00) ends where the bucket does


def test_resample_takes_first_open_last_close_and_extremes() -> None:
    rows = [
        (MON, 10, 12, 9, 11, 1),
        (MON + HOUR, 11, 15, 10, 14, 2),
        (MON + 2 * HOUR, 14, 14.5, 7, 8, 3),
        (MON + 3 * HOUR, 8, 9, 7.5, 8.5, 4),
    ]
    out = resample(make(rows), Timeframe.H2)
    assert rows_of(out) == [(MON, 10, 15, 9, 14, 3), (MON + 2 * HOUR, 14, 14.5, 7, 8.5, 7)]


def test_resample_rounds_volume_to_eight_decimals() -> None:
    rows = [(MON, 1, 1, 1, 1, 0.1), (MON + HOUR, 1, 1, 1, 1, 0.2)]
    assert 0.1 + 0.2 != 0.3
    assert resample(make(rows), Timeframe.H2).volume.tolist() == [0.3]


def test_daily_buckets_follow_utc_midnight() -> None:
    c = hourly(MON - 2 * HOUR, list(range(6)))  # Sunday 22:00 .. Monday 03:00
    out = resample(c, Timeframe.D1)
    assert out.time.tolist() == [MON - DAY, MON]
    assert out.open.tolist() == [100, 102]
    assert out.close.tolist() == [101.25, 105.25]


def test_weekly_buckets_start_on_monday() -> None:
    sunday_2200 = MON + 6 * DAY + 22 * HOUR
    c = hourly(sunday_2200, list(range(5)))  # Sunday 22:00 .. Monday 02:00
    out = resample(c, Timeframe.W1)
    assert out.time.tolist() == [MON, MON + WEEK]
    assert out.open.tolist() == [100, 102]
    assert out.high.tolist() == [101.5, 104.5]
    assert out.forming


@pytest.mark.parametrize(("tf", "opens"), [(Timeframe.H8, [0, 8, 16]), (Timeframe.H12, [0, 12])])
def test_8h_and_12h_buckets_align_to_utc_midnight(tf: Timeframe, opens: list[int]) -> None:
    c = hourly(MON, list(range(5, 20)))  # 05:00 .. 19:00
    out = resample(c, tf)
    assert out.time.tolist() == [MON + h * HOUR for h in opens]
    assert out.open[0] == 105  # first hour present, not a made-up 00:00
    assert out.close[-1] == 119.25


def test_last_bucket_forming_without_now_follows_the_last_source_candle() -> None:
    assert resample(hourly(MON, list(range(23))), Timeframe.D1).forming  # ends 23:00
    assert not resample(hourly(MON, list(range(24))), Timeframe.D1).forming  # ends 24:00
    # a missing last hour inside the day keeps the day forming without a clock
    assert resample(hourly(MON, [0, 1, 22]), Timeframe.D1).forming


def test_last_bucket_forming_with_now_follows_the_clock() -> None:
    c = hourly(MON, list(range(23)))
    assert resample(c, Timeframe.D1, now=MON + DAY - 1).forming
    assert not resample(c, Timeframe.D1, now=MON + DAY).forming  # day over, last hour lost
    full = hourly(MON, list(range(24)))
    assert resample(full, Timeframe.D1, now=MON + DAY).forming is False


def test_a_forming_source_candle_makes_its_bucket_forming() -> None:
    c = hourly(MON, list(range(24)), forming=True)  # 23:00 still being built
    assert resample(c, Timeframe.D1).forming
    assert resample(c, Timeframe.D1, now=MON + DAY).forming


def test_only_the_last_bucket_can_be_forming() -> None:
    out = resample(hourly(MON, list(range(30))), Timeframe.D1, now=MON + 30 * HOUR)
    assert len(out) == 2
    assert out.forming
    closed = drop_forming(out)
    assert closed.time.tolist() == [MON]
    assert not closed.forming


def test_resample_to_the_same_step_returns_the_input() -> None:
    c = hourly(MON, [0, 1, 2])
    assert resample(c, Timeframe.H1) is c
    d = make([(MON, 1, 1, 1, 1, 1), (MON + DAY, 1, 1, 1, 1, 1)])
    assert resample(d, Timeframe.D1) is d


def test_resample_daily_into_weekly() -> None:
    d = make([(MON + i * DAY, 10 + i, 20 + i, 5 + i, 11 + i, 1) for i in range(9)])
    out = resample(d, Timeframe.W1)
    assert rows_of(out) == [(MON, 10, 26, 5, 17, 7), (MON + WEEK, 17, 28, 12, 19, 2)]
    assert out.forming


def test_resample_single_candle_needs_or_assumes_a_base_step() -> None:
    one = hourly(MON, [23])
    assert not resample(one, Timeframe.D1).forming  # taken as hourly: ends at midnight
    assert resample(one, Timeframe.D1, base_step=1800).forming  # a 30 min candle ends earlier


def test_resample_rejects_impossible_requests() -> None:
    daily = make([(MON, 1, 1, 1, 1, 1), (MON + DAY, 1, 1, 1, 1, 1)])
    with pytest.raises(ValueError, match="cannot resample"):
        resample(daily, Timeframe.H4)
    shifted = make([(MON + 1800, 1, 1, 1, 1, 1), (MON + 5400, 1, 1, 1, 1, 1)])
    with pytest.raises(ValueError, match="not aligned"):
        resample(shifted, Timeframe.H2, base_step=HOUR)
    dup = make([(MON, 1, 1, 1, 1, 1), (MON, 1, 1, 1, 1, 1)])
    with pytest.raises(ValueError, match="ascending"):
        resample(dup, Timeframe.H4)


def test_resample_of_nothing_is_nothing() -> None:
    assert len(resample(Candles.empty(), Timeframe.D1, base_step=HOUR)) == 0


def test_drop_forming_leaves_closed_tables_alone() -> None:
    c = hourly(MON, [0, 1])
    assert drop_forming(c) is c
    f = hourly(MON, [0, 1], forming=True)
    assert drop_forming(f).time.tolist() == [MON]
