"""The hub's "Live Output" tabs: what the thinker, the trader and each trainer print.

The supervisor sends every child's output to ``logs/<worker>.out`` (never a pipe), so these
tabs are file tails: :class:`OutputTail` remembers where it stopped in each file and reads only
the bytes added since (a rotated or truncated file starts over), on the panel's background
worker. Each pane keeps the last :data:`MAX_LINES` lines (as the original did) and follows the
end unless the user has scrolled up to read something.
"""

from __future__ import annotations

import codecs
import logging
import os
import tkinter as tk
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from tkinter import ttk
from typing import BinaryIO

from pt_gui_background import Background
from pt_gui_theme import MUTED, PANEL, SELECT, TEXT, apply_theme, scrollbars

log = logging.getLogger(__name__)

MAX_LINES = 2500
FIRST_READ_BYTES = 256 * 1024  # a long output is joined near its end: the last lines matter
MAX_READ_BYTES = 1024 * 1024  # per file and refresh: a flood is caught up over several
REFRESH_MS = 500
TRAINER_PREFIX = "trainer-"
NO_TRAINER = "(no trainer has run)"


@dataclass(frozen=True)
class Chunk:
    """New output of one worker; ``reset``: the file started over (rotated, or first read)."""

    worker: str
    text: str
    reset: bool


@dataclass
class _Position:
    ident: tuple[int, int]
    offset: int
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace")
    )


class OutputTail:
    """Reads what was added to ``logs/<worker>.out`` since the last call (worker thread only)."""

    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = logs_dir
        self._positions: dict[str, _Position] = {}

    def path(self, worker: str) -> Path:
        return self.logs_dir / f"{worker}.out"

    def read(self, worker: str) -> Chunk | None:
        """None when nothing changed (or there is no file yet)."""
        try:
            with self.path(worker).open("rb") as f:
                st = os.fstat(f.fileno())
                ident = (st.st_dev, st.st_ino)
                pos = self._positions.get(worker)
                reset = pos is None or pos.ident != ident or st.st_size < pos.offset
                if reset:
                    pos = self._positions[worker] = _Position(ident, 0)
                    pos.offset = self._first_offset(f, st.st_size)
                assert pos is not None
                if st.st_size == pos.offset and not reset:
                    return None
                f.seek(pos.offset)
                data = f.read(MAX_READ_BYTES)
        except FileNotFoundError:
            self._positions.pop(worker, None)
            return None
        pos.offset += len(data)
        return Chunk(worker, pos.decoder.decode(data), reset)

    @staticmethod
    def _first_offset(f: BinaryIO, size: int) -> int:
        """Start a long file at the first whole line of its last :data:`FIRST_READ_BYTES`."""
        if size <= FIRST_READ_BYTES:
            return 0
        start = size - FIRST_READ_BYTES
        f.seek(start)
        head = f.read(4096)
        newline = head.find(b"\n")
        return start + newline + 1 if newline >= 0 else start

    def forget(self, worker: str) -> None:
        """The next read of ``worker`` starts over (a pane was cleared)."""
        self._positions.pop(worker, None)


def trainer_coins(logs_dir: Path) -> tuple[str, ...]:
    """Coins whose trainer has an output file (worker thread)."""
    try:
        names = [p.name for p in logs_dir.glob(f"{TRAINER_PREFIX}*.out")]
    except OSError:
        return ()
    return tuple(sorted(n[len(TRAINER_PREFIX) : -len(".out")] for n in names))


@dataclass(frozen=True)
class _Read:
    workers: tuple[str, ...]
    start_over: tuple[str, ...] = ()  # panes that were cleared: read these from the start


@dataclass(frozen=True)
class _Found:
    chunks: tuple[Chunk, ...]
    trainers: tuple[str, ...]


class OutputPane(ttk.Frame):
    """A read-only text pane that keeps the last ``max_lines`` lines and follows the end."""

    def __init__(self, parent: tk.Misc, *, max_lines: int = MAX_LINES) -> None:
        super().__init__(parent, style="Panel.TFrame")
        self.max_lines = max_lines
        self.text = tk.Text(
            self, wrap="none", font="TkFixedFont", background=PANEL, foreground=TEXT,
            insertbackground=TEXT, selectbackground=SELECT, borderwidth=0, highlightthickness=0,
            padx=6, pady=4, height=8, state="disabled",
        )  # fmt: skip
        scrollbars(self, self.text)  # long lines scroll sideways rather than wrap
        self.columnconfigure(0, weight=1)
        self.rowconfigure(2, weight=1)
        self.text.tag_configure("muted", foreground=MUTED)

    def append(self, text: str, *, reset: bool = False) -> None:
        at_end = self.text.yview()[1] >= 0.999
        self.text.configure(state="normal")
        if reset:
            self.text.delete("1.0", "end")
        self.text.insert("end", text)
        lines = int(self.text.index("end-1c").split(".")[0])
        if lines > self.max_lines:
            self.text.delete("1.0", f"{lines - self.max_lines + 1}.0")
        self.text.configure(state="disabled")
        if at_end or reset:
            self.text.see("end")

    def show_note(self, note: str) -> None:
        self.text.configure(state="normal")
        self.text.delete("1.0", "end")
        self.text.insert("end", note, "muted")
        self.text.configure(state="disabled")

    def content(self) -> str:
        return str(self.text.get("1.0", "end-1c"))


class LiveOutput(ttk.Frame):
    """Tabs Thinker, Trader and Trainers (a coin chooser over one pane)."""

    def __init__(
        self,
        parent: tk.Misc,
        *,
        logs_dir: Path,
        refresh_ms: int = REFRESH_MS,
        max_lines: int = MAX_LINES,
    ) -> None:
        super().__init__(parent, style="TFrame")
        apply_theme(self.winfo_toplevel())
        self.tail = OutputTail(logs_dir)
        self.generation = 0  # reads applied (tests wait on it)
        self._start_over: tuple[str, ...] = ()
        self.tabs = ttk.Notebook(self)
        self.tabs.pack(fill="both", expand=True)
        self.panes: dict[str, OutputPane] = {}
        for worker, title in (("thinker", "Thinker"), ("trader", "Trader")):
            self.panes[worker] = OutputPane(self.tabs, max_lines=max_lines)
            self.tabs.add(self.panes[worker], text=title)
            self.panes[worker].show_note(f"Nothing yet: the {worker} has not run.")
        self._build_trainers(max_lines)
        self.bg: Background[_Read, _Found] = Background(
            self, self._read, self._found, name="output-worker", refresh_job=self._job
        )
        self.bg.refresh()
        self.bg.every("tick", refresh_ms, self.bg.refresh)

    def _build_trainers(self, max_lines: int) -> None:
        page = ttk.Frame(self.tabs, style="Panel.TFrame", padding=(6, 4, 0, 0))
        head = ttk.Frame(page, style="Panel.TFrame")
        head.pack(fill="x", pady=(0, 4))
        ttk.Label(head, text="Coin:", style="Panel.TLabel").pack(side="left")
        self.trainer = tk.StringVar(self, "")
        self.trainer_box = ttk.Combobox(
            head, textvariable=self.trainer, values=(), state="readonly", width=8
        )
        self.trainer_box.pack(side="left", padx=(6, 10))
        self.trainer_box.bind("<<ComboboxSelected>>", lambda _e: self._choose_trainer())
        self.running = ttk.Label(head, text="(no trainers running)", style="PanelMuted.TLabel")
        self.running.pack(side="left")
        self.trainer_pane = OutputPane(page, max_lines=max_lines)
        self.trainer_pane.pack(fill="both", expand=True)
        self.trainer_pane.show_note(f"{NO_TRAINER}: press Train All.")
        self.tabs.add(page, text="Trainers")

    # -- worker thread -----------------------------------------------------------------------

    def _job(self) -> _Read:
        workers = ["thinker", "trader"]
        if self.trainer.get():
            workers.append(TRAINER_PREFIX + self.trainer.get())
        start_over, self._start_over = self._start_over, ()
        return _Read(tuple(workers), start_over)

    def _read(self, job: _Read) -> _Found:
        for worker in job.start_over:
            self.tail.forget(worker)
        chunks = tuple(c for w in job.workers if (c := self.tail.read(w)) is not None)
        return _Found(chunks, trainer_coins(self.tail.logs_dir))

    # -- Tk thread ------------------------------------------------------------------------------

    def _found(self, found: _Found) -> None:
        self.generation += 1
        if tuple(self.trainer_box.cget("values")) != found.trainers:
            self.trainer_box.configure(values=found.trainers)
        if not self.trainer.get() and found.trainers:
            self.trainer.set(found.trainers[0])
            self.bg.refresh()
        for chunk in found.chunks:
            if chunk.worker.startswith(TRAINER_PREFIX):
                if chunk.worker != TRAINER_PREFIX + self.trainer.get():
                    continue  # the choice changed while this was read
                pane = self.trainer_pane
            else:
                pane = self.panes[chunk.worker]
            pane.append(chunk.text, reset=chunk.reset)

    def _choose_trainer(self) -> None:
        coin = self.trainer.get()
        self._start_over = (*self._start_over, TRAINER_PREFIX + coin)
        self.trainer_pane.show_note(f"Reading the {coin} trainer's output…")
        self.bg.refresh()

    def show_running(self, trainers: Sequence[str]) -> None:
        """The trainers running now (from the hub's status)."""
        text = "running: " + ", ".join(trainers) if trainers else "(no trainers running)"
        if self.running.cget("text") != text:
            self.running.configure(text=text)

    def select(self, which: str) -> None:
        index = {"thinker": 0, "trader": 1, "trainers": 2}[which]
        self.tabs.tk.call(str(self.tabs), "select", index)  # Notebook.select is untyped

    def destroy(self) -> None:
        self.bg.close()
        super().destroy()
