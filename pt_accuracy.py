"""The predictor's honest scoreboard: walk-forward accuracy against two naive baselines (pure).

Every figure comes from a :class:`pt_patterns.WalkResult`, so every prediction scored was made
before its candle was seen. A prediction is scored on what the thinker trades on:

- **coverage**: the share of steps whose actual high stayed at or under the high bound, and
  whose actual low stayed at or over the low bound, with the bounds where the thinker puts
  them (predicted high + ``bound_pct`` %, predicted low − ``bound_pct`` %, in price terms);
- **MAE**: the mean absolute error of the predicted high and low moves, in % points of the
  previous close.

A model that cannot beat "the last candle again" or "the average of the last 20 candles" has
learnt nothing, so both baselines are scored the same way on **the same steps**: the steps
where the model made a prediction and both baselines exist (the first 20 candles have no
trailing mean). The spacing of bounds across timeframes (``spaced_bounds``) only ever widens
them, so coverage here is a lower bound of what the spaced lines achieve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pt_patterns import HIGH, LOW, WalkResult
from pt_types import FloatArray

TRAILING = 20  # candles in the trailing-mean baseline
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Score:
    """One predictor's figures on a set of steps (NaN when there were no steps)."""

    mae_high: float
    mae_low: float
    coverage_high: float
    coverage_low: float


@dataclass(frozen=True)
class TimeframeAccuracy:
    """A timeframe's walk-forward scoreboard: the model and both baselines on the same steps."""

    steps: int  # candles the walk learned from
    active: int  # of those, how many had a prediction
    evaluated: int  # active steps where both baselines exist too: the scored set
    model: Score
    previous: Score  # "this candle moves like the previous one"
    trailing: Score  # "this candle moves like the mean of the last 20"

    @property
    def active_share(self) -> float:
        return self.active / self.steps if self.steps else math.nan

    @property
    def beats_baselines(self) -> bool:
        """Lower MAE than both baselines, for the high and for the low alike."""
        m, p, t = self.model, self.previous, self.trailing
        return bool(
            m.mae_high < min(p.mae_high, t.mae_high) and m.mae_low < min(p.mae_low, t.mae_low)
        )

    def as_dict(self) -> dict[str, float]:
        """Flat figures for ``meta.json``; NaN (nothing scored) is left out, JSON has no NaN."""
        out: dict[str, float] = {
            "steps": float(self.steps),
            "active": float(self.active),
            "evaluated": float(self.evaluated),
            "active_share": self.active_share,
        }
        for prefix, score in (
            ("", self.model),
            ("previous_", self.previous),
            ("trailing_", self.trailing),
        ):
            out[f"{prefix}mae_high"] = score.mae_high
            out[f"{prefix}mae_low"] = score.mae_low
            out[f"{prefix}coverage_high"] = score.coverage_high
            out[f"{prefix}coverage_low"] = score.coverage_low
        return {k: v for k, v in out.items() if math.isfinite(v)}


def _mean(values: FloatArray) -> float:
    return float(values.mean()) if len(values) else math.nan


def score(
    pred_high: FloatArray,
    pred_low: FloatArray,
    actual_high: FloatArray,
    actual_low: FloatArray,
    bound_pct: float,
) -> Score:
    """MAE and bound coverage of predicted high/low moves (all in % of the previous close).

    In prices the high bound is ``prev_close·(1 + pred_high/100)·(1 + bound/100)``; dividing by
    ``prev_close`` (always > 0) gives the same test on the % moves, so no prices are needed.
    """
    high_bound = ((1 + pred_high / 100) * (1 + bound_pct / 100) - 1) * 100
    low_bound = ((1 + pred_low / 100) * (1 - bound_pct / 100) - 1) * 100
    return Score(
        mae_high=_mean(np.abs(pred_high - actual_high)),
        mae_low=_mean(np.abs(pred_low - actual_low)),
        coverage_high=_mean((actual_high <= high_bound).astype(float)),
        coverage_low=_mean((actual_low >= low_bound).astype(float)),
    )


def previous_moves(actual: FloatArray) -> FloatArray:
    """Baseline (a): row t is predicted to move like row t − 1 did (NaN for row 0)."""
    out = np.full_like(actual, np.nan)
    out[1:] = actual[:-1]
    return out


def trailing_mean(actual: FloatArray, window: int = TRAILING) -> FloatArray:
    """Baseline (b): row t is predicted to move like the mean of rows t − window … t − 1.

    NaN unless all ``window`` earlier rows have a move (row 0 never has one). Cumulative sums
    keep it one pass over the rows, with the NaNs counted rather than summed.
    """
    n = len(actual)
    out = np.full_like(actual, np.nan)
    if n <= window:
        return out
    finite = np.isfinite(actual)
    sums = np.concatenate(
        [np.zeros((1, actual.shape[1])), np.cumsum(np.where(finite, actual, 0), 0)]
    )
    counts = np.concatenate([np.zeros((1, actual.shape[1])), np.cumsum(finite, 0)])
    window_sum = sums[window:n] - sums[: n - window]  # rows t - window .. t - 1 for t = window..
    window_count = counts[window:n] - counts[: n - window]
    out[window:] = np.where(window_count == window, window_sum / window, np.nan)
    return out


def _finite_rows(values: FloatArray) -> Mask:
    return np.isfinite(values[:, HIGH]) & np.isfinite(values[:, LOW])


def score_walk(walk: WalkResult, bound_pct: float) -> TimeframeAccuracy:
    """The scoreboard of one timeframe's walk-forward."""
    actual = walk.actual
    previous = previous_moves(actual)
    trailing = trailing_mean(actual)
    active = walk.stepped & _finite_rows(walk.predicted)
    scored = active & _finite_rows(previous) & _finite_rows(trailing) & _finite_rows(actual)

    def on_scored(predicted: FloatArray) -> Score:
        return score(
            predicted[scored, HIGH],
            predicted[scored, LOW],
            actual[scored, HIGH],
            actual[scored, LOW],
            bound_pct,
        )

    return TimeframeAccuracy(
        steps=int(walk.stepped.sum()),
        active=int(active.sum()),
        evaluated=int(scored.sum()),
        model=on_scored(walk.predicted),
        previous=on_scored(previous),
        trailing=on_scored(trailing),
    )


# --------------------------------------------------------------------------- the printed table


@dataclass(frozen=True)
class ReportRow:
    timeframe: str
    memories: int
    accuracy: TimeframeAccuracy


_HEADER = (
    "tf",
    "predictor",
    "steps",
    "active",
    "memories",
    "cover high",
    "cover low",
    "MAE high",
    "MAE low",
)
_RIGHT = frozenset(range(2, len(_HEADER)))


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 100:.1f} %"


def _num(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def _cells(row: ReportRow) -> list[list[str]]:
    acc = row.accuracy
    first = [row.timeframe, "model", f"{acc.steps:,}", _pct(acc.active_share), f"{row.memories:,}"]
    named = (
        (first, acc.model),
        (["", "previous candle", "", "", ""], acc.previous),
        (["", f"mean of last {TRAILING}", "", "", ""], acc.trailing),
    )
    return [
        [*lead, _pct(s.coverage_high), _pct(s.coverage_low), _num(s.mae_high), _num(s.mae_low)]
        for lead, s in named
    ]


def _verdict(row: ReportRow) -> str:
    acc, m = row.accuracy, row.accuracy.model
    if acc.evaluated == 0:
        return f"{row.timeframe}: no prediction could be scored (no active steps)"
    word = "beats" if acc.beats_baselines else "does NOT beat"
    return (
        f"{row.timeframe}: the model {word} both baselines on MAE "
        f"(high {m.mae_high:.3f} vs {acc.previous.mae_high:.3f} / {acc.trailing.mae_high:.3f}, "
        f"low {m.mae_low:.3f} vs {acc.previous.mae_low:.3f} / {acc.trailing.mae_low:.3f}; "
        f"{acc.evaluated:,} steps scored)"
    )


def format_report(rows: Sequence[ReportRow]) -> str:
    """An aligned plain-text table (three lines per timeframe) and one verdict per timeframe."""
    table = [list(_HEADER)] + [cells for row in rows for cells in _cells(row)]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEADER))]

    def fmt(line: list[str]) -> str:
        parts = [
            c.rjust(w) if i in _RIGHT else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    out = [fmt(table[0]), "-" * len(fmt(table[0]))]
    out += [fmt(line) for line in table[1:]]
    out += ["", *(_verdict(row) for row in rows)]
    return "\n".join(out)
