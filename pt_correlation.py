"""How the managed coins move together: return correlations, the portfolio's correlation, and
diversification alerts before a new entry.

Pure: candles in, frozen results out. Returns are simple period returns of the closes,
``close[i] / close[i-1] - 1``, on the candle times every coin has (a coin's missing candle drops
that time for all, so each correlation compares the same moments). Correlation is Pearson's,
as ``pandas.DataFrame.corr`` computes it (tests/test_indicators.py checks that). Over 7, 30
and 90 days by default, on daily candles.

A pair without enough common returns, or where either coin's price did not move at all (zero
variance), has no correlation: None, with the reason in ``notes``. NaN never leaves this
module.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pt_types import Candles

FloatArray = npt.NDArray[np.float64]

PERIODS = (7, 30, 90)  # days
ALERT_THRESHOLD = 0.8
MIN_RETURNS = 3  # fewer common returns than this: no correlation


def aligned_returns(
    candles: Mapping[str, Candles], count: int
) -> tuple[tuple[str, ...], FloatArray]:
    """The coins with candles and the last ``count`` returns at the times all of them have
    (one column per coin); fewer rows when the common history is shorter."""
    coins = tuple(c for c, bars in candles.items() if len(bars))
    if not coins:
        return (), np.empty((0, 0))
    common = candles[coins[0]].time
    for coin in coins[1:]:
        common = np.intersect1d(common, candles[coin].time, assume_unique=True)
    common = common[-(count + 1) :]
    closes = np.column_stack(
        [candles[c].close[np.searchsorted(candles[c].time, common)] for c in coins]
    ).astype(np.float64)
    if len(closes) < 2:
        return coins, np.empty((0, len(coins)))
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = closes[1:] / closes[:-1] - 1.0
    return coins, returns


def pearson(a: FloatArray, b: FloatArray) -> float | None:
    """Pearson's correlation; None when either side does not vary (or is not finite)."""
    if len(a) < MIN_RETURNS or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    da, db = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt((da * da).sum() * (db * db).sum()))
    if denominator == 0.0:
        return None
    return float(np.clip((da * db).sum() / denominator, -1.0, 1.0))


@dataclass(frozen=True)
class CorrelationMatrix:
    """Pairwise return correlations over ``periods`` returns (days on daily candles)."""

    coins: tuple[str, ...]
    values: tuple[tuple[float | None, ...], ...]
    periods: int
    returns_used: int
    notes: tuple[str, ...] = ()

    def get(self, a: str, b: str) -> float | None:
        if a not in self.coins or b not in self.coins:
            return None
        return self.values[self.coins.index(a)][self.coins.index(b)]


def correlation_matrix(candles: Mapping[str, Candles], periods: int) -> CorrelationMatrix:
    coins, returns = aligned_returns(candles, periods)
    notes = [f"{c}: no candles" for c, bars in candles.items() if not len(bars)]
    if len(returns) < MIN_RETURNS:
        notes.append(f"not enough data: {len(returns)} common returns, need {MIN_RETURNS}")
    n = len(coins)
    enough = len(returns) >= MIN_RETURNS
    varies = [enough and pearson(returns[:, k], returns[:, k]) is not None for k in range(n)]
    rows: list[list[float | None]] = [[None] * n for _ in coins]
    for i in range(n):
        rows[i][i] = 1.0 if varies[i] else None
        for j in range(i + 1, n):
            rows[i][j] = rows[j][i] = pearson(returns[:, i], returns[:, j])
    notes += [f"{c}: the price did not move over the period (no correlation)"
              for c, moved in zip(coins, varies, strict=True) if enough and not moved]  # fmt: skip
    return CorrelationMatrix(coins, tuple(tuple(r) for r in rows), periods, len(returns),
                             tuple(notes))  # fmt: skip


def correlations_over(
    candles: Mapping[str, Candles], periods: Sequence[int] = PERIODS
) -> dict[int, CorrelationMatrix]:
    """The matrix over each period (7, 30 and 90 days by default)."""
    return {p: correlation_matrix(candles, p) for p in periods}


def portfolio_correlation(
    matrix: CorrelationMatrix, position_values: Mapping[str, float]
) -> float | None:
    """The held coins' average pairwise correlation, each pair weighted by the product of the
    two positions' values: ``Σ w_i·w_j·ρ_ij / Σ w_i·w_j`` over pairs i < j with a correlation.
    None with fewer than two positions or no known pair."""
    held = [(c, v) for c, v in position_values.items() if v > 0 and c in matrix.coins]
    num = den = 0.0
    for (a, va), (b, vb) in itertools.combinations(held, 2):
        rho = matrix.get(a, b)
        if rho is not None:
            num += va * vb * rho
            den += va * vb
    return num / den if den > 0 else None


@dataclass(frozen=True)
class DiversificationAlert:
    candidate: str
    held: str
    correlation: float
    periods: int

    @property
    def message(self) -> str:
        return (f"{self.candidate} moved with {self.held} (correlation {self.correlation:.2f} "
                f"over {self.periods} days): a new entry adds little diversification")  # fmt: skip


def diversification_alerts(
    matrix: CorrelationMatrix,
    candidate: str,
    held: Iterable[str],
    threshold: float = ALERT_THRESHOLD,
) -> list[DiversificationAlert]:
    """The held coins a new entry in ``candidate`` would correlate with above ``threshold``,
    most correlated first."""
    found = []
    for coin in held:
        rho = matrix.get(candidate, coin)
        if coin != candidate and rho is not None and rho > threshold:
            found.append(DiversificationAlert(candidate, coin, rho, matrix.periods))
    return sorted(found, key=lambda a: a.correlation, reverse=True)
