"""The log viewer in a real Tk window (Xvfb) over real log files written by
``pt_logging.setup_logging`` for several processes."""

from __future__ import annotations

import logging
import tkinter as tk
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path

import pytest

from pt_gui_logs import LogFilter, LogSearcher, LogViewer
from pt_gui_theme import MUTED, NEGATIVE, WARNING
from pt_logging import reset_logging, setup_logging
from tests.gui_support import pump, screenshot, themed_root
from tests.gui_support import wait_until as wait_for


def as_process(name: str, data_dir: Path, lines: Callable[[logging.Logger], None]) -> None:
    """Log as process ``name`` would (its own file), then put logging back."""
    root = logging.getLogger()
    level = root.level
    setup_logging(name, data_dir, "DEBUG", console=False)
    try:
        lines(logging.getLogger(f"pt_{name.split('-', maxsplit=1)[0]}"))
    finally:
        reset_logging()
        root.setLevel(level)


def thinker(lg: logging.Logger) -> None:
    lg.debug("predicting BTC 1h")
    lg.info("BTC ready: 7 of 7 timeframes")
    lg.warning("ETH: no price from the kucoin venue; trying binance")


def trader(lg: logging.Logger) -> None:
    lg.info("order intent c1 ENTRY buy BTC: LONG 4")
    try:
        raise ValueError("bad quote")
    except ValueError:
        lg.exception("tick failed for XRP")
    lg.critical("the broker refused the credentials")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    as_process("thinker", tmp_path, thinker)
    as_process("trader", tmp_path, trader)
    as_process("trainer-BTC", tmp_path, lambda lg: lg.info("BTC trained 1h (24,000 patterns)"))
    as_process("trainer-ETH", tmp_path, lambda lg: lg.error("ETH training failed: venue down"))
    return tmp_path


@pytest.fixture
def root(display: str) -> Iterator[tk.Tk]:
    with themed_root("930x600+0+0") as win:  # the hub's right notebook
        yield win


def searched(root: tk.Misc, viewer: LogViewer, action: Callable[[], object]) -> None:
    before = viewer.generation
    action()
    wait_for(root, lambda: viewer.generation > before and not viewer.busy)


def make(root: tk.Tk, data_dir: Path, **kwargs: object) -> LogViewer:
    viewer = LogViewer(root, logs_dir=data_dir / "logs", tz=UTC, **kwargs)  # type: ignore[arg-type]
    viewer.pack(fill="both", expand=True, padx=6, pady=6)
    wait_for(root, lambda: viewer.result is not None)
    return viewer


def messages(viewer: LogViewer) -> list[str]:
    return [row[3] for row in viewer.rows()]


# ---------------------------------------------------------------------------------------------


def test_filters_narrow_the_rows(root: tk.Tk, data_dir: Path) -> None:
    viewer = make(root, data_dir, refresh_ms=0)
    assert messages(viewer) == [  # INFO and above from every process, newest first
        "ETH training failed: venue down",
        "BTC trained 1h (24,000 patterns)",
        "the broker refused the credentials",
        "tick failed for XRP  ⟶ ValueError: bad quote",
        "order intent c1 ENTRY buy BTC: LONG 4",
        "ETH: no price from the kucoin venue; trying binance",
        "BTC ready: 7 of 7 timeframes",
    ]
    rows = viewer.rows()
    assert [r[1:3] for r in rows[:3]] == [
        ("ERROR", "trainer-ETH"), ("INFO", "trainer-BTC"), ("CRITICAL", "trader")
    ]  # fmt: skip
    assert len(rows[0][0]) == 19 and rows[0][0][4] == "-"  # YYYY-MM-DD HH:MM:SS
    first = viewer.tree.get_children()[0]
    assert viewer.tree.item(first, "tags") == ("ERROR",)
    assert str(viewer.tree.tag_configure("ERROR", "foreground")) == NEGATIVE
    assert str(viewer.tree.tag_configure("WARNING", "foreground")) == WARNING
    assert str(viewer.tree.tag_configure("DEBUG", "foreground")) == MUTED
    assert "trainer-BTC" in viewer.process_box.cget("values")
    assert viewer.note.cget("text") == "7 entries · newest first"

    viewer.tree.selection_set(viewer.tree.get_children()[3])
    pump(root, 0.05)
    detail = viewer.detail.get("1.0", "end")
    assert "tick failed for XRP" in detail and "Traceback" in detail and "bad quote" in detail
    root.lift()  # another test session may share this virtual display
    screenshot(root, "logs_viewer")

    viewer.level.set("ERROR")
    searched(root, viewer, lambda: viewer.level_box.event_generate("<<ComboboxSelected>>"))
    assert {r[1] for r in viewer.rows()} == {"ERROR", "CRITICAL"} and len(viewer.rows()) == 3

    viewer.level.set("DEBUG")
    viewer.process.set("thinker")
    searched(root, viewer, lambda: viewer.process_box.event_generate("<<ComboboxSelected>>"))
    assert messages(viewer)[-1] == "predicting BTC 1h" and {r[2] for r in viewer.rows()} == {
        "thinker"
    }
    viewer.process.set("trainers")
    searched(root, viewer, viewer.search_button.invoke)
    assert [r[2] for r in viewer.rows()] == ["trainer-ETH", "trainer-BTC"]

    viewer.process.set("all")
    viewer.text.set("VENUE")
    searched(root, viewer, viewer.search_button.invoke)
    assert messages(viewer) == [
        "ETH training failed: venue down",
        "ETH: no price from the kucoin venue; trying binance",
    ]
    root.geometry("560x440")  # the right pane at the hub's minimum size
    pump(root, 0.3)
    assert viewer.tree.winfo_height() > 80 and viewer.search_button.winfo_ismapped()
    root.lift()
    screenshot(root, "logs_viewer_small")


def test_auto_refresh_reads_only_when_a_log_changed(root: tk.Tk, data_dir: Path) -> None:
    viewer = make(root, data_dir, refresh_ms=100)
    assert viewer.searcher.searches == 1
    ticks = viewer.generation
    pump(root, 0.6)
    assert viewer.generation >= ticks + 3  # the auto-refresh ran…
    assert viewer.searcher.searches == 1  # …and read nothing: no file changed
    as_process("hub", data_dir, lambda lg: lg.warning("the trader stopped; restarting it"))
    wait_for(root, lambda: messages(viewer)[0] == "the trader stopped; restarting it")
    assert viewer.searcher.searches == 2 and viewer.rows()[0][1:3] == ("WARNING", "hub")

    viewer.auto.set(False)  # off: new lines wait for the Search button
    as_process("hub", data_dir, lambda lg: lg.info("hub closing"))
    pump(root, 0.4)
    assert viewer.searcher.searches == 2
    searched(root, viewer, viewer.search_button.invoke)
    assert messages(viewer)[0] == "hub closing"


def test_no_logs_yet_is_said(tmp_path: Path) -> None:
    searcher = LogSearcher(tmp_path / "logs")
    result = searcher.search(LogFilter())
    assert result is not None and result.rows == () and "no log files yet" in result.error
    assert searcher.search(LogFilter(), force=False) is None
