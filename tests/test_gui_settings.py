"""The SETTINGS tab: the form built from the schema, text ↔ values and problems without Tk, then
the real editor under Xvfb saving, refusing, guarding live mode and keeping unknown keys."""

from __future__ import annotations

import gc
import json
import threading
import time
import tkinter as tk
from collections.abc import Iterator
from pathlib import Path
from tkinter import ttk
from typing import Any

import pytest
from pydantic import BaseModel, Field

import pt_config
from pt_config_schema import Settings
from pt_gui_settings import LIVE_WORD, Checks, LiveConfirmDialog, SettingsEditor
from pt_gui_settings_fields import (
    NBSP,
    ConversionError,
    FieldSpec,
    all_fields,
    allocation_hint,
    build_sections,
    check_form,
    from_raw,
    merge_unknown,
    owner_of,
    split_unknown,
    to_raw,
    unknown_text,
)
from pt_gui_settings_widgets import FieldRow
from pt_state import DataLayout
from pt_types import Mode
from tests.gui_support import pump, screenshot
from tests.gui_support import wait_until as wait_for

FIELDS = {f.path: f for f in all_fields(build_sections())}


def leaf_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            paths |= leaf_paths(ann, f"{prefix}{name}.")
        else:
            paths.add(prefix + name)
    return paths


# --------------------------------------------------------------------------- pure: the form


def test_every_setting_of_the_schema_has_exactly_one_field() -> None:
    paths = [f.path for f in all_fields(build_sections())]
    assert sorted(paths) == sorted(leaf_paths(Settings))
    assert len(paths) == len(set(paths))


def test_sections_come_in_the_order_a_trader_reads_them() -> None:
    keys = [s.key for s in build_sections()]
    assert keys[:5] == ["mode", "coins", "trading", "dca", "trailing"]
    assert keys.index("trader") < keys.index("logging") < keys.index("display")
    notify = {s.key: s for s in build_sections()}["notifications"]
    assert notify.note and notify.fields[0].path == "notifications.events"
    assert FIELDS["notifications.email_security"].choices == ("ssl", "starttls", "none")
    assert FIELDS["notifications.telegram_min_level"].choices[0] == "INFO"


def test_each_kind_of_setting_gets_its_widget_kind_and_bounds() -> None:
    assert FIELDS["mode"].kind == "choice" and FIELDS["mode"].choices == ("demo", "paper", "live")
    assert FIELDS["logging.level"].choices == ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    assert FIELDS["auto_start_scripts"].kind == FIELDS["logging.console"].kind == "bool"
    assert (FIELDS["coins"].kind, FIELDS["coins"].item) == ("list", "text")
    assert (FIELDS["dca_levels"].kind, FIELDS["dca_levels"].item) == ("list", "float")
    assert FIELDS["exchanges.order"].choices == ("kucoin", "binance", "coinbase")
    level = FIELDS["trade_start_level"]
    assert (level.kind, level.bounds, level.label) == ("int", "1 to 7", "Trade start level")
    assert FIELDS["demo.speed"].bounds == "above 0, at most 100,000"
    assert FIELDS["trailing_gap_pct"].bounds == "at least 0, below 100"
    assert level.hint == f"LONG level that starts a trade (with SHORT 0) · 1{NBSP}to{NBSP}7"
    assert FIELDS["pm_start_pct_no_dca"].label == "Trailing PM start % (no DCA)"
    assert FIELDS["paper.starting_cash_usd"].label == "Starting cash (USD)"


class _Alerts(BaseModel):
    """Alerts from a later version."""

    email: str = Field("", description="where alerts go")


class _Future(Settings):
    max_open_trades: int = Field(5, ge=1, le=50, description="a later setting")
    daily_loss_limit_pct: float | None = Field(None, gt=0, description="off when empty")
    colours: dict[str, str] = Field(default_factory=dict)
    alerts: _Alerts = _Alerts()


def test_a_setting_added_to_the_schema_appears_without_gui_code() -> None:
    sections = {s.key: s for s in build_sections(_Future)}
    other = {f.path: f for f in sections["other"].fields}
    assert other["max_open_trades"].bounds == "1 to 50"
    limit = other["daily_loss_limit_pct"]
    assert (limit.kind, limit.optional, from_raw(limit, " ")) == ("float", True, None)
    assert other["colours"].kind == "json"
    assert from_raw(other["colours"], '{"up": "green"}') == {"up": "green"}
    assert [f.path for f in sections["alerts"].fields] == ["alerts.email"]
    assert sections["alerts"].note == "Alerts from a later version."


@pytest.mark.parametrize(
    ("path", "text", "value"),
    [
        ("trade_start_level", " 4 ", 4),
        ("start_allocation_pct", "0.25%", 0.25),
        ("dca_levels", "-2.5, -5 -10", [-2.5, -5.0, -10.0]),
        ("coins", "btc,eth , sol", ["btc", "eth", "sol"]),
        ("exchanges.order", "binance, kucoin", ["binance", "kucoin"]),
        ("demo.start", " 2024-02-01 ", "2024-02-01"),
        ("mode", "paper", "paper"),
    ],
)
def test_typed_text_becomes_the_json_value(path: str, text: str, value: Any) -> None:
    assert from_raw(FIELDS[path], text) == value


@pytest.mark.parametrize(
    ("path", "text", "words"),
    [
        ("trade_start_level", "3.5", "'3.5' is not a whole number"),
        ("trade_start_level", "", "enter a number"),
        ("dca_multiplier", "nan", "not a finite number"),
        ("dca_levels", "-2.5, abc", "'abc' is not a number"),
    ],
)
def test_text_that_is_not_a_value_says_why(path: str, text: str, words: str) -> None:
    with pytest.raises(ConversionError, match=words):
        from_raw(FIELDS[path], text)


def test_values_show_as_a_person_writes_them() -> None:
    assert to_raw(FIELDS["dca_levels"], [-2.5, -5.0]) == "-2.5, -5"
    assert to_raw(FIELDS["paper.starting_cash_usd"], 1e9) == "1000000000"
    assert to_raw(FIELDS["auto_start_scripts"], 1) is True
    assert to_raw(FIELDS["coins"], "BTC") == "BTC"  # a hand-edited file keeps what it had
    days = FIELDS["risk.correlation_days"]  # a choice of numbers is saved as a number
    assert (days.kind, days.choices, from_raw(days, "90")) == ("choice", ("7", "30", "90"), 90)
    spec = FieldSpec("x", "X", "json", None)
    assert to_raw(spec, {"a": 1}) == '{"a": 1}' and to_raw(spec, None) == ""


# --------------------------------------------------------------------------- pure: problems


def defaults_as_text() -> dict[str, str | bool]:
    data = pt_config.to_data(Settings())
    return {p: to_raw(f, pt_config.get_path(data, p)) for p, f in FIELDS.items()}


def test_every_problem_lands_on_its_own_field() -> None:
    raws = defaults_as_text() | {
        "trade_start_level": "9", "dca_levels": "-2.5, abc", "exchanges.order": "kucoin, x, y",
        "coins": "BTC, BTC",
    }  # fmt: skip
    checked = check_form(FIELDS.values(), raws, {})
    assert not checked.ok and checked.general == ()
    errors = checked.field_errors
    assert set(errors) == {"trade_start_level", "dca_levels", "exchanges.order", "coins"}
    assert errors["trade_start_level"] == (
        "must be less than or equal to 7 — allowed: a whole number from 1 to 7"
    )
    assert errors["dca_levels"] == "'abc' is not a number"
    assert errors["exchanges.order"].startswith("item 2: must be 'kucoin', 'binance' or")
    assert errors["exchanges.order"].endswith("(+ more)")
    assert errors["coins"] == "coin listed twice: BTC"


def test_a_valid_form_gives_the_data_to_save_over_the_files_own() -> None:
    raws = defaults_as_text() | {"trade_start_level": "4", "coins": "btc, sol"}
    checked = check_form(FIELDS.values(), raws, {"mode": "paper"})
    assert checked.ok
    settings = pt_config.parse(checked.data)
    assert (settings.trade_start_level, settings.coins) == (4, ("BTC", "SOL"))


def test_a_problem_belongs_to_the_deepest_field_it_names() -> None:
    paths = ["demo", "demo.speed", "dca_levels"]
    assert owner_of("demo.speed", paths) == "demo.speed"
    assert owner_of("dca_levels.3", paths) == "dca_levels"
    assert owner_of("dca_levels_x", paths) is None and owner_of("", paths) is None


def test_unknown_keys_are_split_off_and_put_back_where_they_were() -> None:
    raw = {"trade_start_levle": 4, "coins": ["BTC"], "demo": {"speed": 5, "sped": 6}, "risk": 3}
    known, unknown = split_unknown(raw)
    assert known == {"coins": ["BTC"], "demo": {"speed": 5}}
    assert unknown == {"trade_start_levle": 4, "demo": {"sped": 6}}
    assert merge_unknown(known, unknown) == {k: v for k, v in raw.items() if k != "risk"}
    text = unknown_text(unknown)
    assert "trade_start_levle (did you mean 'trade_start_level'?)" in text
    assert "demo.sped (did you mean 'speed'?)" in text


@pytest.mark.parametrize(
    ("pct", "value", "expected"),
    [
        ("5", 10_000.0, "≈ $500.00 per trade (of $10,000.00)"),
        ("0.005", 1_000.0, "≈ $0.50 per trade (the minimum; 0.005% is $0.05)"),
        ("1", None, "≈ $0.50 minimum per trade (needs an account value)"),
        ("abc", 10_000.0, ""),
    ],
)
def test_the_allocation_hint(pct: str, value: float | None, expected: str) -> None:
    assert allocation_hint(pct, value) == expected


# --------------------------------------------------------------------------- the real editor


@pytest.fixture
def root(display: str) -> Iterator[tk.Tk]:
    win = tk.Tk()
    win.geometry("1400x820+0+0")
    yield win
    win.destroy()
    del win
    gc.collect()  # finalise this Tk here, not later on a worker thread


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    pt_config.save(tmp_path / "settings.json", Settings())
    return DataLayout(tmp_path)


class Calls:
    """Records what the editor handed to the hub."""

    def __init__(self, *, keys: bool = False, confirm: bool | None = None) -> None:
        self.saved: list[Settings] = []
        self.confirms = 0
        self.keys = keys
        self.secrets: tuple[str, ...] = ()
        self.confirm = confirm

    def on_saved(self, settings: Settings) -> None:
        self.saved.append(settings)

    def keys_configured(self) -> bool:
        return self.keys

    def checks(self) -> Checks:
        return Checks(keys=self.keys_configured, secrets=lambda: self.secrets)

    def confirm_live(self, _parent: tk.Misc) -> bool:
        self.confirms += 1
        assert self.confirm is not None, "the live confirmation was asked for unexpectedly"
        return self.confirm


def make(root: tk.Tk, layout: DataLayout, calls: Calls, *, real_dialog: bool = False,
         **kwargs: Any) -> SettingsEditor:  # fmt: skip
    options: dict[str, Any] = {
        "on_saved": calls.on_saved, "checks": calls.checks(),
    }  # fmt: skip
    if not real_dialog:
        options["confirm_live"] = calls.confirm_live
    editor = SettingsEditor(root, layout=layout, **options | kwargs)
    editor.pack(fill="both", expand=True)
    wait_for(root, lambda: editor.generation >= 1 and not editor.busy)
    pump(root, 0.1)
    return editor


def dirty(editor: SettingsEditor) -> bool:
    """Asked afresh each time (a property the type checker would otherwise take as fixed)."""
    return editor.dirty


def type_into(row: FieldRow, text: str) -> None:
    """Replace a field's text the way a user does: in the Entry itself."""
    entry = row.input
    assert isinstance(entry, ttk.Entry)
    entry.delete(0, "end")
    entry.insert(0, text)


def save_and_wait(root: tk.Tk, editor: SettingsEditor) -> None:
    before = editor.generation
    editor.save_button.invoke()
    if editor.busy:
        wait_for(root, lambda: editor.generation > before and not editor.busy)
    pump(root, 0.1)


def choose(row: FieldRow, value: str) -> None:
    combo = row.input
    assert isinstance(combo, ttk.Combobox) and value in combo.cget("values")
    combo.set(value)
    combo.event_generate("<<ComboboxSelected>>")


def test_save_writes_the_file_and_tells_the_hub(root: tk.Tk, layout: DataLayout) -> None:
    calls = Calls()
    editor = make(root, layout, calls, account_value=lambda: 20_000.0)
    rows = editor.rows
    assert rows["trade_start_level"].raw == "3" and not dirty(editor)
    assert rows["start_allocation_pct"].live.cget("text") == "≈ $1.00 per trade (of $20,000.00)"
    type_into(rows["trade_start_level"], "4")
    type_into(rows["coins"], "btc, eth, sol")
    type_into(rows["start_allocation_pct"], "0.5")
    assert rows["start_allocation_pct"].live.cget("text") == "≈ $100.00 per trade (of $20,000.00)"
    assert dirty(editor) and editor.dirty_label.cget("text") == "Unsaved changes"
    save_and_wait(root, editor)
    saved = pt_config.load(layout.settings_file, env={})
    assert (saved.trade_start_level, saved.coins) == (4, ("BTC", "ETH", "SOL"))
    assert saved.start_allocation_pct == 0.5
    assert calls.saved == [saved]
    assert str(editor.summary.cget("text")).startswith("Saved ")
    assert rows["coins"].raw == "BTC, ETH, SOL"  # shown as saved
    assert not dirty(editor) and editor.dirty_label.cget("text") == ""
    editor.canvas.yview_moveto(0)
    pump(root, 0.2)
    screenshot(root, "settings_editor")


def test_every_problem_is_marked_and_nothing_is_written(root: tk.Tk, layout: DataLayout) -> None:
    calls = Calls()
    before = layout.settings_file.read_bytes()
    editor = make(root, layout, calls)
    type_into(editor.rows["coins"], "BTC, SOL")  # valid, but must not be written alone
    type_into(editor.rows["trade_start_level"], "9")
    type_into(editor.rows["dca_levels"], "-2.5, abc, -10")
    save_and_wait(root, editor)
    level, dca = editor.rows["trade_start_level"], editor.rows["dca_levels"]
    assert "less than or equal to 7" in level.error_text and level.error.winfo_ismapped()
    assert dca.error_text == "'abc' is not a number" and dca.error.winfo_ismapped()
    assert str(level.input.cget("style")) == "FieldError.TEntry"
    assert str(editor.rows["coins"].input.cget("style")) == "Field.TEntry"
    assert not editor.rows["coins"].error.winfo_ismapped()
    summary = str(editor.summary.cget("text"))
    assert summary.startswith("Nothing saved: 2 problems") and "Trade start level" in summary
    assert "DCA levels" in summary
    pump(root, 0.3)
    assert layout.settings_file.read_bytes() == before and calls.saved == []
    screenshot(root, "settings_editor_errors")
    type_into(level, "4")
    type_into(dca, "-2.5, -5, -10")
    save_and_wait(root, editor)
    assert not level.error.winfo_ismapped() and not dca.error.winfo_ismapped()
    assert pt_config.load(layout.settings_file, env={}).coins == ("BTC", "SOL")


def test_live_without_keys_is_refused(root: tk.Tk, layout: DataLayout) -> None:
    calls, wizard = Calls(keys=False), []
    before = layout.settings_file.read_bytes()
    editor = make(root, layout, calls, open_key_wizard=lambda: wizard.append(1))
    choose(editor.rows["mode"], "live")
    assert "REAL orders" in editor.rows["mode"].live.cget("text")
    save_and_wait(root, editor)
    summary = str(editor.summary.cget("text"))
    assert "Live mode refused" in summary and "key wizard" in summary
    assert calls.confirms == 0 and calls.saved == []
    assert layout.settings_file.read_bytes() == before
    assert editor.keys_button.winfo_ismapped()
    editor.keys_button.invoke()
    assert wizard == [1]


def all_widgets(widget: tk.Misc) -> Iterator[tk.Misc]:
    for child in widget.winfo_children():
        yield child
        yield from all_widgets(child)


def answer_live_dialog(root: tk.Tk, text: str, shot: str | None = None) -> list[str]:
    """Wait for the real dialog, type ``text`` into its entry key by key, press Enter."""
    seen: list[str] = []

    def drive() -> None:
        dialogs = [w for w in all_widgets(root) if isinstance(w, LiveConfirmDialog)]
        if not dialogs or not dialogs[0].winfo_ismapped():
            root.after(20, drive)
            return
        dialog = dialogs[0]
        dialog.entry.focus_force()
        dialog.update()
        assert dialog.focus_get() is dialog.entry  # keys go where the focus is
        for char in text:
            dialog.entry.event_generate("<KeyPress>", keysym=char)
        dialog.update()
        seen.append(dialog.typed.get())
        if shot:
            screenshot(dialog, shot)
        dialog.entry.event_generate("<Return>")

    root.after(20, drive)
    return seen


def test_live_with_keys_and_the_typed_word_saves(root: tk.Tk, layout: DataLayout) -> None:
    calls = Calls(keys=True)
    editor = make(root, layout, calls, real_dialog=True)
    choose(editor.rows["mode"], "live")
    typed = answer_live_dialog(root, LIVE_WORD, shot="settings_live_confirm")
    save_and_wait(root, editor)
    assert typed == ["LIVE"]
    assert pt_config.load(layout.settings_file, env={}).mode is Mode.LIVE
    assert [s.mode for s in calls.saved] == [Mode.LIVE]
    type_into(editor.rows["trade_start_level"], "5")  # already live: no second confirmation
    save_and_wait(root, editor)
    assert pt_config.load(layout.settings_file, env={}).trade_start_level == 5


def test_anything_but_the_exact_word_cancels(root: tk.Tk, layout: DataLayout) -> None:
    calls = Calls(keys=True)
    before = layout.settings_file.read_bytes()
    editor = make(root, layout, calls, real_dialog=True)
    choose(editor.rows["mode"], "live")
    typed = answer_live_dialog(root, "live")
    save_and_wait(root, editor)
    assert typed == ["live"]
    assert "not confirmed" in str(editor.summary.cget("text"))
    assert layout.settings_file.read_bytes() == before and calls.saved == []
    assert not editor.busy and editor.rows["mode"].raw == "live"  # left for the user to change


def test_the_keys_are_checked_off_the_tk_thread(root: tk.Tk, layout: DataLayout) -> None:
    release, threads = threading.Event(), []

    def slow_keys() -> bool:
        threads.append(threading.current_thread().name)
        release.wait(5)
        return True

    calls = Calls(confirm=True)
    editor = make(root, layout, calls, checks=Checks(keys=slow_keys))
    choose(editor.rows["mode"], "live")
    editor.save_button.invoke()
    started = time.monotonic()
    pump(root, 0.3)  # the window keeps drawing while the key store answers
    assert time.monotonic() - started < 1.0
    assert editor.busy and editor.save_button.instate(["disabled"])
    assert "Checking" in str(editor.summary.cget("text"))
    release.set()
    wait_for(root, lambda: not editor.busy)
    assert threads == ["settings-worker"] and calls.confirms == 1
    assert pt_config.load(layout.settings_file, env={}).mode is Mode.LIVE


def test_unknown_keys_are_kept_unless_removed(root: tk.Tk, tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    raw = {"trade_start_level": 3, "future_key": {"a": 1}, "demo": {"speed": 30, "colour": "red"}}
    layout.settings_file.write_text(json.dumps(raw), encoding="utf-8")
    calls = Calls()
    editor = make(root, layout, calls)
    notice = str(editor.unknown_label.cget("text"))
    assert "future_key" in notice and "demo.colour" in notice
    assert editor.unknown_bar.winfo_ismapped() and editor.rows["demo.speed"].raw == "30"
    type_into(editor.rows["trade_start_level"], "6")
    save_and_wait(root, editor)
    written = json.loads(layout.settings_file.read_text(encoding="utf-8"))
    assert written["future_key"] == {"a": 1} and written["demo"]["colour"] == "red"
    assert written["trade_start_level"] == 6 and written["demo"]["speed"] == 30
    assert calls.saved[0].trade_start_level == 6
    editor.drop_button.invoke()
    assert "Will be removed" in str(editor.unknown_label.cget("text"))
    save_and_wait(root, editor)
    assert pt_config.load(layout.settings_file, env={}).trade_start_level == 6  # loads again
    assert not editor.unknown_bar.winfo_ismapped()


def test_revert_reloads_the_file(root: tk.Tk, layout: DataLayout) -> None:
    editor = make(root, layout, Calls())
    type_into(editor.rows["trade_start_level"], "6")
    pt_config.save(layout.settings_file, Settings(trade_start_level=5, coins=("ADA",)))
    editor.revert_button.invoke()
    wait_for(root, lambda: not editor.busy)
    assert editor.rows["trade_start_level"].raw == "5" and editor.rows["coins"].raw == "ADA"
    assert not dirty(editor)


def test_a_file_with_problems_opens_with_them_marked(root: tk.Tk, tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    layout.settings_file.write_text('{"trade_start_level": 9, "coins": "btc eth"}', "utf-8")
    editor = make(root, layout, Calls(), account_value=lambda: None)
    assert editor.settings is None
    assert "less than or equal to 7" in editor.rows["trade_start_level"].error_text
    assert str(editor.summary.cget("text")).startswith("The file needs fixing: 1 problem")
    assert editor.rows["coins"].raw == "btc eth" and editor.rows["coins"].error_text == ""
    hint = editor.rows["start_allocation_pct"].live.cget("text")
    assert hint == "≈ $0.50 minimum per trade (needs an account value)"


def test_a_missing_or_unreadable_file_is_said_plainly(root: tk.Tk, tmp_path: Path) -> None:
    editor = make(root, DataLayout(tmp_path), Calls())
    assert "No settings file yet" in str(editor.summary.cget("text"))
    assert editor.rows["trade_start_level"].raw == "3"
    editor.destroy()
    blocked = DataLayout(tmp_path / "blocked")
    blocked.settings_file.mkdir(parents=True)  # a folder where the file should be
    calls = Calls()
    editor = make(root, blocked, calls)
    assert str(editor.summary.cget("text")).startswith("Could not read")
    assert editor.save_button.instate(["disabled"])  # defaults never overwrite an unread file
    editor.save()
    pump(root, 0.2)
    assert calls.saved == [] and blocked.settings_file.is_dir()
    blocked.settings_file.rmdir()
    pt_config.save(blocked.settings_file, Settings(trade_start_level=2))
    editor.revert_button.invoke()
    wait_for(root, lambda: not editor.busy)
    assert editor.rows["trade_start_level"].raw == "2"
    assert editor.save_button.instate(["!disabled"])


def test_a_failed_write_is_said_and_changes_nothing(root: tk.Tk, layout: DataLayout) -> None:
    calls = Calls()
    editor = make(root, layout, calls)
    layout.settings_file.unlink()
    layout.settings_file.mkdir()  # the atomic replace cannot put a file over a folder
    type_into(editor.rows["trade_start_level"], "4")
    save_and_wait(root, editor)
    assert str(editor.summary.cget("text")).startswith("Could not write")
    assert calls.saved == [] and not editor.busy and layout.settings_file.is_dir()
    assert dirty(editor)  # what was typed is still there to save again
    assert [p.name for p in layout.root.iterdir()] == ["settings.json"]  # no temp file left


def test_the_wheel_scrolls_the_page_not_a_combobox(root: tk.Tk, layout: DataLayout) -> None:
    editor = make(root, layout, Calls())
    mode = editor.rows["mode"].input
    assert editor.canvas.yview()[0] == 0.0
    for _ in range(3):
        mode.event_generate("<Button-5>")
    pump(root, 0.1)
    scrolled = editor.canvas.yview()[0]
    assert scrolled > 0.0 and editor.rows["mode"].raw == "demo"
    editor.rows["coins"].hint.event_generate("<Button-4>")  # over a hint, upwards
    pump(root, 0.1)
    assert 0.0 <= editor.canvas.yview()[0] < scrolled


def test_readable_in_the_smallest_window(root: tk.Tk, layout: DataLayout) -> None:
    root.geometry("980x640")
    editor = make(root, layout, Calls(), account_value=lambda: 8_000.0)
    mode_hint = editor.rows["mode"].live
    assert mode_hint.winfo_ismapped() and int(str(mode_hint.cget("wraplength"))) > 150
    screenshot(root, "settings_editor_small")
    editor.canvas.yview_moveto(1.0)
    pump(root, 0.3)
    last = editor.rows["auto_start_scripts"]
    assert last.input.winfo_ismapped() and last.hint.winfo_width() > 150
    screenshot(root, "settings_editor_small_bottom")
    risk = editor.rows["risk.volatility_position_pct"]  # the longest description of a number
    editor.scroll_to(editor.rows["sizing.method"])
    pump(root, 0.3)
    assert risk.input.winfo_ismapped() and risk.hint.winfo_width() > 150
    assert editor.rows["sizing.atr_period"].label.cget("text") == "ATR period"
    screenshot(root, "settings_editor_small_risk")


def test_proposed_values_wait_in_the_form_for_save(root: tk.Tk, layout: DataLayout) -> None:
    calls = Calls()
    editor = make(root, layout, calls)
    before = layout.settings_file.read_bytes()
    note = editor.propose({"predictor.bound_pct": 1.0, "bogus.key": 3}, "a trial")
    assert note == "Not put into SETTINGS: bogus.key is not a setting of this version"
    assert not dirty(editor)
    note = editor.propose({"trade_start_level": 3}, "a trial")  # the value it already has
    assert note == "SETTINGS already holds the values from a trial" and not dirty(editor)
    note = editor.propose({"dca_levels": [-5, -10], "trade_start_level": 5}, "a trial")
    assert note.startswith("From a trial: DCA") and "Trade start level" in note
    assert editor.rows["dca_levels"].raw == "-5, -10" and dirty(editor)
    assert layout.settings_file.read_bytes() == before and calls.saved == []
    save_and_wait(root, editor)
    saved = pt_config.load(layout.settings_file, env={})
    assert (saved.dca_levels, saved.trade_start_level) == ((-5.0, -10.0), 5)
