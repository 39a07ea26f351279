"""The backtest report: a real two-month BTC backtest written as one HTML file, and the monthly
returns against hand-computed numbers. The optimisation report: its ranking in the ranking's
order and its heatmap's cells against hand-made trials, and the optimize command writing it."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pt_metrics as pm
import pt_ohlcv
from pt_backtest_engine import BacktestSpec, run_backtest
from pt_backtest_journal import summarize, write_journal
from pt_backtest_optimize import TrialResult, rank
from pt_backtest_optreport import (
    objective_map,
    ranking_rows,
    varied_keys,
    write_optimization_report,
)
from pt_backtest_report import PNG_PREFIX, HeatmapData, ReportRun, monthly_returns, write_report
from pt_backtest_summary import buy_and_hold, summary_lines
from pt_backtester import main
from pt_config_schema import Settings
from pt_types import DAY, HOUR, OrderTag

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"
SECTIONS = ["Summary", "Equity", "Drawdown", "Trades", "Monthly returns", "Parameter heatmap"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ODD_NAME = "tight <&> trail"


def utc(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ReportRun:
    settings = Settings().model_copy(update={"start_allocation_pct": 2.0})
    hourly = {"BTC": pt_ohlcv.load_bundled("BTC")}
    spec = BacktestSpec.from_settings(
        settings, start=utc("2022-05-01"), end=utc("2022-07-01"), coins=["BTC"]
    )
    result = run_backtest(spec, hourly)
    journal = write_journal(result, tmp_path_factory.mktemp("bt") / "journal.sqlite3")
    try:
        summary = summarize(result, journal, buy_and_hold(spec, hourly))
    finally:
        journal.close()
    return ReportRun("settings", result, summary, buy_and_hold(spec, hourly))


@pytest.fixture(scope="module")
def heatmap() -> HeatmapData:
    values = np.array([[0.4, -0.2, 1.3], [0.9, np.nan, -1.1]])
    return HeatmapData("trailing_gap_pct", "dca_levels", (0.25, 0.5, 1.0), (2, 3), values, "Sharpe")


@pytest.fixture(scope="module")
def report(run: ReportRun, heatmap: HeatmapData, tmp_path_factory: pytest.TempPathFactory) -> str:
    other = ReportRun(ODD_NAME, run.result, run.summary, run.buy_and_hold)
    path = tmp_path_factory.mktemp("report") / "out" / "report.html"
    written = write_report(
        path,
        title="BTC May–June 2022",
        runs=[run, other],
        prices={"BTC": pt_ohlcv.load_bundled("BTC")},
        heatmap=heatmap,
    )
    assert written == path
    assert path.is_file()
    return path.read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    start = text.index(f"<h2>{heading}</h2>")
    end = text.find("</section>", start)
    return text[start:end]


def images(text: str) -> list[tuple[str, bytes]]:
    """(alt text, PNG bytes) of every embedded image, in order."""
    found = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)">', text)
    return [(alt, base64.b64decode(data, validate=True)) for data, alt in found]


def test_the_report_is_one_self_contained_html_document(report: str) -> None:
    assert report.startswith("<!DOCTYPE html>")
    assert report.count("<html") == 1
    assert report.rstrip().endswith("</html>")
    assert re.findall(r"<h2>(.*?)</h2>", report) == SECTIONS
    assert "<script" not in report
    sources = re.findall(r'(?:src|href)="([^"]*)"', report)
    assert sources
    assert all(s.startswith(PNG_PREFIX) for s in sources)  # nothing outside the file


def test_every_chart_is_an_embedded_png(report: str) -> None:
    found = images(report)
    assert report.count('<img src="data:image/png;base64,') == 4 == len(found)
    for _, png in found:
        assert png.startswith(PNG_SIGNATURE)
        width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
        assert width >= 600
        assert height >= 300


def test_one_run_without_a_heatmap(run: ReportRun, tmp_path: Path) -> None:
    path = write_report(
        tmp_path / "one.html", title="one", runs=[run], prices={"BTC": pt_ohlcv.load_bundled("BTC")}
    )
    text = path.read_text(encoding="utf-8")
    assert re.findall(r"<h2>(.*?)</h2>", text) == SECTIONS[:-1]
    found = images(text)
    assert len(found) == 3
    assert all(png.startswith(PNG_SIGNATURE) for _, png in found)
    equity = next(png for alt, png in found if alt.startswith("equity"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "backtest-report-equity.png").write_bytes(equity)


def test_the_max_drawdown_is_shown_as_the_summary_has_it(run: ReportRun, report: str) -> None:
    account = run.summary.metrics.account
    assert account.max_drawdown is not None
    assert account.max_drawdown > 0
    shown = f"{-account.max_drawdown * 100:.2f}%"
    cli = summary_lines(
        run.summary.metrics,
        run.summary.buy_and_hold,
        deepest_dca=run.summary.deepest_dca,
        starting_cash=run.result.spec.starting_cash,
    )
    assert any(line.startswith("max drawdown ") and shown in line for line in cli)
    row = re.search(r'<td class="label">max drawdown</td>(.*?)</tr>', section(report, "Summary"))
    assert row is not None
    hold_dd = run.summary.buy_and_hold.max_drawdown
    assert hold_dd is not None
    hold = f"{-hold_dd * 100:.2f}%"
    assert re.findall(r"<td>(.*?)</td>", row.group(1)) == [shown, shown, hold]
    drawdown = section(report, "Drawdown")
    assert f"settings: {shown}" in drawdown
    assert account.drawdown.describe() in drawdown


def test_the_summary_has_a_column_per_run_and_buy_and_hold(run: ReportRun, report: str) -> None:
    summary = section(report, "Summary")
    heads = re.findall(r"<th>(.*?)</th>", summary)
    assert heads == ["", "settings", "tight &lt;&amp;&gt; trail", "buy &amp; hold (settings)"]
    assert ODD_NAME not in report  # every text is escaped
    trades = re.search(r'<td class="label">closed trades</td><td>(\d+)</td>', summary)
    assert trades is not None
    assert int(trades.group(1)) == run.summary.metrics.trades.trades
    assert pm.fmt_usd(run.summary.metrics.account.end_equity) in summary


def test_the_run_traded_so_the_trade_chart_has_markers(run: ReportRun) -> None:
    tags = {o.intent.tag for o in run.result.fills}
    assert {OrderTag.ENTRY, OrderTag.DCA} <= tags  # buys and DCA buys to draw


def test_the_monthly_table_has_the_run_s_months(run: ReportRun, report: str) -> None:
    months = monthly_returns(run.result.equity)
    assert {y: sorted(m) for y, m in months.items()} == {2022: [5, 6]}
    eq = run.result.equity
    growth = (1 + months[2022][5]) * (1 + months[2022][6])
    assert growth == pytest.approx(eq.equity[-1] / eq.equity[0])
    table = section(report, "Monthly returns").split("<h3>")[1]  # the first run's
    cells = re.findall(
        r'<td title="(\d{4}-\d{2})" style="background: rgba\([^"]*\)">(.*?)</td>', table
    )
    assert cells == [(f"2022-{m:02d}", pm.fmt_pct(months[2022][m], signed=True)) for m in (5, 6)]
    assert re.search(r'<td class="label">2022</td>', table)


def test_the_heatmap_section_names_the_best_cell(report: str) -> None:
    text = section(report, "Parameter heatmap")
    assert "Highest Sharpe: 1.3 at trailing_gap_pct = 1.0, dca_levels = 2." in text
    assert [alt for alt, _ in images(text)] == ["heatmap of Sharpe"]


def test_heatmap_values_must_match_the_axes() -> None:
    with pytest.raises(ValueError, match="shape"):
        HeatmapData("x", "y", (1, 2), (1, 2, 3), np.zeros((2, 3)), "Sharpe")


def hand_series() -> pm.EquitySeries:
    """Daily samples at noon, 2023-12-15 .. 2024-03-31, with the month ends set by hand: none
    from 2024-02-25 (Feb 24's value carries to the month's end) and two on 2024-03-31."""
    start, end = utc("2023-12-15T12:00"), utc("2024-03-31T12:00")
    times = [
        t for t in range(start, end + 1, DAY) if not utc("2024-02-25") <= t < utc("2024-03-01")
    ]
    values = {
        utc("2023-12-31T12:00"): 105.0,
        utc("2024-01-31T12:00"): 115.5,
        utc("2024-02-24T12:00"): 103.95,
        utc("2024-03-31T12:00"): 20.0,  # not the day's last sample
    }
    equity = [values.get(t, 100.0 + (t - start) / DAY) for t in times]
    times.append(utc("2024-03-31T20:00"))
    equity.append(124.74)
    t, e = np.array(times, dtype=np.float64), np.array(equity)
    return pm.EquitySeries(t, e, e, np.zeros(len(e)))


def test_monthly_returns_by_hand() -> None:
    months = monthly_returns(hand_series())
    assert set(months) == {2023, 2024}
    assert months[2023] == {12: pytest.approx(105.0 / 100.0 - 1)}  # from the first sample
    assert months[2024] == {
        1: pytest.approx(0.10),
        2: pytest.approx(-0.10),
        3: pytest.approx(0.20),
    }


def test_monthly_returns_of_nothing_and_of_one_hour() -> None:
    assert monthly_returns(pm.EquitySeries.empty()) == {}
    t = float(utc("2024-05-10T00:00") + HOUR)
    one = pm.EquitySeries(np.array([t]), np.array([50.0]), np.array([50.0]), np.array([0.0]))
    assert monthly_returns(one) == {2024: {5: 0.0}}


# -- the optimisation report ------------------------------------------------------------------

GAP, LENGTH, MULT = "trailing_gap_pct", "predictor.pattern_length", "dca_multiplier"
# (gap, pattern length, DCA multiplier): (sharpe, max drawdown); (1.0, 2) is not run at all
CELLS: dict[tuple[float, int, float], tuple[float | None, float]] = {
    (0.5, 2, 2.0): (0.7, 0.05),
    (0.3, 1, 2.0): (0.5, 0.2),
    (0.5, 1, 2.0): (None, 0.0),
    (1.0, 1, 2.0): (-0.4, 0.3),
    (0.3, 2, 3.0): (1.0, 0.15),
    (0.3, 1, 3.0): (1.5, 0.1),
    (0.5, 1, 3.0): (math.nan, 0.0),
    (1.0, 1, 3.0): (None, 0.25),
    (0.3, 2, 2.0): (2.0, 0.4),
}


def hand_trials(
    cells: dict[tuple[float, int, float], tuple[float | None, float]],
) -> list[TrialResult]:
    out = []
    for n, ((gap, length, mult), (sharpe, dd)) in enumerate(cells.items()):
        figures: dict[str, Any] = {"sharpe": sharpe, "max_drawdown": dd, "total_return": 0.01 * n,
                                   "trades": n, "max_drawdown_dates": "-"}  # fmt: skip
        out.append(TrialResult({GAP: gap, LENGTH: length, MULT: mult}, figures, 1.0, str(n)))
    return out


def same(a: np.ndarray, b: list[list[float]]) -> bool:
    return np.array_equal(a, np.array(b), equal_nan=True)


def test_the_heatmap_holds_the_best_trial_of_each_cell() -> None:
    trials = hand_trials(CELLS)
    assert varied_keys(trials) == [GAP, LENGTH, MULT]  # most values first; ties in point order
    chart = objective_map(trials, "sharpe")
    assert chart is not None
    data = chart.data
    assert (data.x_name, data.y_name) == (GAP, LENGTH)
    assert (data.x_values, data.y_values) == ((0.3, 0.5, 1.0), (1, 2))
    assert same(data.values, [[1.5, np.nan, -0.4], [2.0, 0.7, np.nan]])
    assert data.undefined is not None  # run, but no trial there has a Sharpe:
    assert data.undefined.tolist() == [[False, True, False], [False, False, False]]
    assert not data.lower_is_better
    assert f"{MULT} also varied: each cell shows the highest sharpe" in chart.caption
    assert "An empty cell" in chart.caption and "'not run'" in chart.caption
    assert f"Best cell: 2 at {GAP} = 0.3, {LENGTH} = 2." in chart.caption
    drawdown = objective_map(trials, "max_drawdown")
    assert drawdown is not None and drawdown.data.lower_is_better
    assert same(drawdown.data.values, [[0.1, 0.0, 0.25], [0.15, 0.05, np.nan]])
    assert drawdown.data.undefined is not None and not drawdown.data.undefined.any()
    assert "each cell shows the lowest max_drawdown" in drawdown.caption


def test_one_varied_parameter_is_one_row_and_none_is_no_heatmap(tmp_path: Path) -> None:
    one = hand_trials({(g, 1, 2.0): (s, 0.1) for g, s in ((1.0, 0.2), (0.3, None), (0.5, 0.9))})
    chart = objective_map(one, "sharpe")
    assert chart is not None
    assert (chart.data.x_name, chart.data.y_name, chart.data.y_values) == (GAP, "", ("",))
    assert chart.data.x_values == (0.3, 0.5, 1.0)
    assert same(chart.data.values, [[np.nan, 0.9, 0.2]])
    assert "also varied" not in chart.caption and "'not run'" not in chart.caption
    text = write_optimization_report(
        tmp_path / "one.html", one, objective="sharpe", title="one"
    ).read_text(encoding="utf-8")
    assert [alt for alt, png in images(text) if png.startswith(PNG_SIGNATURE)] == [
        "heatmap of sharpe"
    ]
    assert objective_map(one[:1], "sharpe") is None
    alone = write_optimization_report(tmp_path / "alone.html", one[:1], objective="sharpe",
                                      title="alone").read_text(encoding="utf-8")  # fmt: skip
    assert "nothing to map" in alone and not images(alone)


def table_rows(text: str, css: str) -> list[list[str]]:
    table = re.search(f'<table class="{css}">(.*?)</table>', text)
    assert table is not None
    body = table.group(1).split("<tbody>")[1]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall("<tr>(.*?)</tr>", body)]


def test_the_ranking_table_follows_the_ranking(tmp_path: Path) -> None:
    trials = hand_trials(CELLS)
    head, rows = ranking_rows(trials, "sharpe")
    assert head == ["#", GAP, LENGTH, MULT, "sharpe", "total_return", "max_drawdown", "trades"]
    ranked = rank(trials, "sharpe")
    assert [[float(r[1]), int(r[2]), float(r[3])] for r in rows] == [
        list(t.point.values()) for t in ranked
    ]
    assert [r[4] for r in rows] == ["2.00", "1.50", "1.00", "0.70", "0.50", "-0.40", "—", "—", "—"]
    path = write_optimization_report(
        tmp_path / "out" / "opt.html", trials, objective="max_drawdown", title="<grid>", top=4
    )
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<title>&lt;grid&gt;</title>" in text
    assert re.findall(r"<h2>(.*?)</h2>", text) == ["Ranking", "Parameter heatmap"]
    shown = table_rows(text, "ranking")
    by_dd = rank(trials, "max_drawdown")[:4]
    assert [r[0] for r in shown] == ["1", "2", "3", "4"]
    assert [r[1:4] for r in shown] == [[str(v) for v in t.point.values()] for t in by_dd]
    assert [r[6] for r in shown] == ["0.00%", "0.00%", "-5.00%", "-10.00%"]
    assert "9 trials ranked by max_drawdown (lower is better" in text
    [(alt, png)] = images(text)
    assert alt == "heatmap of max_drawdown" and png.startswith(PNG_SIGNATURE)


def test_the_optimize_command_writes_its_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"trailing_gap_pct": [0.3, 1.0]}))
    args = ["optimize", "--data-dir", str(tmp_path / "data"), "--coins", "BTC", "--start",
            "2022-06-01", "--end", "2022-06-08", "--workers", "1", "--out", str(tmp_path),
            "--grid", str(grid), "--name", "gaps"]  # fmt: skip
    assert main(args) == 0
    report = tmp_path / "gaps.html"
    assert f"report: {report}" in capsys.readouterr().out
    text = report.read_text(encoding="utf-8")
    rows = table_rows(text, "ranking")
    lines = (tmp_path / "gaps.jsonl").read_text(encoding="utf-8").splitlines()
    trials = [json.loads(line) for line in lines]
    best = max(trials, key=lambda t: t["figures"]["sharpe"])
    assert len(rows) == 2 and rows[0][1] == str(best["point"]["trailing_gap_pct"])
    assert "BTC 2022-06-01 .. 2022-06-08" in text
    assert [alt for alt, _ in images(text)] == ["heatmap of sharpe"]
