"""The hub's log viewer: search every process's log (``logs/<process>.jsonl``) by level,
process and text, newest first, coloured by level, with the selected entry in full below.

Searching reads files that may hold megabytes, so it runs on a worker thread
(:func:`pt_logging.search_logs` through :class:`pt_gui_background.Background`) and only the
result is drawn on the Tk thread. With "Auto-refresh" on, the search repeats every
``refresh_ms``, but only when a log file changed (its stat), so an idle bot costs one directory
listing per refresh.
"""

from __future__ import annotations

import heapq
import json
import logging
import tkinter as tk
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from tkinter import ttk

from pt_gui_background import Background
from pt_gui_theme import (
    BG,
    BORDER,
    MUTED,
    NEGATIVE,
    TEXT,
    WARNING,
    Theme,
    apply_theme,
    scrollbars,
)
from pt_logging import LEVEL_NAMES, LogEntry, LogQuery, search_logs

__all__ = ["LogFilter", "LogResult", "LogRow", "LogSearcher", "LogViewer", "rows_of"]

log = logging.getLogger(__name__)

ALL, TRAINERS = "all", "trainers"
KNOWN_PROCESSES = ("hub", "thinker", "trader", TRAINERS)
LIMIT = 500
COLUMNS = ("Time", "Level", "Process", "Message")
LEVEL_COLOURS = {"DEBUG": MUTED, "INFO": TEXT, "WARNING": WARNING, "ERROR": NEGATIVE,
                 "CRITICAL": NEGATIVE}  # fmt: skip


@dataclass(frozen=True)
class LogFilter:
    """What the user asked for: the lowest level shown, one process (``all``, or ``trainers``
    for every ``trainer-<COIN>``), and text that must appear (any case)."""

    level: str = "INFO"
    process: str = ALL
    text: str = ""
    limit: int = LIMIT

    def queries(self, processes: Sequence[str]) -> list[LogQuery]:
        """One query per process it covers (the log search matches one process exactly)."""
        text = self.text.strip() or None
        if self.process == ALL:
            names: list[str | None] = [None]
        elif self.process == TRAINERS:
            names = [p for p in processes if p.startswith("trainer-")]
        else:
            names = [self.process]
        return [LogQuery(min_level=self.level, process=p, text=text, limit=self.limit)
                for p in names]  # fmt: skip


@dataclass(frozen=True)
class LogRow:
    cells: tuple[str, str, str, str]  # time, level, process, the message's first line
    level: str
    detail: str  # everything about the entry, for the pane below the table


@dataclass(frozen=True)
class LogResult:
    filter: LogFilter
    rows: tuple[LogRow, ...]
    processes: tuple[str, ...]  # every process with a log file, for the filter's list
    error: str = ""


def _detail(e: LogEntry, when: str) -> str:
    head = f"{when}  {e.level}  {e.process}" + (f" (pid {e.pid})" if e.pid else "")
    parts = [f"{head}  {e.logger}", e.msg]
    if e.fields:
        parts.append(json.dumps(dict(e.fields), ensure_ascii=False, default=str, sort_keys=True))
    if e.exc:
        parts.append(e.exc)
    return "\n".join(parts)


def rows_of(entries: Sequence[LogEntry], tz: tzinfo | None = None) -> tuple[LogRow, ...]:
    """Table rows for log entries (newest first as given); a multi-line message shows its first
    line and "…", an exception its last line."""
    rows = []
    for e in entries:
        when = datetime.fromtimestamp(e.ts, tz=tz).strftime("%Y-%m-%d %H:%M:%S")
        first, _, rest = e.msg.partition("\n")
        message = first + (" …" if rest else "")
        if e.exc:
            message += f"  ⟶ {e.exc.strip().splitlines()[-1]}"
        rows.append(LogRow((when, e.level, e.process, message), e.level, _detail(e, when)))
    return tuple(rows)


class LogSearcher:
    """The worker's side: lists the log files and searches them. ``search`` returns None when
    neither the filter nor any file changed since the last search (unless ``force``);
    ``searches`` counts the searches that read the files."""

    def __init__(self, logs_dir: Path, *, tz: tzinfo | None = None) -> None:
        self.logs_dir, self.tz = Path(logs_dir), tz
        self._last: tuple[LogFilter, tuple[tuple[str, int, int], ...]] | None = None
        self.searches = 0

    def _files(self) -> tuple[tuple[str, int, int], ...]:
        found = []
        for path in self.logs_dir.glob("*.jsonl*"):
            try:
                st = path.stat()
            except OSError:  # rotated away meanwhile
                continue
            found.append((path.name, st.st_mtime_ns, st.st_size))
        return tuple(sorted(found))

    def search(self, filt: LogFilter, *, force: bool = False) -> LogResult | None:
        files = self._files()
        if not force and self._last == (filt, files):
            return None
        self._last = (filt, files)
        processes = tuple(sorted({name.split(".jsonl")[0] for name, _, _ in files}))
        if not files:
            return LogResult(filt, (), processes, f"no log files yet in {self.logs_dir}")
        self.searches += 1
        found = [search_logs(q, self.logs_dir) for q in filt.queries(processes)]
        newest = heapq.merge(*found, key=lambda e: -e.ts)  # each list is newest first already
        entries = [e for _, e in zip(range(filt.limit), newest, strict=False)]
        return LogResult(filt, rows_of(entries, self.tz), processes)


_Job = tuple[LogFilter, bool]  # the filter, and whether to search unchanged files again


def _failed(job: _Job, exc: Exception) -> LogResult:
    """A failed search is said in the status line, never fatal."""
    return LogResult(job[0], (), (), f"search failed: {exc}")


class LogViewer(ttk.Frame):
    """The log tab (module doc). ``refresh_ms`` is the auto-refresh period."""

    def __init__(
        self,
        parent: tk.Misc,
        *,
        logs_dir: Path,
        refresh_ms: int = 2000,
        auto_refresh: bool = True,
        tz: tzinfo | None = None,
    ) -> None:
        super().__init__(parent, style="Panel.TFrame", padding=(10, 6, 10, 6))
        self.theme: Theme = apply_theme(self.winfo_toplevel())
        self.searcher = LogSearcher(logs_dir, tz=tz)
        self.result: LogResult | None = None
        self.generation = 0
        self._details: dict[str, str] = {}
        self.level = tk.StringVar(self, "INFO")
        self.process = tk.StringVar(self, ALL)
        self.text = tk.StringVar(self, "")
        self.auto = tk.BooleanVar(self, auto_refresh)
        self._build()
        searcher = self.searcher  # the worker gets the searcher, never the widget
        self._bg: Background[_Job, LogResult | None] = Background(
            self, lambda job: searcher.search(job[0], force=job[1]), self._apply,
            name="logs-worker", refresh_job=lambda: (self.current_filter(), True),
            on_error=_failed, join_timeout_s=5,
        )  # fmt: skip
        self.search()
        self._bg.every("tick", refresh_ms, self._tick)

    # -- layout ------------------------------------------------------------------------------

    def _build(self) -> None:
        head = ttk.Frame(self, style="Panel.TFrame")
        head.grid(row=0, column=0, columnspan=2, sticky="ew")
        head.columnconfigure(1, weight=1)
        ttk.Label(head, text="Logs", style="Section.TLabel").grid(row=0, column=0, sticky="w")
        self.note = ttk.Label(head, text="", style="PanelMuted.TLabel")
        self.note.grid(row=0, column=1, sticky="e", padx=(12, 12))
        self.auto_check = ttk.Checkbutton(head, text="Auto-refresh", variable=self.auto,
                                          style="Panel.TCheckbutton")  # fmt: skip
        self.auto_check.grid(row=0, column=2, sticky="e")
        self.search_button = ttk.Button(head, text="Search", command=self.search)
        self.search_button.grid(row=0, column=3, sticky="e", padx=(10, 0))
        bar = ttk.Frame(head, style="Panel.TFrame")
        bar.grid(row=1, column=0, columnspan=4, sticky="ew", pady=(4, 0))
        bar.columnconfigure(5, weight=1)
        self.level_box = ttk.Combobox(bar, textvariable=self.level, values=LEVEL_NAMES, width=9)
        self.process_box = ttk.Combobox(bar, textvariable=self.process, width=12,
                                        values=(ALL, *KNOWN_PROCESSES))  # fmt: skip
        for combo in (self.level_box, self.process_box):
            combo.configure(state="readonly", style="Panel.TCombobox")
        self.text_entry = ttk.Entry(bar, textvariable=self.text, width=12, style="Panel.TEntry")
        fields = (("Level", self.level_box), ("Process", self.process_box),
                  ("Text", self.text_entry))  # fmt: skip
        for i, (label, field) in enumerate(fields):
            ttk.Label(bar, text=label, style="PanelMuted.TLabel").grid(
                row=0, column=2 * i, padx=(0 if i == 0 else 12, 4))  # fmt: skip
            field.grid(row=0, column=2 * i + 1, sticky="ew")
        for box in (self.level_box, self.process_box):
            box.bind("<<ComboboxSelected>>", lambda _e: self.search())
        self.text_entry.bind("<Return>", lambda _e: self.search())
        self.tree = ttk.Treeview(self, columns=COLUMNS, show="headings", selectmode="browse")
        self._columns()
        for level, colour in LEVEL_COLOURS.items():
            font = self.theme.bold if level == "CRITICAL" else self.theme.body
            self.tree.tag_configure(level, foreground=colour, font=font)
        scrollbars(self, self.tree)
        self.tree.bind("<<TreeviewSelect>>", lambda _e: self._show_detail())
        self.detail = tk.Text(self, height=5, background=BG, foreground=TEXT, borderwidth=0,
                              highlightthickness=1, highlightbackground=BORDER,
                              font=self.theme.small, wrap="word", state="disabled")  # fmt: skip
        self.detail.grid(row=4, column=0, columnspan=2, sticky="ew", pady=(6, 0))
        self.rowconfigure(2, weight=1)
        self.columnconfigure(0, weight=1)

    def _columns(self) -> None:
        """Time, level and process as wide as their longest value; the message takes the rest."""
        t = self.theme
        samples = (  # measured bold: CRITICAL rows are
            ("Time", "2024-12-31 23:59:59", t.bold),
            ("Level", "CRITICAL", t.bold),
            ("Process", "trainer-DOGE", t.bold),
            ("Message", "", t.body),
        )
        for col, sample, font in samples:
            width = max(t.measure(self.tree, sample, font), t.measure(self, col, t.small_bold)) + 16
            last = col == "Message"
            self.tree.heading(col, text=col, anchor="w")
            self.tree.column(col, width=300 if last else width, minwidth=120 if last else width,
                             stretch=last, anchor="w")  # fmt: skip

    # -- showing results ---------------------------------------------------------------------

    def _apply(self, result: LogResult | None) -> None:
        self.generation += 1
        if result is not None:
            self.result = result
            self._fill(result)

    def _fill(self, result: LogResult) -> None:
        selected = self.tree.selection()
        self.tree.delete(*self.tree.get_children())
        self._details = {}
        for i, row in enumerate(result.rows):
            iid = self.tree.insert("", "end", values=row.cells, tags=(row.level,))
            self._details[iid] = row.detail
            if i == 0 and selected:
                self.tree.selection_set(iid)
        names = [p for p in result.processes if p not in KNOWN_PROCESSES]
        self.process_box.configure(values=(ALL, *KNOWN_PROCESSES, *names))
        shown = len(result.rows)
        full = " (the newest only)" if shown >= result.filter.limit else ""
        text = result.error or f"{shown} entries · newest first{full}"
        style = "Problem.TLabel" if result.error else "PanelMuted.TLabel"
        self.note.configure(text=text, style=style)
        self._show_detail()

    def _show_detail(self) -> None:
        chosen = self.tree.selection()
        text = self._details.get(chosen[0], "") if chosen else "Select an entry to see it in full."
        self.detail.configure(state="normal")
        self.detail.delete("1.0", "end")
        self.detail.insert("1.0", text)
        self.detail.configure(state="disabled")

    def rows(self) -> list[tuple[str, ...]]:
        return [
            tuple(str(v) for v in self.tree.item(i, "values")) for i in self.tree.get_children()
        ]

    # -- searching (Tk thread) -----------------------------------------------------------------

    def current_filter(self) -> LogFilter:
        return LogFilter(self.level.get(), self.process.get(), self.text.get())

    def search(self, *, force: bool = True) -> None:
        """Search now (the button, Return, a changed filter); auto-refresh passes
        ``force=False`` so unchanged files are not read again. Asked for while a search runs,
        it is done once more after it."""
        self._bg.refresh((self.current_filter(), force))

    @property
    def busy(self) -> bool:
        return self._bg.busy

    def _tick(self) -> None:
        if self.auto.get() and not self._bg.busy:
            self.search(force=False)

    def destroy(self) -> None:
        self._bg.close()
        super().destroy()
