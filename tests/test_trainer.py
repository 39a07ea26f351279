"""The trainer: train_coin on real bundled candles, and ``pt_trainer.py`` as a real process.

Subprocess runs use demo mode in a temporary data folder (bundled history, no network) and a
short span (``demo.start`` early in the history) unless the test needs a long training to
interrupt.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pt_ohlcv
from pt_locks import SingleInstanceLock
from pt_models import load_meta, load_model
from pt_patterns import Memory, PatternConfig, walk_forward
from pt_replay import sim_time, start_clock
from pt_state import DataLayout, write_control
from pt_training import (
    MIN_HOURLY_CANDLES,
    InsufficientHistoryError,
    TrainingStoppedError,
    TrainProgress,
    TrainResult,
    timeframe_candles,
    train_coin,
    walk_in_chunks,
)
from pt_types import HOUR, Candles, ControlCommand, Timeframe

ROOT = Path(__file__).resolve().parent.parent
SHORT_START = "2018-03-01"  # ~4,700 hourly BTC candles: a training well under a second


def day(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def between(hourly: Candles, first: int, stop: int) -> Candles:
    lo, hi = np.searchsorted(hourly.time, [first, stop])
    return hourly.slice(int(lo), int(hi))


@pytest.fixture(scope="module")
def btc_2023() -> Candles:
    return between(pt_ohlcv.load_bundled("BTC"), day("2023-01-01"), day("2024-01-10"))


NOW = day("2023-12-28") + 12 * HOUR  # a Thursday noon: the day, 12h and week are all forming


@pytest.fixture(scope="module")
def trained(btc_2023: Candles) -> TrainResult:
    return train_coin("BTC", btc_2023, PatternConfig(), now=NOW)


# --------------------------------------------------------------------------- train_coin


def test_every_timeframe_is_trained_on_its_own_closed_candles(
    btc_2023: Candles, trained: TrainResult
) -> None:
    closed_hours = btc_2023.time[btc_2023.time + HOUR <= NOW]
    assert trained.data_from == day("2023-01-01") and trained.data_to == closed_hours[-1]
    assert set(trained.timeframes) == set(Timeframe)
    for tf, result in trained.timeframes.items():
        opens = np.unique(closed_hours - (closed_hours - tf.anchor) % tf.seconds)
        opens = opens[opens + tf.seconds <= NOW]  # the bucket NOW is in has not closed
        assert result.candles == len(opens), tf
        # pattern_length 1: a step per candle that directly follows the one before it
        assert result.accuracy.steps == int(np.count_nonzero(np.diff(opens) == tf.seconds)), tf
        assert len(result.memory.patterns) > 0
    steps = [r.accuracy.steps for r in trained.timeframes.values()]
    assert steps == sorted(steps, reverse=True) and steps[0] > 8 * steps[4]


def test_accuracy_figures_are_present_and_sane(trained: TrainResult) -> None:
    meta_figures = trained.accuracy()
    for tf, result in trained.timeframes.items():
        acc = result.accuracy
        assert 0 < acc.active <= acc.steps
        for s in (acc.model, acc.previous, acc.trailing):
            assert 0 <= s.coverage_high <= 1 and 0 <= s.coverage_low <= 1
            assert s.mae_high > 0 and s.mae_low > 0
        figures = meta_figures[tf.value]
        assert figures["memories"] == len(result.memory.patterns)
        assert figures["candles"] == result.candles and figures["mae_high"] == acc.model.mae_high


def test_chunked_walk_equals_one_walk(btc_2023: Candles) -> None:
    config = PatternConfig(pattern_length=3, distance="absolute")
    candles = timeframe_candles(btc_2023, Timeframe.H1, NOW).slice(0, 5000)  # three chunks
    whole, chunked = Memory(config), Memory(config)
    expected = walk_forward(whole, candles, HOUR)
    got = walk_in_chunks(chunked, candles, HOUR)
    np.testing.assert_array_equal(got.predicted, expected.predicted)
    np.testing.assert_array_equal(got.stepped, expected.stepped)
    np.testing.assert_array_equal(chunked.arrays().weights, whole.arrays().weights)
    assert chunked.threshold == whole.threshold


def test_candles_after_now_change_nothing(btc_2023: Candles, trained: TrainResult) -> None:
    cut = between(btc_2023, 0, NOW - HOUR + 1)  # only hours that closed by NOW
    again = train_coin("BTC", cut, PatternConfig(), now=NOW)
    for tf in Timeframe:
        np.testing.assert_array_equal(
            again.timeframes[tf].memory.weights, trained.timeframes[tf].memory.weights
        )


def test_progress_rises_to_100_and_a_stop_ends_it(btc_2023: Candles) -> None:
    seen: list[TrainProgress] = []
    train_coin("BTC", btc_2023, PatternConfig(), now=NOW, progress=seen.append)
    percents = [p.percent for p in seen]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert [p.timeframe for p in seen][-1] is Timeframe.W1

    calls = iter(range(100))
    stopped_at: list[float] = []
    with pytest.raises(TrainingStoppedError):
        train_coin(
            "BTC",
            btc_2023,
            PatternConfig(),
            now=NOW,
            should_stop=lambda: next(calls) >= 3,
            progress=lambda p: stopped_at.append(p.percent),
        )
    assert 0 < stopped_at[-1] < 100


def test_too_little_history_says_how_much_is_needed(btc_2023: Candles) -> None:
    short = btc_2023.slice(0, MIN_HOURLY_CANDLES - 1)
    with pytest.raises(InsufficientHistoryError, match=r"499 closed hourly .* at least 500"):
        train_coin("BTC", short, PatternConfig(), now=float(short.time[-1] + HOUR))
    enough = btc_2023.slice(0, MIN_HOURLY_CANDLES)
    result = train_coin("BTC", enough, PatternConfig(), now=float(enough.time[-1] + HOUR))
    assert result.hourly_candles == MIN_HOURLY_CANDLES
    assert result.timeframes[Timeframe.W1].accuracy.active == 0  # too short: stays inactive


def test_a_bad_candle_is_dropped_and_named_never_learned(btc_2023: Candles) -> None:
    close = np.array(btc_2023.close)
    close[100] = np.nan
    bad = Candles(btc_2023.time, btc_2023.open, btc_2023.high, btc_2023.low, close, btc_2023.volume)
    result = train_coin("BTC", bad, PatternConfig(), now=NOW)
    assert any("not a finite number" in r for r in result.repairs)
    assert result.hourly_candles == len(btc_2023.time[btc_2023.time + HOUR <= NOW]) - 1
    for r in result.timeframes.values():
        assert np.isfinite(r.memory.patterns).all() and np.isfinite(r.memory.outcomes).all()


# --------------------------------------------------------------------------- the process


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("POWERTRADER_")}


def command(data: Path, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "pt_trainer.py"), *args, "--data-dir", str(data)]


def run(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(data, *args),
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
        check=False,
    )


Start = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def start() -> Iterator[Start]:
    """Start trainers in the background; any still running when the test ends is killed."""
    procs: list[subprocess.Popen[str]] = []

    def starter(data: Path, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            command(data, *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        procs.append(proc)
        return proc

    yield starter
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def settings(data: Path, **values: Any) -> DataLayout:
    data.mkdir(parents=True, exist_ok=True)
    body = {"coins": ["BTC", "ETH"], "logging": {"console": False}, **values}
    (data / "settings.json").write_text(json.dumps(body))
    return DataLayout(data)


def status(layout: DataLayout, coin: str = "BTC") -> dict[str, Any]:
    data: dict[str, Any] = json.loads(layout.trainer_file(coin).read_text())["data"]
    return data


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def training_started(layout: DataLayout) -> bool:
    try:
        return str(status(layout)["phase"]).startswith("training ")
    except (OSError, ValueError, KeyError):
        return False


def trained_model(layout: DataLayout) -> str:
    settings(layout.root, demo={"start": SHORT_START})
    first = run(layout.root, "BTC")
    assert first.returncode == 0, first.stderr
    return load_meta(layout, "BTC").model_id


def test_training_saves_a_model_and_a_second_run_swaps_it(tmp_path: Path) -> None:
    layout = settings(tmp_path, demo={"start": SHORT_START})
    result = run(tmp_path, "btc")
    assert result.returncode == 0, result.stderr
    assert "cut at demo.start 2018-03-01" in result.stdout and "Model BTC-" in result.stdout
    meta = load_meta(layout, "BTC")
    assert meta.coin == "BTC" and meta.trained_at == day(SHORT_START)
    assert meta.data_from == day("2017-08-17") + 4 * HOUR and meta.data_to == meta.trained_at - HOUR
    assert meta.config["distance"] == "relative" and meta.config["pattern_length"] == 1
    assert meta.code_version == (ROOT / "VERSION.md").read_text().strip()
    assert set(meta.accuracy) == {tf.value for tf in Timeframe}
    assert set(load_model(layout, "BTC").memories) == set(Timeframe)
    done = status(layout)
    assert done["state"] == "finished" and done["percent"] == 100.0
    assert done["model_id"] == meta.model_id and layout.heartbeat_file("trainer-BTC").exists()

    again = run(tmp_path, "BTC")
    assert again.returncode == 0, again.stderr
    assert load_meta(layout, "BTC").model_id != meta.model_id
    assert [p.name for p in layout.models_dir.iterdir()] == ["BTC"]  # no temp folders left


def test_the_demo_clock_cuts_the_history(tmp_path: Path) -> None:
    layout = settings(tmp_path)  # demo.start 2024-01-01: the clock must win
    clock = start_clock(layout, day(SHORT_START), 3600.0)
    result = run(tmp_path, "BTC")
    assert result.returncode == 0, result.stderr
    meta = load_meta(layout, "BTC")
    sim_now = sim_time(clock, time.time())
    assert clock.sim_start <= meta.trained_at <= sim_now
    assert meta.trained_at - 2 * HOUR < meta.data_to < meta.trained_at


def test_stop_through_the_control_file_keeps_the_previous_model(
    tmp_path: Path, start: Start
) -> None:
    layout = DataLayout(tmp_path)
    before = trained_model(layout)
    settings(tmp_path)  # demo.start 2024-01-01: ~56,000 hourly candles, seconds of training
    proc = start(tmp_path, "BTC")
    wait_for(lambda: training_started(layout))
    write_control(layout, "trainer-BTC", ControlCommand.STOP)
    asked = time.monotonic()
    assert proc.wait(timeout=10) == 3, proc.communicate()
    assert time.monotonic() - asked < 1.5
    assert "training stopped" in proc.communicate()[1]
    assert status(layout)["state"] == "stopped"
    assert load_meta(layout, "BTC").model_id == before


def test_a_stop_from_before_the_start_is_for_an_earlier_run(tmp_path: Path) -> None:
    layout = settings(tmp_path, demo={"start": SHORT_START}).ensure()
    write_control(layout, "trainer-BTC", ControlCommand.STOP, clock=lambda: time.time() - 60)
    result = run(tmp_path, "BTC")
    assert result.returncode == 0, result.stderr
    assert status(layout)["state"] == "finished"


def test_sigterm_stops_like_the_control_file(tmp_path: Path, start: Start) -> None:
    layout = settings(tmp_path)
    proc = start(tmp_path, "BTC")
    wait_for(lambda: training_started(layout))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 3
    assert status(layout)["state"] == "stopped" and not layout.model_dir("BTC").exists()


def test_a_killed_trainer_leaves_the_model_and_the_next_run_tidies_up(
    tmp_path: Path, start: Start
) -> None:
    layout = DataLayout(tmp_path)
    before = trained_model(layout)
    settings(tmp_path)
    proc = start(tmp_path, "BTC")
    wait_for(lambda: training_started(layout))
    proc.kill()
    proc.wait(timeout=10)
    assert load_meta(layout, "BTC").model_id == before
    assert set(load_model(layout, "BTC").memories) == set(Timeframe)
    # As if killed inside save_model: a half-written new version beside the current one.
    staging = layout.model_dir("BTC") / ".staging-BTC-4242"
    staging.mkdir()
    (staging / "memories.npz").write_bytes(b"half")
    settings(tmp_path, demo={"start": "2017-08-20"})  # the next run then fails: too little data
    result = run(tmp_path, "BTC")
    assert result.returncode == 1
    assert load_meta(layout, "BTC").model_id == before
    assert not staging.exists()
    assert [p.name for p in layout.models_dir.iterdir()] == ["BTC"]


def test_too_little_history_is_explained(tmp_path: Path) -> None:
    layout = settings(tmp_path, demo={"start": "2017-08-20"})
    result = run(tmp_path, "BTC")
    assert result.returncode == 1
    assert "BTC: 68 closed hourly candles" in result.stderr
    assert "needs at least 500" in result.stderr and "later demo.start" in result.stderr
    assert "Traceback" not in result.stderr
    assert status(layout)["state"] == "failed" and "at least 500" in status(layout)["message"]


def test_an_unknown_coin_lists_the_bundled_ones(tmp_path: Path) -> None:
    settings(tmp_path)
    result = run(tmp_path, "SOL")
    assert result.returncode == 1
    assert "no bundled candles for 'SOL'" in result.stderr
    assert "available: BNB, BTC, DOGE, ETH, XRP" in result.stderr


def test_invalid_settings_name_every_problem(tmp_path: Path) -> None:
    settings(tmp_path, predictor={"pattern_length": 0, "distance": "cosine"})
    result = run(tmp_path, "BTC")
    assert result.returncode == 2
    assert "predictor.pattern_length = 0" in result.stderr
    assert "predictor.distance = 'cosine'" in result.stderr
    assert "Traceback" not in result.stderr


def test_one_trainer_per_coin_and_data_folder(tmp_path: Path) -> None:
    layout = settings(tmp_path, demo={"start": SHORT_START})
    with SingleInstanceLock(layout.lock_file("trainer-BTC")):
        result = run(tmp_path, "BTC")
    assert result.returncode == 2
    assert "another trainer-BTC is already running" in result.stderr
    assert not layout.model_dir("BTC").exists()


def test_report_prints_every_timeframe_and_both_baselines(tmp_path: Path) -> None:
    layout = settings(tmp_path)
    result = run(
        tmp_path,
        "BTC",
        "--report",
        "--since",
        "2023-01-01",
        "--until",
        "2023-07-01",
        "--distance",
        "absolute",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "ALL bundled history (not cut at the demo clock)" in out
    assert "2023-01-01 00:00 UTC .. 2023-06-30 23:00 UTC" in out
    assert "distance absolute" in out and "No model was saved" in out
    tfs = [tf.value for tf in Timeframe]
    rows = [line.split()[:2] for line in out.splitlines() if line.split()[:1] in ([t] for t in tfs)]
    assert rows == [[t, "model"] for t in tfs]
    lines = [line.strip() for line in out.splitlines()]
    assert sum(line.startswith("previous candle ") for line in lines) == 7
    assert sum(line.startswith("mean of last 20 ") for line in lines) == 7
    assert sum(": the model " in line for line in out.splitlines()) == 7
    assert not layout.models_dir.exists() or not any(layout.models_dir.iterdir())


def test_report_options_belong_to_the_report(tmp_path: Path) -> None:
    settings(tmp_path)
    result = run(tmp_path, "BTC", "--distance", "absolute")
    assert result.returncode == 2 and "only go with --report" in result.stderr


class BundledSource:
    """A candle source without HTTP, to fill the candle cache the way earlier runs would have."""

    name = "kucoin"

    def __init__(self, hourly: Candles) -> None:
        self.hourly = hourly

    def candles(self, coin: str, timeframe: Timeframe, start: int, end: int) -> Candles:
        return between(self.hourly, start, end)


def test_paper_mode_trains_on_the_cache_and_the_venues(tmp_path: Path) -> None:
    from pt_candle_cache import CandleCache
    from pt_trainer import LIVE_LOOKBACK
    from tests.fake_kucoin import FakeKucoin

    wall_now = time.time()
    hour = Timeframe.H1.candle_open(int(wall_now))
    hourly = pt_ohlcv.load_bundled("BTC").until(hour - 2 * HOUR)
    recent = hourly.slice(len(hourly) - 1200)  # fifty days: the venue has no more
    layout = DataLayout(tmp_path)
    cache = CandleCache(layout.candles_db)  # eight years cached, up to the last hour
    cache.get("BTC", Timeframe.H1, hour - LIVE_LOOKBACK - HOUR, hour, BundledSource(recent))
    cache.close()
    with FakeKucoin({"BTC": recent}, now=int(wall_now)) as fake:
        settings(
            tmp_path, mode="paper", exchanges={"order": ["kucoin"], "kucoin_url": fake.base_url}
        )
        result = run(tmp_path, "BTC")
        asked = fake.requests_to("/api/v1/market/candles")
    assert result.returncode == 0, result.stderr
    assert "paper mode, cache and venues" in result.stdout
    meta = load_meta(layout, "BTC")
    assert meta.data_from == recent.time[0] and meta.data_to == recent.time[-1]
    assert wall_now <= meta.trained_at <= time.time()
    # the cached years are not asked again: only the hours after what the cache holds
    assert {r.param("type") for r in asked} == {"1hour"}  # coarser ones are resampled
    assert min(int(r.param("startAt") or 0) for r in asked) > recent.time[-1]
