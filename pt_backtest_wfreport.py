"""What a walk-forward shows: in-sample beside out-of-sample, per window and in total.

Three forms of the same figures: lines for the terminal, ``walkforward.json`` for a program,
and ``walkforward.html`` (a table and two charts, images embedded as in the backtest report).
The charts are the objective per window, in-sample (on the train part the settings were chosen
on) beside out-of-sample (on the test part after it), and the test parts' returns compounded
beside buy-and-hold's over the same test parts. A large gap between the two bars is the
optimisation fitting noise; the report shows it rather than the in-sample figure alone.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import FuncFormatter

import pt_metrics as pm
from pt_backtest_cli import point_text
from pt_backtest_report import (
    HOLD_COLOR,
    RUN_COLORS,
    dress_time_axis,
    esc,
    img_html,
    new_figure,
    note_html,
    png_bytes,
    table_html,
    write_page,
)
from pt_backtest_walkforward import WalkForward, WindowResult, finite_number

log = logging.getLogger(__name__)


RATIOS = frozenset({"sharpe", "sortino", "calmar"})  # shown as numbers, the others as percents


def _day(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d")


def _span(span: tuple[int, int]) -> str:
    return f"{_day(span[0])} .. {_day(span[1])}"


def _fig(value: object, objective: str) -> str:
    number = finite_number(value)
    if number is None:
        return "n/a"
    if objective in RATIOS:
        return f"{number:.2f}"
    return pm.fmt_pct(number, signed=objective != "max_drawdown")


def _pct(value: object) -> str:
    number = finite_number(value)
    return "n/a" if number is None else pm.fmt_pct(number, signed=True)


def _row(w: WindowResult, objective: str) -> list[str]:
    i, o = w.in_sample, w.out_of_sample
    return [
        str(w.window.number), _span(w.window.train), _span(w.window.test),
        f"{_fig(i.get(objective), objective)} / {_fig(o.get(objective), objective)}",
        f"{_pct(i.get('total_return'))} / {_pct(o.get('total_return'))}",
        _pct(o.get("buy_and_hold_return")), point_text(w.point),
    ]  # fmt: skip


HEAD = ("#", "train (UTC)", "test (UTC)", "{} in / out", "return in / out", "buy & hold out",
        "settings chosen on train")  # fmt: skip


def _totals(result: WalkForward) -> list[str]:
    o = result.objective
    med_in, med_out = result.median(o, sample="in"), result.median(o, sample="out")
    lines = [
        f"out-of-sample return, the test parts compounded: {_pct(result.compounded())} "
        f"(buy & hold over the same parts: {_pct(result.compounded('buy_and_hold_return'))})",
        f"median {o}: in-sample {_fig(med_in, o)}, out-of-sample {_fig(med_out, o)}",
    ]
    skipped = len(result.windows) - len(result.chosen)
    if skipped:
        lines.append(f"{skipped} window(s) chose nothing: no trial had a defined {o}")
    return lines


def walkforward_lines(result: WalkForward) -> list[str]:
    """The terminal's table: one line per window, then the totals."""
    head = [h.format(result.objective) for h in HEAD]
    rows = [head, *(_row(w, result.objective) for w in result.windows)]
    widths = [max(len(r[c]) for r in rows) for c in range(len(head) - 1)]
    lines = [f"walk-forward, {len(result.windows)} window(s), chosen by {result.objective}:"]
    lines += ["  " + "  ".join(c.ljust(n) for c, n in zip(r, widths, strict=False)) + "  " + r[-1]
              for r in rows]  # fmt: skip
    return lines + _totals(result)


def walkforward_data(result: WalkForward) -> dict[str, Any]:
    """``walkforward.json``: every window's spans, choice and figures, and the totals."""
    return {
        "objective": result.objective,
        "windows": [
            {
                "number": w.window.number,
                "train": [_day(t) for t in w.window.train],
                "test": [_day(t) for t in w.window.test],
                "trials": w.trials,
                "point": w.point,
                "in_sample": dict(w.in_sample),
                "out_of_sample": dict(w.out_of_sample),
            }
            for w in result.windows
        ],
        "out_of_sample_return": result.compounded(),
        "buy_and_hold_return": result.compounded("buy_and_hold_return"),
    }


def _bars_png(result: WalkForward) -> bytes:
    o = result.objective
    fig = new_figure(3.8)
    ax = fig.add_subplot()
    x = np.arange(len(result.windows))
    values = {s: [w.figure(o, sample=s) for w in result.windows] for s in ("in", "out")}
    for shift, sample, label in ((-0.2, "in", "in-sample (train)"),
                                 (0.2, "out", "out-of-sample (test)")):  # fmt: skip
        heights = [np.nan if v is None else v for v in values[sample]]
        color = RUN_COLORS[0] if sample == "in" else RUN_COLORS[1]
        ax.bar(x + shift, heights, width=0.4, label=label, color=color)
    ax.axhline(0, color="#444444", lw=0.8)
    ax.set_xticks(x, [str(w.window.number) for w in result.windows])
    title = f"{o} per window: on the train part it was chosen on vs the test part after"
    ax.set(title=title, xlabel="window", ylabel=o)
    if o not in RATIOS:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:+.0%}"))
    ax.grid(visible=True, axis="y", alpha=0.3)
    ax.legend(loc="best", framealpha=0.9, fontsize=9)
    return png_bytes(fig)


def _compounded_png(result: WalkForward) -> bytes:
    fig = new_figure(3.8)
    ax = fig.add_subplot()
    chosen = result.chosen
    ends = np.array([np.datetime64(w.window.test[1], "s") for w in chosen])
    first = np.datetime64(chosen[0].window.test[0], "s")
    lines = (("total_return", "bot, out-of-sample", RUN_COLORS[1], "-"),
             ("buy_and_hold_return", "buy & hold", HOLD_COLOR, "--"))  # fmt: skip
    for key, label, color, style in lines:
        returns = [finite_number(w.out_of_sample.get(key)) or 0.0 for w in chosen]
        curve = np.cumprod([1.0 + r for r in returns]) - 1.0
        ax.plot(np.concatenate([[first], ends]), np.concatenate([[0.0], curve]) * 100,
                color=color, ls=style, lw=1.5, marker="o", ms=4, label=label)  # fmt: skip
    ax.axhline(0, color="#444444", lw=0.8)
    title = "The test parts' returns compounded (a point at the end of each test part)"
    dress_time_axis(ax, title, "return (%)", "{:+.0f}%")
    return png_bytes(fig)


def write_walkforward(result: WalkForward, out: Path) -> None:
    """Write ``walkforward.json`` and ``walkforward.html`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    data = json.dumps(walkforward_data(result), indent=2, allow_nan=False, default=str)
    (out / "walkforward.json").write_text(data + "\n", encoding="utf-8")
    o = result.objective
    rows = ["<tr>" + "".join(f'<td class="label">{esc(c)}</td>' if k in (1, 2, 6) else
                             f"<td>{esc(c)}</td>" for k, c in enumerate(_row(w, o))) + "</tr>"
            for w in result.windows]  # fmt: skip
    sections = [
        ("Windows", table_html("windows", [h.format(o) for h in HEAD], rows)),
        ("Totals", "".join(note_html(line) for line in _totals(result))),
    ]
    if result.windows:
        sections.append(
            ("In-sample vs out-of-sample", img_html(_bars_png(result), f"{o} in vs out"))
        )
    if result.chosen:
        sections.append(("Out-of-sample return", img_html(_compounded_png(result), "compounded")))
    choice = note_html(
        "Each window's settings are the best trial by the objective on its train part; they are "
        "then backtested on the test part that follows. Each part starts from the starting cash "
        "with no position; the total compounds the test parts' returns."
    )
    page = out / "walkforward.html"
    write_page(page, title=f"Walk-forward by {o}", intro=choice, sections=sections)
    log.info("walk-forward report %s: %d window(s)", out, len(result.windows))
