"""Background work for the hub's panels: a worker thread per panel, results handed back on Tk's.

Every panel reads files, SQLite or the network, and none of that may happen in a Tk callback.
:class:`Background` is the one piece that does it for all of them: jobs go to a worker thread
through a queue, results come back through another queue that an ``after()`` poll drains on the
Tk thread, where ``deliver`` shows them. Two kinds of job:

- a **refresh** (``refresh()``): re-read what the panel shows. Asked for while one is running
  (a timer tick, a click, new settings), it is folded into one more refresh after the running one,
  built fresh by ``refresh_job`` at that moment, so a burst of requests costs two reads, not many;
- a **one-off** (``submit(job)``): an export, a save, a key test — each one is done.

A job that raises is logged with its traceback and, when ``on_error`` is given, turned into a
result by it (the panel says what went wrong); the worker thread never dies of it. ``after()``
keeps the panel's own timers (a periodic tick, a debounce) so ``close()`` cancels them all. The
results queue is polled only while something is on its way: an idle panel costs no timer.

Panels that must share one thread (the charts: one thread reads for every chart tab) pass a
:class:`SharedWorker` instead of a function; refreshes are then sent to it and its answers come
back through the same folding and polling, and ``close()`` leaves the shared thread running.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import tkinter as tk
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, runtime_checkable

log = logging.getLogger(__name__)

POLL_MS = 50
JOIN_TIMEOUT_S = 3.0

JobT = TypeVar("JobT")
ResultT = TypeVar("ResultT")
JobT_contra = TypeVar("JobT_contra", contravariant=True)


@runtime_checkable
class SharedWorker(Protocol[JobT_contra, ResultT]):
    """A thread that serves several panels: it answers each job into the queue sent with it
    (:class:`pt_gui_chartdata.ChartWorker`). Its owner closes it, not the panels."""

    def submit(self, job: JobT_contra, reply: queue.Queue[ResultT], /) -> None: ...


@dataclass(frozen=True)
class _Queued(Generic[JobT]):
    job: JobT
    refresh: bool


@dataclass(frozen=True)
class _Done(Generic[ResultT]):
    refresh: bool
    result: tuple[ResultT] | None  # None: the job failed and there is nothing to show


def _serve(
    name: str,
    work: Callable[[JobT], ResultT],
    on_error: Callable[[JobT, Exception], ResultT] | None,
    jobs: queue.Queue[_Queued[JobT] | None],
    results: queue.Queue[_Done[ResultT]],
) -> None:
    """The worker thread's loop until it is handed None. It holds no widget (nor may ``work``
    and ``on_error``): the last reference to a Tk object must never be dropped off the Tk
    thread, which could happen here if a worker outlived its window."""
    while (queued := jobs.get()) is not None:
        result: tuple[ResultT] | None
        try:
            result = (work(queued.job),)
        except Exception as exc:
            log.exception("%s: background job failed", name)
            result = None if on_error is None else (on_error(queued.job, exc),)
        results.put(_Done(queued.refresh, result))


class Background(Generic[JobT, ResultT]):
    """``work(job)`` runs on a worker thread named ``name`` (or ``work`` is a shared worker);
    ``deliver(result)`` runs on the Tk thread of ``master``. ``refresh_job()`` builds the job a
    refresh sends. ``join_timeout_s`` <= 0: :meth:`close` does not wait for the worker."""

    def __init__(
        self,
        master: tk.Misc,
        work: Callable[[JobT], ResultT] | SharedWorker[JobT, ResultT],
        deliver: Callable[[ResultT], None],
        *,
        name: str,
        refresh_job: Callable[[], JobT] | None = None,
        on_error: Callable[[JobT, Exception], ResultT] | None = None,
        poll_ms: int = POLL_MS,
        join_timeout_s: float = JOIN_TIMEOUT_S,
    ) -> None:
        self.master, self.name = master, name
        self._deliver = deliver
        self._refresh_job = refresh_job
        self._poll_ms, self._join_timeout_s = poll_ms, join_timeout_s
        self._jobs: queue.Queue[_Queued[JobT] | None] = queue.Queue()
        self._results: queue.Queue[_Done[ResultT]] = queue.Queue()
        self._replies: queue.Queue[ResultT] = queue.Queue()  # a shared worker's answers
        self._refreshing = self._again = self.closed = False
        self._one_offs = 0
        self._after: dict[str, str] = {}
        self._shared: SharedWorker[JobT, ResultT] | None = None
        self._worker: threading.Thread | None = None
        if isinstance(work, SharedWorker):
            self._shared = work
        else:
            args = (name, work, on_error, self._jobs, self._results)
            self._worker = threading.Thread(target=_serve, args=args, name=name, daemon=True)
            self._worker.start()

    @property
    def busy(self) -> bool:
        """A refresh is on its way."""
        return self._refreshing

    @property
    def idle(self) -> bool:
        """Nothing at all is on its way (tests wait on it)."""
        return not self._refreshing and self._one_offs == 0

    @property
    def alive(self) -> bool:
        """The own worker thread is running (a shared worker's is its owner's business)."""
        return self._worker is not None and self._worker.is_alive()

    def refresh(self, job: JobT | None = None) -> None:
        """Send ``job`` (default: ``refresh_job()``) now, or once more after the running refresh."""
        if self.closed:
            return
        if self._refreshing:
            self._again = True
            return
        if job is None:
            if self._refresh_job is None:
                raise TypeError(f"{self.name}: refresh() needs a job or a refresh_job")
            job = self._refresh_job()
        self._refreshing = True
        if self._shared is not None:
            self._shared.submit(job, self._replies)
        else:
            self._jobs.put(_Queued(job, refresh=True))
        self._expect()

    def submit(self, job: JobT) -> None:
        """Do ``job`` once, after whatever the worker is doing."""
        if self._shared is not None:
            raise TypeError(f"{self.name}: a shared worker only serves refreshes")
        if self.closed:
            return
        self._one_offs += 1
        self._jobs.put(_Queued(job, refresh=False))
        self._expect()

    def after(self, name: str, ms: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` in ``ms``; an earlier pending call of the same ``name`` is dropped
        (so it also debounces). Nothing runs after :meth:`close`."""
        if self.closed:
            return
        pending = self._after.pop(name, None)
        if pending is not None:
            self.master.after_cancel(pending)

        def run() -> None:
            self._after.pop(name, None)
            if not self.closed:
                callback()

        self._after[name] = self.master.after(ms, run)

    def every(self, name: str, ms: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` every ``ms`` until :meth:`close` (``ms`` <= 0: never); a callback
        that raises does not stop the timer."""
        if ms <= 0:
            return

        def tick() -> None:
            try:
                callback()
            finally:
                self.after(name, ms, tick)

        self.after(name, ms, tick)

    def _expect(self) -> None:
        """Something is on its way: poll for it (unless a poll is already pending)."""
        if "poll" not in self._after:
            self.after("poll", self._poll_ms, self._poll)

    def _arrived(self) -> Iterator[_Done[ResultT]]:
        """What came back: the own worker's results, or a shared worker's (all refreshes)."""
        with contextlib.suppress(queue.Empty):
            while not self.closed:
                yield self._results.get_nowait()
        with contextlib.suppress(queue.Empty):
            while not self.closed:
                yield _Done(True, (self._replies.get_nowait(),))

    def _poll(self) -> None:
        try:
            for done in self._arrived():
                if done.refresh:
                    self._refreshing = False
                else:
                    self._one_offs -= 1
                if done.result is not None:
                    self._deliver(done.result[0])
                if done.refresh and self._again:
                    self._again = False
                    self.refresh()
        finally:
            if not self.idle:
                self._expect()

    def close(self) -> None:
        """Cancel every timer and stop the own worker after the job it is doing (waiting at most
        ``join_timeout_s``: a read that hangs longer ends on its own, its result unused)."""
        if self.closed:
            return
        self.closed = True
        for ident in self._after.values():
            with contextlib.suppress(tk.TclError):  # the interpreter may already be gone
                self.master.after_cancel(ident)
        self._after.clear()
        worker = self._worker
        if worker is None:
            return
        self._jobs.put(None)
        if self._join_timeout_s > 0 and threading.current_thread() is not worker:
            worker.join(timeout=self._join_timeout_s)
            if worker.is_alive():
                log.warning("%s still busy at close; it stops after its job", self.name)
