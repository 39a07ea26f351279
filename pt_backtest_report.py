"""A backtest report: one self-contained HTML file with a run's figures and charts.

Why a file of its own: the figures of a backtest mean little without their pictures (the equity
beside buy-and-hold, how deep and how long the drawdowns went, where the bot bought and sold).
One HTML file with every image embedded (base64 PNG, no script, no other file) opens offline
in any browser, can be archived next to ``summary.json`` and compared with a later run.

Every figure comes from the run's :class:`pt_backtest_journal.Summary`, so it is the number the
command line and the ANALYTICS tab show (spec/metrics.md); the charts draw the run's own series.
The drawdown is always shown, its maximum named in the chart's title and in the text.

Charts use matplotlib's object API on the Agg canvas (no pyplot, so no global figure state and
no display): a report can be written from any thread. Times are UTC.
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
RUN_COLORS = ("#1f77b4", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22")
HOLD_COLOR = "#6b6b6b"
BUY_COLOR, DCA_COLOR, SELL_COLOR = "#16a34a", "#f59e0b", "#dc2626"
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
    """An objective over a grid of two parameters: ``values[row y, column x]``, NaN = not run."""

    x_name: str
    y_name: str
    x_values: tuple[Value, ...]
    y_values: tuple[Value, ...]
    values: FloatArray
    objective: str

    def __post_init__(self) -> None:
        shape = (len(self.y_values), len(self.x_values))
        if np.shape(self.values) != shape:
            raise ValueError(
                f"heatmap values have shape {np.shape(self.values)}, expected {shape} "
                f"(one row per {self.y_name}, one column per {self.x_name})"
            )


# -- figures -----------------------------------------------------------------------------------


def monthly_returns(equity: pm.EquitySeries) -> dict[int, dict[int, float]]:
    """``{year: {month: return}}`` on the daily equity: a month's last equity over the previous
    month's last, minus 1. The first month is measured from the series' first sample (the
    account's value when it started); a day without a sample carries the day before."""
    daily = pm.daily_equity(equity)
    if not daily.days.size:
        return {}
    previous = float(equity.equity[int(np.argsort(equity.time, kind="stable")[0])])
    months = daily.days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    last = np.r_[months[1:] != months[:-1], True]
    out: dict[int, dict[int, float]] = {}
    for month, value in zip(months[last].tolist(), daily.equity[last].tolist(), strict=True):
        year, index = divmod(int(month), 12)
        out.setdefault(1970 + year, {})[index + 1] = (
            value / previous - 1 if previous > 0 else math.nan
        )
        previous = value
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


def _figure(height: float, width: float = WIDTH) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", facecolor="white")
    finally:
        fig.clear()  # the figure holds its artists until collected; free them now
    return buffer.getvalue()


def _date_axis(ax: Axes) -> None:
    # matplotlib.dates ships no annotations for these two constructors
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10, tz=dt.UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator, tz=dt.UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(formatter)
    ax.grid(visible=True, alpha=0.3)


def _color(i: int) -> str:
    return RUN_COLORS[i % len(RUN_COLORS)]


def _holds(runs: Sequence[ReportRun]) -> list[tuple[int, pm.EquitySeries]]:
    """Each distinct buy-and-hold curve once (runs over the same span and coins share one)."""
    seen: list[tuple[int, pm.EquitySeries]] = []
    for i, run in enumerate(runs):
        bh = run.buy_and_hold
        if not any(np.array_equal(bh.equity, s.equity) and np.array_equal(bh.time, s.time)
                   for _, s in seen):  # fmt: skip
            seen.append((i, bh))
    return seen


def _hold_style(runs: Sequence[ReportRun], i: int) -> tuple[str, str]:
    return ("buy & hold", HOLD_COLOR) if i == 0 else (f"buy & hold ({runs[i].name})", _color(i))


def equity_png(runs: Sequence[ReportRun]) -> bytes:
    """Every run's equity in one chart, buy-and-hold dashed, the starting cash dotted."""
    fig = _figure(4.8)
    ax = fig.add_subplot()
    for i, run in enumerate(runs):
        eq = run.result.equity
        ax.plot(_dates(eq.time), eq.equity, color=_color(i), lw=1.5, label=run.name)
    for i, bh in _holds(runs):
        label, color = _hold_style(runs, i)
        ax.plot(_dates(bh.time), bh.equity, color=color, lw=1.2, ls="--", label=label)
    ax.axhline(runs[0].result.spec.starting_cash, color="#999999", lw=0.8, ls=":",
               label="starting cash")  # fmt: skip
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"${v:,.0f}"))
    ax.set_title("Equity (USD, marked to market at the bid)")
    ax.set_ylabel("equity (USD)")
    ax.set_xlabel("date (UTC)")
    _date_axis(ax)
    ax.legend(loc="best", framealpha=0.9)
    return _png(fig)


def drawdown_png(runs: Sequence[ReportRun]) -> bytes:
    """The underwater curve (percent below the running peak) of each run's hourly equity."""
    fig = _figure(3.9)
    ax = fig.add_subplot()
    for i, run in enumerate(runs):
        eq = run.result.equity
        under = -pm.drawdown_series(eq.equity) * 100
        if not under.size:
            continue
        x, color, k = _dates(eq.time), _color(i), int(np.argmin(under))
        ax.fill_between(x, under, 0, color=color, alpha=0.22, lw=0)
        ax.plot(x, under, color=color, lw=1.1, label=f"{run.name} (deepest hour {under[k]:.2f}%)")
        ax.plot(x[k], under[k], marker="o", color=color, ms=5)
        ax.annotate(f"{under[k]:.2f}%", (x[k], under[k]), xytext=(6, -4),
                    textcoords="offset points", color=color, fontsize=9, va="top")  # fmt: skip
    for i, bh in _holds(runs):
        label, color = _hold_style(runs, i)
        ax.plot(_dates(bh.time), -pm.drawdown_series(bh.equity) * 100, color=color, lw=0.9,
                ls="--", label=label)  # fmt: skip
    ax.axhline(0, color="#444444", lw=0.8)
    maxima = [(r.name, _dd(r.summary.metrics.account.max_drawdown)) for r in runs]
    named = maxima[0][1] if len(runs) == 1 else ", ".join(f"{n} {v}" for n, v in maxima)
    ax.set_title(f"Drawdown below the running peak: max drawdown {named} (daily equity)")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f}%"))
    ax.set_ylabel("drawdown (%)")
    ax.set_xlabel("date (UTC)")
    _date_axis(ax)
    ax.legend(loc="lower left", framealpha=0.9, fontsize=9)
    return _png(fig)


def _kind(order: ExecutedOrder) -> str:
    if order.intent.side is Side.SELL:
        return "sell"
    return "dca" if order.intent.tag is OrderTag.DCA else "buy"


_MARKERS = {  # kind: (marker, colour, legend)
    "buy": ("^", BUY_COLOR, "buy"),
    "dca": ("^", DCA_COLOR, "DCA buy"),
    "sell": ("v", SELL_COLOR, "sell"),
}


def trades_png(run: ReportRun, prices: Mapping[str, Candles]) -> bytes | None:
    """One subplot per coin: the hourly close over the span and the run's fills on it."""
    spec = run.result.spec
    coins = [c for c in spec.coins if c in prices]
    for coin in sorted(set(spec.coins) - set(coins)):
        log.warning("backtest report: no prices for %s, its trades are not drawn", coin)
    if not coins:
        return None
    fig = _figure(1.0 + 2.8 * len(coins))
    axes: list[Axes] = list(fig.subplots(len(coins), 1, sharex=True, squeeze=False)[:, 0])
    for ax, coin in zip(axes, coins, strict=True):
        candles = prices[coin]
        lo, hi = np.searchsorted(candles.time, [spec.start, spec.end]).tolist()
        ax.plot(_dates(candles.time[lo:hi] + HOUR), candles.close[lo:hi], color="#555555",
                lw=0.9, label=f"{coin} hourly close")  # fmt: skip
        for kind, (marker, color, label) in _MARKERS.items():
            fills = [o.fill for o in run.result.fills if o.fill and o.fill.coin == coin
                     and _kind(o) == kind]  # fmt: skip
            if fills:
                ax.scatter(_dates([f.time for f in fills]), [f.price for f in fills],
                           marker=marker, s=60, color=color, edgecolors="black", linewidths=0.5,
                           zorder=3, label=f"{label} ({len(fills)})")  # fmt: skip
        ax.set_title(f"{coin}: fills of {run.name}")
        ax.set_ylabel(f"{coin} price (USD)")
        _date_axis(ax)
        ax.legend(loc="best", framealpha=0.9, fontsize=9)
    axes[-1].set_xlabel("date (UTC)")
    return _png(fig)


def heatmap_png(data: HeatmapData) -> bytes:
    """The objective over the parameter grid, each cell annotated (grey: not run)."""
    nx, ny = len(data.x_values), len(data.y_values)
    fig = _figure(max(3.6, 0.55 * ny + 2.2), max(6.0, min(WIDTH, 0.95 * nx + 3.0)))
    ax = fig.add_subplot()
    values = np.asarray(data.values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    cmap = colormaps["RdYlGn"].with_extremes(bad="#d9d9d9")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto", origin="lower")
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    high = high if high > low else low + 1.0
    image.set_clim(low, high)
    for (row, col), v in np.ndenumerate(values):
        if math.isfinite(v):
            r, g, b, _ = cmap((float(v) - low) / (high - low))
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            ax.text(col, row, f"{v:.3g}", ha="center", va="center", color=ink, fontsize=9)
        else:
            ax.text(col, row, "not run", ha="center", va="center", color="#555555", fontsize=8)
    ax.set_xticks(range(nx), labels=[str(v) for v in data.x_values])
    ax.set_yticks(range(ny), labels=[str(v) for v in data.y_values])
    ax.set_xlabel(data.x_name)
    ax.set_ylabel(data.y_name)
    ax.set_title(f"{data.objective} by {data.y_name} and {data.x_name}")
    fig.colorbar(image, ax=ax, label=data.objective)
    return _png(fig)


# -- HTML --------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1240px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th:first-child, td.label { text-align: left; } thead th { background: #f3f4f6; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; }
p.note { color: #555; font-size: 0.92em; }
""".strip()


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="{PNG_PREFIX}{data}" alt="{_e(alt)}">'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + f'<td class="label">{_e(r[0])}</td>' + "".join(f"<td>{_e(c)}</td>" for c in r[1:])
        + "</tr>"
        for r in rows
    )  # fmt: skip
    cls = f' class="{_e(css)}"' if css else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary_html(runs: Sequence[ReportRun]) -> str:
    columns = [_run_figures(r) for r in runs]
    shared = {k: columns[0][k] for k in ("coins", "span (UTC)", "starting cash")}
    hold = shared | _account_figures(runs[0].summary.buy_and_hold)
    header = ["", *(r.name for r in runs), f"buy & hold ({runs[0].name})"]
    rows = [[k, *(c[k] for c in columns), hold.get(k, DASH)] for k in columns[0]]
    notes = "".join(
        f'<p class="note"><b>{_e(r.name)}</b>: {"; ".join(_e(n) for n in r.result.notes)}</p>'
        for r in runs
        if r.result.notes
    )
    return _table(header, rows, "summary") + notes


def _cell(year: int, month: int, r: float | None) -> str:
    if r is None:
        return "<td></td>"
    if not math.isfinite(r):
        return f'<td title="{year}-{month:02d}">{DASH}</td>'
    alpha = 0.12 + 0.6 * min(abs(r) / 0.25, 1.0)
    rgb = "22,163,74" if r > 0 else "220,38,38" if r < 0 else "200,200,200"
    style = f"background: rgba({rgb},{alpha:.2f})"
    label = f"{year}-{month:02d}" if month else f"{year}"
    return f'<td title="{label}" style="{style}">{_e(pm.fmt_pct(r, signed=True))}</td>'


def _monthly_html(run: ReportRun) -> str:
    table = monthly_returns(run.result.equity)
    head = "".join(f"<th>{m}</th>" for m in ("year", *MONTHS, "year total"))
    rows = []
    for year, months in sorted(table.items()):
        total = math.prod(1 + r for r in months.values()) - 1
        cells = "".join(_cell(year, m, months.get(m)) for m in range(1, 13))
        rows.append(f'<tr><td class="label">{year}</td>{cells}{_cell(year, 0, total)}</tr>')
    body = "".join(rows) or f'<tr><td colspan="14">{DASH} no equity recorded</td></tr>'
    return (
        f"<h3>{_e(run.name)}</h3>"
        f'<table class="monthly"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def _heatmap_html(data: HeatmapData) -> str:
    values = np.asarray(data.values, dtype=np.float64)
    text = "No cell of the grid was run."
    if np.isfinite(values).any():
        row, col = np.unravel_index(int(np.nanargmax(values)), values.shape)
        text = (
            f"Highest {data.objective}: {values[row, col]:.4g} at {data.x_name} = "
            f"{data.x_values[col]}, {data.y_name} = {data.y_values[row]}."
        )
    alt = f"{data.objective} by {data.y_name} and {data.x_name}"
    return f'<p class="note">{_e(text)}</p>' + _img(heatmap_png(data), alt)


def write_report(
    path: Path,
    *,
    title: str,
    runs: Sequence[ReportRun],
    prices: Mapping[str, Candles],
    heatmap: HeatmapData | None = None,
) -> Path:
    """Write the report of ``runs`` (the first one is the reference: its buy-and-hold column and
    its trades are shown) to ``path``, replacing a file there; returns ``path``."""
    if not runs:
        raise ValueError("a backtest report needs at least one run")
    first = runs[0]
    dd = "; ".join(
        f"{r.name}: {_dd(r.summary.metrics.account.max_drawdown)} "
        f"({r.summary.metrics.account.drawdown.describe()})"
        for r in runs
    )
    trades = trades_png(first, prices)
    sections = [
        ("Summary", _summary_html(runs)),
        ("Equity", _img(equity_png(runs), "equity curves and buy & hold")),
        (
            "Drawdown",
            f'<p class="note">Max drawdown (daily equity, as in the summary): {_e(dd)}. The '
            "chart draws every equity sample; its deepest point is marked.</p>"
            + _img(drawdown_png(runs), f"drawdown, max {dd}"),
        ),
        (
            "Trades",
            _img(trades, f"fills of {first.name} on the price")
            if trades
            else f'<p class="note">{DASH} no prices for the coins of {_e(first.name)}</p>',
        ),
        (
            "Monthly returns",
            "<p class=\"note\">A month's last daily equity over the previous month's last "
            "(the first month: over the starting equity).</p>"
            + "".join(_monthly_html(r) for r in runs),
        ),
    ]
    if heatmap is not None:
        sections.append(("Parameter heatmap", _heatmap_html(heatmap)))
    spans = ", ".join(f"{r.name}: {', '.join(r.result.spec.coins)} {_span(r.result)}" for r in runs)
    body = "".join(f"<section><h2>{_e(h)}</h2>{content}</section>" for h, content in sections)
    document = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{_e(title)}</h1><p class="note">{_e(spans)} (UTC)</p>{body}</body></html>\n'
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(document, encoding="utf-8")
    partial.replace(path)
    log.info("backtest report %s: %d run(s), %d bytes", path, len(runs), len(document))
    return path
