"""pt_thinker: the thinker in-process over a fake market and real model files, and as a real
process in demo mode over the bundled history."""

from __future__ import annotations

import calendar
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import pt_ohlcv
from pt_candles import drop_forming, resample
from pt_config import SettingsWatcher, parse, save
from pt_config_schema import DEFAULT_EVENTS, Settings, SizingSettings, VolumeSettings
from pt_errors import MarketDataError
from pt_exchanges import mark_forming
from pt_market_state import daily_needed, hourly_needed
from pt_models import Model, ModelMeta, load_model, model_status, save_model
from pt_notify_runtime import ProcessNotifier
from pt_patterns import Memory, MemoryArrays, PatternConfig, walk_forward
from pt_replay import read_clock, sim_time, start_clock
from pt_signals import SIGNALS_SCHEMA, CoinStatus, SignalsSnapshot, Stage
from pt_state import DataLayout, StateWriter, read_heartbeat, write_control, write_heartbeat
from pt_thinker import Runner, Thinker, read_signals
from pt_thinker_exchanges import AggregatedPrice, aggregate_quotes, build_market
from pt_types import DAY, HOUR, Candles, ControlCommand, Quote, Timeframe
from tests.fake_notify import FakeReceiver

ROOT = Path(__file__).resolve().parent.parent
SIM_START = calendar.timegm((2024, 3, 1, 0, 0, 0))
NOW = float(SIM_START + 1800)
CONFIG = PatternConfig(pattern_length=1, distance="absolute", start_threshold=0.5)


# --------------------------------------------------------------------------- helpers


def tiny_model(coin: str, trained_at: float, model_id: str = "") -> Model:
    """Every pattern from -3 % to +3 % says: next high +1 %, low -1 %."""
    patterns = np.linspace(-3, 3, 61).reshape(61, 1)
    arrays = MemoryArrays(patterns, np.tile([0.0, 1.0, -1.0], (61, 1)), np.ones((61, 3)), 0.5)
    meta = ModelMeta(
        coin,
        model_id or f"{coin}-test-1",
        trained_at,
        0,
        int(trained_at),
        dataclasses.asdict(CONFIG),
        "test",
    )
    return Model(meta, dict.fromkeys(Timeframe, arrays))


def synthetic_hourly(n: int = 2400) -> Candles:
    """A gentle wave of closed hourly candles ending a hundred hours after NOW."""
    t = (SIM_START - (n - 100) * HOUR + HOUR * np.arange(n)).astype(np.int64)
    close = 100 * (1 + 0.01 * np.sin(np.arange(n) / 5))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high, low = np.maximum(open_, close) * 1.002, np.minimum(open_, close) * 0.998
    return Candles(t, open_, high, low, close, np.ones(n))


class FakeMarket:
    """get_candle_from_exchanges/get_aggregated_current_price over hand-made hourly tables."""

    def __init__(
        self, clock: FakeClock, coins: tuple[str, ...] = ("BTC", "ETH", "XRP", "BNB", "DOGE")
    ) -> None:
        self.clock = clock
        self.hourly = {c: synthetic_hourly() for c in coins}
        self.prices: dict[str, float | None] = dict.fromkeys(coins, 100.0)
        self.broken: set[Timeframe] = set()  # these timeframes fail
        self.garbage: set[Timeframe] = set()  # these come with a NaN in the last closed candle
        self.calls: list[tuple[str, Timeframe, int]] = []

    def get_candle_from_exchanges(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int = 120,
    ) -> Candles:
        tf = Timeframe.parse(timeframe) if isinstance(timeframe, str) else timeframe
        self.calls.append((symbol, tf, limit))
        if tf in self.broken:
            raise MarketDataError(f"fake venue: no {tf.value} candles")
        now = int(self.clock())
        hours = mark_forming(self.hourly[symbol].until(now), Timeframe.H1, now)
        table = hours if tf is Timeframe.H1 else resample(hours, tf, now=now, base_step=HOUR)
        table = table.slice(max(0, len(table) - limit))
        if tf in self.garbage:
            close = table.close.copy()
            close[-2] = np.nan
            table = dataclasses.replace(table, close=close)
        return table

    def get_aggregated_current_price(self, symbol: str) -> AggregatedPrice:
        price = self.prices.get(symbol)
        if price is None:
            raise MarketDataError(f"{symbol}: the price feed stopped")
        quote = Quote(symbol, "fake", price, price, price, self.clock())
        return aggregate_quotes(symbol, [quote], outlier_pct=2.0, now=self.clock())


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


# The market watch's fetches (volume and ATR state) once per hour per coin: closed candles + 1.
WATCH_CALLS = [
    (coin, tf, needed + 1)
    for coin in ("BTC", "ETH")
    for tf, needed in ((Timeframe.H1, hourly_needed(VolumeSettings())),
                       (Timeframe.D1, daily_needed(SizingSettings())))
]  # fmt: skip


def settings(**changes: object) -> Settings:
    data: dict[str, object] = {
        "coins": ["BTC", "ETH"],
        "mode": "paper",
        "predictor": {"distance": "absolute"},  # what the tiny models were made with
    }
    data.update(changes)
    return parse(data)


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    return DataLayout(tmp_path).ensure()


def make_thinker(layout: DataLayout, clock: FakeClock) -> tuple[Thinker, FakeMarket]:
    market = FakeMarket(clock)
    writer = StateWriter(layout.signals_file, SIGNALS_SCHEMA, clock=clock)
    return Thinker(layout, market, wall=clock, writer=writer), market


# --------------------------------------------------------------------------- in process


def test_a_ready_coin_gets_levels_for_every_price_without_refetching(layout: DataLayout) -> None:
    for coin in ("BTC", "ETH"):
        save_model(layout, tiny_model(coin, NOW - DAY))
    clock = FakeClock(NOW)
    thinker, market = make_thinker(layout, clock)
    snap = thinker.step(settings(), clock())
    assert (snap.stage, snap.ready_coins, snap.total_coins) == (Stage.READY, ("BTC", "ETH"), 2)
    btc = snap.coin("BTC")
    assert btc is not None and btc.model_id == "BTC-test-1" and btc.price == 100.0
    predictor_calls = [c for c in market.calls if c not in WATCH_CALLS]
    assert len(predictor_calls) == 14 and {c[2] for c in predictor_calls} == {4}
    assert sorted(set(market.calls) - set(predictor_calls)) == sorted(WATCH_CALLS)
    lows = [v.signal.low_bound for v in btc.timeframes]
    assert all(np.isfinite(lows)) and all(v.signal.candle_time <= NOW for v in btc.timeframes)
    for price in (90.0, 100.0, 120.0):
        market.prices["BTC"] = price
        clock.now += 60
        got = thinker.step(settings(), clock()).coin("BTC")
        assert got is not None and got.price == price
        highs = [v.signal.high_bound for v in got.timeframes]
        assert got.long_level == sum(lo > price for lo in lows)
        assert got.short_level == sum(hi < price for hi in highs)
    assert len(market.calls) == 18  # no candle closed: no candle fetched, levels still moved
    on_disk = read_signals(layout)
    assert on_disk is not None and on_disk.coin("BTC") is not None
    assert on_disk.seq == 4 and on_disk.stage is Stage.READY


def test_closed_candles_are_learned_and_saved_for_the_next_start(layout: DataLayout) -> None:
    save_model(layout, tiny_model("BTC", NOW - DAY))
    save_model(layout, tiny_model("ETH", NOW - DAY))
    clock = FakeClock(NOW)
    thinker, market = make_thinker(layout, clock)
    thinker.step(settings(), clock())
    clock.now += 2 * HOUR  # two 1h candles and one 2h candle close
    market.calls.clear()
    thinker.step(settings(), clock())
    fetched = {(tf.value, limit) for _, tf, limit in market.calls}
    watch = {(tf.value, limit) for _, tf, limit in WATCH_CALLS}  # a new hour: the market state
    assert sorted(fetched - watch) == [("1h", 5), ("2h", 4)] and watch <= fetched
    thinker.save_all()
    learned = layout.model_dir("BTC") / "learned-BTC-test-1.npz"
    assert learned.exists()
    model = load_model(layout, "BTC")
    weights = model.memories[Timeframe.H1].weights
    assert np.any(weights != 1.0)  # the wave moved less than +-1 %: the weights learned it
    np.testing.assert_array_equal(model.memories[Timeframe.D1].weights, 1.0)


def test_a_model_the_thinker_keeps_feeding_does_not_go_stale(layout: DataLayout) -> None:
    save_model(layout, tiny_model("BTC", NOW - 13 * DAY))  # fresh for one more day
    clock = FakeClock(NOW)
    thinker, _ = make_thinker(layout, clock)
    for _ in range(3 * 24):  # three days of closed candles, an hour at a time
        clock.now += HOUR
        snapshot = thinker.step(settings(coins=["BTC"]), clock())
    btc = snapshot.coins[0]
    assert btc.status is CoinStatus.READY, btc.reason  # 16 days after training
    thinker.save_all()
    assert model_status(layout, "BTC", clock()).learned_until == clock()
    # A new thinker (a restart) reads that freshness from disk.
    again, _ = make_thinker(layout, clock)
    assert again.step(settings(coins=["BTC"]), clock()).coins[0].status is CoinStatus.READY


def test_a_coin_in_training_gets_no_signal_until_the_trainer_ends(layout: DataLayout) -> None:
    save_model(layout, tiny_model("BTC", NOW - DAY))
    save_model(layout, tiny_model("ETH", NOW - DAY))
    clock = FakeClock(NOW)
    thinker, _ = make_thinker(layout, clock)
    write_heartbeat(layout, "trainer-BTC", status="training", clock=clock)
    snapshot = thinker.step(settings(), clock())
    btc, eth = snapshot.coin("BTC"), snapshot.coin("ETH")
    assert btc is not None and btc.status is CoinStatus.TRAINING and btc.long_level is None
    assert "no new trades" in btc.reason
    assert eth is not None and eth.status is CoinStatus.READY  # other coins trade on
    clock.now += 11  # the trainer died without a word: not training any more
    assert thinker.step(settings(), clock()).coin("BTC").status is CoinStatus.READY  # type: ignore[union-attr]
    write_heartbeat(layout, "trainer-BTC", status="finished", clock=clock)
    assert thinker.step(settings(), clock()).coin("BTC").status is CoinStatus.READY  # type: ignore[union-attr]


def test_missing_damaged_stale_and_mismatched_models_get_no_signal(layout: DataLayout) -> None:
    save_model(layout, tiny_model("BTC", NOW - DAY))
    save_model(layout, tiny_model("XRP", NOW - 15 * DAY))
    save_model(layout, tiny_model("BNB", NOW - DAY))
    (layout.model_dir("DOGE")).mkdir(parents=True)
    (layout.model_dir("DOGE") / "current.json").write_text("{not json")
    clock = FakeClock(NOW)
    thinker, _ = make_thinker(layout, clock)
    coins = ["BTC", "ETH", "XRP", "DOGE", "BNB"]
    s = settings(coins=coins, predictor={"pattern_length": 1, "distance": "absolute"})
    snap = thinker.step(s, clock())
    status = {c.coin: c.status for c in snap.coins}
    assert status == {
        "BTC": CoinStatus.READY,
        "ETH": CoinStatus.NOT_TRAINED,
        "XRP": CoinStatus.STALE_MODEL,
        "DOGE": CoinStatus.DAMAGED_MODEL,
        "BNB": CoinStatus.READY,
    }
    assert snap.stage is Stage.TRAINING_REQUIRED
    for coin in ("ETH", "XRP", "DOGE"):
        assert f"{coin}:" in snap.reason
        got = snap.coin(coin)
        assert got is not None and (got.long_level, got.price, got.timeframes) == (None, None, ())
    assert "trained 15 days ago" in snap.reason
    snap = thinker.step(settings(coins=["BTC"], predictor={"pattern_length": 2}), clock())
    btc = snap.coin("BTC")
    assert btc is not None and btc.status is CoinStatus.STALE_MODEL
    assert "pattern_length 1 (settings now: 2)" in btc.reason and "distance" in btc.reason


def test_a_stopped_price_feed_clears_the_levels(layout: DataLayout) -> None:
    save_model(layout, tiny_model("BTC", NOW - DAY))
    clock = FakeClock(NOW)
    thinker, market = make_thinker(layout, clock)
    s = settings(coins=["BTC"])
    assert thinker.step(s, clock()).stage is Stage.READY
    market.prices["BTC"] = None
    snap = thinker.step(s, clock())
    btc = snap.coin("BTC")
    assert snap.stage is Stage.WARMING_UP and btc is not None
    assert btc.status is CoinStatus.NO_PRICE and (btc.long_level, btc.short_level) == (None, None)
    assert "price feed stopped" in btc.reason and "BTC" in snap.reason
    market.prices["BTC"] = 101.0
    assert thinker.step(s, clock()).stage is Stage.READY


def test_venue_errors_and_nan_candles_inactivate_only_their_timeframe(layout: DataLayout) -> None:
    save_model(layout, tiny_model("BTC", NOW - DAY))
    clock = FakeClock(NOW)
    thinker, market = make_thinker(layout, clock)
    market.broken = {Timeframe.W1}
    market.garbage = {Timeframe.H1}
    s = settings(coins=["BTC"])
    btc = thinker.step(s, clock()).coin("BTC")
    assert btc is not None and btc.status is CoinStatus.READY
    views = {v.signal.timeframe: v for v in btc.timeframes}
    assert "fake venue: no 1w candles" in views[Timeframe.W1].reason
    assert "bad candles" in views[Timeframe.H1].reason
    assert "price is not a finite number" in views[Timeframe.H1].reason
    assert np.isnan(views[Timeframe.H1].signal.low_bound)
    assert np.isfinite(views[Timeframe.D1].signal.low_bound)


def test_a_new_model_on_disk_replaces_the_loaded_one(layout: DataLayout) -> None:
    save_model(layout, tiny_model("BTC", NOW - DAY))
    clock = FakeClock(NOW)
    thinker, _ = make_thinker(layout, clock)
    s = settings(coins=["BTC"])
    thinker.step(s, clock())
    save_model(layout, tiny_model("BTC", NOW - 60, model_id="BTC-test-2"))
    btc = thinker.step(s, clock()).coin("BTC")
    assert btc is not None and btc.model_id == "BTC-test-2" and btc.status is CoinStatus.READY


def runner(layout: DataLayout, clock: FakeClock, market: FakeMarket | None = None) -> Runner:
    return Runner(
        layout,
        SettingsWatcher(layout.settings_file, env={}),
        wall=clock,
        sleep=clock.sleep,
        build=lambda _s, _l: market or FakeMarket(clock),
    )


def test_runner_hot_reloads_coins_pauses_and_stops(layout: DataLayout) -> None:
    for coin in ("BTC", "ETH"):
        save_model(layout, tiny_model(coin, NOW - DAY))
    save(layout.settings_file, settings(coins=["BTC"]))
    clock = FakeClock(NOW)
    run = runner(layout, clock)
    run.loop()
    snap = read_signals(layout)
    assert snap is not None and [c.coin for c in snap.coins] == ["BTC"]
    save(layout.settings_file, settings())
    run.loop()
    snap = read_signals(layout)
    assert snap is not None and snap.ready_coins == ("BTC", "ETH")
    heartbeat = read_heartbeat(layout, "thinker")
    assert heartbeat is not None and heartbeat.status == "ready"
    save(layout.settings_file, settings(coins=["ETH"]))
    run.loop()
    snap = read_signals(layout)
    assert snap is not None and [c.coin for c in snap.coins] == ["ETH"]

    write_control(layout, "thinker", ControlCommand.PAUSE)
    seq = snap.seq
    assert runner(layout, clock).run(once=True) == 0
    heartbeat = read_heartbeat(layout, "thinker")
    assert heartbeat is not None and heartbeat.status == "paused"
    paused = read_signals(layout)
    assert paused is not None and paused.seq == seq + 1 and paused.stage is Stage.STARTING

    write_control(layout, "thinker", ControlCommand.STOP)
    started = clock.now
    assert runner(layout, clock).run() == 0  # returns at once, without a loop
    assert clock.now == started


def test_a_volume_anomaly_reaches_the_signals_and_the_users_channel(layout: DataLayout) -> None:
    save_model(layout, tiny_model("BTC", NOW - DAY))
    clock = FakeClock(NOW + 60)
    market = FakeMarket(clock)
    hourly = market.hourly["BTC"]
    volume = 1.0 + 0.1 * np.cos(np.arange(len(hourly)))  # varies, so a z-score exists
    last_closed = (int(clock()) // HOUR - 1) * HOUR
    volume[int(np.searchsorted(hourly.time, last_closed))] = 5.0
    market.hourly["BTC"] = dataclasses.replace(hourly, volume=volume)
    with FakeReceiver() as receiver:
        hook = {"webhook_enabled": True, "webhook_url": receiver.url}
        events = [*DEFAULT_EVENTS, "volume_anomaly"]
        save(
            layout.settings_file, settings(coins=["BTC"], notifications={**hook, "events": events})
        )
        notifier = ProcessNotifier(layout, "thinker")
        run = Runner(layout, SettingsWatcher(layout.settings_file, env={}), wall=clock,
                     sleep=clock.sleep, build=lambda _s, _l: market, notifier=notifier)  # fmt: skip
        run.loop()
        clock.now += 60
        run.loop()  # the same hour: said once
        notifier.close()
    btc = read_signals(layout).coin("BTC")  # type: ignore[union-attr]
    assert btc is not None and btc.market is not None and btc.market.volume is not None
    assert btc.market.volume.anomalous and btc.market.volume.candle_time == last_closed
    sent = [m for m in receiver.received if m["kind"] == "volume_anomaly"]
    assert len(sent) == 1 and sent[0]["title"].startswith("BTC: volume anomaly, 4.")


def test_demo_mode_without_a_clock_waits_for_it(layout: DataLayout) -> None:
    save(layout.settings_file, parse({"coins": ["BTC"], "mode": "demo"}))
    clock = FakeClock(NOW)
    run = Runner(
        layout,
        SettingsWatcher(layout.settings_file, env={}),
        wall=clock,
        sleep=clock.sleep,
        build=build_market,
    )
    assert run.run(once=True) == 0
    snap = read_signals(layout)
    assert snap is not None and snap.stage is Stage.WAITING_FOR_CLOCK
    assert "start it from the hub" in snap.reason and snap.total_coins == 1
    heartbeat = read_heartbeat(layout, "thinker")
    assert heartbeat is not None and heartbeat.status == "waiting_for_clock"


# --------------------------------------------------------------------------- real process


@pytest.fixture(scope="module")
def bundled_models() -> dict[str, Model]:
    """BTC and ETH trained by the walk-forward on bundled candles before the demo starts (the
    last 1000 candles per timeframe: enough for a sound memory, fast enough for a test)."""
    config = PatternConfig()
    models = {}
    for coin in ("BTC", "ETH"):
        memories = {}
        for tf in Timeframe:
            candles = drop_forming(pt_ohlcv.load_bundled(coin, tf).until(SIM_START - tf.seconds))
            candles = candles.slice(len(candles) - 1000)
            memory = Memory(config)
            walk_forward(memory, candles, tf.seconds)
            memories[tf] = memory.arrays()
        meta = ModelMeta(
            coin,
            f"{coin}-{SIM_START}-e2e",
            float(SIM_START),
            int(candles.time[0]),
            int(candles.time[-1]),
            dataclasses.asdict(config),
            "test",
        )
        models[coin] = Model(meta, memories)
    return models


def thinker_cmd(data: Path, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "pt_thinker.py"), "--data-dir", str(data), *args]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("POWERTRADER_")}


def wait_for(layout: DataLayout, ok: object, timeout: float = 15.0) -> SignalsSnapshot:
    deadline = time.monotonic() + timeout
    snap = None
    while time.monotonic() < deadline:
        snap = read_signals(layout)
        if snap is not None and callable(ok) and ok(snap):
            return snap
        time.sleep(0.05)
    raise AssertionError(f"timed out; last signals: {snap}")


@pytest.fixture
def demo(tmp_path: Path, bundled_models: dict[str, Model]) -> Iterator[DataLayout]:
    layout = DataLayout(tmp_path).ensure()
    for model in bundled_models.values():
        save_model(layout, model)
    save(
        layout.settings_file,
        parse({"coins": ["BTC", "ETH"], "mode": "demo", "predictor": {"signal_seconds": 0.2}}),
    )
    start_clock(layout, SIM_START, 3600.0)
    yield layout


def test_the_thinker_process_gets_ready_in_demo_mode_and_stops_cleanly(demo: DataLayout) -> None:
    log = (demo.root / "thinker-stderr.txt").open("w")
    proc = subprocess.Popen(thinker_cmd(demo.root), stderr=log, env=clean_env())
    try:
        snap = wait_for(demo, lambda s: s.stage is Stage.READY)
        wall = time.time()
        sim_now = sim_time(read_clock(demo) or pytest.fail("no clock"), wall)
        assert snap.ready_coins == ("BTC", "ETH")
        for coin in snap.coins:
            assert coin.long_level is not None and 0 <= coin.long_level <= 7
            assert coin.short_level is not None and 0 <= coin.short_level <= 7
            assert len(coin.timeframes) == 7 and coin.model_id.endswith("-e2e")
            assert any(np.isfinite(v.signal.low_bound) for v in coin.timeframes)
            assert all(v.signal.candle_time <= min(coin.time, sim_now) for v in coin.timeframes)
        heartbeat = read_heartbeat(demo, "thinker")
        assert heartbeat is not None and heartbeat.pid == proc.pid
        assert wall - heartbeat.written_at < 2.0 and heartbeat.status == "ready"

        second = subprocess.run(
            thinker_cmd(demo.root, "--once"),
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=60,
            check=False,
        )
        assert second.returncode == 1
        assert "another thinker is already running" in second.stderr

        first_hour = snap.coin("BTC").timeframes[0].signal.candle_time  # type: ignore[union-attr]
        save(
            demo.settings_file,
            parse(
                {
                    "coins": ["BTC", "ETH", "XRP"],
                    "mode": "demo",
                    "predictor": {"signal_seconds": 0.2},
                }
            ),
        )
        snap = wait_for(demo, lambda s: s.total_coins == 3)
        assert snap.stage is Stage.TRAINING_REQUIRED and "XRP: not trained yet" in snap.reason
        wait_for(demo, lambda s: s.coin("BTC").timeframes[0].signal.candle_time > first_hour)

        write_control(demo, "thinker", ControlCommand.STOP)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    errors = (demo.root / "thinker-stderr.txt").read_text()
    assert "Traceback" not in errors
    for name in ("BTC", "ETH"):
        assert (demo.model_dir(name) / f"learned-{name}-{SIM_START}-e2e.npz").exists()


def test_the_process_waits_for_the_demo_clock(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path).ensure()
    result = subprocess.run(
        thinker_cmd(tmp_path, "--once"),
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(layout.signals_file.read_text())
    assert data["schema"] == "signals/1" and data["data"]["stage"] == "waiting_for_clock"
    assert data["data"]["reason"] == "waiting for the demo clock (start it from the hub)"
    assert data["data"]["total_coins"] == 5  # the default coins, each waiting
