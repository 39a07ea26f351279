"""The thinker: turns every coin's pattern memory and the market into LONG/SHORT signals.

``python pt_thinker.py [--data-dir DIR] [--once]``

A composition root: it wires the market (``pt_thinker_exchanges``; the demo replay on the hub's
simulated clock), the models on disk (``pt_models``) and the pure signal logic
(``pt_signals``/``pt_patterns``), and writes ``state/signals.json`` (schema ``signals/1``, this
process is its only writer) plus a heartbeat. It never trades and never loads API keys.

What the original got wrong and this one does not: learned weights are kept (live learning is
saved beside the model), a coin whose model is missing, damaged or stale gets no signal but a
reason, a failing price feed clears the coin's levels instead of leaving old ones standing,
levels follow every price instead of every slow sweep, and "ready" counts coins added while
running (the original compared with its start-up list).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from pt_config import SettingsWatcher
from pt_config_schema import PredictorSettings, Settings
from pt_errors import PowerTraderError
from pt_market_watch import Anomaly, CandleSource, MarketWatch
from pt_models import (
    ModelError,
    ModelMeta,
    current_marker,
    load_model,
    model_status,
    save_learned,
)
from pt_notify_format import volume_anomaly
from pt_notify_runtime import ProcessNotifier
from pt_notify_watch import ArbitrageWatch
from pt_patterns import Memory, PatternConfig
from pt_process import read_passphrase, run_process, worker_parser
from pt_replay import DemoClockError, SimClock
from pt_signals import (
    SIGNALS_SCHEMA,
    CoinPredictor,
    CoinSignal,
    CoinStatus,
    SignalsSnapshot,
    Stage,
    price_problem,
    snapshot_from_data,
    snapshot_to_data,
    stage_of,
)
from pt_state import (
    DataLayout,
    StateReader,
    StateWriter,
    heartbeat_age,
    read_control,
    read_heartbeat,
    stat_key,
    write_heartbeat,
)
from pt_thinker_exchanges import AggregatedPrice, build_market
from pt_types import ControlCommand, Mode, Timeframe

log = logging.getLogger(__name__)

PROC = "thinker"
SAVE_EVERY_CANDLES = 24  # live learning is saved after this many learned candles per coin...
SAVE_EVERY_SECONDS = 300.0  # ...or this many wall seconds, and always at shutdown
TRAINER_BEAT_LIMIT = 10.0  # wall seconds: a trainer silent for longer is dead, not training
CONTROL_POLL = 0.25  # wall seconds between control-file checks while waiting
WAITING_FOR_CLOCK = "waiting for the demo clock (start it from the hub)"
Clock = Callable[[], float]


class Market(CandleSource, Protocol):
    """What the thinker needs from ``pt_thinker_exchanges.MarketData`` (tests pass fakes)."""

    def get_aggregated_current_price(self, symbol: str) -> AggregatedPrice: ...


@dataclass
class _Slot:
    """One coin's model and live state inside the thinker."""

    coin: str
    meta_key: tuple[int, int, int] | None = None
    meta: ModelMeta | None = None
    predictor: CoinPredictor | None = None
    problem: tuple[CoinStatus, str] | None = None
    unsaved: int = 0
    saved_at: float = 0.0
    learned_at: float | None = None  # the mode's clock when it last learned a candle
    shown: tuple[CoinStatus, str] | None = None


def _mismatch(config: PatternConfig, wanted: PredictorSettings) -> str:
    """Settings a model cannot follow without retraining (its patterns have that shape)."""
    diffs = [
        f"{name} {getattr(config, name)!r} (settings now: {getattr(wanted, name)!r})"
        for name in ("pattern_length", "distance")
        if getattr(config, name) != getattr(wanted, name)
    ]
    return f"trained with {', '.join(diffs)}; train it again" if diffs else ""


class Thinker:
    """One loop over every configured coin: models, candles, learning, prices, signals."""

    def __init__(
        self, layout: DataLayout, market: Market, *, wall: Clock = time.time, writer: StateWriter
    ) -> None:
        self.layout = layout
        self.market = market
        self._wall = wall
        self._writer = writer
        self._slots: dict[str, _Slot] = {}
        self.watch = MarketWatch(market)
        self.anomalies: list[Anomaly] = []  # new volume anomalies found by the last step

    def step(self, settings: Settings, now: float) -> SignalsSnapshot:
        """Refresh every coin at ``now`` (the mode's time) and write ``state/signals.json``."""
        for coin in [c for c in self._slots if c not in settings.coins]:
            log.info("%s removed from the settings; no longer followed", coin)
            self._save(self._slots.pop(coin))
        slots = [self._slots.setdefault(c, _Slot(c)) for c in settings.coins]
        self.anomalies = self.watch.refresh(settings.coins, settings, now)
        coins = tuple(
            replace(self._coin(slot, settings, now), market=self.watch.state(slot.coin))
            for slot in slots
        )
        stage, reason = stage_of(coins)
        snapshot = SignalsSnapshot(stage, reason, now, coins, correlations=self.watch.correlations)
        return self.write(snapshot)

    def write(self, snapshot: SignalsSnapshot) -> SignalsSnapshot:
        env = self._writer.write(snapshot_to_data(snapshot), now=self._wall())
        return snapshot_from_data(env.data, written_at=env.written_at, seq=env.seq)

    def save_all(self) -> None:
        for slot in self._slots.values():
            self._save(slot)

    # ------------------------------------------------------------------ per coin

    def _coin(self, slot: _Slot, settings: Settings, now: float) -> CoinSignal:
        try:
            signal = self._coin_signal(slot, settings, now)
        except Exception as exc:  # a bug or surprise in one coin must not stop the others
            log.exception("%s: unexpected error", slot.coin)
            signal = CoinSignal(slot.coin, CoinStatus.ERROR, f"unexpected error: {exc}", now)
        shown = (signal.status, signal.reason if signal.status is not CoinStatus.READY else "")
        if shown != slot.shown:
            calm = signal.status in (CoinStatus.READY, CoinStatus.WARMING_UP)
            level = logging.INFO if calm else logging.WARNING
            log.log(level, "%s: %s (%s)", slot.coin, signal.status.value, signal.reason)
            slot.shown = shown
        return signal

    def _coin_signal(self, slot: _Slot, settings: Settings, now: float) -> CoinSignal:
        if self._training(slot.coin):
            why = f"{slot.coin}: training; no new trades on it until the trainer finishes"
            return CoinSignal(slot.coin, CoinStatus.TRAINING, why, now)
        problem = self._refresh_model(slot, settings.predictor, now)
        model_id = slot.meta.model_id if slot.meta else ""
        if problem is not None or slot.predictor is None:
            status, reason = problem or (CoinStatus.NOT_TRAINED, "no model loaded")
            return CoinSignal(slot.coin, status, reason, now, model_id)
        self._follow_candles(slot, slot.predictor, now)
        price, no_price = self._price(slot.coin, now)
        return slot.predictor.signal(now, price, no_price, settings.predictor.bound_pct)

    def _training(self, coin: str) -> bool:
        """A trainer for ``coin`` beats and says it is training (whoever started it)."""
        hb = read_heartbeat(self.layout, f"trainer-{coin}")
        return (
            hb is not None
            and hb.status == "training"
            and heartbeat_age(hb, self._wall()) <= TRAINER_BEAT_LIMIT
        )

    def _refresh_model(
        self, slot: _Slot, wanted: PredictorSettings, now: float
    ) -> tuple[CoinStatus, str] | None:
        status = model_status(self.layout, slot.coin, now, learning_at=slot.learned_at)
        if status.state in ("missing", "damaged"):
            slot.predictor, slot.meta, slot.meta_key = None, None, None
            kind = CoinStatus.NOT_TRAINED if status.state == "missing" else CoinStatus.DAMAGED_MODEL
            return kind, status.detail
        key = stat_key(current_marker(self.layout, slot.coin))
        if key != slot.meta_key:
            slot.meta_key = key
            self._load(slot)
        if slot.problem is not None:
            return slot.problem
        if status.state == "stale":
            return CoinStatus.STALE_MODEL, status.detail
        mismatch = _mismatch(slot.meta.pattern_config, wanted) if slot.meta else ""
        return (CoinStatus.STALE_MODEL, f"{slot.coin}: {mismatch}") if mismatch else None

    def _load(self, slot: _Slot) -> None:
        """(Re)load the coin's model; a model with the same id keeps its live state."""
        try:
            model = load_model(self.layout, slot.coin)
            config = model.meta.pattern_config
            memories = {tf: Memory(config, model.memories[tf]) for tf in Timeframe}
        except (ModelError, ValueError, TypeError, KeyError) as exc:
            self._save(slot)
            slot.predictor, slot.meta = None, None
            slot.problem = (CoinStatus.DAMAGED_MODEL, f"{slot.coin}: model unusable: {exc}")
            return
        slot.problem = None
        if slot.predictor is not None and slot.predictor.model_id == model.meta.model_id:
            return
        self._save(slot)
        slot.meta = model.meta
        slot.predictor = CoinPredictor(slot.coin, model.meta.model_id, memories)
        slot.learned_at = None  # a new model: only its own learning keeps it fresh
        slot.unsaved, slot.saved_at = 0, self._wall()
        sizes = ", ".join(f"{tf.value} {len(m)}" for tf, m in memories.items())
        log.info("%s: model %s loaded (memories: %s)", slot.coin, model.meta.model_id, sizes)

    def _follow_candles(self, slot: _Slot, predictor: CoinPredictor, now: float) -> None:
        """Fetch a timeframe only when a candle may have closed; learn, then predict."""
        for tf, tracker in predictor.trackers.items():
            limit = tracker.fetch_limit(now)
            if not limit:
                continue
            try:
                candles = self.market.get_candle_from_exchanges(slot.coin, tf, limit=limit)
            except (PowerTraderError, ValueError, OSError) as exc:
                log.info("%s %s candles unavailable: %s", slot.coin, tf.value, exc)
                tracker.fail(f"candles unavailable: {exc}", now)
                continue
            learned = tracker.feed(candles, now)
            if learned:
                slot.unsaved += learned
                slot.learned_at = now
        if slot.unsaved and (
            slot.unsaved >= SAVE_EVERY_CANDLES or self._wall() - slot.saved_at >= SAVE_EVERY_SECONDS
        ):
            self._save(slot)

    def _price(self, coin: str, now: float) -> tuple[float | None, str]:
        try:
            agg = self.market.get_aggregated_current_price(coin)
        except (PowerTraderError, ValueError, OSError) as exc:
            return None, str(exc)
        newest = max((q.time for q in agg.quotes), default=agg.time)
        why = price_problem(agg.median_mid, newest, now)
        return (None, why) if why else (agg.median_mid, "")

    def _save(self, slot: _Slot) -> None:
        """Persist live learning (pt_models skips it when the model was replaced meanwhile)."""
        if not (slot.unsaved and slot.predictor and slot.meta and slot.learned_at is not None):
            return
        try:
            memories = slot.predictor.memory_arrays()
            save_learned(self.layout, slot.meta, memories, learned_until=slot.learned_at)
        except OSError as exc:
            log.error("%s: could not save live learning: %s", slot.coin, exc)
            return
        log.info("%s: saved live learning (%s candles)", slot.coin, slot.unsaved)
        slot.unsaved, slot.saved_at = 0, self._wall()


# --------------------------------------------------------------------------- the process loop


class Runner:
    """Control file, heartbeat, settings hot reload, market and clock around a :class:`Thinker`."""

    def __init__(
        self,
        layout: DataLayout,
        watcher: SettingsWatcher,
        *,
        wall: Clock = time.time,
        sleep: Callable[[float], None] = time.sleep,
        build: Callable[[Settings, DataLayout], Market] = build_market,
        notifier: ProcessNotifier | None = None,
    ) -> None:
        self.layout = layout
        self.watcher = watcher
        self.notifier = notifier
        self._arbitrage = ArbitrageWatch(notifier.notify if notifier else lambda n: None, wall=wall)
        self._wall, self._sleep, self._build = wall, sleep, build
        self._writer = StateWriter(layout.signals_file, SIGNALS_SCHEMA, clock=wall)
        self.thinker: Thinker | None = None
        self._market_key: object = None
        self._now: Clock = wall

    def run(self, *, once: bool = False) -> int:
        """Loop until the hub writes STOP (or once); live learning is saved on the way out."""
        settings = self.watcher.current
        self._placeholder(settings, Stage.STARTING, "starting")
        try:
            while True:
                started = self._wall()
                command = read_control(self.layout, PROC)
                if command is ControlCommand.STOP:
                    log.info("stop requested by the hub")
                    break
                if command is ControlCommand.PAUSE:
                    write_heartbeat(self.layout, PROC, status="paused", clock=self._wall)
                else:
                    settings = self.loop()
                if once:
                    break
                self._wait(started + settings.predictor.signal_seconds)
        finally:
            if self.thinker is not None:
                self.thinker.save_all()
        return 0

    def loop(self) -> Settings:
        settings = self.watcher.reload()
        if self.notifier is not None:
            self.notifier.update(settings)
        key = (settings.mode, settings.demo.spread_pct, settings.exchanges)
        if key != self._market_key or self.thinker is None:
            if self.thinker is not None:
                self.thinker.save_all()
            log.info("market: %s mode", settings.mode.value)
            market = self._build(settings, self.layout)
            self.thinker = Thinker(self.layout, market, wall=self._wall, writer=self._writer)
            demo = settings.mode is Mode.DEMO
            self._now = SimClock(self.layout, wall_clock=self._wall).now if demo else self._wall
            self._market_key = key
        try:
            now = self._now()
        except DemoClockError as exc:
            log.debug("%s", exc)
            stage = self._placeholder(settings, Stage.WAITING_FOR_CLOCK, WAITING_FOR_CLOCK)
        else:
            stage = self.thinker.step(settings, now).stage
            self._watch_arbitrage(settings)
            self._notify_anomalies(settings, now)
        write_heartbeat(self.layout, PROC, status=stage.value, clock=self._wall)
        return settings

    def _watch_arbitrage(self, settings: Settings) -> None:
        """Gaps between venues, when someone is listening for them (it asks every venue)."""
        cfg = settings.notifications
        if self.notifier is None or not self.notifier.channels or "arbitrage" not in cfg.events:
            return
        assert self.thinker is not None
        self._arbitrage.check(self.thinker.market, settings.coins, cfg.arbitrage_min_pct)

    def _notify_anomalies(self, settings: Settings, now: float) -> None:
        assert self.thinker is not None
        for found in self.thinker.anomalies:
            v = found.volume
            log.info("%s: volume anomaly in the hour from %s: %s", found.coin, v.candle_time,
                     v.reason)  # fmt: skip
            if self.notifier is not None and "volume_anomaly" in settings.notifications.events:
                self.notifier.notify(volume_anomaly(found.coin, v.relative, v.z, v.reason,
                                                    candle_time=v.candle_time, at=now))  # fmt: skip

    def _placeholder(self, settings: Settings, stage: Stage, reason: str) -> Stage:
        coins = tuple(CoinSignal(c, CoinStatus.WARMING_UP, reason, 0.0) for c in settings.coins)
        self._writer.write(snapshot_to_data(SignalsSnapshot(stage, reason, 0.0, coins)))
        return stage

    def _wait(self, deadline: float) -> None:
        while (left := deadline - self._wall()) > 0:
            self._sleep(min(CONTROL_POLL, left))
            if read_control(self.layout, PROC) is ControlCommand.STOP:
                return


# --------------------------------------------------------------------------- readers and main

_readers: dict[Path, StateReader] = {}


def read_signals(layout: DataLayout) -> SignalsSnapshot | None:
    """The newest good ``state/signals.json`` (the last good one if it turned bad), or None.

    For the trader and the hub; check ``SignalsSnapshot.age``: a paused or dead thinker leaves
    old levels behind."""
    path = layout.signals_file
    reader = _readers.setdefault(
        path, StateReader(path, SIGNALS_SCHEMA, validate=snapshot_from_data)
    )
    env = reader.read()
    if env is None:
        return None
    return snapshot_from_data(env.data, written_at=env.written_at, seq=env.seq)


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 stopped, 1 another thinker runs for this data folder, 2 cannot start."""
    doc = __doc__.splitlines()[0]
    once = "run one loop, then exit"
    parser = worker_parser("pt_thinker.py", doc, once=once, passphrase_for="notifications")
    args = parser.parse_args(argv)
    passphrase = read_passphrase(args)

    def body(layout: DataLayout, watcher: SettingsWatcher, notifier: ProcessNotifier) -> int:
        return Runner(layout, watcher, notifier=notifier).run(once=args.once)

    return run_process(PROC, args.data_dir, body, passphrase=passphrase)


if __name__ == "__main__":
    raise SystemExit(main())
