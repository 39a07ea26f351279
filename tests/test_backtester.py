"""The backtester's honesty: it replays the live logic, never reads the future, and shows crashes.

- Equivalence: the real :class:`pt_thinker.Thinker` and :class:`pt_trader_core.Trader` (paper
  broker, SQLite journal, demo replay market) stepped on the backtester's simulated clock make
  the same fills as :func:`pt_backtest_engine.run_backtest`: same times, sides, quantities, and
  prices equal to within float rounding.
- No look-ahead: a history whose candles after a moment are NaN gives the same fills up to that
  moment as the clean history.
- The May 2021 crash shows as a drawdown in the summary, as deep as the equity really fell.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

import pt_config
import pt_ohlcv
import pt_trainer
from pt_backtest_engine import BacktestError, BacktestSpec, ExecutedOrder, run_backtest
from pt_backtest_journal import summarize, write_journal
from pt_backtest_summary import buy_and_hold
from pt_backtester import main
from pt_broker_paper import PaperBroker
from pt_config_schema import Settings
from pt_exchanges import ExchangeManager
from pt_journal import TradeJournal
from pt_replay import ReplayMarket
from pt_signals import SIGNALS_SCHEMA, SignalsSnapshot
from pt_state import DataLayout, StateWriter
from pt_thinker import Thinker
from pt_thinker_exchanges import MarketData
from pt_trader import VenuePrices
from pt_trader_core import Trader
from pt_types import HOUR, Candles, Mode, OrderTag, Side
from tests.fake_clock import FakeClock


def utc(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp())


SETTINGS = Settings().model_copy(
    update={"coins": ("BTC",), "start_allocation_pct": 5.0, "trade_start_level": 2}
)


Fills = list[tuple[float, Side, float, float]]


def btc() -> Candles:
    return pt_ohlcv.load_bundled("BTC")


def fills(orders: tuple[ExecutedOrder, ...]) -> Fills:
    return [(o.time, o.fill.side, o.fill.quantity, o.fill.price) for o in orders if o.fill]


# -- equivalence with the live thinker and trader -----------------------------------------------


def live_fills(root: Path, settings: Settings, start: int, end: int, step: int) -> Fills:
    """The real thinker and trader, in demo mode, ticked once per step of the simulated clock."""
    layout = DataLayout(root).ensure()
    data = pt_config.to_data(settings)
    layout.settings_file.write_text(json.dumps(data), encoding="utf-8")
    for coin in settings.coins:
        assert pt_trainer.main([coin, "--data-dir", str(root)]) == 0
    clock = FakeClock(float(start))
    replay = ReplayMarket(clock, spread_pct=settings.demo.spread_pct)
    market = MarketData(ExchangeManager([replay], clock=clock), clock=clock)
    writer = StateWriter(layout.signals_file, SIGNALS_SCHEMA, clock=clock)
    thinker = Thinker(layout, market, wall=clock, writer=writer)
    journal = TradeJournal(layout.journal_db, mode=Mode.DEMO, clock=clock)
    venues = VenuePrices(market, wall=clock)
    broker = PaperBroker.from_settings(journal, venues.quote, settings.paper, clock=clock)
    snapshot: list[SignalsSnapshot | None] = [None]
    trader = Trader(
        broker=broker,
        journal=journal,
        signals=lambda: snapshot[0],
        clock=clock,
        settings=lambda: settings,
        wall=clock,
    )
    for t in range(start, end, step):
        clock.t = float(t)
        snapshot[0] = thinker.step(settings, float(t))
        trader.tick()
    return [(f.time, f.side, f.quantity, f.price) for f in journal.fills()]


def test_the_backtest_makes_the_live_thinker_and_traders_fills(tmp_path: Path) -> None:
    start, end = utc("2022-06-01"), utc("2022-06-08")
    settings = SETTINGS.model_copy(
        update={"demo": SETTINGS.demo.model_copy(update={"start": "2022-06-01"})}
    )
    spec = BacktestSpec.from_settings(settings, start=start, end=end)
    backtest = fills(run_backtest(spec, {"BTC": btc()}).orders)
    live = live_fills(tmp_path, settings, start, end, spec.step_seconds)
    assert len(backtest) >= 6, "the span must trade for the comparison to mean something"
    assert {s for _, s, _, _ in backtest} == {Side.BUY, Side.SELL}
    assert [(t, s, q) for t, s, q, _ in live] == [(t, s, q) for t, s, q, _ in backtest]
    for (_, _, _, p_live), (_, _, _, p_bt) in zip(live, backtest, strict=True):
        assert p_live == pytest.approx(p_bt, rel=1e-12)


# -- no look-ahead ------------------------------------------------------------------------------


def poisoned(candles: Candles, after: int) -> Candles:
    """The same history with every price from ``after`` on replaced by NaN."""
    cut = candles.time >= after

    def nan_after(x: np.ndarray) -> np.ndarray:
        return np.where(cut, np.nan, x)

    return Candles(
        candles.time,
        nan_after(candles.open),
        nan_after(candles.high),
        nan_after(candles.low),
        nan_after(candles.close),
        nan_after(candles.volume),
    )


def test_a_future_of_nan_changes_nothing_before_it() -> None:
    start, cut, end = utc("2022-06-01"), utc("2022-06-10") + 7 * HOUR, utc("2022-06-15")
    spec = BacktestSpec.from_settings(SETTINGS, start=start, end=end)
    clean = run_backtest(spec, {"BTC": btc()})
    dirty = run_backtest(spec, {"BTC": poisoned(btc(), cut)})
    before = [o for o in clean.orders if o.time < cut]
    assert len(before) >= 4 and len(clean.orders) > len(before)
    assert fills(tuple(before)) == fills(dirty.orders)
    clean_eq = clean.equity.equity[clean.equity.time < cut]
    assert np.array_equal(clean_eq, dirty.equity.equity[dirty.equity.time < cut])
    assert any("dropped" in n for n in dirty.notes), dirty.notes  # the NaN rows are named


# -- crash periods are shown, not hidden ------------------------------------------------------


def test_the_may_2021_crash_shows_as_a_drawdown(tmp_path: Path) -> None:
    settings = SETTINGS.model_copy(update={"start_allocation_pct": 10.0})
    spec = BacktestSpec.from_settings(settings, start=utc("2021-05-01"), end=utc("2021-06-01"))
    result = run_backtest(spec, {"BTC": btc()})
    summary = summarize(
        result, write_journal(result, tmp_path / "j.sqlite3"), buy_and_hold(spec, {"BTC": btc()})
    )
    daily = result.equity.equity
    worst = float(np.max(1 - daily / np.maximum.accumulate(daily)))
    dd = summary.metrics.account.max_drawdown
    assert dd is not None and dd > 0.05
    assert dd <= worst + 1e-12  # daily closes never fall deeper than the hourly curve
    assert summary.buy_and_hold.max_drawdown is not None and summary.buy_and_hold.max_drawdown > 0.3
    assert summary.metrics.max_floating_drawdown is not None
    assert summary.metrics.max_floating_drawdown > 0.1


# -- the price path and the trailing margin -----------------------------------------------------


def shown_price(reason: str, label: str) -> float:
    found = re.search(label + r" \$?([\d,.]+)", reason)
    assert found is not None, reason
    return float(found.group(1).replace(",", ""))


def test_trailing_sells_follow_the_path_peak() -> None:
    """Each trailing sell's peak is a price the path really reached after the entry, and the
    sell's bid is under its line, which is at least peak × (1 − gap)."""
    candles = btc()
    spec = BacktestSpec.from_settings(SETTINGS, start=utc("2022-06-01"), end=utc("2022-06-15"))
    result = run_backtest(spec, {"BTC": candles})
    half, gap = spec.quote_spread_pct / 200, spec.strategy.trailing_gap_pct / 100
    entry_at: float | None = None
    sells = 0
    for o in result.fills:
        assert o.fill is not None
        if o.intent.tag is OrderTag.ENTRY:
            entry_at = o.time
            continue
        if o.fill.side is not Side.SELL:
            continue
        assert entry_at is not None
        peak = shown_price(o.intent.reason, "peak")
        rows = (candles.time >= entry_at - HOUR) & (candles.time <= o.time)
        assert peak <= float(candles.high[rows].max()) * (1 - half) * (1 + 1e-6)
        line = shown_price(o.intent.reason, "under the line")
        bid = o.fill.price / (1 - spec.fills.spread_pct / 100)
        assert bid < line * (1 + 1e-6)  # the reason's prices are rounded for display
        assert line >= peak * (1 - gap) * (1 - 1e-6)
        sells += 1
    assert sells >= 3


def test_bad_spans_and_steps_are_refused() -> None:
    with pytest.raises(BacktestError, match="divide 1200"):
        BacktestSpec.from_settings(
            SETTINGS, start=utc("2022-06-01"), end=utc("2022-06-02"), step_seconds=700
        )
    with pytest.raises(BacktestError, match="empty"):
        BacktestSpec.from_settings(SETTINGS, start=utc("2022-06-02"), end=utc("2022-06-01"))


def test_the_command_line_runs_and_refuses_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    data = ["--data-dir", str(tmp_path / "data")]
    args = ["run", *data, "--coins", "BTC", "--start", "2022-06-01", "--end", "2022-06-05"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "buy & hold" in printed and "max drawdown" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["coins"] == ["BTC"] and summary["start"] == "2022-06-01"
    assert (out / "journal.sqlite3").exists()
    lines = (out / "fills.csv").read_text().splitlines()
    assert lines[0].startswith("time_utc,coin,side")
    with TradeJournal.open_readonly(out / "journal.sqlite3") as journal:
        assert len(lines) - 1 == len(journal.fills()) > 0
    assert (
        main(["run", *data, "--coins", "NOPE", "--start", "2022-06-01", "--end", "2022-06-05"]) == 2
    )
    assert "unknown coin NOPE" in capsys.readouterr().err
    assert (
        main(["run", *data, "--coins", "BTC", "--start", "2010-01-01", "--end", "2022-06-05"]) == 2
    )
    err = capsys.readouterr().err
    assert "outside BTC's data" in err and "2017-08-17" in err
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--step", "700"])
    assert exit_info.value.code == 2
    assert "must divide 1200" in capsys.readouterr().err


def test_a_missing_hour_trades_nothing_and_math_stays_finite() -> None:
    candles = btc()
    gap_at = utc("2022-06-03")
    keep = (candles.time < gap_at) | (candles.time >= gap_at + 6 * HOUR)
    holed = Candles(candles.time[keep], candles.open[keep], candles.high[keep],
                    candles.low[keep], candles.close[keep], candles.volume[keep])  # fmt: skip
    spec = BacktestSpec.from_settings(SETTINGS, start=utc("2022-06-01"), end=utc("2022-06-06"))
    result = run_backtest(spec, {"BTC": holed})
    assert not [o for o in result.orders if gap_at <= o.time < gap_at + 6 * HOUR]
    assert np.all(np.isfinite(result.equity.equity))
    assert math.isfinite(float(result.equity.equity[-1]))


def test_the_monte_carlo_command_reports_paths_and_shuffles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mc"
    args = ["monte-carlo", "--data-dir", str(tmp_path / "data"), "--coins", "BTC", "--start",
            "2022-06-01", "--end", "2022-06-08", "--runs", "2", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "P(the DCA ladder runs out of cash)" in printed
    data = json.loads((out / "montecarlo.json").read_text())
    assert len(data["paths"]["final_return"]) == 2 and data["trade_shuffle"]["runs"] == 100
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--runs", "0"])
    assert exit_info.value.code == 2
    assert "at least 1" in capsys.readouterr().err


def test_the_optimize_command_ranks_trials_and_refuses_an_invalid_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "grid.json", tmp_path / "bad.json"
    good.write_text(json.dumps({"trailing_gap_pct": [0.3, 0.5]}))
    bad.write_text(json.dumps({"trade_start_level": [2, 9]}))
    data = str(tmp_path / "data")
    args = ["optimize", "--data-dir", data, "--coins", "BTC", "--start", "2022-06-01",
            "--end", "2022-06-05", "--workers", "1", "--out", str(tmp_path)]  # fmt: skip
    assert main([*args, "--grid", str(good)]) == 0
    assert "2 trials ranked by sharpe" in capsys.readouterr().out
    assert len((tmp_path / "optimize.jsonl").read_text().splitlines()) == 2
    assert main([*args, "--grid", str(bad)]) == 2
    assert "trade_start_level = 9" in capsys.readouterr().err
