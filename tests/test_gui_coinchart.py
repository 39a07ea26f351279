"""The hub's coin and account charts in a real Tk window (Xvfb), over a real demo data folder:
the bundled market replayed on a started demo clock, a real journal, the trader's status file and
the thinker's signals written by their real writers; screenshots saved for review."""

from __future__ import annotations

import gc
import itertools
import json
import math
import threading
import time
import tkinter as tk
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from pt_config import parse, save
from pt_config_schema import Settings
from pt_errors import TemporaryExchangeError
from pt_gui_chartdata import (
    MarkerKind,
    bar_index,
    fmt_price,
    neural_view,
    reduce_points,
    spread_labels,
    trade_lines,
)
from pt_gui_coinchart import (
    LINE_COLOURS,
    MARKER_COLOURS,
    AccountChart,
    CandleChart,
    ChartLoader,
    ChartWorker,
    CoinChart,
)
from pt_gui_theme import ACCENT, NEGATIVE, PANEL, apply_theme
from pt_journal import TradeJournal
from pt_patterns import levels, spaced_bounds
from pt_replay import start_clock
from pt_signals import (
    SIGNALS_SCHEMA,
    CoinSignal,
    CoinStatus,
    SignalsSnapshot,
    Stage,
    TfSide,
    TimeframeView,
    snapshot_to_data,
)
from pt_state import DataLayout, StateWriter
from pt_strategy import Decision, MarketView, PositionState, StrategyConfig, TrailingState
from pt_thinker_exchanges import MarketData, build_market
from pt_trader import STATUS_SCHEMA, status_data
from pt_trader_core import CoinView, TickResult
from pt_types import HOUR, Candles, Mode, Timeframe, TimeframeSignal
from tests.gui_support import pump, screenshot

NOW = 1_709_251_200.0 + 14 * HOUR + 1800  # 2024-03-01 14:30 UTC on the demo clock (paused)
FILL_HOURS = {"entry": 30, "dca": 20, "sell": 10, "again": 3}  # hours before NOW


@dataclass(frozen=True)
class World:
    layout: DataLayout
    settings: Settings
    market: MarketData
    status: dict[str, object]  # the BTC row of trader_status.json as written
    fills: dict[str, tuple[float, float]]  # name -> (time, price)


def candle_mid(candles: Candles, t: float) -> float:
    i = int(np.searchsorted(candles.time, t, side="right")) - 1
    return float((candles.high[i] + candles.low[i]) / 2)


def write_journal(layout: DataLayout, candles: Candles) -> dict[str, tuple[float, float]]:
    """A BTC entry, a DCA, a trailing sell and a new entry; the account hourly for 400 h."""
    fills = {k: (NOW - h * HOUR + 600, 0.0) for k, h in FILL_HOURS.items()}
    fills = {k: (t, round(candle_mid(candles, t), 2)) for k, (t, _) in fills.items()}
    with TradeJournal(layout.journal_db, mode=Mode.DEMO, clock=lambda: NOW) as j:
        with j.transaction():  # one commit, not 400 synced ones
            for i in range(400):
                t = NOW - (400 - i) * HOUR + 60
                value = round(10_000 + 80 * math.sin(i / 15) + i * 0.75, 2)
                j.record_equity(t, value, 9_000, 1_000)
        j.log_entry("BTC", 0.002, fills["entry"][1], 0.1, fills["entry"][0], reason="LONG 4")
        j.log_dca("BTC", 0.004, fills["dca"][1], 0.2, fills["dca"][0], reason="tier -2.5%")
        j.log_exit("BTC", fills["sell"][1], 0.3, fills["sell"][0], reason="trail")
        j.log_entry("BTC", 0.003, fills["again"][1], 0.1, fills["again"][0], reason="LONG 3")
        j.record_equity(NOW - 60, 10_321.45, 9_800, 521.45)
    return fills


def write_status(
    layout: DataLayout, settings: Settings, avg: float, bid: float
) -> dict[str, object]:
    """``trader_status/1`` as the trader writes it, for a held BTC position."""
    config = StrategyConfig.from_settings(settings)
    position = PositionState("BTC", 0.003, 0.003 * avg, 0, (), NOW - 3 * HOUR)
    line = avg * (1 + config.pm_start_pct_no_dca / 100)
    trailing = TrailingState(False, line, 0.0, False, config.trailing_settings)
    view = CoinView(
        "BTC", MarketView(bid, bid * 1.0005, NOW), position, None,
        Decision("BTC", (), trailing, "holding"),
    )  # fmt: skip
    data = status_data(TickResult(NOW, None, (view,)), settings, Mode.DEMO)
    StateWriter(layout.trader_status_file, STATUS_SCHEMA).write(data)
    row = json.loads(layout.trader_status_file.read_text())["data"]["coins"][0]
    assert isinstance(row, dict)
    return row


def write_signals(layout: DataLayout, price: float) -> None:
    """Seven timeframes' predictions around the price (1w inactive), spaced by the real code."""
    offsets = np.array([0.3, 0.6, 1.0, 1.5, 2.2, 3.0, math.nan]) / 100
    lows, highs = spaced_bounds(price * (1 - offsets), price * (1 + offsets))
    long_level, short_level = levels(price, lows, highs)
    views = tuple(
        TimeframeView(
            TimeframeSignal(tf, tf.candle_open(int(NOW)), price * (1 + o), price * (1 - o), hb, lb),
            TfSide.INACTIVE if math.isnan(o) else TfSide.WITHIN,
        )
        for tf, o, lb, hb in zip(Timeframe, offsets, lows.tolist(), highs.tolist(), strict=True)
    )
    coin = CoinSignal("BTC", CoinStatus.READY, "6 of 7 timeframes active", NOW, "m1", price,
                      long_level, short_level, views)  # fmt: skip
    snap = SignalsSnapshot(Stage.WARMING_UP, "ETH warming up", NOW, (coin,))
    StateWriter(layout.signals_file, SIGNALS_SCHEMA).write(snapshot_to_data(snap))


def demo_folder(path: Path) -> tuple[DataLayout, Settings]:
    layout = DataLayout(path).ensure()
    settings = parse({"coins": ["BTC", "ETH"], "mode": "demo", "demo": {"start": "2024-03-01"}})
    save(layout.settings_file, settings)
    start_clock(layout, NOW, 0.0)  # started, and paused so the candles hold still
    return layout, settings


@pytest.fixture
def world(tmp_path: Path) -> World:
    layout, settings = demo_folder(tmp_path)
    market = build_market(settings, layout)
    candles = market.get_candle_from_exchanges("BTC", Timeframe.H1, limit=120)
    fills = write_journal(layout, candles)
    price = float(candles.close[-1])
    status = write_status(layout, settings, fills["again"][1], price)
    write_signals(layout, price)
    return World(layout, settings, market, status, fills)


@pytest.fixture
def root(display: str) -> Iterator[tk.Tk]:
    win = tk.Tk()
    win.geometry("1000x560+0+0")
    apply_theme(win)
    yield win
    win.destroy()
    del win
    gc.collect()


def make_worker(layout: DataLayout, factory: Callable[[], object]) -> ChartWorker:
    return ChartWorker(ChartLoader(layout, factory, mode=Mode.DEMO))  # type: ignore[arg-type]


@pytest.fixture
def worker(world: World) -> Iterator[ChartWorker]:
    w = make_worker(world.layout, lambda: build_market(world.settings, world.layout))
    yield w
    w.close()


def wait_for(root: tk.Misc, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the chart did not update in time"
        root.update()
        time.sleep(0.005)


def coin_chart(root: tk.Tk, worker: ChartWorker, coin: str = "BTC", **kw: object) -> CoinChart:
    chart = CoinChart(root, coin, worker, tz=UTC, refresh_ms=0, **kw)  # type: ignore[arg-type]
    chart.pack(fill="both", expand=True)
    wait_for(root, lambda: chart.generation >= 1 and not chart.busy)
    pump(root, 0.05)
    return chart


def texts(canvas: tk.Canvas, tag: str) -> list[str]:
    return [canvas.itemcget(i, "text") for i in canvas.find_withtag(tag)]


def tagged(canvas: tk.Canvas, *tags: str) -> list[int]:
    return [i for i in canvas.find_withtag(tags[0]) if set(tags) <= set(canvas.gettags(i))]


# ---------------------------------------------------------------------------------------------


def one_px(canvas: CandleChart, candles: Candles) -> float:
    """About two pixels in price: how close a mapped-back line must be."""
    return float(candles.high.max() - candles.low.min()) * 1.1 / canvas.winfo_height() * 2


def check_candles(canvas: CandleChart, candles: Candles) -> None:
    assert len(candles) == 120 and len(canvas.find_withtag("body")) == 120
    assert len(canvas.find_withtag("wick")) == 120
    px = one_px(canvas, candles)
    for i in (0, 57, 119):  # each body spans its candle's open..close in its colour
        body = tagged(canvas, "body", f"bar{i}")[0]
        up = candles.close[i] >= candles.open[i]
        assert canvas.itemcget(body, "fill") == (ACCENT if up else NEGATIVE)
        _, y0, _, y1 = canvas.coords(body)
        top, low = max(candles.open[i], candles.close[i]), min(candles.open[i], candles.close[i])
        assert canvas.price_at(y0) == pytest.approx(top, abs=px)
        assert canvas.price_at(y1) == pytest.approx(low, abs=max(px, top - low + px))
    fills = {canvas.itemcget(tagged(canvas, "body", f"bar{i}")[0], "fill") for i in range(120)}
    assert fills == {ACCENT, NEGATIVE}


def check_trade_lines(canvas: CandleChart, status: dict[str, object], candles: Candles) -> None:
    px = one_px(canvas, candles)
    expected = {"ask": status["ask"], "bid": status["bid"], "avg": status["avg_cost"],
                "dca": status["next_dca_price"]}  # fmt: skip
    for key, price in expected.items():
        (line,) = tagged(canvas, "line", key)
        assert canvas.itemcget(line, "fill") == LINE_COLOURS[key.upper()]
        assert canvas.price_at(canvas.coords(line)[1]) == pytest.approx(price, abs=px)
    sell = float(status["trailing_line"])  # type: ignore[arg-type]
    assert sell > candles.high.max() * 1.01  # 5 % over cost: above this chart
    assert not tagged(canvas, "line", "sell")
    labels = {t.split()[-2]: t for t in texts(canvas, "tag_text")}
    assert labels["SELL"] == f"↑ SELL {fmt_price(sell)}" and labels["AVG"].startswith("AVG ")
    boxes = [canvas.bbox(i) for i in canvas.find_withtag("tag_text")]
    for a, b in itertools.combinations(boxes, 2):  # ASK and BID are 0.05 % apart: nudged
        assert a[3] <= b[1] or b[3] <= a[1], "two line labels overlap"
    assert all(b[2] <= canvas.winfo_width() for b in boxes)


def check_markers(chart: CoinChart, fills: dict[str, tuple[float, float]], px: float) -> None:
    canvas = chart.chart
    markers = canvas.find_withtag("marker")  # the journal's four BTC fills
    assert sorted(canvas.gettags(i)[1] for i in markers) == ["buy", "buy", "dca", "sell"]
    assert sorted(texts(canvas, "marker_text")) == ["BUY", "BUY", "DCA", "SELL"]
    bars = chart.data.bars if chart.data else ()
    for k, (t, price) in enumerate(fills.values()):  # oldest first, as the journal has them
        i = bar_index(bars, HOUR, t)
        assert i is not None and bars[i].low <= price <= bars[i].high
        x0, y0, x1, y1 = canvas.coords(markers[k])
        assert (x0 + x1) / 2 == pytest.approx(canvas._xs[i])
        assert canvas.price_at((y0 + y1) / 2) == pytest.approx(price, abs=px)
        kind = MarkerKind(canvas.gettags(markers[k])[1].upper())
        assert canvas.itemcget(markers[k], "fill") == MARKER_COLOURS[kind]
    boxes = [canvas.bbox(i) for i in canvas.find_withtag("marker_text")]
    for a, b in itertools.combinations(boxes, 2):
        assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], "labels overlap"


def test_the_coin_chart_draws_the_market_lines_and_fills(
    root: tk.Tk, world: World, worker: ChartWorker
) -> None:
    chart = coin_chart(root, worker)
    canvas = chart.chart
    candles = world.market.get_candle_from_exchanges("BTC", Timeframe.H1, limit=120)
    check_candles(canvas, candles)
    check_trade_lines(canvas, world.status, candles)
    check_markers(chart, world.fills, one_px(canvas, candles))
    assert chart.levels.cget("text").startswith("Neural: LONG 0 · SHORT 0  |  lines L=6 S=6")
    strong = tagged(canvas, "neural", "tf")  # the 1h pair, solid; the others dashed
    neural = chart.data.neural if chart.data else None
    assert neural is not None and neural.tf_low is not None and neural.tf_high is not None
    prices = sorted(canvas.price_at(canvas.coords(i)[1]) for i in strong)
    assert prices == pytest.approx([neural.tf_low, neural.tf_high], abs=one_px(canvas, candles))
    assert len(tagged(canvas, "neural", "low")) >= 3
    ticks = texts(canvas, "xtick")
    first = datetime.fromtimestamp(int(candles.time[0]), tz=UTC).strftime("%m-%d %H:%M")
    assert len(ticks) == 5 and ticks[0] == first and ticks[-1] == "03-01 14:00"
    assert chart.last.cget("text").startswith("Last: ") and chart.problem.cget("text") == ""
    x = int(canvas._xs[119])
    canvas.event_generate("<Motion>", x=x, y=200)
    (readout,) = texts(canvas, "readout")
    assert readout.startswith("2024-03-01 14:00") and f"C {fmt_price(candles.close[-1])}" in readout
    screenshot(root, "coinchart_1h")

    root.geometry("560x380")  # about the hub's chart area at its minimum window size
    pump(root, 0.3)
    assert len(canvas.find_withtag("body")) == 120
    boxes = [canvas.bbox(i) for i in canvas.find_withtag("tag_text")]
    assert all(b[2] <= canvas.winfo_width() for b in boxes)
    assert 2 <= len(texts(canvas, "xtick")) <= 5
    screenshot(root, "coinchart_small")


def test_switching_the_timeframe_loads_it(root: tk.Tk, world: World, worker: ChartWorker) -> None:
    chart = coin_chart(root, worker, timeframe="5m")  # a minute chart the market cannot serve
    assert chart.timeframe.value == chart.tf_box.get() == "1h"
    assert chart.data is not None and chart.data.timeframe is Timeframe.H1
    popdown = chart.tf_box.tk.eval(f"ttk::combobox::PopdownWindow {chart.tf_box}")
    assert str(chart.tf_box.tk.call(f"{popdown}.f.l", "cget", "-background")) == PANEL  # dark list
    loads = chart.generation
    for tf in ("2h", "4h", "1d"):  # quick clicks: one load, of the last choice
        chart.tf_box.set(tf)
        chart.tf_box.event_generate("<<ComboboxSelected>>")
    assert chart.timeframe is Timeframe.D1 and chart.last.cget("text") == "Loading 1d…"
    wait_for(root, lambda: chart.data is not None and chart.data.timeframe is Timeframe.D1)
    pump(root, 0.2)
    assert chart.generation == loads + 1
    daily = world.market.get_candle_from_exchanges("BTC", "1d", limit=120)
    canvas = chart.chart
    assert len(canvas.find_withtag("body")) == len(daily) == 120
    last = tagged(canvas, "body", "bar119")[0]
    up = daily.close[-1] >= daily.open[-1]
    assert canvas.itemcget(last, "fill") == (ACCENT if up else NEGATIVE)
    assert len(canvas.find_withtag("marker")) == 4  # the fills fall on the last two days
    assert texts(canvas, "xtick")[-1] == "2024-03-01"
    neural = chart.data.neural if chart.data else None  # now the 1d pair is the solid one
    assert neural is not None and neural.tf_low is not None and neural.tf_high is not None
    strong = sorted(canvas.price_at(canvas.coords(i)[1]) for i in tagged(canvas, "neural", "tf"))
    px = (daily.high.max() - daily.low.min()) * 1.1 / canvas.winfo_height() * 2
    assert strong == pytest.approx([neural.tf_low, neural.tf_high], abs=px)
    screenshot(root, "coinchart_1d")


def test_the_account_chart(root: tk.Tk, world: World, worker: ChartWorker) -> None:
    page = AccountChart(root, worker, tz=UTC, refresh_ms=0)
    page.pack(fill="both", expand=True)
    wait_for(root, lambda: page.generation >= 1)
    pump(root, 0.05)
    with TradeJournal.open_readonly(world.layout.journal_db) as journal:
        series = journal.equity_series()
    assert len(series.time) == 401
    data = page.data
    assert data is not None and len(data.values) == 250
    assert (data.times[0], data.values[0]) == (series.time[0], series.equity[0])
    assert (data.times[-1], data.values[-1]) == (NOW - 60, 10_321.45)
    assert page.title.cget("text") == "Account value ($10,321.45)"
    chart = page.chart
    assert len(chart.coords(chart.find_withtag("equity")[0])) == 2 * 250
    assert sorted(chart.gettags(i)[1] for i in chart.find_withtag("marker")) == [
        "buy", "buy", "dca", "sell",
    ]  # fmt: skip
    labels = texts(chart, "marker_text")
    assert labels and set(labels) <= {"BTC BUY", "BTC DCA", "BTC SELL"}
    axis = [chart.itemcget(i, "text") for i in chart.find_all() if str(chart.type(i)) == "text"]
    assert any(t.startswith("$10,") for t in axis)
    assert texts(chart, "date")[0] == "2024-02-13"  # 400 h before 03-01 14:30
    screenshot(root, "account_chart")


def test_missing_files_and_unknown_coins_are_explained(
    root: tk.Tk, display: str, tmp_path: Path
) -> None:
    layout, settings = demo_folder(tmp_path)  # no signals, no status, no journal yet
    worker = make_worker(layout, lambda: build_market(settings, layout))
    try:
        chart = coin_chart(root, worker)
        assert len(chart.chart.find_withtag("body")) == 120
        assert chart.levels.cget("text") == "Neural: no signals yet (start the bot)"
        assert not chart.chart.find_withtag("line") and not chart.chart.find_withtag("marker")
        chart.destroy()
        sol = coin_chart(root, worker, "SOL")  # no bundled history for it
        assert not sol.chart.find_withtag("body")
        assert "candles:" in sol.problem.cget("text") and "SOL" in sol.problem.cget("text")
        assert "SOL" in " ".join(texts(sol.chart, "placeholder"))
        sol.destroy()
        page = AccountChart(root, worker, tz=UTC, refresh_ms=0)
        page.pack(fill="both", expand=True)
        wait_for(root, lambda: page.generation >= 1)
        pump(root, 0.05)
        assert texts(page.chart, "placeholder") == ["No trades yet — start the bot"]
        assert page.title.cget("text") == "Account value"
    finally:
        worker.close()


class SlowMarket:
    """The real demo market behind a venue that takes its time (and counts the requests)."""

    def __init__(self, inner: MarketData, delay: float) -> None:
        self.inner, self.delay, self.calls = inner, delay, 0
        self.release = threading.Event()

    def get_candle_from_exchanges(
        self, symbol: str, timeframe: Timeframe | str, *, limit: int = 120
    ) -> Candles:
        self.calls += 1
        self.release.wait(self.delay)
        return self.inner.get_candle_from_exchanges(symbol, timeframe, limit=limit)


def test_the_tk_thread_never_waits_and_refreshes_coalesce(root: tk.Tk, world: World) -> None:
    slow = SlowMarket(world.market, 0.5)
    worker = make_worker(world.layout, lambda: slow)
    try:
        ticks: list[float] = []

        def probe() -> None:
            ticks.append(time.perf_counter())
            root.after(10, probe)

        probe()
        chart = CoinChart(root, "BTC", worker, tz=UTC, refresh_ms=0)
        chart.pack(fill="both", expand=True)
        wait_for(root, lambda: chart.busy)
        for _ in range(4):  # while the slow load runs: folded into one more
            chart.refresh_now()
        wait_for(root, lambda: chart.generation == 2 and not chart.busy)
        pump(root, 0.1)
        assert slow.calls == 2 and chart.generation == 2
        assert len(chart.chart.find_withtag("body")) == 120
        gap = max(b - a for a, b in itertools.pairwise(ticks))
        assert gap < 0.2, f"the Tk thread stalled for {gap * 1000:.0f} ms"
    finally:
        slow.release.set()
        worker.close()


class FlakyMarket:
    """The real demo market behind a venue that goes down on demand."""

    def __init__(self, inner: MarketData) -> None:
        self.inner, self.down = inner, False

    def get_candle_from_exchanges(
        self, symbol: str, timeframe: Timeframe | str, *, limit: int = 120
    ) -> Candles:
        if self.down:
            raise TemporaryExchangeError("replay: venue busy (HTTP 503)")
        return self.inner.get_candle_from_exchanges(symbol, timeframe, limit=limit)


def test_a_failing_venue_keeps_the_last_candles_and_says_why(root: tk.Tk, world: World) -> None:
    flaky = FlakyMarket(world.market)
    worker = make_worker(world.layout, lambda: flaky)
    try:
        chart = coin_chart(root, worker)
        assert len(chart.chart.find_withtag("body")) == 120 and not chart.problem.winfo_ismapped()
        flaky.down = True
        chart.refresh_now()
        wait_for(root, lambda: chart.generation == 2)
        pump(root, 0.05)
        assert len(chart.chart.find_withtag("body")) == 120  # the last good candles stay
        assert chart.problem.cget("text") == "candles: replay: venue busy (HTTP 503)"
        assert chart.problem.winfo_ismapped() and chart.chart.find_withtag("line")
        flaky.down = False
        chart.refresh_now()
        wait_for(root, lambda: chart.generation == 3)
        pump(root, 0.05)
        assert not chart.problem.winfo_ismapped()
    finally:
        worker.close()


def test_a_crashing_loader_is_reported_and_the_worker_lives_on(root: tk.Tk, world: World) -> None:
    def broken() -> MarketData:
        raise RuntimeError("market set-up failed")

    worker = make_worker(world.layout, broken)
    try:
        chart = coin_chart(root, worker)
        assert chart.problem.cget("text") == "unexpected error: market set-up failed"
        assert texts(chart.chart, "placeholder") == ["unexpected error: market set-up failed"]
        page = AccountChart(root, worker, tz=UTC, refresh_ms=0)
        page.pack(fill="both", expand=True)
        wait_for(root, lambda: page.generation >= 1)
        assert worker.alive and page.title.cget("text") == "Account value ($10,321.45)"
    finally:
        worker.close()
    assert not worker.alive


def test_only_the_visible_chart_refreshes(root: tk.Tk, world: World, worker: ChartWorker) -> None:
    shown = CoinChart(root, "BTC", worker, tz=UTC, refresh_ms=150)
    hidden = CoinChart(root, "ETH", worker, tz=UTC, refresh_ms=150)
    shown.pack(fill="both", expand=True)
    pump(root, 0.9)
    assert shown.generation >= 3 and hidden.generation == 0
    shown.pack_forget()  # the hub switches pages
    hidden.pack(fill="both", expand=True)
    wait_for(root, lambda: hidden.generation >= 1)
    before = shown.generation
    pump(root, 0.5)
    assert shown.generation <= before + 1  # at most the load that was on its way
    assert hidden.data is not None and hidden.data.coin == "ETH"
    assert len(hidden.chart.find_withtag("body")) == 120


# --- the pure helpers -----------------------------------------------------------------------


def test_reduce_points_keeps_the_ends_and_drops_bad_values() -> None:
    times = [5.0, 1.0, 2.0, 2.0, 3.0, 4.0, 6.0] + [7.0 + i for i in range(600)]
    values = [50.0, 10.0, 20.0, 21.0, -1.0, math.nan, 60.0] + [100.0 + i for i in range(600)]
    ts, vs = reduce_points(times, values, limit=250)
    assert len(ts) == len(vs) == 250
    assert (ts[0], vs[0]) == (1.0, 10.0) and (ts[-1], vs[-1]) == (606.0, 699.0)
    assert list(ts) == sorted(ts) and all(v > 0 for v in vs)
    assert reduce_points([1.0, 2.0, 2.0], [1.005, 2.0, 3.0]) == ((1.0, 2.0), (1.0, 3.0))


def test_spread_labels_never_overlap_and_stay_inside() -> None:
    ys = [100.0, 101.0, 102.0, 300.0, 299.0]
    placed = spread_labels(ys, 16, 10, 300)
    assert sorted(placed) == placed[:3] + sorted(placed[3:])
    assert all(abs(a - b) >= 16 - 1e-9 for a, b in itertools.combinations(placed, 2))
    assert all(10 <= y <= 300 for y in placed)
    assert spread_labels([50.0], 16, 10, 300) == [50.0]


def test_price_text_follows_the_original_decimals() -> None:
    assert fmt_price(62_005.83) == "62,005.83"
    assert fmt_price(123.4567) == "123.457"
    assert fmt_price(1.5) == "1.5"
    assert fmt_price(0.123456) == "0.12346"
    assert fmt_price(0.000012345) == "0.00001234"


def test_trade_lines_and_neural_text_from_the_files_data() -> None:
    row = {"coin": "BTC", "quantity": 0.0, "avg_cost": 0.0, "bid": 100.0, "ask": 100.1,
           "next_dca_price": None, "trailing_line": None}  # fmt: skip
    flat = trade_lines({"coins": [row]}, "BTC")  # not held: no AVG, DCA or SELL
    assert [(x.label, x.price) for x in flat] == [("ASK", 100.1), ("BID", 100.0)]
    held = {**row, "quantity": 0.5, "avg_cost": 90.0, "next_dca_price": 87.75}
    assert [x.label for x in trade_lines({"coins": [held, "junk"]}, "BTC")] == [
        "ASK", "BID", "AVG", "DCA",
    ]  # fmt: skip
    assert trade_lines({"coins": [held]}, "ETH") == () and trade_lines(None, "BTC") == ()
    coin = CoinSignal("BTC", CoinStatus.WARMING_UP, "BTC: 2 of 7 timeframes tried", NOW)
    snap = SignalsSnapshot(Stage.WARMING_UP, "warming up", NOW, (coin,))
    view = neural_view(snap, "BTC", Timeframe.H1)
    assert view.text == "Neural: warming up — BTC: 2 of 7 timeframes tried" and view.lows == ()
    assert (
        neural_view(snap, "ETH", Timeframe.H1).text == "Neural: ETH is not in the thinker's signals"
    )
