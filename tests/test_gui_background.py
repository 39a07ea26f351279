"""The panels' background worker: jobs off the Tk thread, results on it, refreshes folded."""

from __future__ import annotations

import threading
import time
import tkinter as tk
from collections.abc import Callable, Iterator

import pytest

from pt_gui_background import Background
from tests.gui_support import pump


@pytest.fixture
def root(display: str) -> Iterator[tk.Tk]:
    r = tk.Tk()
    r.withdraw()
    yield r
    r.destroy()


def wait_until(root: tk.Tk, check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        pump(root, 0.02)


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
