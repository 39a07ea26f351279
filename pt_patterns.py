"""The kNN pattern predictor (pure: numpy and pt_types only).

For each coin and timeframe a :class:`Memory` holds patterns seen in the past and what followed
them. A *pattern* is the close-vs-open move (in %) of the last ``pattern_length`` closed candles;
its *outcome* is the next candle's close, high and low, each in % of the last close. Every
memory carries three reliability weights (close, high, low) that start at 1.0.

One step of the online procedure, used identically by the trainer (over history) and the thinker
(live, each time a candle closes):

1. **Match**: every memory within ``threshold`` of the current pattern. The threshold adapts so
   that about ``target_matches`` memories match (the original's rule: −0.01 when there were more,
   +0.01 otherwise; ±0.001 below 0.1).
2. **Predict** the forming candle: weighted mean Σw·o / Σw of the matched outcomes. No match (or
   no weight left) means the timeframe is inactive.
3. **Learn** once the candle has closed: the matched memories' weights move by ±0.25 toward what
   happened (the original's rules, with its ×100 scale fault fixed, a tolerance band that works
   for negative moves too, and every weight kept in [0, 2]); a pattern that matched nothing
   becomes a new memory.

Everything per step is a handful of numpy operations over the memory arrays; there is no loop
over memories in Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from pt_types import Candles, FloatArray

Distance = Literal["relative", "absolute"]
CLOSE, HIGH, LOW = 0, 1, 2
_INITIAL_CAPACITY = 256
# The original's placeholders for an inactive timeframe are replaced by NaN: no bound at all.
GAP_STEP_PCT = 0.25  # successive bound lines are at least 0.25, 0.50, ... 1.50 % apart
_PUSH_DOWN, _PUSH_UP = 0.9995, 1.0005


@dataclass(frozen=True)
class PatternConfig:
    """Predictor parameters (the defaults are the original's, bar the distance; see README)."""

    pattern_length: int = 1
    target_matches: int = 20
    distance: Distance = "relative"
    start_threshold: float = 1.0
    bound_pct: float = 0.5
    weight_step: float = 0.25
    weight_max: float = 2.0
    tolerance: float = 0.1  # a weighted outcome within 10 % of what happened is left alone

    def __post_init__(self) -> None:
        if not 1 <= self.pattern_length <= 8:
            raise ValueError(f"pattern_length must be 1..8, got {self.pattern_length}")
        if self.target_matches < 1:
            raise ValueError(f"target_matches must be at least 1, got {self.target_matches}")
        if self.distance not in ("absolute", "relative"):
            raise ValueError(f"distance must be 'absolute' or 'relative', got {self.distance!r}")


@dataclass(frozen=True)
class Prediction:
    """The forming candle's predicted moves, in % of the last closed candle's close."""

    close_pct: float
    high_pct: float
    low_pct: float
    matches: int


@dataclass(frozen=True)
class MemoryArrays:
    """A memory's contents as plain arrays (what is saved and loaded)."""

    patterns: FloatArray  # (n, pattern_length)
    outcomes: FloatArray  # (n, 3): close, high, low moves in %
    weights: FloatArray  # (n, 3)
    threshold: float


class Memory:
    """One coin-timeframe pattern memory; grows in place (amortised doubling)."""

    def __init__(self, config: PatternConfig, arrays: MemoryArrays | None = None) -> None:
        self.config = config
        width = config.pattern_length
        if arrays is None:
            arrays = MemoryArrays(
                np.empty((0, width)), np.empty((0, 3)), np.empty((0, 3)), config.start_threshold
            )
        if arrays.patterns.ndim != 2 or arrays.patterns.shape[1] != width:
            raise ValueError(
                f"memory patterns have shape {arrays.patterns.shape}, expected (n, {width})"
            )
        n = len(arrays.patterns)
        if arrays.outcomes.shape != (n, 3) or arrays.weights.shape != (n, 3):
            raise ValueError("memory outcomes and weights must both have shape (n, 3)")
        capacity = max(_INITIAL_CAPACITY, 2 * n)
        self._patterns = np.zeros((capacity, width))
        self._outcomes = np.zeros((capacity, 3))
        self._weights = np.zeros((capacity, 3))
        self._patterns[:n], self._outcomes[:n], self._weights[:n] = (
            arrays.patterns,
            arrays.outcomes,
            arrays.weights,
        )
        self.n = n
        self.threshold = float(arrays.threshold)

    def __len__(self) -> int:
        return self.n

    def arrays(self) -> MemoryArrays:
        """A copy of the contents, safe to save while learning goes on."""
        n = self.n
        return MemoryArrays(
            self._patterns[:n].copy(),
            self._outcomes[:n].copy(),
            self._weights[:n].copy(),
            self.threshold,
        )

    # ------------------------------------------------------------------ one step

    def match(self, pattern: FloatArray) -> npt.NDArray[np.intp]:
        """Indices of the memories within the threshold of ``pattern``."""
        stored = self._patterns[: self.n]
        if self.config.distance == "absolute":
            per_element = np.abs(stored - pattern)
        else:
            per_element = relative_distance(stored, pattern)
        if self.config.pattern_length == 1:
            return np.flatnonzero(per_element[:, 0] <= self.threshold)
        limit = self.threshold * self.config.pattern_length  # mean <= t  <=>  sum <= t * L
        return np.flatnonzero(per_element.sum(axis=1) <= limit)

    def _gather(self, matched: npt.NDArray[np.intp]) -> tuple[FloatArray, FloatArray]:
        return self._weights[matched], self._outcomes[matched]

    @staticmethod
    def _weighted_mean(w: FloatArray, o: FloatArray, matches: int) -> Prediction | None:
        total = w.sum(axis=0)
        if not matches or min(total.tolist()) <= 0:
            return None
        close, high, low = ((w * o).sum(axis=0) / total).tolist()
        return Prediction(close, high, low, matches)

    def predict_from(self, matched: npt.NDArray[np.intp]) -> Prediction | None:
        """Weighted mean of the matched outcomes; None when nothing (or no weight) matched."""
        return self._weighted_mean(*self._gather(matched), len(matched))

    def predict(self, pattern: FloatArray) -> Prediction | None:
        return self.predict_from(self.match(pattern))

    def learn(self, pattern: FloatArray, matched: npt.NDArray[np.intp], actual: FloatArray) -> None:
        """What happened (close, high, low %) updates the matched memories, or becomes one."""
        if len(matched):
            self._reweigh(matched, *self._gather(matched), actual)
        else:
            self._append(pattern, actual)
        self._adapt_threshold(len(matched))

    def _reweigh(
        self, matched: npt.NDArray[np.intp], w: FloatArray, o: FloatArray, actual: FloatArray
    ) -> None:
        cfg = self.config
        v = w * o
        # How far what happened went beyond the weighted outcome, in the outcome's own
        # direction: positive means "moved further than this memory said" -> more weight.
        beyond = (actual - v) * np.copysign(1.0, v)
        band = np.abs(v) * cfg.tolerance
        step = (beyond > band).astype(float) - (beyond < -band)
        w += step * cfg.weight_step
        np.minimum(np.maximum(w, 0.0, out=w), cfg.weight_max, out=w)
        self._weights[matched] = w

    def step(self, pattern: FloatArray, actual: FloatArray) -> Prediction | None:
        """Predict for a candle, then learn from how it closed (the walk-forward's unit)."""
        matched = self.match(pattern)
        w, o = self._gather(matched)
        prediction = self._weighted_mean(w, o, len(matched))
        if len(matched):
            self._reweigh(matched, w, o, actual)
        else:
            self._append(pattern, actual)
        self._adapt_threshold(len(matched))
        return prediction

    def _append(self, pattern: FloatArray, actual: FloatArray) -> None:
        if self.n == len(self._patterns):
            self._patterns = np.concatenate([self._patterns, np.zeros_like(self._patterns)])
            self._outcomes = np.concatenate([self._outcomes, np.zeros_like(self._outcomes)])
            self._weights = np.concatenate([self._weights, np.zeros_like(self._weights)])
        self._patterns[self.n] = pattern
        self._outcomes[self.n] = actual
        self._weights[self.n] = 1.0
        self.n += 1

    def _adapt_threshold(self, matches: int) -> None:
        """Narrow when more than the target matched, widen otherwise, but never widen while the
        memory is smaller than the target: no threshold could reach it, so widening would run
        away until everything matches and no new memory could ever be made (the original only
        escaped this by accident, resetting the threshold and losing memories between passes)."""
        target = self.config.target_matches
        delta = 0.001 if self.threshold < 0.1 else 0.01
        if matches > target:
            self.threshold = max(0.0, self.threshold - delta)
        elif self.n > target:
            self.threshold = min(100.0, self.threshold + delta)


def relative_distance(stored: FloatArray, pattern: FloatArray) -> FloatArray:
    """The original's distance per element: |a − b| / |(a + b) / 2| in %.

    Kept as written, quirks included, so the accuracy report can compare it fairly: a + b = 0
    counts as a perfect match (so +x and −x look identical) and values near zero explode.
    """
    half_sum = np.abs(stored + pattern)
    # where a + b == 0 the quotient stays 0: the original's "perfect match"
    d = np.divide(
        np.abs(stored - pattern), half_sum, out=np.zeros_like(half_sum), where=half_sum != 0
    )
    d *= 200  # |a - b| / |(a + b) / 2| * 100
    return d


# --------------------------------------------------------------------------- candles -> moves


@dataclass(frozen=True)
class Moves:
    """Per-candle inputs of the walk-forward, aligned with the candle rows."""

    body_pct: FloatArray  # close vs open of each candle: the pattern material
    outcome_pct: FloatArray  # (n, 3): close, high, low vs the previous close (row 0: NaN)
    follows: npt.NDArray[np.bool_]  # row t directly follows row t − 1 (no outage between)


def candle_moves(candles: Candles, step: int) -> Moves:
    """The % moves the predictor works with, for every row at once."""
    prev_close = np.concatenate([[np.nan], candles.close[:-1]])
    outcome = np.column_stack(
        [
            (candles.close - prev_close) / prev_close * 100,
            (candles.high - prev_close) / prev_close * 100,
            (candles.low - prev_close) / prev_close * 100,
        ]
    )
    follows = np.concatenate([[False], np.diff(candles.time) == step])
    body = (candles.close - candles.open) / candles.open * 100
    return Moves(body, outcome, follows)


def pattern_windows(moves: Moves, length: int) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Row t's pattern (the bodies of rows t − length … t − 1) and whether it is usable: every
    row from t − length to t follows its predecessor, so no outage hides inside or before it."""
    n = len(moves.body_pct)
    patterns = np.full((n, length), np.nan)
    usable = np.zeros(n, dtype=bool)
    if n <= length:
        return patterns, usable
    for k in range(length):  # a loop over the pattern's columns (at most 8), not over rows
        patterns[length:, k] = moves.body_pct[k : n - length + k]
    chain = np.ones(n - length, dtype=bool)
    for k in range(1, length + 1):
        chain &= moves.follows[k : n - length + k]
    usable[length:] = chain & np.isfinite(patterns[length:]).all(axis=1)
    return patterns, usable


@dataclass(frozen=True)
class WalkResult:
    """Every prediction a walk-forward made before seeing its candle (NaN when inactive)."""

    predicted: FloatArray  # (n, 3) close/high/low %, NaN where no prediction was made
    actual: FloatArray  # (n, 3)
    stepped: npt.NDArray[np.bool_]  # rows the walk learned from


def walk_forward(memory: Memory, candles: Candles, step: int, *, start: int = 0) -> WalkResult:
    """Run the online procedure over closed ``candles`` (from row ``start``), in order.

    Each row is predicted from the memory as it was before that row was seen, then learned
    from: exactly what the thinker does live, so every prediction here is out of sample.
    """
    moves = candle_moves(candles, step)
    patterns, usable = pattern_windows(moves, memory.config.pattern_length)
    n = len(candles)
    predicted = np.full((n, 3), np.nan)
    stepped = usable.copy()
    stepped[:start] = False
    for t in np.flatnonzero(stepped):
        prediction = memory.step(patterns[t], moves.outcome_pct[t])
        if prediction is not None:
            predicted[t] = (prediction.close_pct, prediction.high_pct, prediction.low_pct)
    return WalkResult(predicted, moves.outcome_pct, stepped)


# --------------------------------------------------------------------------- bounds and levels


def _push_apart(values: list[float], *, descending: bool) -> list[float]:
    """The original's spacing: walk the sorted lines and push each next one away from the one
    before until their relative gap is at least 0.25 % × (k + 1).

    Each push multiplies the line by 0.9995 (or 1.0005) and the test after each push is
    monotone, so the pushes that cannot pass yet (all but the last few, known from logarithms)
    are applied without testing: one multiplication at a time as before, so the result is the
    same to the last bit, at a fraction of the cost (this runs for every coin every hour)."""
    out = list(values)
    factor = _PUSH_DOWN if descending else _PUSH_UP
    for k in range(len(out) - 1):
        gap_min = GAP_STEP_PCT * (k + 1)
        a = out[k]
        b = out[k + 1]
        near, far = 200 - gap_min, 200 + gap_min
        ratio = near / far if descending else far / near
        if a > 0 and b > 0:
            for _ in range(max(0, math.floor(math.log(a * ratio / b) / math.log(factor)) - 2)):
                b *= factor
        while True:
            gap = abs(a - b) / ((a + b) / 2) * 100
            out_of_order = b > a if descending else b < a
            if gap >= gap_min and not out_of_order:
                break
            b *= factor
        out[k + 1] = b
    return out


def spaced_bounds(
    predicted_low: FloatArray, predicted_high: FloatArray, bound_pct: float = 0.5
) -> tuple[FloatArray, FloatArray]:
    """Low and high bound lines per timeframe (input order kept; NaN stays NaN = inactive).

    Bounds are the predicted low − ``bound_pct`` % and high + ``bound_pct`` %, then spaced as
    the original did: lows sorted from the top down and pushed down, highs from the bottom up
    and pushed up, so that successive lines are at least 0.25, 0.50, … 1.50 % apart.
    """
    lows = np.asarray(predicted_low, dtype=float) * (1 - bound_pct / 100)
    highs = np.asarray(predicted_high, dtype=float) * (1 + bound_pct / 100)
    return _spaced(lows, descending=True), _spaced(highs, descending=False)


def _spaced(raw: FloatArray, *, descending: bool) -> FloatArray:
    out = np.full(len(raw), np.nan)
    active = np.flatnonzero(np.isfinite(raw))
    order = active[np.argsort(-raw[active] if descending else raw[active], kind="stable")]
    out[order] = _push_apart([float(v) for v in raw[order]], descending=descending)
    return out


def levels(price: float, low_bounds: FloatArray, high_bounds: FloatArray) -> tuple[int, int]:
    """LONG = timeframes whose low bound is above the price; SHORT = whose high bound is below.

    NaN (inactive) bounds count for neither. Cheap enough to run on every price update.
    """
    long_level = int(np.count_nonzero(low_bounds > price))
    short_level = int(np.count_nonzero(high_bounds < price))
    return long_level, short_level
