"""The SETTINGS tab: every setting of ``settings.json``, edited, validated and saved in one go.

The form is generated from the schema (:mod:`pt_gui_settings_fields`), so a new setting shows up
without GUI code. The original dialog applied fields one by one and could leave half of them
changed when a later one failed; here Save checks everything first, marks every problem on its
own field, and writes nothing until all are valid. Reading and writing the file, and asking
whether Robinhood keys are stored, happen on a worker thread
(:class:`pt_gui_background.Background`); the Tk thread only draws.

Switching to ``live`` trades real money, so it needs stored keys and the word LIVE typed into a
confirmation dialog. A notification channel switched on needs its secret stored first (Save
says which, at the field). The Notifications group ends with "Send test" per channel and the
secrets window (:mod:`pt_gui_notify`). Keys this version does not know are kept in the file,
and said so.
"""

from __future__ import annotations

import logging
import time
import tkinter as tk
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from tkinter import ttk
from typing import Any

import pt_config
from pt_config_schema import Settings
from pt_gui_background import Background
from pt_gui_notify import NotifyTools, PassphraseDialog, ask_passphrase
from pt_gui_settings_fields import (
    MODE_HINTS,
    Raw,
    SectionSpec,
    all_fields,
    allocation_hint,
    build_sections,
    check_form,
    merge_unknown,
    split_unknown,
    to_raw,
    unknown_text,
)
from pt_gui_settings_widgets import (
    LIVE_WORD,
    FieldRow,
    LiveConfirmDialog,
    ask_live_confirmation,
    configure_styles,
)
from pt_gui_theme import BG, wrapping
from pt_notify_format import missing_secrets
from pt_state import DataLayout, atomic_write_json
from pt_types import Mode

__all__ = ["LIVE_WORD", "LiveConfirmDialog", "SettingsEditor", "ask_live_confirmation"]

log = logging.getLogger(__name__)

HINT_REFRESH_MS = 5000  # the account value moves: the "≈ $X per trade" hint follows it
INPUT_WIDTH = 350  # px: the longest default list (the timeframes) shows whole
JOIN_TIMEOUT_S = 5.0
ALLOCATION_PATH, MODE_PATH = "start_allocation_pct", "mode"


def write_settings(path: Path, settings: Settings, unknown: Mapping[str, Any]) -> None:
    """Write ``settings`` atomically, with the file's unknown keys put back where they were."""
    if not unknown:
        pt_config.save(path, settings)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, merge_unknown(pt_config.to_data(settings), unknown))


# ---------------------------------------------------------------------------------------------
# Worker thread: the file and the key check, never on the Tk thread


@dataclass(frozen=True)
class _LoadJob:
    pass


@dataclass(frozen=True)
class _KeysJob:
    settings: Settings


@dataclass(frozen=True)
class _WriteJob:
    settings: Settings
    unknown: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Loaded:
    raw: Mapping[str, Any]
    note: str


@dataclass(frozen=True)
class _KeysChecked:
    settings: Settings
    ok: bool
    error: str = ""
    missing: Mapping[str, str] = field(default_factory=dict)  # field path -> missing secret


@dataclass(frozen=True)
class _Written:
    settings: Settings


@dataclass(frozen=True)
class _Failed:
    message: str
    reading: bool  # a failed read leaves the form without the file's values


_Job = _LoadJob | _KeysJob | _WriteJob
_Result = _Loaded | _KeysChecked | _Written | _Failed


@dataclass(frozen=True)
class Checks:
    """What Save asks on the worker thread: are Robinhood keys stored (live mode), and which
    secrets are (the names in the secrets file)."""

    keys: Callable[[], bool] = lambda: False
    secrets: Callable[[], Collection[str]] = tuple


def _check(settings: Settings, checks: Checks) -> _KeysChecked:
    missing = {
        f"notifications.{key}": why
        for key, why in missing_secrets(settings.notifications, checks.secrets()).items()
    }
    if settings.mode is not Mode.LIVE:
        return _KeysChecked(settings, True, missing=missing)
    try:
        return _KeysChecked(settings, bool(checks.keys()), missing=missing)
    except Exception as exc:  # a broken key store must not look like stored keys
        log.exception("could not check whether Robinhood keys are stored")
        return _KeysChecked(settings, False, str(exc), missing)


def _work(job: _Job, path: Path, checks: Checks) -> _Result:
    """One job on the worker thread (it holds no widget); every failure becomes a message."""
    try:
        if isinstance(job, _LoadJob):
            existed = path.exists()
            raw = pt_config.read_file(path)
            note = ""
            if not existed:
                note = f"No settings file yet: the defaults are shown; Save writes {path}"
            elif not path.exists():  # read_file set a non-JSON file aside
                note = (
                    f"{path.name} was not valid JSON; it was kept aside and the defaults are shown"
                )
            return _Loaded(raw, note)
        if isinstance(job, _KeysJob):
            return _check(job.settings, checks)
        write_settings(path, job.settings, job.unknown)
        return _Written(job.settings)
    except Exception as exc:
        reading = isinstance(job, _LoadJob)
        if isinstance(exc, OSError):  # expected trouble (permissions, a full disk): no traceback
            log.warning("could not %s %s: %s", "read" if reading else "write", path, exc)
        else:
            log.exception("settings %s failed for %s", type(job).__name__, path)
        return _Failed(f"Could not {'read' if reading else 'write'} {path}: {exc}", reading)


# ---------------------------------------------------------------------------------------------
# The tab


class SettingsEditor(ttk.Frame):
    """The SETTINGS tab (module doc).

    ``account_value`` is asked on the Tk thread and must answer at once (the hub's last known
    value, None when there is none); ``checks`` run on the worker thread (they look at the
    secrets folder); ``on_saved`` gets the settings just written; ``confirm_live`` asks
    for the typed confirmation (the real dialog unless a test drives it); ``open_key_wizard``,
    when given, is offered as a button when live mode is refused for want of keys;
    ``ask_passphrase`` is what "Send test" asks a passphrase-locked secrets file with.
    """

    def __init__(
        self,
        parent: tk.Misc,
        *,
        layout: DataLayout,
        account_value: Callable[[], float | None] = lambda: None,
        checks: Checks | None = None,
        on_saved: Callable[[Settings], None] = lambda _s: None,
        confirm_live: Callable[[tk.Misc], bool] = ask_live_confirmation,
        open_key_wizard: Callable[[], None] | None = None,
        hint_refresh_ms: int = HINT_REFRESH_MS,
        ask_passphrase: PassphraseDialog = ask_passphrase,
    ) -> None:
        super().__init__(parent, style="TFrame", padding=(12, 8, 12, 6))
        self.theme = configure_styles(self.winfo_toplevel())
        self.path, self.layout = layout.settings_file, layout
        self._ask_passphrase = ask_passphrase
        self.notify_tools: NotifyTools | None = None
        self._account_value, self._on_saved = account_value, on_saved
        self._confirm_live, self._open_key_wizard = confirm_live, open_key_wizard
        self._hint_ms = hint_refresh_ms
        self.sections: tuple[SectionSpec, ...] = build_sections()
        self.rows: dict[str, FieldRow] = {}
        self.settings: Settings | None = None  # as last loaded (when valid) or saved
        self.generation = 0  # results applied (tests wait on it)
        self._known: dict[str, Any] = {}
        self._unknown: dict[str, Any] = {}
        self._drop_unknown = False
        self._file_mode = Mode.DEMO.value
        self._snapshot: dict[str, Raw] = {}
        self._busy = self._filling = self._readable = False
        self._build()
        path, check = self.path, checks or Checks()  # the worker never gets a widget
        self._bg: Background[_Job, _Result] = Background(
            self, lambda job: _work(job, path, check), self._apply,
            name="settings-worker", join_timeout_s=JOIN_TIMEOUT_S,
        )  # fmt: skip
        self._bg.every("hints", self._hint_ms, self._update_hints)
        self.revert()

    # -- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        self.columnconfigure(0, weight=1)
        self.rowconfigure(3, weight=1)
        head = ttk.Frame(self)
        head.grid(row=0, column=0, sticky="ew")
        head.columnconfigure(1, weight=1)
        ttk.Label(head, text="Settings", style="Title.TLabel").grid(row=0, column=0, sticky="w")
        ttk.Label(head, text=str(self.path), style="Muted.TLabel").grid(
            row=0, column=1, sticky="w", padx=(12, 0)
        )
        self.dirty_label = ttk.Label(head, text="", style="Unknown.TLabel")
        self.dirty_label.grid(row=0, column=2, padx=(8, 8))
        self.revert_button = ttk.Button(head, text="Revert", command=self.revert)
        self.revert_button.grid(row=0, column=3, padx=(6, 0))
        self.save_button = ttk.Button(head, text="Save", command=self.save)
        self.save_button.grid(row=0, column=4, padx=(6, 0))
        bar = ttk.Frame(self)
        bar.grid(row=1, column=0, sticky="ew", pady=(6, 0))
        bar.columnconfigure(0, weight=1)
        self.summary = ttk.Label(bar, text="Reading the settings…", style="SummaryInfo.TLabel")
        wrapping(self.summary, least=300).grid(row=0, column=0, sticky="ew")
        self.keys_button = ttk.Button(bar, text="Set up keys…", command=self._keys_wizard)
        self.unknown_bar = ttk.Frame(self)
        self.unknown_bar.columnconfigure(0, weight=1)
        self.unknown_label = ttk.Label(self.unknown_bar, text="", style="Unknown.TLabel")
        wrapping(self.unknown_label, least=300).grid(row=0, column=0, sticky="ew")
        self.drop_button = ttk.Button(
            self.unknown_bar, text="Remove them", command=self.drop_unknown
        )
        self.drop_button.grid(row=0, column=1, padx=(8, 0))
        self._build_scroller()

    def _build_scroller(self) -> None:
        box = ttk.Frame(self)
        box.grid(row=3, column=0, sticky="nsew", pady=(8, 0))
        box.columnconfigure(0, weight=1)
        box.rowconfigure(0, weight=1)
        self.canvas = tk.Canvas(box, background=BG, highlightthickness=0, borderwidth=0,
                                yscrollincrement=24)  # fmt: skip
        self.canvas.grid(row=0, column=0, sticky="nsew")
        scrollbar = ttk.Scrollbar(box, orient="vertical", command=self.canvas.yview)
        scrollbar.grid(row=0, column=1, sticky="ns")
        self.canvas.configure(yscrollcommand=scrollbar.set)
        self.inner = ttk.Frame(self.canvas, padding=(0, 0, 10, 0))
        self.inner.columnconfigure(0, weight=1)
        window = self.canvas.create_window(0, 0, window=self.inner, anchor="nw")
        self.inner.bind(
            "<Configure>", lambda _e: self.canvas.configure(scrollregion=self.canvas.bbox("all"))
        )
        self.canvas.bind("<Configure>", lambda e: self.canvas.itemconfigure(window, width=e.width))
        self._label_width = 16 + max(
            self.theme.measure(self, f.label, self.theme.body) for f in all_fields(self.sections)
        )
        self._panels = [self._build_section(s) for s in self.sections]
        for index, frame in enumerate(self._panels):
            frame.grid(row=index, column=0, sticky="ew", pady=(0, 8))
        for row in self.rows.values():
            row.var.trace_add("write", lambda *_a, p=row.spec.path: self._changed(p))
        self._bind_wheel(self.canvas)

    def _build_section(self, section: SectionSpec) -> ttk.Frame:
        frame = ttk.Frame(self.inner, style="Panel.TFrame", padding=(12, 8, 12, 10))
        frame.columnconfigure(0, minsize=self._label_width)  # the same in every section,
        frame.columnconfigure(1, minsize=INPUT_WIDTH)  # so the columns line up
        frame.columnconfigure(2, weight=1)
        head = ttk.Frame(frame, style="Panel.TFrame")
        head.grid(row=0, column=0, columnspan=3, sticky="ew", pady=(0, 2))
        ttk.Label(head, text=section.title, style="Section.TLabel").pack(side="left")
        ttk.Label(head, text=section.note, style="PanelMuted.TLabel").pack(side="left", padx=12)
        if not section.fields:
            ttk.Label(
                frame, text="No settings here in this version.", style="PanelMuted.TLabel"
            ).grid(row=1, column=0, columnspan=3, sticky="w", pady=(4, 0))
        for index, spec in enumerate(section.fields):
            self.rows[spec.path] = FieldRow(frame, 1 + 2 * index, spec)
        if section.key == "notifications":
            self.notify_tools = NotifyTools(frame, layout=self.layout,
                                            form_settings=self.form_settings,
                                            ask=self._ask_passphrase)  # fmt: skip
            self.notify_tools.grid(row=2 + 2 * len(section.fields), column=0, columnspan=3,
                                   sticky="ew", pady=(10, 0))  # fmt: skip
        return frame

    def _bind_wheel(self, widget: tk.Misc) -> None:
        """Wheel scrolls the page anywhere over it (and never spins a combobox's value)."""
        for sequence in ("<MouseWheel>", "<Button-4>", "<Button-5>"):
            widget.bind(sequence, self._on_wheel, add="+")
        for child in widget.winfo_children():
            self._bind_wheel(child)

    def _on_wheel(self, event: tk.Event[tk.Misc]) -> str:
        if event.num in (4, 5):
            step = -1 if event.num == 4 else 1
        else:
            step = -1 if event.delta > 0 else 1
        self.canvas.yview_scroll(step * 2, "units")
        return "break"

    # -- showing state -----------------------------------------------------------------------

    def _say(self, text: str, tone: str = "info") -> None:
        style = {"ok": "SummaryOk", "error": "SummaryError"}.get(tone, "SummaryInfo")
        self.summary.configure(text=text, style=f"{style}.TLabel")
        self.keys_button.grid_remove()

    def _set_busy(self, busy: bool) -> None:
        """Buttons off while the worker is at it; Save also off while the form does not hold
        the file's values (a failed read must never write defaults over the user's file)."""
        self._busy = busy
        self.revert_button.state(["disabled"] if busy else ["!disabled"])
        self.save_button.state(["disabled"] if busy or not self._readable else ["!disabled"])

    def raws(self) -> dict[str, Raw]:
        return {path: row.raw for path, row in self.rows.items()}

    @property
    def dirty(self) -> bool:
        """The form differs from the file as last loaded or saved."""
        return self.raws() != self._snapshot

    def _changed(self, path: str) -> None:
        if self._filling:
            return
        self.dirty_label.configure(text="Unsaved changes" if self.dirty else "")
        if path in (ALLOCATION_PATH, MODE_PATH):
            self._update_hints()

    def _update_hints(self) -> None:
        if (row := self.rows.get(ALLOCATION_PATH)) is not None:
            try:
                value = self._account_value()
            except Exception:  # a hint must never break the form
                log.exception("account value for the allocation hint failed")
                value = None
            row.show_live(allocation_hint(row.raw, value), warn=value is None)
        if (row := self.rows.get(MODE_PATH)) is not None:
            mode = str(row.raw)
            row.show_live(MODE_HINTS.get(mode, ""), warn=mode == Mode.LIVE.value)

    def _fill(self, values: Mapping[str, Any]) -> None:
        """Put the file's values (defaults where it has none) into the fields."""
        self._filling = True
        try:
            for path, row in self.rows.items():
                try:
                    value = pt_config.get_path(values, path)
                except KeyError:
                    value = row.spec.default
                row.raw = to_raw(row.spec, value)
                row.show_error("")
        finally:
            self._filling = False
        self._snapshot = self.raws()
        self.dirty_label.configure(text="")
        self._update_hints()

    def _show_unknown(self) -> None:
        if not self._unknown:
            self.unknown_bar.grid_remove()
            return
        names = unknown_text(self._unknown)
        if self._drop_unknown:
            text = f"Will be removed from the file when you save: {names}"
        else:
            text = (f"Kept in the file, not known to this version: {names}. The bot cannot load "
                    "the file while they are there.")  # fmt: skip
        self.unknown_label.configure(text=text)
        self.drop_button.state(["disabled"] if self._drop_unknown else ["!disabled"])
        self.unknown_bar.grid(row=2, column=0, sticky="ew", pady=(4, 0))

    def _show_problems(
        self, errors: Mapping[str, str], general: tuple[str, ...], head: str
    ) -> None:
        for path, row in self.rows.items():
            row.show_error(errors.get(path, ""))
        labels = [self.rows[p].spec.label for p in self.rows if p in errors]
        count = len(errors) + len(general)
        parts = [f"{head}: {count} problem{'s' if count != 1 else ''}"]
        if labels:
            parts.append(f"fix the fields marked in red ({', '.join(labels)})")
        parts += list(general)
        self._say(" — ".join(parts), "error")
        first = next((self.rows[p] for p in self.rows if p in errors), None)
        if first is not None:
            self.after_idle(lambda: self.scroll_to(first))

    def scroll_to(self, row: FieldRow) -> None:
        """Bring a field into view (the first error, after a refused save)."""
        if self._bg.closed:
            return
        self.update_idletasks()
        height = max(self.inner.winfo_height(), 1)
        y = row.label.winfo_rooty() - self.inner.winfo_rooty() - 60
        self.canvas.yview_moveto(max(0.0, y / height))

    # -- load, save, revert ----------------------------------------------------------------------

    def revert(self) -> None:
        """Read the file again, dropping what was typed since the last save."""
        if self._busy or self._bg.closed:
            return
        self._set_busy(True)
        self._say(f"Reading {self.path}…")
        self._bg.submit(_LoadJob())

    def propose(self, values: Mapping[str, Any], source: str) -> str:
        """Put ``values`` (settings path -> value) into the form, unsaved: the user reviews them
        and presses Save, which runs every check a typed change gets (live mode included).
        Returns what was done, for the caller to show."""
        unknown = [path for path in values if path not in self.rows]
        if unknown:
            return f"Not put into SETTINGS: {', '.join(unknown)} is not a setting of this version"
        changed = [
            self.rows[path].spec.label
            for path, value in values.items()
            if self.rows[path].raw != to_raw(self.rows[path].spec, value)
        ]
        for path, value in values.items():
            self.rows[path].raw = to_raw(self.rows[path].spec, value)
        self.dirty_label.configure(text="Unsaved changes" if self.dirty else "")
        if not changed:
            note = f"SETTINGS already holds the values from {source}"
        else:
            note = (f"From {source}: {', '.join(changed)} changed in the form, not saved yet. "
                    "Review them, then Save (or Revert)")  # fmt: skip
        self._say(note, "info")
        return note

    def drop_unknown(self) -> None:
        """Leave the unknown keys out of the next save."""
        self._drop_unknown = True
        self._show_unknown()

    def form_settings(self, head: str = "Nothing sent") -> Settings | None:
        """The form's settings when every field is valid; else None, with the problems shown
        at their fields."""
        checked = check_form(all_fields(self.sections), self.raws(), self._known)
        if not checked.ok:
            self._show_problems(checked.field_errors, checked.general, head)
            return None
        for row in self.rows.values():
            row.show_error("")
        return pt_config.parse(checked.data)

    def save(self) -> None:
        """Check every field; write only when all are valid, every channel switched on has its
        secret stored, and (live mode) keys are stored and LIVE was typed."""
        if self._busy or self._bg.closed or not self._readable:
            return
        settings = self.form_settings("Nothing saved")
        if settings is None:
            return
        self._set_busy(True)
        self._say("Checking the stored keys and secrets…")
        self._bg.submit(_KeysJob(settings))

    def _write(self, settings: Settings) -> None:
        self._say(f"Saving {self.path}…")
        unknown = {} if self._drop_unknown else self._unknown
        self._bg.submit(_WriteJob(settings, unknown))

    def _keys_checked(self, result: _KeysChecked) -> None:
        if result.missing:
            self._set_busy(False)
            self._show_problems(result.missing, (), "Nothing saved")
            return
        if result.settings.mode is not Mode.LIVE:
            self._write(result.settings)
            return
        if not result.ok:
            self._set_busy(False)
            why = f" (the key store said: {result.error})" if result.error else ""
            self._say(
                f"Live mode refused: no Robinhood API keys are stored{why}. Add them with the "
                "Robinhood API key wizard first, then save again. Nothing was saved.",
                "error",
            )
            if self._open_key_wizard is not None:
                self.keys_button.grid(row=0, column=1, padx=(8, 0))
            return
        confirmed = self._file_mode == Mode.LIVE.value or self._confirm_live(self)
        if self._bg.closed:  # the window went away while the dialog was open
            return
        if not confirmed:
            self._set_busy(False)
            self._say(
                f"Live mode was not confirmed (type {LIVE_WORD} exactly): nothing was saved.",
                "error",
            )
            return
        self._write(result.settings)

    def _keys_wizard(self) -> None:
        if self._open_key_wizard is not None:
            self._open_key_wizard()

    def _loaded(self, result: _Loaded) -> None:
        self._known, self._unknown = split_unknown(result.raw)
        self._drop_unknown = False
        self._file_mode = str(self._known.get(MODE_PATH, Mode.DEMO.value))
        self._fill(self._known)
        self._show_unknown()
        checked = check_form(all_fields(self.sections), self.raws(), self._known)
        self.settings = pt_config.parse(checked.data) if checked.ok else None
        if not checked.ok:
            self._show_problems(checked.field_errors, checked.general, "The file needs fixing")
        else:
            self._say(result.note or f"Loaded at {time.strftime('%H:%M:%S')}: edit, then Save")

    def _written(self, result: _Written) -> None:
        settings = result.settings
        self._known = pt_config.to_data(settings)
        self._file_mode = settings.mode.value
        if self._drop_unknown:
            self._unknown, self._drop_unknown = {}, False
        self.settings = settings
        self._fill(self._known)
        self._show_unknown()
        self._say(f"Saved at {time.strftime('%H:%M:%S')}", "ok")
        try:
            self._on_saved(settings)
        except Exception as exc:  # the file is written; say that the hub did not follow
            log.exception("applying the saved settings failed")
            self._say(f"Saved to {self.path}, but applying them failed: {exc}", "error")

    def _apply(self, result: _Result) -> None:
        self.generation += 1
        if isinstance(result, _KeysChecked):
            self._keys_checked(result)
            return
        if isinstance(result, _Loaded | _Failed) and (
            isinstance(result, _Loaded) or result.reading
        ):
            self._readable = isinstance(result, _Loaded)
        self._set_busy(False)
        if isinstance(result, _Loaded):
            self._loaded(result)
        elif isinstance(result, _Written):
            self._written(result)
        elif result.reading:
            self._say(f"{result.message}. Save stays off until Revert can read it.", "error")
        else:
            self._say(f"{result.message}. The file was not changed.", "error")

    @property
    def busy(self) -> bool:
        return self._busy

    def destroy(self) -> None:
        """Stop the timers and the worker (a write in progress is finished first)."""
        self._bg.close()
        super().destroy()
