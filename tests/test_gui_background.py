"""The panels' background worker: jobs off the Tk thread, results on it, refreshes folded."""

from __future__ import annotations

import gc
import queue
import threading
import time
import tkinter as tk
import weakref
from collections.abc import Iterator

import pytest

from pt_gui_background import Background
from tests.gui_support import pump, wait_until


@pytest.fixture
def root(display: str) -> Iterator[tk.Tk]:
    r = tk.Tk()
    r.withdraw()
    yield r
    r.destroy()


class Gate:
    """A job body that blocks until released, recording which thread ran it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.threads: list[str] = []
        self.jobs: list[int] = []

    def work(self, job: int) -> int:
        self.threads.append(threading.current_thread().name)
        self.jobs.append(job)
        self.release.wait(5)
        if job < 0:
            raise ValueError(f"bad job {job}")
        return job * 10


def test_work_runs_off_the_tk_thread_and_results_arrive_on_it(root: tk.Tk) -> None:
    gate, delivered = Gate(), list[tuple[int, str]]()
    gate.release.set()
    bg: Background[int, int] = Background(
        root, gate.work, lambda r: delivered.append((r, threading.current_thread().name)),
        name="test-worker", refresh_job=lambda: 4,
    )  # fmt: skip
    bg.refresh()
    wait_until(root, lambda: bool(delivered))
    assert delivered == [(40, threading.main_thread().name)]
    assert gate.threads == ["test-worker"]
    assert bg.idle
    bg.close()


def test_refreshes_asked_for_during_one_fold_into_one_more(root: tk.Tk) -> None:
    gate, delivered = Gate(), list[int]()
    counter = iter(range(1, 100))
    bg: Background[int, int] = Background(
        root, gate.work, delivered.append, name="fold", refresh_job=lambda: next(counter)
    )
    bg.refresh()
    wait_until(root, lambda: gate.jobs == [1])
    assert bg.busy
    for _ in range(5):
        bg.refresh()  # a click, ticks, new settings while the first read runs
    gate.release.set()
    wait_until(root, lambda: bg.idle and len(delivered) == 2)
    pump(root, 0.2)
    # one more refresh, built when it was sent (job 2), not five
    assert gate.jobs == [1, 2]
    assert delivered == [10, 20]
    bg.close()


def test_one_off_jobs_are_each_done_and_a_failure_becomes_a_result(root: tk.Tk) -> None:
    gate, delivered = Gate(), list[int]()
    gate.release.set()
    bg: Background[int, int] = Background(
        root, gate.work, delivered.append, name="oneoff", on_error=lambda job, exc: -1000 + job
    )
    for job in (1, -2, 3):
        bg.submit(job)
    wait_until(root, lambda: bg.idle)
    assert delivered == [10, -1002, 30]  # the worker survived the failing job
    bg.close()


def test_a_failure_without_on_error_delivers_nothing_and_clears_busy(
    root: tk.Tk, caplog: pytest.LogCaptureFixture
) -> None:
    gate, delivered = Gate(), list[int]()
    gate.release.set()
    bg: Background[int, int] = Background(root, gate.work, delivered.append, name="quiet")
    bg.refresh(-1)
    wait_until(root, lambda: not bg.busy)
    assert delivered == []
    assert "quiet: background job failed" in caplog.text
    bg.refresh(2)  # still usable
    wait_until(root, lambda: delivered == [20])
    bg.close()


def test_after_debounces_and_close_cancels_timers_and_stops_the_worker(root: tk.Tk) -> None:
    gate, calls = Gate(), []
    gate.release.set()
    bg: Background[int, int] = Background(root, gate.work, lambda _r: None, name="timers")
    for i in range(3):
        bg.after("debounce", 50, lambda i=i: calls.append(f"debounced {i}"))  # type: ignore[misc]
    bg.every("tick", 30, lambda: calls.append("tick"))
    pump(root, 0.25)
    assert calls.count("debounced 2") == 1
    assert "debounced 0" not in calls and "debounced 1" not in calls
    assert calls.count("tick") >= 3
    bg.close()
    seen = len(calls)
    pump(root, 0.2)
    assert len(calls) == seen  # nothing runs after close
    assert not any(t.name == "timers" for t in threading.enumerate())
    bg.refresh(1)  # ignored after close, no error
    assert not bg.busy


def test_refresh_without_a_job_or_factory_is_a_programming_error(root: tk.Tk) -> None:
    bg: Background[int, int] = Background(root, lambda j: j, lambda _r: None, name="nofactory")
    with pytest.raises(TypeError, match="nofactory"):
        bg.refresh()
    bg.close()


def test_an_idle_background_keeps_no_timer(root: tk.Tk) -> None:
    gate = Gate()
    gate.release.set()
    bg: Background[int, int] = Background(root, gate.work, lambda _r: None, name="idle")
    assert not root.tk.call("after", "info")  # nothing on its way: no poll
    bg.submit(1)
    assert root.tk.call("after", "info")  # the poll runs while the job is out
    wait_until(root, lambda: bg.idle)
    pump(root, 0.1)
    assert not root.tk.call("after", "info")
    bg.close()


def test_a_failing_periodic_callback_keeps_its_timer(root: tk.Tk) -> None:
    bg: Background[int, int] = Background(root, lambda j: j, lambda _r: None, name="flaky")
    calls, errors = list[int](), list[object]()
    root.report_callback_exception = lambda *exc: errors.append(exc)

    def tick() -> None:
        calls.append(1)
        raise RuntimeError("a bad tick")

    bg.every("tick", 20, tick)
    pump(root, 0.2)
    assert len(calls) >= 3 and len(errors) == len(calls)
    bg.close()


def test_close_without_waiting_returns_while_a_job_runs(root: tk.Tk) -> None:
    gate = Gate()
    bg: Background[int, int] = Background(
        root, gate.work, lambda _r: None, name="nowait", join_timeout_s=0
    )
    bg.submit(1)
    wait_until(root, lambda: gate.jobs == [1])
    started = time.monotonic()
    bg.close()
    assert time.monotonic() - started < 0.5 and bg.alive  # the job still runs on its own
    gate.release.set()
    wait_until(root, lambda: not bg.alive)


class SharedThread:
    """One thread serving several panels, answering into each job's reply queue (the shape of
    pt_gui_chartdata.ChartWorker)."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.jobs: queue.Queue[tuple[int, queue.Queue[int]] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._serve, name="shared", daemon=True)
        self.thread.start()

    def submit(self, job: int, reply: queue.Queue[int], /) -> None:
        self.jobs.put((job, reply))

    def _serve(self) -> None:
        while (item := self.jobs.get()) is not None:
            item[1].put(self.gate.work(item[0]))

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(2)


def test_panels_can_share_one_worker_thread(root: tk.Tk) -> None:
    gate = Gate()
    shared = SharedThread(gate)
    got_a, got_b = list[int](), list[int]()
    counter = iter(range(1, 100))
    a: Background[int, int] = Background(
        root, shared, got_a.append, name="page-a", refresh_job=lambda: next(counter)
    )
    b: Background[int, int] = Background(root, shared, got_b.append, name="page-b")
    a.refresh()
    b.refresh(7)
    wait_until(root, lambda: gate.jobs == [1])
    for _ in range(3):
        a.refresh()  # folded, as with an own thread
    assert a.busy and b.busy
    gate.release.set()
    wait_until(root, lambda: a.idle and b.idle and len(got_a) == 2)
    assert got_a == [10, 20] and got_b == [70]
    assert set(gate.threads) == {"shared"} and gate.jobs == [1, 7, 2]
    with pytest.raises(TypeError, match="page-a"):
        a.submit(3)  # one-offs need an own thread
    a.close()  # leaves the shared thread to its owner
    assert shared.thread.is_alive() and not a.alive
    b.refresh(8)
    wait_until(root, lambda: got_b == [70, 80])
    b.close()
    shared.close()
    assert not shared.thread.is_alive()


def test_a_worker_that_outlives_its_window_holds_no_widget(root: tk.Tk) -> None:
    """Closed without waiting (the key wizard), the worker finishes its job after the window is
    gone; it must not hold the window, or its last reference could be dropped off Tk's thread."""
    gate, shown = Gate(), {"window": tk.Toplevel(root)}
    gone = weakref.ref(shown["window"])
    bg: Background[int, int] = Background(
        shown["window"], gate.work, lambda r: shown["window"].title(str(r)), name="outlives",
        join_timeout_s=0,
    )  # fmt: skip
    bg.submit(1)
    wait_until(root, lambda: gate.jobs == [1])
    bg.close()
    shown.pop("window").destroy()
    del bg
    gc.collect()
    assert gone() is None
    assert any(t.name == "outlives" for t in threading.enumerate())  # still in its job
    gate.release.set()
