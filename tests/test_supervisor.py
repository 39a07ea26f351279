"""The supervisor without Tk: real child processes (a dummy worker), real files, real signals."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pt_supervisor
from pt_config import parse, save
from pt_models import save_model
from pt_notify_format import EventKind, Level, Notification
from pt_state import DataLayout, read_control
from pt_supervisor import Supervisor, SupervisorSnapshot, WorkerSpec
from pt_types import ControlCommand, WorkerState
from tests.test_thinker import tiny_model

ROOT = Path(__file__).resolve().parent.parent
DUMMY = Path(__file__).resolve().parent / "dummy_worker.py"
FAST = {"beat_interval": 0.2, "start_grace": 5.0}


def spec(name: str, **kw: object) -> WorkerSpec:
    return WorkerSpec(name, f"pt_{name.split('-', maxsplit=1)[0]}.py", **{**FAST, **kw})  # type: ignore[arg-type]


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    layout = DataLayout(tmp_path / "data").ensure()
    save(layout.settings_file, parse({"coins": ["BTC"], "mode": "paper"}))
    return layout


@pytest.fixture
def events() -> list[Notification]:
    """What the supervisor handed to its ``notify`` (the hub sends these to the channels)."""
    return []


@pytest.fixture
def sup(layout: DataLayout, tmp_path: Path, events: list[Notification]) -> Iterator[Supervisor]:
    supervisor = dummy_supervisor(layout, tmp_path, notify=events.append)
    yield supervisor
    supervisor.shutdown()


def dummy_supervisor(
    layout: DataLayout,
    tmp_path: Path,
    notify: Callable[[Notification], None] = lambda n: None,
) -> Supervisor:
    """A real supervisor whose thinker, trader and trainers are tests/dummy_worker.py."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name in ("thinker", "trader", "trainer"):
        shutil.copy(DUMMY, scripts / f"pt_{name}.py")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def worker(name: str) -> Callable[[str | None], WorkerSpec]:
        def make(passphrase: str | None) -> WorkerSpec:
            args = ("--passphrase-stdin",) if passphrase is not None else ()
            return spec(name, args=args, stdin=passphrase)

        return make

    return Supervisor(
        layout,
        scripts=scripts,
        env=env,
        stop_grace=2.0,
        term_grace=1.0,
        thinker=worker("thinker"),
        trader=worker("trader"),
        notify=notify,
    )


def command(layout: DataLayout, name: str, text: str) -> None:
    (layout.root / f"dummy-{name}.txt").write_text(text)


def wait_until(
    sup: Supervisor, ok: Callable[[SupervisorSnapshot], bool], seconds: float = 15.0
) -> SupervisorSnapshot:
    deadline = time.monotonic() + seconds
    snap = sup.poll()
    while not ok(snap):
        assert time.monotonic() < deadline, f"timed out; last snapshot {snap}"
        time.sleep(0.05)
        snap = sup.poll()
    return snap


def state(snap: SupervisorSnapshot, name: str) -> WorkerState | None:
    w = snap.worker(name)
    return w.state if w else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_worker_runs_writes_its_output_to_a_file_and_stops_on_the_control_file(
    sup: Supervisor, layout: DataLayout
) -> None:
    sup.start(spec("thinker"))
    snap = wait_until(sup, lambda s: state(s, "thinker") is WorkerState.RUNNING)
    worker = snap.worker("thinker")
    assert worker is not None and worker.pid and worker.heartbeat_age is not None
    assert (layout.logs_dir / "thinker.out").read_text().startswith("--- started")
    sup.stop("thinker")
    assert read_control(layout, "thinker") is ControlCommand.STOP
    assert not pid_alive(worker.pid)
    assert state(sup.snapshot(), "thinker") is WorkerState.STOPPED


def test_a_dead_worker_is_restarted_and_given_up_after_five_restarts(
    sup: Supervisor,
    layout: DataLayout,
    monkeypatch: pytest.MonkeyPatch,
    events: list[Notification],
) -> None:
    monkeypatch.setattr(pt_supervisor, "BACKOFF", (0.05,))
    sup.start(spec("thinker"))
    wait_until(sup, lambda s: state(s, "thinker") is WorkerState.RUNNING)
    command(layout, "thinker", "exit 3")  # a crash: restarted, crashes again, ...
    snap = wait_until(sup, lambda s: state(s, "thinker") is WorkerState.GAVE_UP)
    worker = snap.worker("thinker")
    assert worker is not None and worker.restarts == 5
    assert "died with code 3" in worker.detail and "gave up after 5 restarts" in worker.detail
    assert [(n.kind, n.level) for n in events[-2:]] == [
        (EventKind.WORKER_RESTARTED, Level.WARNING),  # the fifth restart
        (EventKind.WORKER_CRASHED, Level.CRITICAL),  # then given up: CRITICAL, never dropped
    ]
    assert events[-1].title.startswith("thinker stopped for good: died with code 3")
    assert sum(n.kind is EventKind.WORKER_CRASHED for n in events) == 6
    command(layout, "thinker", "beat")  # fixed: a manual start works again, counting anew
    sup.start(spec("thinker"))
    snap = wait_until(sup, lambda s: state(s, "thinker") is WorkerState.RUNNING)
    assert snap.worker("thinker").restarts == 0  # type: ignore[union-attr]


def test_a_crash_is_restarted_after_a_backoff(
    sup: Supervisor, layout: DataLayout, events: list[Notification]
) -> None:
    sup.start(spec("thinker"))
    first = wait_until(sup, lambda s: state(s, "thinker") is WorkerState.RUNNING)
    command(layout, "thinker", "exit 9")
    crashed = wait_until(sup, lambda s: state(s, "thinker") is WorkerState.CRASHED)
    assert "restart 1 in 1 s" in crashed.worker("thinker").detail  # type: ignore[union-attr]
    command(layout, "thinker", "beat")
    again = wait_until(sup, lambda s: state(s, "thinker") is WorkerState.RUNNING)
    assert again.worker("thinker").pid != first.worker("thinker").pid  # type: ignore[union-attr]
    crashed_n, restarted_n = events
    assert (crashed_n.kind, crashed_n.level, crashed_n.title) == (
        EventKind.WORKER_CRASHED, Level.ERROR, "thinker crashed")  # fmt: skip
    assert "died with code 9" in crashed_n.body and "restart 1 in 1 s" in crashed_n.body
    assert (restarted_n.kind, restarted_n.level) == (EventKind.WORKER_RESTARTED, Level.WARNING)


def test_a_hung_worker_is_killed_and_restarted(sup: Supervisor, layout: DataLayout) -> None:
    sup.start(spec("thinker"))
    first = wait_until(sup, lambda s: state(s, "thinker") is WorkerState.RUNNING)
    old_pid = first.worker("thinker").pid  # type: ignore[union-attr]
    assert old_pid is not None
    command(layout, "thinker", "hang")  # alive, ignores SIGTERM, no heartbeat
    stale = wait_until(sup, lambda s: state(s, "thinker") is WorkerState.STALE)
    assert "no heartbeat" in stale.worker("thinker").detail  # type: ignore[union-attr]
    assert not pid_alive(old_pid)  # SIGTERM ignored: SIGKILL after the grace
    command(layout, "thinker", "beat")
    again = wait_until(sup, lambda s: state(s, "thinker") is WorkerState.RUNNING)
    assert again.worker("thinker").pid != old_pid  # type: ignore[union-attr]


def test_a_worker_that_cannot_start_is_not_restarted(
    sup: Supervisor, layout: DataLayout, events: list[Notification]
) -> None:
    command(layout, "trader", "exit 2")
    sup.start(spec("trader"))
    snap = wait_until(sup, lambda s: state(s, "trader") is WorkerState.GAVE_UP)
    assert "cannot run (code 2)" in snap.worker("trader").detail  # type: ignore[union-attr]
    time.sleep(1.5)
    assert sup.poll().worker("trader").restarts == 0  # type: ignore[union-attr]
    assert [(n.level, n.title[:32]) for n in events] == [
        (Level.CRITICAL, "trader stopped for good: cannot ")
    ]


def test_start_all_refuses_until_the_coins_are_trained(sup: Supervisor, layout: DataLayout) -> None:
    why = sup.start_all()
    assert why.startswith("train first: BTC: not trained yet")
    save_model(layout, tiny_model("BTC", time.time() - 15 * 86_400))
    assert "BTC: trained 15 days ago" in sup.start_all()
    assert sup.snapshot().workers == ()  # nothing started


def test_start_all_waits_for_the_thinker_then_starts_the_trader(
    sup: Supervisor, layout: DataLayout
) -> None:
    save_model(layout, tiny_model("BTC", time.time()))
    assert sup.training_needed() == ""
    assert sup.start_all(passphrase="secret passphrase") == ""
    wait_until(sup, lambda s: state(s, "thinker") is WorkerState.RUNNING)
    time.sleep(0.5)
    snap = sup.poll()
    assert snap.start_all == "waiting_for_thinker" and snap.worker("trader") is None
    command(layout, "thinker", "ready")
    snap = wait_until(sup, lambda s: state(s, "trader") is WorkerState.RUNNING)
    assert snap.start_all == "running"
    # The passphrase went to both workers' standard input, not their command lines.
    assert (layout.root / "dummy-trader.stdin").read_text() == "secret passphrase\n"
    assert (layout.root / "dummy-thinker.stdin").read_text() == "secret passphrase\n"
    sup.stop_all()
    snap = sup.snapshot()
    assert state(snap, "trader") is WorkerState.STOPPED
    assert state(snap, "thinker") is WorkerState.STOPPED


def test_a_trainer_runs_once_and_shutdown_stops_every_child(
    sup: Supervisor, layout: DataLayout, events: list[Notification]
) -> None:
    command(layout, "trainer-ETH", "exit 0")
    sup.start(spec("trainer-ETH", args=("ETH",), restart=False))
    snap = wait_until(sup, lambda s: state(s, "trainer-ETH") is WorkerState.STOPPED)
    assert snap.worker("trainer-ETH").detail == "finished"  # type: ignore[union-attr]
    (done,) = events
    assert (done.kind, done.title) == (EventKind.TRAINING_FINISHED, "ETH: training finished")
    command(layout, "trainer-XRP", "exit 1")
    sup.start(spec("trainer-XRP", args=("XRP",), restart=False))
    wait_until(sup, lambda s: state(s, "trainer-XRP") is WorkerState.STOPPED)
    failed = events[-1]
    assert (failed.kind, failed.level, failed.title) == (
        EventKind.WORKER_CRASHED, Level.ERROR, "trainer-XRP crashed")  # fmt: skip
    assert "exited with code 1" in failed.body
    sup.start(spec("trainer-BTC", args=("BTC",), restart=False))
    sup.start(spec("thinker"))
    snap = wait_until(
        sup,
        lambda s: (
            state(s, "trainer-BTC") is WorkerState.RUNNING
            and state(s, "thinker") is WorkerState.RUNNING
        ),
    )
    pids = [w.pid for w in snap.workers if w.pid]
    assert len(pids) == 2
    sup.shutdown()
    assert not any(pid_alive(p) for p in pids)
