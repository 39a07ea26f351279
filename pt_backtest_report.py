"""A backtest report: one self-contained HTML file with a run's figures and charts.

Why: a backtest's figures mean little without their pictures (the equity beside buy-and-hold,
how deep and long the drawdowns went, where the bot bought and sold). One HTML file with its
images embedded (base64 PNG, no script, no other file) opens offline in any browser and can be
archived next to ``summary.json``. Every figure comes from the run's
:class:`pt_backtest_journal.Summary`: the number the command line and the ANALYTICS tab show
(spec/metrics.md). The drawdown is always shown, its maximum named in the chart's title.
Charts use matplotlib's object API on the Agg canvas (no pyplot: no global figure state, no
display), so a report can be written from any thread. Times are UTC.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
import numpy.typing as npt
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

import pt_metrics as pm
from pt_backtest_engine import BacktestResult, ExecutedOrder
from pt_backtest_journal import Summary
from pt_types import HOUR, Candles, FloatArray, OrderTag, Side

log = logging.getLogger(__name__)

DPI = 110
WIDTH = 11.0  # inches: 1210 px at DPI, readable on a laptop screen without scrolling sideways
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
RUN_COLORS, HOLD_COLOR = ("#1f77b4", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"), "#6b6b6b"
# fill kind: (marker, colour, legend); a DCA buy is a buy that adds to an open trade
MARKERS = {"buy": ("^", "#16a34a", "buy"), "dca": ("^", "#f59e0b", "DCA buy"),
           "sell": ("v", "#dc2626", "sell")}  # fmt: skip
PNG_PREFIX = "data:image/png;base64,"
DASH = pm.DASH

Value = float | int | str


@dataclass(frozen=True)
class ReportRun:
    """One backtest as the report shows it: its result, its summary and its buy-and-hold."""

    name: str
    result: BacktestResult
    summary: Summary
    buy_and_hold: pm.EquitySeries


@dataclass(frozen=True, eq=False)
class HeatmapData:
    """An objective over a grid of two parameters: ``values[row y, column x]``, NaN = not run.

    ``undefined`` marks the NaN cells that were run but whose objective is undefined (a Sharpe
    without trades): drawn empty, not as "not run". An empty ``y_name`` with one row is a
    single parameter. ``lower_is_better`` (a drawdown) turns the colours round: green is best.
    """

    x_name: str
    y_name: str
    x_values: tuple[Value, ...]
    y_values: tuple[Value, ...]
    values: FloatArray
    objective: str
    undefined: npt.NDArray[np.bool_] | None = None
    lower_is_better: bool = False

    def __post_init__(self) -> None:
        shape = (len(self.y_values), len(self.x_values))
        for name, array in (("values", self.values), ("undefined", self.undefined)):
            if array is not None and np.shape(array) != shape:
                got = np.shape(array)
                raise ValueError(
                    f"heatmap {name} have shape {got}, expected {shape} (y rows, x columns)"
                )


def monthly_returns(equity: pm.EquitySeries) -> dict[int, dict[int, float]]:
    """``{year: {month: return}}`` on the daily equity: a month's last equity over the previous
    month's last, minus 1. The first month is measured from the series' first sample (the
    account's value when it started; a first day alone in its month, such as a backtest's
    opening sample the second before its span, is only that base); a day without a sample
    carries the day before."""
    daily = pm.daily_equity(equity)
    if not daily.days.size:
        return {}
    previous = float(equity.equity[int(np.argsort(equity.time, kind="stable")[0])])
    months = daily.days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    last = np.r_[months[1:] != months[:-1], True]
    out: dict[int, dict[int, float]] = {}
    ends = zip(months[last].tolist(), daily.equity[last].tolist(), strict=True)
    if len(months) > 1 and months[0] != months[1]:
        next(ends)  # an opening sample alone in its month (a backtest's starting cash): a base
    for month, value in ends:
        year, index = divmod(int(month), 12)
        ratio = value / previous - 1 if previous > 0 else math.nan
        out.setdefault(1970 + year, {})[index + 1], previous = ratio, value
    return out


def _dd(fraction: float | None) -> str:
    """A drawdown (a positive fraction) as the command line prints it: ``-20.67%``."""
    return DASH if fraction is None else pm.fmt_pct(-fraction if fraction else 0.0)


def _account_figures(a: pm.AccountStats) -> dict[str, str]:
    return {
        "final equity": pm.fmt_usd(a.end_equity),
        "total return": pm.fmt_pct(a.total_return, signed=True),
        "CAGR": pm.fmt_pct(a.cagr, signed=True),
        "max drawdown": _dd(a.max_drawdown),
        "max drawdown dates": a.drawdown.describe(),
        "Sharpe": pm.fmt_ratio(a.sharpe),
        "Sortino": pm.fmt_ratio(a.sortino),
        "Calmar": pm.fmt_ratio(a.calmar),
    }


def _run_figures(run: ReportRun) -> dict[str, str]:
    """The figures of ``summary.json`` (pt_backtester.summary_data), formatted for reading."""
    spec, s, t = run.result.spec, run.summary, run.summary.metrics.trades
    return {
        "coins": ", ".join(spec.coins),
        "span (UTC)": _span(run.result),
        "step (s)": str(spec.step_seconds),
        "starting cash": pm.fmt_usd(spec.starting_cash),
        **_account_figures(s.metrics.account),
        "max floating drawdown (a trade)": _dd(s.metrics.max_floating_drawdown),
        "closed trades": str(t.trades),
        "win rate": pm.fmt_pct(t.win_rate),
        "average time in a trade": pm.fmt_duration(t.avg_hold_s),
        "longest time in a trade": pm.fmt_duration(t.longest_hold_s),
        "realized PnL": pm.fmt_usd(t.realized_pnl_usd, signed=True),
        "deepest DCA (buys in one trade)": str(s.deepest_dca),
        "cash needed at the deepest DCA": pm.fmt_usd(s.metrics.capital_deployed_usd),
        "buys refused by the risk limits": str(s.refused),
        "orders rejected": str(s.rejected),
    }


def _span(result: BacktestResult) -> str:
    """The span as ``summary.json`` gives it: first day .. the day after the last."""
    days = (result.spec.start, result.spec.end)
    return " .. ".join(dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d") for t in days)


# -- charts ------------------------------------------------------------------------------------


def _dates(t: npt.ArrayLike) -> npt.NDArray[np.datetime64]:
    """Epoch seconds as UTC datetimes matplotlib puts on a date axis."""
    return np.round(np.asarray(t, dtype=np.float64)).astype(np.int64).astype("datetime64[s]")


def new_figure(height: float, width: float = WIDTH) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", facecolor="white")
    finally:
        fig.clear()  # the figure holds its artists until collected; free them now
    return buffer.getvalue()


def dress_time_axis(ax: Axes, title: str, ylabel: str, ytext: str, *, low: bool = False) -> None:
    """Title, labels, a UTC date axis, y values as ``ytext`` (a format), the legend (``low``:
    in the lower left corner, else where it hides the least)."""
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10, tz=dt.UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator, tz=dt.UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(formatter)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: ytext.format(v)))
    ax.grid(visible=True, alpha=0.3)
    ax.set(title=title, ylabel=ylabel, xlabel="date (UTC)")
    ax.legend(loc="lower left" if low else "best", framealpha=0.9, fontsize=9)


def equity_png(runs: Sequence[ReportRun]) -> bytes:
    """Every run's equity in one chart; the first run's buy-and-hold dashed, its cash dotted."""
    fig = new_figure(4.8)
    ax = fig.add_subplot()
    for run, color in zip(runs, cycle(RUN_COLORS), strict=False):
        eq = run.result.equity
        ax.plot(_dates(eq.time), eq.equity, color=color, lw=1.5, label=run.name)
    bh = runs[0].buy_and_hold
    ax.plot(_dates(bh.time), bh.equity, color=HOLD_COLOR, lw=1.2, ls="--", label="buy & hold")
    cash = runs[0].result.spec.starting_cash
    ax.axhline(cash, color="#999999", lw=0.8, ls=":", label="starting cash")
    dress_time_axis(ax, "Equity (USD, marked to market at the bid)", "equity (USD)", "${:,.0f}")
    return png_bytes(fig)


def drawdown_png(runs: Sequence[ReportRun]) -> bytes:
    """The underwater curve (percent below the running peak) of each run's hourly equity."""
    fig = new_figure(3.9)
    ax = fig.add_subplot()
    for run, color in zip(runs, cycle(RUN_COLORS), strict=False):
        eq = run.result.equity
        under = -pm.drawdown_series(eq.equity) * 100
        if not under.size:
            continue
        x, k = _dates(eq.time), int(np.argmin(under))
        ax.fill_between(x, under, 0, color=color, alpha=0.22, lw=0)
        ax.plot(x, under, color=color, lw=1.1, label=f"{run.name} (deepest hour {under[k]:.2f}%)")
        ax.plot(x[k], under[k], marker="o", color=color, ms=5)
        ax.annotate(f"{under[k]:.2f}%", (x[k], under[k]), xytext=(6, -4),
                    textcoords="offset points", color=color, fontsize=9, va="top")  # fmt: skip
    bh = runs[0].buy_and_hold
    hold = -pm.drawdown_series(bh.equity) * 100
    ax.plot(_dates(bh.time), hold, color=HOLD_COLOR, lw=0.9, ls="--", label="buy & hold")
    ax.axhline(0, color="#444444", lw=0.8)
    maxima = [(r.name, _dd(r.summary.metrics.account.max_drawdown)) for r in runs]
    named = maxima[0][1] if len(runs) == 1 else ", ".join(f"{n} {v}" for n, v in maxima)
    title = f"Drawdown below the running peak: max drawdown {named} (daily equity)"
    dress_time_axis(ax, title, "drawdown (%)", "{:.0f}%", low=True)
    return png_bytes(fig)


def _kind(order: ExecutedOrder) -> str:
    buy = "dca" if order.intent.tag is OrderTag.DCA else "buy"
    return "sell" if order.intent.side is Side.SELL else buy


def trades_png(run: ReportRun, prices: Mapping[str, Candles]) -> bytes | None:
    """One subplot per coin: the hourly close over the span and the run's fills on it."""
    spec = run.result.spec
    coins = [c for c in spec.coins if c in prices]
    for coin in sorted(set(spec.coins) - set(coins)):
        log.warning("backtest report: no prices for %s, its trades are not drawn", coin)
    if not coins:
        return None
    fig = new_figure(1.0 + 2.8 * len(coins))
    axes: list[Axes] = list(fig.subplots(len(coins), 1, sharex=True, squeeze=False)[:, 0])
    for ax, coin in zip(axes, coins, strict=True):
        candles = prices[coin]
        lo, hi = np.searchsorted(candles.time, [spec.start, spec.end]).tolist()
        x = _dates(candles.time[lo:hi] + HOUR)  # a close is the price at the candle's end
        ax.plot(x, candles.close[lo:hi], color="#555555", lw=0.9, label=f"{coin} hourly close")
        for kind, (marker, color, label) in MARKERS.items():
            fills = [o.fill for o in run.result.fills if o.fill and o.fill.coin == coin
                     and _kind(o) == kind]  # fmt: skip
            if fills:
                ax.scatter(_dates([f.time for f in fills]), [f.price for f in fills],
                           marker=marker, s=60, color=color, edgecolors="black", linewidths=0.5,
                           zorder=3, label=f"{label} ({len(fills)})")  # fmt: skip
        dress_time_axis(ax, f"{coin}: fills of {run.name}", f"{coin} price (USD)", "${:,.6g}")
        ax.label_outer()  # the date axis once, under the last coin
    return png_bytes(fig)


def heatmap_png(data: HeatmapData) -> bytes:
    """The objective over the parameter grid, each cell annotated (grey: not run)."""
    nx, ny = len(data.x_values), len(data.y_values)
    fig = new_figure(max(3.6, 0.55 * ny + 2.2), max(6.0, min(WIDTH, 0.95 * nx + 3.0)))
    ax = fig.add_subplot()
    values = np.asarray(data.values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    cmap = colormaps["RdYlGn_r" if data.lower_is_better else "RdYlGn"].with_extremes(bad="#d9d9d9")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto", origin="lower")
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    high = high if high > low else low + 1.0
    image.set_clim(low, high)
    for (row, col), v in np.ndenumerate(values):
        if not math.isfinite(v):
            if data.undefined is None or not data.undefined[row, col]:  # undefined: left empty
                ax.text(col, row, "not run", ha="center", va="center", color="#555555", fontsize=8)
            continue
        r, g, b, _ = cmap((float(v) - low) / (high - low))
        ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
        ax.text(col, row, f"{v:.3g}", ha="center", va="center", color=ink, fontsize=9)
    ax.set_xticks(range(nx), labels=[str(v) for v in data.x_values])
    ax.set_yticks(range(ny), labels=[str(v) for v in data.y_values])
    by = f"{data.y_name} and {data.x_name}" if data.y_name else data.x_name
    ax.set(xlabel=data.x_name, ylabel=data.y_name, title=f"{data.objective} by {by}")
    fig.colorbar(image, ax=ax, label=data.objective)
    return png_bytes(fig)


# -- HTML --------------------------------------------------------------------------------------

REPORT_CSS = """body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1240px; }
h2 { border-bottom: 1px solid #ccc; } table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: right; font-size: 0.92em; }
th:first-child, td.label { text-align: left; } thead th { background: #f3f4f6; }
img { max-width: 100%; height: auto; display: block; } p.note { color: #555; }"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def img_html(png: bytes, alt: str) -> str:
    return f'<img src="{PNG_PREFIX}{base64.b64encode(png).decode("ascii")}" alt="{esc(alt)}">'


def note_html(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def table_html(css: str, head: Sequence[str], rows: Sequence[str]) -> str:
    """A table of escaped header ``head`` and ready-made ``<tr>`` rows."""
    heads, body = "".join(f"<th>{esc(h)}</th>" for h in head), "".join(rows)
    return f'<table class="{css}"><thead><tr>{heads}</tr></thead><tbody>{body}</tbody></table>'


def _summary_html(runs: Sequence[ReportRun]) -> str:
    columns = [_run_figures(r) for r in runs]
    hold = {k: columns[0][k] for k in ("coins", "span (UTC)", "starting cash")}
    hold |= _account_figures(runs[0].summary.buy_and_hold)
    head = ["", *(r.name for r in runs), f"buy & hold ({runs[0].name})"]
    rows = [f'<tr><td class="label">{esc(k)}</td>'
            + "".join(f"<td>{esc(v)}</td>" for v in (*(c[k] for c in columns), hold.get(k, DASH)))
            + "</tr>" for k in columns[0]]  # fmt: skip
    notes = "".join(
        note_html(f"{r.name}: {'; '.join(r.result.notes)}") for r in runs if r.result.notes
    )
    return table_html("summary", head, rows) + notes


def _cell(label: str, r: float | None) -> str:
    if r is None:
        return "<td></td>"
    if not math.isfinite(r):
        return f'<td title="{label}">{DASH}</td>'
    alpha = 0.12 + 0.6 * min(abs(r) / 0.25, 1.0)
    rgb = "22,163,74" if r > 0 else "220,38,38" if r < 0 else "200,200,200"
    style = f"background: rgba({rgb},{alpha:.2f})"
    return f'<td title="{label}" style="{style}">{esc(pm.fmt_pct(r, signed=True))}</td>'


def _monthly_html(run: ReportRun) -> str:
    rows = []
    for year, months in sorted(monthly_returns(run.result.equity).items()):
        cells = "".join(_cell(f"{year}-{m:02d}", months.get(m)) for m in range(1, 13))
        total = _cell(str(year), math.prod(1 + r for r in months.values()) - 1)
        rows.append(f'<tr><td class="label">{year}</td>{cells}{total}</tr>')
    rows = rows or [f'<tr><td colspan="14">{DASH} no equity recorded</td></tr>']
    return f"<h3>{esc(run.name)}</h3>" + table_html("monthly", ("year", *MONTHS, "year"), rows)


def _heatmap_html(data: HeatmapData) -> str:
    values = np.asarray(data.values, dtype=np.float64)
    best = "No cell of the grid was run."
    if np.isfinite(values).any():
        pick, word = (np.nanargmin, "Lowest") if data.lower_is_better else (np.nanargmax, "Highest")
        row, col = np.unravel_index(int(pick(values)), values.shape)
        at = f"{data.x_name} = {data.x_values[col]}"
        at += f", {data.y_name} = {data.y_values[row]}" if data.y_name else ""
        best = f"{word} {data.objective}: {values[row, col]:.4g} at {at}."
    return note_html(best) + img_html(heatmap_png(data), f"heatmap of {data.objective}")


def write_report(
    path: Path,
    *,
    title: str,
    runs: Sequence[ReportRun],
    prices: Mapping[str, Candles],
    heatmap: HeatmapData | None = None,
) -> Path:
    """Write the report of ``runs`` to ``path`` (replacing a file there) and return ``path``.

    The first run is the reference: the buy-and-hold column and curve and the trade chart are
    its own. ``prices`` holds the hourly candles of its coins (whole histories are fine)."""
    if not runs:
        raise ValueError("a backtest report needs at least one run")
    first, accounts = runs[0], [r.summary.metrics.account for r in runs]
    dd = "; ".join(f"{r.name}: {_dd(a.max_drawdown)} ({a.drawdown.describe()})"
                   for r, a in zip(runs, accounts, strict=True))  # fmt: skip
    trades = trades_png(first, prices)
    sections = [
        ("Summary", _summary_html(runs)),
        ("Equity", img_html(equity_png(runs), "equity curves and buy & hold")),
        ("Drawdown", note_html(f"Max drawdown (daily equity, as in the summary): {dd}.")
         + img_html(drawdown_png(runs), f"drawdown, max drawdown {dd}")),
        ("Trades", img_html(trades, f"fills of {first.name} on the price") if trades
         else note_html(f"{DASH} no prices for the coins of {first.name}")),
        ("Monthly returns", note_html("A month's last daily equity over the previous month's last "
                                  "(the first month: over the starting equity).")
         + "".join(_monthly_html(r) for r in runs)),
    ]  # fmt: skip
    if heatmap is not None:
        sections.append(("Parameter heatmap", _heatmap_html(heatmap)))
    spans = "; ".join(f"{r.name}: {', '.join(r.result.spec.coins)} {_span(r.result)}" for r in runs)
    size = write_page(path, title=title, intro=note_html(spans + " (UTC)"), sections=sections)
    log.info("backtest report %s: %d run(s), %d bytes", path, len(runs), size)
    return path


def write_page(path: Path, *, title: str, intro: str, sections: Sequence[tuple[str, str]]) -> int:
    """One self-contained report page: ``title``, the ``intro`` HTML, then each ``(heading,
    HTML)`` section. Replaces a file at ``path``; returns the page's length."""
    body = "".join(f"<section><h2>{esc(h)}</h2>{content}</section>" for h, content in sections)
    document = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{REPORT_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1>{intro}{body}</body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return len(document)
