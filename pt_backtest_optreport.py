"""An optimisation's report: its trials ranked and the objective over the varied parameters.

Why: a results file of hundreds of trials says little line by line. The ranking shows which
points did best and at what cost (drawdown, trades beside the ratios); the heatmap shows whether
the best point sits on a plateau of good neighbours or on a lone spike (likely luck of the
span). One self-contained HTML file (images as base64 PNG, as :mod:`pt_backtest_report` writes
them), written beside the results file. The heatmap's axes are the two parameters with the most
distinct values; when more were varied, a cell holds the best of its trials, and says so.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import pt_metrics as pm
from pt_backtest_optimize import LOWER_IS_BETTER, TrialResult, rank
from pt_backtest_report import (
    DASH,
    HeatmapData,
    Value,
    esc,
    heatmap_png,
    img_html,
    note_html,
    table_html,
    write_page,
)

log = logging.getLogger(__name__)

# The figures the ranking shows, in order, and how each is written.
RANK_FIGURES: tuple[str, ...] = (
    "sharpe", "sortino", "calmar", "total_return", "cagr", "max_drawdown", "win_rate", "trades",
)  # fmt: skip
PERCENT = frozenset({"total_return", "cagr", "max_drawdown", "win_rate"})
TOP = 25  # trials in the ranking table


def figure_value(figures: dict[str, Any], name: str) -> float | None:
    """A trial's figure as a number, None where it is undefined (missing, None, NaN, text)."""
    value = figures.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _label(value: Any) -> Value:
    """A parameter value as an axis label: numbers and text as they are, the rest as JSON."""
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        return value
    return json.dumps(value, sort_keys=True)


def varied_keys(results: Sequence[TrialResult]) -> list[str]:
    """The parameters that take more than one value, most distinct values first (ties: in the
    order the points name them)."""
    seen: dict[str, set[str]] = {}
    for r in results:
        for key, value in r.point.items():
            seen.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
    keys = [k for k, values in seen.items() if len(values) > 1]
    return sorted(keys, key=lambda k: -len(seen[k]))


def _axis(results: Sequence[TrialResult], key: str) -> list[Any]:
    """The distinct values ``key`` takes: numbers ascending, anything else by its JSON text."""
    values: dict[str, Any] = {}
    for r in results:
        if key in r.point:
            values.setdefault(json.dumps(r.point[key], sort_keys=True), r.point[key])
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values.values()):
        return sorted(values.values())
    return [values[text] for text in sorted(values)]


@dataclass(frozen=True)
class ObjectiveMap:
    """The heatmap of an optimisation and the sentence that says how to read it."""

    data: HeatmapData
    caption: str


def objective_map(results: Sequence[TrialResult], objective: str) -> ObjectiveMap | None:
    """``objective`` over the two most varied parameters (one row when only one varied; None
    when none did). A cell holds the best value of its trials; NaN with ``undefined`` set where
    every trial there had it undefined, NaN alone where no trial had that combination."""
    keys = varied_keys(results)
    if not keys:
        return None
    x_key, y_key = keys[0], keys[1] if len(keys) > 1 else ""
    xs = _axis(results, x_key)
    ys = _axis(results, y_key) if y_key else [None]
    column = {json.dumps(v, sort_keys=True): i for i, v in enumerate(xs)}
    row = {json.dumps(v, sort_keys=True): i for i, v in enumerate(ys)}
    lower = objective in LOWER_IS_BETTER
    values = np.full((len(ys), len(xs)), np.nan)
    ran = np.zeros(values.shape, dtype=bool)
    for r in results:
        if x_key not in r.point or (y_key and y_key not in r.point):
            continue
        i = row[json.dumps(r.point.get(y_key), sort_keys=True)]
        j = column[json.dumps(r.point[x_key], sort_keys=True)]
        ran[i, j] = True
        value, kept = figure_value(r.figures, objective), float(values[i, j])
        if value is not None and (math.isnan(kept) or (value < kept if lower else value > kept)):
            values[i, j] = value
    undefined = ran & np.isnan(values)
    data = HeatmapData(
        x_key,
        y_key,
        tuple(_label(v) for v in xs),
        tuple("" if v is None else _label(v) for v in ys),
        values,
        objective,
        undefined,
        lower,
    )
    return ObjectiveMap(data, _caption(data, keys[2:], len(results), ran))


def _caption(
    data: HeatmapData, others: Sequence[str], trials: int, ran: np.ndarray[Any, Any]
) -> str:
    best = "lowest" if data.lower_is_better else "highest"
    axes = f"{data.x_name} and {data.y_name}" if data.y_name else data.x_name
    text = f"{data.objective} of {trials} trials by {axes}"
    if others:
        text += (
            f"; {', '.join(others)} also varied: each cell shows the {best} {data.objective} "
            f"of the trials with that {axes}"
        )
    text += "."
    if data.undefined is not None and data.undefined.any():
        text += f" An empty cell: no trial there has a defined {data.objective}."
    if not ran.all():
        text += " 'not run': no trial had that combination."
    values = np.asarray(data.values)
    if np.isfinite(values).any():
        row, col = np.unravel_index(
            int(np.nanargmin(values) if data.lower_is_better else np.nanargmax(values)),
            values.shape,
        )
        at = f"{data.x_name} = {data.x_values[col]}"
        at += f", {data.y_name} = {data.y_values[row]}" if data.y_name else ""
        text += f" Best cell: {values[row, col]:.4g} at {at}."
    return text


def _shown(name: str, value: float | None) -> str:
    if value is None:
        return DASH
    if name == "trades":
        return str(round(value))
    if name == "max_drawdown":
        return pm.fmt_pct(-value if value else 0.0)
    if name in PERCENT:
        return pm.fmt_pct(value, signed=name != "win_rate")
    return pm.fmt_ratio(value)


def ranking_rows(
    results: Sequence[TrialResult], objective: str, top: int = TOP
) -> tuple[list[str], list[list[str]]]:
    """The ranking table's header and rows (best first, the first ``top``): rank, the point's
    values, then the figures the trials have (formatted as the summary writes them)."""
    ranked = rank(results, objective)[: max(top, 0)]
    keys = list(dict.fromkeys(k for r in ranked for k in r.point))
    shown = [f for f in RANK_FIGURES if any(f in r.figures for r in ranked)]
    rows = [
        [str(n), *(str(_label(r.point[k])) if k in r.point else DASH for k in keys),
         *(_shown(f, figure_value(r.figures, f)) for f in shown)]
        for n, r in enumerate(ranked, 1)
    ]  # fmt: skip
    return ["#", *keys, *shown], rows


def write_optimization_report(
    path: Path,
    results: Sequence[TrialResult],
    *,
    objective: str,
    title: str,
    note: str = "",
    top: int = TOP,
) -> Path:
    """Write the report of an optimisation's ``results`` to ``path`` (replacing a file there)
    and return ``path``: the first ``top`` trials ranked by ``objective`` and its heatmap."""
    head, rows = ranking_rows(results, objective, top)
    cells = (
        f'<tr><td class="label">{esc(row[0])}</td>'
        + "".join(f"<td>{esc(v)}</td>" for v in row[1:])
        + "</tr>"
        for row in rows
    )
    better = "lower" if objective in LOWER_IS_BETTER else "higher"
    ranking = note_html(
        f"{len(results)} trials ranked by {objective} ({better} is better; undefined last), "
        f"the best {len(rows)} shown."
    ) + (table_html("ranking", head, list(cells)) if rows else "")
    chart = objective_map(results, objective)
    heatmap = (
        note_html("No parameter took more than one value: nothing to map.")
        if chart is None
        else note_html(chart.caption) + img_html(heatmap_png(chart.data), f"heatmap of {objective}")
    )
    sections = [("Ranking", ranking), ("Parameter heatmap", heatmap)]
    intro = note_html(note) if note else ""
    size = write_page(path, title=title, intro=intro, sections=sections)
    log.info("optimisation report %s: %d trials, %d bytes", path, len(results), size)
    return path
