"""Walk-forward analysis: settings chosen on one stretch of history, judged on the next.

Why: an optimisation's best trial is the best *on the data it was chosen on*; how it does on
data it has not seen is the honest figure. The span is cut into rolling windows: each window's
train part is optimised (every point a real backtest, through :func:`pt_backtest_optimize.
optimize`), the best point by the objective is then backtested on the test part that follows
it, and the two are shown side by side (in-sample vs out-of-sample). Windows roll forward by
the test length, so the test parts tile the span after the first train part without overlap.

Choices, written down: each window starts from the settings' starting cash with no position
(one window's open trades do not carry into the next); the out-of-sample return over all
windows compounds the test parts' returns, as if the wallet were handed on; a window where no
trial had a defined objective (e.g. no trade, no Sharpe) chooses nothing and is reported as
such. Every window's trials are kept in their own results file, so a stopped walk-forward
resumes where it stopped. The predictor learns online as always: nothing in a test part is
seen before it is traded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pt_backtest_engine import DEFAULT_STEP_SECONDS
from pt_backtest_optimize import OBJECTIVES, OptimizeError, TrialResult, optimize
from pt_types import DAY, Candles

log = logging.getLogger(__name__)

Span = tuple[int, int]


class WalkForwardError(OptimizeError):
    """The windows do not fit the span, or a window's trials cannot run."""


@dataclass(frozen=True)
class Window:
    """One train part and the test part right after it (epoch seconds, end excluded)."""

    number: int
    train: Span
    test: Span


def walk_windows(start: int, end: int, *, train_days: int, test_days: int) -> list[Window]:
    """Rolling windows over ``start .. end``: train ``train_days``, then test ``test_days``,
    moved on by ``test_days``. The last test part ends at or before ``end``."""
    if train_days < 1 or test_days < 1:
        raise WalkForwardError("train and test lengths must be at least one day each")
    train, test = train_days * DAY, test_days * DAY
    windows: list[Window] = []
    t = start
    while t + train + test <= end:
        windows.append(Window(len(windows) + 1, (t, t + train), (t + train, t + train + test)))
        t += test
    if not windows:
        days = (end - start) / DAY
        raise WalkForwardError(
            f"the span is {days:g} days: too short for one window of {train_days} train + "
            f"{test_days} test days; pick a longer span or shorter windows"
        )
    return windows


@dataclass(frozen=True)
class WindowResult:
    """A window's choice and how it did: in-sample on train, out-of-sample on test."""

    window: Window
    trials: int
    point: dict[str, Any] | None  # None: no trial had a defined objective
    in_sample: Mapping[str, Any]  # the chosen trial's figures on train ({} when none)
    out_of_sample: Mapping[str, Any]  # its figures on test ({} when none)

    def figure(self, name: str, *, sample: str) -> float | None:
        """A figure in-sample (``sample`` "in") or out-of-sample ("out"); None if undefined."""
        return finite_number((self.in_sample if sample == "in" else self.out_of_sample).get(name))


@dataclass(frozen=True)
class WalkForward:
    """All windows and their totals."""

    objective: str
    windows: tuple[WindowResult, ...]

    @property
    def chosen(self) -> tuple[WindowResult, ...]:
        return tuple(w for w in self.windows if w.point is not None)

    def compounded(self, key: str = "total_return") -> float | None:
        """The test parts' returns compounded (``buy_and_hold_return`` for the benchmark);
        None when no window chose settings."""
        values = [finite_number(w.out_of_sample.get(key)) for w in self.chosen]
        if not values or any(v is None for v in values):
            return None
        return math.prod(1.0 + v for v in values if v is not None) - 1.0

    def median(self, figure: str, *, sample: str) -> float | None:
        """The median of ``figure`` over the chosen windows, ``sample`` "in" or "out"."""
        values = sorted(
            v for w in self.chosen if (v := w.figure(figure, sample=sample)) is not None
        )
        if not values:
            return None
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def finite_number(value: object) -> float | None:
    """A figure as a float; None when undefined (None, NaN, infinite, not a number)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _best(ranked: Sequence[TrialResult], objective: str) -> TrialResult | None:
    """The first ranked trial whose objective is defined (``rank`` puts undefined ones last)."""
    if ranked and finite_number(ranked[0].figures.get(objective)) is not None:
        return ranked[0]
    return None


def walk_forward(
    base_settings_data: Mapping[str, Any],
    points: Sequence[Mapping[str, Any]],
    *,
    windows: Sequence[Window],
    coins: Sequence[str] | None,
    history: Mapping[str, Candles],
    results_dir: Path,
    step_seconds: int = DEFAULT_STEP_SECONDS,
    workers: int | None = None,
    scheduler: Any = None,
    objective: str = "sharpe",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> WalkForward:
    """Optimise each window's train part over ``points``, backtest the best on its test part.

    Results go to ``results_dir/window-NN-train.jsonl`` and ``-test.jsonl`` (resumed when
    present). ``progress(done, total)`` counts trials over all windows. After ``should_stop()``
    the windows finished so far are returned."""
    if objective not in OBJECTIVES:
        known = ", ".join(sorted(OBJECTIVES))
        raise WalkForwardError(f"unknown objective {objective!r}; one of {known}")
    per_window = len(points) + 1
    total = per_window * len(windows)
    done: list[WindowResult] = []
    for index, window in enumerate(windows):
        if should_stop():
            break
        offset = index * per_window

        def step(n: int, _total: int, offset: int = offset) -> None:
            if progress is not None:
                progress(offset + n, total)

        common: dict[str, Any] = {
            "coins": coins, "history": history, "step_seconds": step_seconds,
            "objective": objective, "should_stop": should_stop,
        }  # fmt: skip
        name = f"window-{window.number:02d}"
        ranked = optimize(
            base_settings_data, points, start=window.train[0], end=window.train[1],
            results_path=results_dir / f"{name}-train.jsonl", workers=workers,
            scheduler=scheduler, progress=step, **common,
        )  # fmt: skip
        if should_stop():
            break  # asked to stop during the train part: the window is not finished
        best = _best(ranked, objective)
        if best is None:
            log.info("%s: no trial had a defined %s; nothing chosen", name, objective)
            done.append(WindowResult(window, len(ranked), None, {}, {}))
            step(per_window, total)
            continue
        tested = optimize(
            base_settings_data, [best.point], start=window.test[0], end=window.test[1],
            results_path=results_dir / f"{name}-test.jsonl", workers=1,
            progress=lambda n, _t: step(len(points) + n, total), **common,
        )  # fmt: skip
        if not tested:
            break  # stopped before the test part ran: resumed next time
        done.append(WindowResult(window, len(ranked), best.point, best.figures, tested[0].figures))
    return WalkForward(objective, tuple(done))
