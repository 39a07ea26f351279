"""Runs the workers (thinker, trader, trainers) as child processes and keeps them alive.

No Tk here: the hub drives a :class:`Supervisor` from a background thread and shows its
:class:`SupervisorSnapshot`; ``pt_hub.py --headless`` drives the same one from the terminal.

- A worker is ``python -u pt_<name>.py --data-dir <folder> ...`` with stdout and stderr going to
  ``logs/<worker>.out`` (a file, never an undrained pipe), so a chatty child can never block.
- Stop: the control file says STOP (the worker finishes its step and exits 0), then SIGTERM,
  then SIGKILL, each after a grace period.
- A thinker or trader that dies, or stops beating (three missed heartbeats), is restarted with
  backoff; after 5 restarts in 10 minutes it is given up with the reason shown. A worker that
  cannot start (exit 2: bad settings, no keys) or finds another copy running (exit 1) is not
  restarted: doing the same again would fail the same way.
- Start All starts the thinker, waits until its signals say READY, then starts the trader (the
  original's flow). Trainers run once and are not restarted.
- Each crash, restart, give-up and finished training is handed to ``notify`` as a
  :class:`pt_notify_format.Notification` (the hub sends it to the user's channels).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

from pt_config import load
from pt_models import model_status
from pt_notify_format import Notification, training_finished, worker_event
from pt_replay import read_clock, sim_time
from pt_signals import Stage
from pt_state import DataLayout, heartbeat_age, read_heartbeat, write_control
from pt_thinker import read_signals
from pt_types import ControlCommand, WorkerState, WorkerStatus

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent
Clock = Callable[[], float]
MAX_RESTARTS = 5
RESTART_WINDOW = 600.0  # seconds: give up after MAX_RESTARTS restarts within this window
BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0)  # seconds before restart n (the last repeats)
EXIT_ALREADY_RUNNING, EXIT_CANNOT_START = 1, 2
OUT_MAX_BYTES = 5 * 1024 * 1024  # logs/<worker>.out is rotated once at start beyond this


@dataclass(frozen=True)
class WorkerSpec:
    """How to run one worker. ``beat_interval`` is the longest normal gap between heartbeats
    (stale after three missed); ``start_grace`` how long a fresh process may take to beat first.
    ``stdin`` is written once to the child's standard input (the live passphrase), then closed."""

    name: str
    script: str
    args: tuple[str, ...] = ()
    restart: bool = True
    beat_interval: float = 10.0
    start_grace: float = 60.0
    stdin: str | None = field(default=None, repr=False)


def _passphrase_args(passphrase: str | None) -> tuple[str, ...]:
    return ("--passphrase-stdin",) if passphrase is not None else ()


def thinker_spec(passphrase: str | None = None) -> WorkerSpec:
    """A thinker step can take a while (a first candle download): stale after 90 s. The
    passphrase (of the secrets file) opens its notification secrets."""
    args = _passphrase_args(passphrase)
    return WorkerSpec("thinker", "pt_thinker.py", args, beat_interval=30.0, stdin=passphrase)


def trader_spec(passphrase: str | None = None) -> WorkerSpec:
    args = _passphrase_args(passphrase)
    return WorkerSpec("trader", "pt_trader.py", args, beat_interval=20.0, stdin=passphrase)


def trainer_spec(coin: str) -> WorkerSpec:
    return WorkerSpec(f"trainer-{coin}", "pt_trainer.py", (coin,), restart=False)


@dataclass(frozen=True)
class SupervisorSnapshot:
    """What the hub shows: every worker, and where Start All is."""

    workers: tuple[WorkerStatus, ...]
    start_all: str  # "idle", "waiting_for_thinker" or "running"
    detail: str = ""

    def worker(self, name: str) -> WorkerStatus | None:
        return next((w for w in self.workers if w.name == name), None)


@dataclass
class _Worker:
    spec: WorkerSpec
    proc: subprocess.Popen[bytes] | None = None
    state: WorkerState = WorkerState.STOPPED
    started_at: float = 0.0
    restarts: deque[float] = field(default_factory=deque)
    restart_at: float | None = None
    detail: str = ""
    exit_code: int | None = None


class Supervisor:
    """Owns the child processes of one data folder. Not thread-safe: one thread drives it."""

    def __init__(
        self,
        layout: DataLayout,
        *,
        python: str = sys.executable,
        scripts: Path = ROOT,
        env: Mapping[str, str] | None = None,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        stop_grace: float = 10.0,
        term_grace: float = 5.0,
        thinker: Callable[[str | None], WorkerSpec] = thinker_spec,
        trader: Callable[[str | None], WorkerSpec] = trader_spec,
        notify: Callable[[Notification], None] = lambda n: None,
    ) -> None:
        self.layout = layout
        self._python, self._scripts = python, scripts
        self._env = dict(os.environ if env is None else env)
        self._clock, self._wall = clock, wall
        self.stop_grace, self.term_grace = stop_grace, term_grace
        self._workers: dict[str, _Worker] = {}
        self._start_all = "idle"
        self._detail = ""
        self._make_thinker, self._notify = thinker, notify
        self._make_trader = trader
        self._trader_spec = trader(None)
        self._thinker_started_wall = 0.0

    # -- commands ------------------------------------------------------------------------------

    def start(self, spec: WorkerSpec) -> None:
        """Start a worker (a running one is left alone)."""
        worker = self._workers.get(spec.name)
        if worker and worker.proc and worker.proc.poll() is None:
            return
        worker = _Worker(spec) if worker is None else replace(worker, spec=spec)
        worker.restarts.clear()
        self._workers[spec.name] = worker
        self._launch(worker)

    def stop(self, name: str, *, reason: str = "stopped by the user") -> None:
        """Stop a worker and wait for it: control file, then SIGTERM, then SIGKILL."""
        worker = self._workers.get(name)
        if worker is None:
            return
        worker.restart_at = None
        proc = worker.proc
        if proc is not None and proc.poll() is None:
            write_control(self.layout, name, ControlCommand.STOP, reason=reason, clock=self._wall)
            if not self._wait(proc, self.stop_grace):
                self._terminate(name, proc)
        worker.proc = None
        worker.state, worker.detail = WorkerState.STOPPED, reason

    def start_all(self, passphrase: str | None = None) -> str:
        """Start the thinker now and the trader once the thinker is ready; "" or why not."""
        why = self.training_needed()
        if why:
            self._detail = why
            return why
        self._trader_spec = self._make_trader(passphrase)
        self._start_all = "waiting_for_thinker"
        self._detail = "starting the thinker; the trader starts when it is ready"
        self.start(self._make_thinker(passphrase))
        self._thinker_started_wall = self._wall()
        return ""

    def stop_all(self) -> None:
        """Stop the trader first (no order half-decided), then the thinker."""
        self._start_all, self._detail = "idle", ""
        for name in ("trader", "thinker"):
            self.stop(name)

    def train(self, coin: str) -> None:
        self.start(trainer_spec(coin))

    def shutdown(self) -> None:
        """Stop every child, trainers included (the hub is closing)."""
        self.stop_all()
        for name in list(self._workers):
            self.stop(name, reason="the hub closed")

    def pause_trading(self, paused: bool) -> None:
        command = ControlCommand.PAUSE if paused else ControlCommand.RUN
        write_control(self.layout, "trader", command, reason="hub", clock=self._wall)

    def training_needed(self) -> str:
        """Why Start All must wait for training ("" when every coin's model is usable)."""
        settings = load(self.layout.settings_file)
        now = self._model_now(settings.mode.value)
        problems = [
            s.detail
            for s in (model_status(self.layout, c, now) for c in settings.coins)
            if s.state != "trained"
        ]
        return "train first: " + "; ".join(problems) if problems else ""

    # -- the periodic check ------------------------------------------------------------------

    def poll(self) -> SupervisorSnapshot:
        """Reap, restart and advance Start All; call every half second or so."""
        now = self._clock()
        for worker in self._workers.values():
            self._check(worker, now)
        self._advance_start_all()
        return self.snapshot()

    def snapshot(self) -> SupervisorSnapshot:
        wall = self._wall()
        workers = []
        for w in self._workers.values():
            pid = w.proc.pid if w.proc else None
            hb = read_heartbeat(self.layout, w.spec.name) if pid else None
            age = heartbeat_age(hb, wall) if hb and hb.pid == pid else None
            workers.append(WorkerStatus(w.spec.name, w.state, pid, age, len(w.restarts), w.detail))
        return SupervisorSnapshot(tuple(workers), self._start_all, self._detail)

    # -- internals ----------------------------------------------------------------------------

    def _model_now(self, mode: str) -> float:
        if mode != "demo":
            return self._wall()
        clock = read_clock(self.layout)
        return self._wall() if clock is None else sim_time(clock, self._wall())

    def _launch(self, worker: _Worker) -> None:
        spec = worker.spec
        write_control(
            self.layout, spec.name, ControlCommand.RUN, reason="started", clock=self._wall
        )
        out_path = self.layout.logs_dir / f"{spec.name}.out"
        _rotate(out_path)
        cmd = [self._python, "-u", str(self._scripts / spec.script)]
        cmd += ["--data-dir", str(self.layout.root), *spec.args]
        with out_path.open("ab") as out:
            out.write(f"--- started {time.ctime(self._wall())}\n".encode())
            out.flush()
            worker.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE if spec.stdin is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._env,
            )
        if spec.stdin is not None:
            _give(worker.proc.stdin, spec.stdin)
        worker.state, worker.detail = WorkerState.STARTING, f"started (pid {worker.proc.pid})"
        worker.started_at, worker.restart_at, worker.exit_code = self._clock(), None, None
        log.info("started %s (pid %s)", spec.name, worker.proc.pid)

    def _check(self, worker: _Worker, now: float) -> None:
        if worker.restart_at is not None:
            if now >= worker.restart_at:
                self._launch(worker)
                self._event(worker, worker.detail, restarted=True)
            return
        proc = worker.proc
        if proc is None:
            return
        code = proc.poll()
        if code is not None:
            self._exited(worker, code, now)
            return
        hb = read_heartbeat(self.layout, worker.spec.name)
        fresh = hb is not None and hb.pid == proc.pid
        if fresh and hb is not None:
            age = heartbeat_age(hb, self._wall())
            if age <= 3 * worker.spec.beat_interval:
                worker.state, worker.detail = WorkerState.RUNNING, hb.status
                return
            why = f"no heartbeat for {age:.0f} s"
        elif now - worker.started_at <= worker.spec.start_grace:
            return  # still starting
        else:
            why = f"no heartbeat {worker.spec.start_grace:.0f} s after start"
        log.warning("%s is stale (%s): restarting it", worker.spec.name, why)
        worker.state = WorkerState.STALE
        self._terminate(worker.spec.name, proc)
        self._schedule_restart(worker, now, why)

    def _exited(self, worker: _Worker, code: int, now: float) -> None:
        name, worker.proc, worker.exit_code = worker.spec.name, None, code
        tail = _tail(self.layout.logs_dir / f"{name}.out")
        if not worker.spec.restart:
            worker.state = WorkerState.STOPPED
            worker.detail = "finished" if code == 0 else f"exited with code {code}: {tail}"
            log.info("%s ended with code %s", name, code)
            self._ended(worker, code, now)
            return
        if code in (0, EXIT_ALREADY_RUNNING, EXIT_CANNOT_START):
            worker.state = WorkerState.STOPPED if code == 0 else WorkerState.GAVE_UP
            worker.detail = "stopped" if code == 0 else f"cannot run (code {code}): {tail}"
            log.log(logging.INFO if code == 0 else logging.ERROR, "%s: %s", name, worker.detail)
            if code != 0:
                self._event(worker, worker.detail, gave_up=True)
            self._worker_gone(name)
            return
        log.warning("%s died with code %s: %s", name, code, tail)
        worker.state = WorkerState.CRASHED
        self._schedule_restart(worker, now, f"died with code {code}: {tail}".rstrip(": "))

    def _schedule_restart(self, worker: _Worker, now: float, why: str) -> None:
        while worker.restarts and now - worker.restarts[0] > RESTART_WINDOW:
            worker.restarts.popleft()
        if len(worker.restarts) >= MAX_RESTARTS:
            worker.state = WorkerState.GAVE_UP
            worker.detail = (
                f"{why}; gave up after {MAX_RESTARTS} restarts in {RESTART_WINDOW / 60:.0f} "
                f"minutes: see logs/{worker.spec.name}.out"
            )
            log.error("%s: %s", worker.spec.name, worker.detail)
            self._event(worker, worker.detail, gave_up=True)
            self._worker_gone(worker.spec.name)
            return
        delay = BACKOFF[min(len(worker.restarts), len(BACKOFF) - 1)]
        worker.restarts.append(now)
        worker.restart_at = now + delay
        worker.detail = f"{why}; restart {len(worker.restarts)} in {delay:g} s"
        self._event(worker, worker.detail)

    def _event(
        self, worker: _Worker, detail: str, *, restarted: bool = False, gave_up: bool = False
    ) -> None:
        n = worker_event(worker.spec.name, detail, restarted=restarted, gave_up=gave_up,
                         at=self._wall())  # fmt: skip
        self._notify(n)

    def _ended(self, worker: _Worker, code: int, now: float) -> None:
        """A one-off worker (a trainer) finished: training finished, or it failed."""
        if code != 0:
            self._event(worker, worker.detail)
            return
        minutes = (now - worker.started_at) / 60
        coin = worker.spec.args[0] if worker.spec.args else worker.spec.name
        detail = f"finished in {minutes:.1f} min; the model is ready"
        self._notify(training_finished(coin, detail, at=self._wall()))

    def _worker_gone(self, name: str) -> None:
        if name == "thinker" and self._start_all == "waiting_for_thinker":
            self._start_all = "idle"
            self._detail = "Start All cancelled: the thinker could not run"

    def _advance_start_all(self) -> None:
        if self._start_all != "waiting_for_thinker":
            return
        snapshot = read_signals(self.layout)
        if snapshot is None or snapshot.written_at < self._thinker_started_wall:
            return
        if snapshot.stage is not Stage.READY:
            self._detail = f"waiting for the thinker: {snapshot.stage.value} ({snapshot.reason})"
            return
        self._start_all, self._detail = "running", "thinker ready: trader started"
        self.start(self._trader_spec)

    def _wait(self, proc: subprocess.Popen[bytes], seconds: float) -> bool:
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _terminate(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        proc.terminate()
        if not self._wait(proc, self.term_grace):
            log.warning("%s did not stop after SIGTERM: killed", name)
            proc.kill()
            proc.wait()


def _give(pipe: IO[bytes] | None, text: str) -> None:
    """Hand the child its one line of input (it reads it at start), then close the pipe."""
    if pipe is None:
        return
    try:
        pipe.write(text.encode() + b"\n")
        pipe.close()
    except OSError as exc:  # the child died already; its exit is handled by the next poll
        log.warning("could not hand over the input: %s", exc.strerror)


def _rotate(path: Path) -> None:
    try:
        if path.stat().st_size > OUT_MAX_BYTES:
            path.replace(path.with_suffix(".out.1"))
    except FileNotFoundError:
        pass


def _tail(path: Path, limit: int = 300) -> str:
    """The end of a worker's output, for the reason it stopped."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - limit))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
