"""The trainer process: ``python pt_trainer.py COIN [--data-dir DIR] [--report]``.

Builds a coin's pattern memories with :func:`pt_training.train_coin` (each timeframe on its own
candles, exactly the thinker's online procedure) and saves ``models/<COIN>/`` with the accuracy
of every prediction made on the way; ``--report`` prints that accuracy against two naive
baselines instead, and saves nothing (:mod:`pt_accuracy`).

History: demo mode uses the bundled hourly candles cut at the demo "now" (the hub's clock, else
the start of ``demo.start``), so the model never sees the replay's future; ``--report`` in demo
uses all of it. Paper and live use the candle cache and the venues over the last 8 years.

Progress goes to ``state/trainer-<COIN>.json`` (and a bar on a terminal), with a heartbeat; the
hub's control file (or SIGTERM, or Ctrl-C) stops it within a chunk of candles. Stopped, failed
or killed, the previous model stays as it was: a new one is only written at the very end, into a
new folder that is then swapped in, and what a killed save leaves behind is tidied next time.

Exit codes: 0 trained (or reported); 1 no usable history or training failed; 2 bad command
line, settings or data folder, or another trainer already runs for this coin; 3 stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import numpy as np

import pt_config
import pt_ohlcv
from pt_accuracy import format_report
from pt_config_schema import COIN_PATTERN, Settings
from pt_errors import PowerTraderError
from pt_locks import SingleInstanceLock
from pt_models import Model, ModelMeta, new_model_id, save_model, tidy_model_folder
from pt_patterns import Distance, PatternConfig
from pt_process import setup_process_logging
from pt_replay import SimClock
from pt_state import (
    CONTROL_SCHEMA,
    AlreadyRunningError,
    DataDirError,
    DataLayout,
    StateReader,
    StateWriter,
    resolve_data_dir,
    write_heartbeat,
)
from pt_training import (
    InsufficientHistoryError,
    TrainingStoppedError,
    TrainProgress,
    TrainResult,
    train_coin,
    utc,
)
from pt_types import DAY, HOUR, Candles, ControlCommand, Mode, Timeframe

H1 = Timeframe.H1

__all__ = ["main", "train_coin"]  # train_coin lives in pt_training, re-exported for callers

log = logging.getLogger(__name__)

LIVE_LOOKBACK = 8 * 365 * DAY
STATUS_SCHEMA = "trainer/1"
STATUS_INTERVAL = 0.2  # the progress file at most 5x per second
HEARTBEAT_INTERVAL = 1.0
STOP_GRACE = 2.0  # a STOP written this long before the trainer started was for an earlier run
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 3


class _CliError(Exception):
    """Leave ``main`` with ``code``, printing ``message`` to stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class StatusReporter:
    """``state/trainer-<COIN>.json`` (schema ``trainer/1``), the heartbeat and the terminal bar.

    While training the file is written at most every :data:`STATUS_INTERVAL` seconds; a new
    phase or the final state is always written, so the hub sees how the run ended."""

    def __init__(
        self,
        coin: str,
        layout: DataLayout | None,
        *,
        tty: TextIO | None,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.coin, self.layout, self._tty, self._mono = coin, layout, tty, mono
        self.started_at = wall()
        self._writer = (
            None if layout is None else StateWriter(layout.trainer_file(coin), STATUS_SCHEMA)
        )
        self._t0: float | None = None
        self._percent = 0.0
        self._last_write = self._last_beat = -math.inf

    def _write(
        self, state: str, phase: str, eta: float | None = None, message: str = "", **extra: Any
    ) -> None:
        if self.layout is None or self._writer is None:
            return
        now = self._last_write = self._mono()
        data = {
            "coin": self.coin,
            "phase": phase,
            "percent": round(self._percent, 2),
            "eta_seconds": None if eta is None else round(eta, 1),
            "started_at": self.started_at,
            "state": state,
            "message": message,
        }
        self._writer.write(data | extra)
        if now - self._last_beat >= HEARTBEAT_INTERVAL or state != "training":
            self._last_beat = now
            write_heartbeat(self.layout, f"trainer-{self.coin}", status=state)

    def phase(self, phase: str) -> None:
        self._write("training", phase)

    def progress(self, p: TrainProgress) -> None:
        now = self._mono()
        self._t0 = now if self._t0 is None else self._t0
        elapsed, self._percent = now - self._t0, p.percent
        eta = elapsed * (100 - p.percent) / p.percent if p.percent > 0 and elapsed > 0 else None
        phase = f"training {p.timeframe.value}"
        if self._tty is not None:
            bar = "#" * int(p.percent / 5)
            eta_text = "" if eta is None else f"  ETA {eta:4.0f} s"
            self._tty.write(
                f"\r{self.coin} {phase:<13} [{bar:.<20}] {p.percent:5.1f} %{eta_text}  "
            )
            self._tty.flush()
        if now - self._last_write >= STATUS_INTERVAL:
            self._write("training", phase, eta)

    def finish(self, state: str, message: str, **extra: Any) -> None:
        if self._tty is not None and self._t0 is not None:
            self._tty.write("\n")
        if state == "finished":
            self._percent = 100.0
        self._write(state, state, 0.0 if state == "finished" else None, message, **extra)


class StopRequests:
    """``should_stop`` for the CLI: the hub's control file, or SIGTERM.

    The control file holds what the hub wants; a STOP written well before this trainer started
    was meant for an earlier run, and is ignored (logged once) so that it cannot stop every
    later training, by hand or by the hub."""

    def __init__(self, layout: DataLayout, proc: str, started_at: float) -> None:
        self.signalled = False
        self._started_at, self._warned = started_at, False
        self._reader = StateReader(
            layout.control_file(proc),
            CONTROL_SCHEMA,
            validate=lambda d: ControlCommand(d["command"]),
        )

    def __call__(self) -> bool:
        if self.signalled or not self._reader.path.exists():
            return self.signalled  # (no file: no STOP, and no "missing" line in the log)
        env = self._reader.read()
        if env is None or env.data["command"] != ControlCommand.STOP:
            return False
        if env.written_at >= self._started_at - STOP_GRACE:
            return True
        if not self._warned:
            self._warned = True
            log.info(
                "ignoring the STOP in %s written %s, before this trainer started",
                self._reader.path,
                utc(env.written_at),
            )
        return False

    @contextmanager
    def on_sigterm(self) -> Iterator[None]:
        def handler(signum: int, frame: FrameType | None) -> None:
            self.signalled = True

        previous = signal.signal(signal.SIGTERM, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)


def _code_version() -> str:
    try:
        return Path(__file__).with_name("VERSION.md").read_text(encoding="utf-8").strip()
    except OSError:
        return "unknown"


def _day(text: str) -> float:
    """``YYYY-MM-DD`` -> that day's UTC midnight in epoch seconds."""
    try:
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


@dataclass(frozen=True)
class History:
    hourly: Candles
    now: float  # the mode's "now": candles after it are never used
    source: str  # for the output: where the candles came from and where they stop
    hint: str = ""  # what to do when that is too little


def load_history(settings: Settings, layout: DataLayout, coin: str, *, report: bool) -> History:
    """Hourly candles and the mode's "now"; raises _CliError (exit 1) when there are none."""
    if settings.mode is not Mode.DEMO:
        from pt_thinker_exchanges import build_market  # noqa: PLC0415 (venues: not for demo)

        now = time.time()
        first = Timeframe.H1.candle_open(int(now) - LIVE_LOOKBACK)
        try:
            market = build_market(settings, layout)
            hourly = market.get_candle_from_exchanges(coin, H1, start=first, end=int(now) + 1)
        except PowerTraderError as exc:
            raise _CliError(EXIT_FAILED, f"{coin}: cannot get hourly candles: {exc}") from None
        return History(hourly, now, f"{settings.mode.value} mode, cache and venues, to {utc(now)}")
    try:
        hourly = pt_ohlcv.load_bundled(coin, cache_dir=layout.history_cache_dir)
    except pt_ohlcv.OhlcvError as exc:
        raise _CliError(
            EXIT_FAILED, f"{coin}: demo mode trains on bundled history: {exc}"
        ) from None
    if report:
        end = float(hourly.time[-1] + HOUR) if len(hourly) else 0.0
        return History(hourly, end, "demo mode, ALL bundled history (not cut at the demo clock)")
    hint = "; pick a later demo.start in the settings, or let the demo clock run"
    if not layout.clock_file.exists():
        source = f"demo mode, bundled history cut at demo.start {settings.demo.start} (no clock)"
        return History(hourly, _day(settings.demo.start), source, hint)
    try:
        now = SimClock(layout).now()
    except PowerTraderError as exc:
        raise _CliError(EXIT_FAILED, str(exc)) from None
    return History(hourly, now, f"demo mode, bundled history cut at the clock, {utc(now)}", hint)


def _config(settings: Settings, distance: Distance | None) -> PatternConfig:
    p = settings.predictor
    return PatternConfig(
        pattern_length=p.pattern_length,
        target_matches=p.target_matches,
        distance=distance or p.distance,
        bound_pct=p.bound_pct,
    )


def _log_result(result: TrainResult) -> None:
    for reason in result.repairs:
        log.warning("%s: bad hourly candles: %s", result.coin, reason)
    for tf, r in result.timeframes.items():
        if r.accuracy.active == 0:
            log.info(
                "%s %s: %d closed candles gave no prediction yet; it stays inactive until "
                "there is more history",
                result.coin,
                tf.value,
                r.candles,
            )


def _summary(result: TrainResult) -> list[str]:
    lines = []
    for tf, r in result.timeframes.items():
        acc = r.accuracy
        lines.append(
            f"  {tf.value:<4} candles {r.candles:>7,}  memories {len(r.memory.patterns):>5,}  "
            f"active {acc.active_share * 100:5.1f} %  cover high "
            f"{acc.model.coverage_high * 100:5.1f} %  low {acc.model.coverage_low * 100:5.1f} %"
        )
    return lines


# --------------------------------------------------------------------------- the command


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pt_trainer.py", description="Train a coin's pattern memories (or report accuracy)."
    )
    add = parser.add_argument
    add("coin", metavar="COIN", help="coin symbol, e.g. BTC")
    add("--data-dir", help="data folder (default: $POWERTRADER_HOME, else ./user_data)")
    add("--report", action="store_true", help="print walk-forward accuracy; saves no model")
    add("--distance", choices=("relative", "absolute"), help="report only: pattern distance")
    add("--since", type=_day, help="report only: first day to use (YYYY-MM-DD, UTC)")
    add("--until", type=_day, help="report only: stop before this day (YYYY-MM-DD, UTC)")
    args = parser.parse_args(argv)
    if not args.report and (args.distance or args.since is not None or args.until is not None):
        parser.error(
            "--distance, --since and --until only go with --report "
            "(to train with another distance, change predictor.distance in the settings)"
        )
    args.coin = args.coin.strip().upper()
    if not COIN_PATTERN.match(args.coin):
        parser.error(f"{args.coin!r} is not a coin symbol (letters and digits, e.g. BTC)")
    return args


def _open(args: argparse.Namespace, proc: str) -> tuple[DataLayout, Settings]:
    """The data folder, the settings and logging; raises _CliError (exit 2) when unusable."""
    try:
        layout = DataLayout(resolve_data_dir(args.data_dir)).ensure()
        settings = pt_config.load(layout.settings_file)
        _day(settings.demo.start)
    except (DataDirError, pt_config.SettingsError) as exc:
        raise _CliError(EXIT_USAGE, str(exc)) from None
    except argparse.ArgumentTypeError as exc:
        raise _CliError(EXIT_USAGE, f"settings: demo.start: {exc}") from None
    setup_process_logging(proc, layout, settings.logging)
    return layout, settings


def _tty() -> TextIO | None:
    return sys.stderr if sys.stderr is not None and sys.stderr.isatty() else None


def _report(args: argparse.Namespace) -> int:
    coin = args.coin
    layout, settings = _open(args, f"trainer-{coin}-report")
    history = load_history(settings, layout, coin, report=True)
    hourly, now = history.hourly, history.now
    if args.since is not None:
        hourly = hourly.slice(int(np.searchsorted(hourly.time, args.since)))
    if args.until is not None:
        now = min(now, args.until)
    if args.since is not None or args.until is not None:
        history = dataclasses.replace(history, source=f"{history.source}, within --since/--until")
    config = _config(settings, args.distance)
    status = StatusReporter(coin, None, tty=_tty())
    try:
        result = train_coin(coin, hourly, config, now=now, progress=status.progress)
    except InsufficientHistoryError as exc:
        raise _CliError(EXIT_FAILED, str(exc)) from None
    except KeyboardInterrupt:
        raise _CliError(EXIT_STOPPED, f"{coin}: report interrupted") from None
    status.finish("finished", "")
    _log_result(result)
    lines = [
        f"Accuracy report for {coin}: walk-forward, each prediction made before its candle "
        "was seen",
        f"History: {history.source}",
        f"Candles: {result.hourly_candles:,} hourly, {utc(result.data_from)} .. "
        f"{utc(result.data_to)}",
        f"Predictor: pattern_length {config.pattern_length}, target_matches "
        f"{config.target_matches}, distance {config.distance}, bounds ±{config.bound_pct:g} %",
        "Baselines: the previous candle's high/low moves; the mean of the last 20 candles' moves",
        "No model was saved: the report only measures.",
        "",
        format_report(result.report_rows()),
    ]
    print("\n".join(lines))  # noqa: T201
    return EXIT_OK


def _train(args: argparse.Namespace) -> int:
    coin, proc = args.coin, f"trainer-{args.coin}"
    try:
        layout = DataLayout(resolve_data_dir(args.data_dir)).ensure()
        lock = SingleInstanceLock(layout.lock_file(proc))
        lock.acquire()
    except (DataDirError, AlreadyRunningError) as exc:
        raise _CliError(EXIT_USAGE, str(exc)) from None
    try:
        status = StatusReporter(coin, layout, tty=_tty())
        stop = StopRequests(layout, proc, status.started_at)
        status.phase("starting")
        with stop.on_sigterm():
            return _train_locked(args, status, stop)
    finally:
        lock.release()


def _train_locked(args: argparse.Namespace, status: StatusReporter, stop: StopRequests) -> int:
    """Everything after the lock; every way out leaves the progress file saying how it ended."""
    coin = args.coin
    try:
        layout, settings = _open(args, f"trainer-{coin}")
        tidy_model_folder(layout, coin)
        status.phase("loading history")
        history = load_history(settings, layout, coin, report=False)
        config = _config(settings, None)
        started = time.monotonic()
        try:
            result = train_coin(
                coin,
                history.hourly,
                config,
                now=history.now,
                should_stop=stop,
                progress=status.progress,
            )
        except InsufficientHistoryError as exc:
            raise _CliError(EXIT_FAILED, f"{exc}{history.hint}") from None
        _log_result(result)
        status.phase("saving")
        meta = ModelMeta(
            coin,
            new_model_id(coin, history.now),
            history.now,
            result.data_from,
            result.data_to,
            dataclasses.asdict(config),
            _code_version(),
            result.accuracy(),
        )
        folder = save_model(layout, Model(meta, result.memories))
    except _CliError as exc:
        status.finish("stopped" if exc.code == EXIT_STOPPED else "failed", exc.message)
        raise
    except (TrainingStoppedError, KeyboardInterrupt):
        message = f"{coin}: training stopped; the previous model (if any) is untouched"
        status.finish("stopped", message)
        raise _CliError(EXIT_STOPPED, message) from None
    except Exception as exc:
        log.exception("%s: training failed", coin)
        message = f"{coin}: training failed: {exc}; the previous model (if any) is untouched"
        status.finish("failed", message)
        raise _CliError(EXIT_FAILED, message) from exc
    seconds = time.monotonic() - started
    status.finish("finished", f"{coin}: model {meta.model_id} saved", model_id=meta.model_id)
    lines = [
        f"{coin}: trained on {result.hourly_candles:,} hourly candles, "
        f"{utc(result.data_from)} .. {utc(result.data_to)}, in {seconds:.1f} s",
        f"History: {history.source}",
        *_summary(result),
        f"Model {meta.model_id} saved in {folder}",
    ]
    print("\n".join(lines))  # noqa: T201
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        return _report(args) if args.report else _train(args)
    except _CliError as exc:
        print(f"error: {exc.message}", file=sys.stderr)  # noqa: T201
        return exc.code


if __name__ == "__main__":
    raise SystemExit(main())
