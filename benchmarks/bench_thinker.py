"""Time the thinker's prediction path and measure its resident memory with 50 coins.

Run from anywhere: ``python benchmarks/bench_thinker.py [--runs N]``.

Models for BTC, ETH, XRP, BNB and DOGE are trained in-process by the walk-forward over all of
their bundled history (every timeframe), then replicated to 50 coins. Timed, with the models in
memory and the candles already fetched (no network, no files):

- *predict*: the pure path at a candle close for one coin, all seven timeframes: candle checks,
  patterns, kNN match and weighted mean (``TimeframeTracker.feed``), then spaced bounds and
  LONG/SHORT levels (``CoinPredictor.signal``);
- *levels*: what runs on every price update (bounds + levels only);
- *learn*: learning one closed candle on each of the seven timeframes (``Memory.step``).

Then a real ``pt_thinker.py --once`` runs over a temporary data folder holding the 5 models
copied under 50 coin names (demo mode on the replay; coins without bundled history report
``no_candles``), and its peak resident memory (``VmHWM`` via ``wait4``'s ``ru_maxrss``) is printed.
"""

from __future__ import annotations

import argparse
import calendar
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pt_ohlcv  # noqa: E402
from pt_candles import drop_forming  # noqa: E402
from pt_models import Model, ModelMeta, save_model  # noqa: E402
from pt_patterns import Memory, PatternConfig, candle_moves, pattern_windows, walk_forward  # noqa: E402
from pt_replay import start_clock  # noqa: E402
from pt_signals import CoinPredictor, CoinSignal  # noqa: E402
from pt_state import DataLayout  # noqa: E402
from pt_types import Candles, Timeframe  # noqa: E402

BASE_COINS = ("BTC", "ETH", "XRP", "BNB", "DOGE")
N_COINS = 50
SIM_START = calendar.timegm((2026, 1, 5, 0, 30, 0))  # inside every bundled coin's history


def train(coin: str, config: PatternConfig) -> tuple[Model, dict[Timeframe, Candles]]:
    """The walk-forward over all closed candles before SIM_START; returns the model and the
    candles a thinker would fetch at SIM_START (the last few closed ones plus the forming one)."""
    memories, recent = {}, {}
    for tf in Timeframe:
        table = pt_ohlcv.load_bundled(coin, tf).until(SIM_START)
        closed = drop_forming(table.until(SIM_START - tf.seconds))
        memory = Memory(config)
        walk_forward(memory, closed, tf.seconds)
        memories[tf] = memory.arrays()
        last = tf.candle_open(SIM_START)
        window = table.until(last)
        recent[tf] = dataclasses.replace(window.slice(len(window) - 4), forming=True)
    meta = ModelMeta(
        coin, f"{coin}-bench", float(SIM_START), 0, SIM_START, dataclasses.asdict(config), "bench"
    )
    return Model(meta, memories), recent


def timed_runs(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def show(label: str, figures: tuple[float, float], target_ms: float | None = None) -> None:
    median, best = (x * 1000 for x in figures)
    goal = f"   (target < {target_ms:g} ms)" if target_ms else ""
    print(f"{label:<46} median {median:8.3f} ms   min {best:8.3f} ms{goal}")


def bench_pure(
    models: dict[str, Model], recent: dict[str, dict[Timeframe, Candles]], runs: int
) -> None:
    now = float(SIM_START)
    coins = [BASE_COINS[i % len(BASE_COINS)] for i in range(N_COINS)]
    memories = {
        c: {tf: Memory(m.meta.pattern_config, m.memories[tf]) for tf in Timeframe}
        for c, m in models.items()
    }
    price = {c: float(recent[c][Timeframe.H1].close[-1]) for c in BASE_COINS}

    def predict(coin: str) -> CoinPredictor:
        predictor = CoinPredictor(coin, "bench", memories[coin])
        for tf, tracker in predictor.trackers.items():
            tracker.feed(recent[coin][tf], now)
        predictor.signal(now, price[coin])
        return predictor

    one = predict("BTC").signal(now, price["BTC"])
    active = sum(v.side.value != "inactive" for v in one.timeframes)
    print(
        f"BTC at {time.strftime('%Y-%m-%d %H:%M', time.gmtime(now))} UTC: price "
        f"{one.price:.2f}, LONG {one.long_level}, SHORT {one.short_level}, "
        f"{active}/7 timeframes active"
    )
    sizes = ", ".join(f"{tf.value} {len(m)}" for tf, m in memories["BTC"].items())
    print(f"BTC memory sizes: {sizes}\n")
    show("predict, 1 coin x 7 tf (+ bounds, levels)", timed_runs(lambda: predict("BTC"), runs), 2)
    show(
        f"predict, {N_COINS} coins x 7 tf",
        timed_runs(lambda: [predict(c) for c in coins], runs),
        100,
    )
    ready = {c: predict(c) for c in BASE_COINS}
    show("levels at a new price, 1 coin", timed_runs(lambda: one_signal(ready, price), runs))
    show(
        f"levels at a new price, {N_COINS} coins",
        timed_runs(lambda: [one_signal(ready, price, c) for c in coins], runs),
    )
    show("learn one closed candle, 1 coin x 7 tf", learn_figures(models, recent, runs))


def one_signal(
    ready: dict[str, CoinPredictor], price: dict[str, float], coin: str = "BTC"
) -> CoinSignal:
    return ready[coin].signal(float(SIM_START), price[coin] * 1.001)


def learn_figures(
    models: dict[str, Model], recent: dict[str, dict[Timeframe, Candles]], runs: int
) -> tuple[float, float]:
    """Memory.step for the last closed candle of each timeframe, on a fresh copy each run."""
    config = models["BTC"].meta.pattern_config
    steps = []
    for tf in Timeframe:
        table = recent["BTC"][tf]
        patterns, _ = pattern_windows(candle_moves(table, tf.seconds), config.pattern_length)
        steps.append((tf, patterns[-2], candle_moves(table, tf.seconds).outcome_pct[-2]))
    times = []
    for _ in range(runs):
        fresh = {tf: Memory(config, models["BTC"].memories[tf]) for tf in Timeframe}
        start = time.perf_counter()
        for tf, pattern, outcome in steps:
            fresh[tf].step(pattern, outcome)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def bench_rss(models: dict[str, Model], n_coins: int) -> None:
    """Peak RSS of a real ``pt_thinker.py --once`` with ``n_coins`` models on disk."""
    names = [f"{BASE_COINS[i % 5]}{i // 5 or ''}" for i in range(n_coins)]
    with tempfile.TemporaryDirectory() as tmp:
        layout = DataLayout(Path(tmp)).ensure()
        for name in names:
            base = models[name.rstrip("0123456789")]
            meta = dataclasses.replace(base.meta, coin=name, model_id=f"{name}-bench")
            save_model(layout, Model(meta, base.memories))
        layout.settings_file.write_text(
            json.dumps({"coins": names, "mode": "demo", "logging": {"console": False}})
        )
        start_clock(layout, SIM_START, 1.0)
        env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTRADER_")}
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "pt_thinker.py"), "--data-dir", tmp, "--once"], env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - started
        data = json.loads(layout.signals_file.read_text())["data"]
    peak_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    ready = len(data["ready_coins"])
    print(
        f"thinker --once, {n_coins:2d} coin models: peak RSS {peak_mb:6.1f} MB, "
        f"{elapsed:5.2f} s wall incl. start-up, exit {proc.returncode}, stage "
        f"{data['stage']}, {ready} ready" + ("   (target < 300 MB)" if n_coins == 50 else "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per figure")
    args = parser.parse_args()
    config = PatternConfig()
    models, recent = {}, {}
    started = time.perf_counter()
    for coin in BASE_COINS:
        models[coin], recent[coin] = train(coin, config)
    print(
        f"trained {len(BASE_COINS)} coins x 7 timeframes on all bundled history before "
        f"the bench time in {time.perf_counter() - started:.1f} s\n"
    )
    bench_pure(models, recent, args.runs)
    print()
    bench_rss_empty()
    for n in (5, N_COINS):
        bench_rss(models, n)
    return 0


def bench_rss_empty() -> None:
    """Baseline: the interpreter and imports, one coin that has no model."""
    with tempfile.TemporaryDirectory() as tmp:
        layout = DataLayout(Path(tmp)).ensure()
        settings = {"coins": ["BTC"], "logging": {"console": False}}
        layout.settings_file.write_text(json.dumps(settings))
        start_clock(layout, SIM_START, 1.0)
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "pt_thinker.py"), "--data-dir", tmp, "--once"]
        )
        _, _, usage = os.wait4(proc.pid, 0)
    print(f"thinker --once, no model (baseline):  peak RSS {usage.ru_maxrss / 1024:6.1f} MB")


if __name__ == "__main__":
    raise SystemExit(main())
