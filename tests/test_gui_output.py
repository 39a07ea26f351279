"""Live Output tabs: tails of logs/<worker>.out that read only what was added."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Iterator
from pathlib import Path

import pytest

import pt_gui_output
from pt_gui_output import LiveOutput, OutputTail, trainer_coins
from pt_gui_theme import apply_theme
from tests.gui_support import pump, screenshot, wait_until


def test_tail_reads_only_what_was_added(tmp_path: Path) -> None:
    tail = OutputTail(tmp_path)
    assert tail.read("thinker") is None  # no file yet
    out = tmp_path / "thinker.out"
    out.write_bytes(b"one\ntwo\n")
    first = tail.read("thinker")
    assert first is not None and first.text == "one\ntwo\n" and first.reset
    assert tail.read("thinker") is None  # unchanged: nothing read
    with out.open("ab") as f:
        f.write(b"three\n")
    again = tail.read("thinker")
    assert again is not None and again.text == "three\n" and not again.reset


def test_a_multibyte_character_split_across_reads_is_kept_whole(tmp_path: Path) -> None:
    out = tmp_path / "trader.out"
    euro = "€".encode()
    out.write_bytes(b"price " + euro[:1])
    tail = OutputTail(tmp_path)
    first = tail.read("trader")
    with out.open("ab") as f:
        f.write(euro[1:] + b"\n")
    second = tail.read("trader")
    assert first is not None and second is not None
    assert first.text + second.text == "price €\n"


def test_a_rotated_or_truncated_file_starts_over(tmp_path: Path) -> None:
    out = tmp_path / "trader.out"
    out.write_bytes(b"a long first run\n" * 10)
    tail = OutputTail(tmp_path)
    assert tail.read("trader") is not None
    out.replace(tmp_path / "trader.out.1")  # the supervisor rotates at start
    out.write_bytes(b"--- started\n")
    chunk = tail.read("trader")
    assert chunk is not None and chunk.reset and chunk.text == "--- started\n"
    out.write_bytes(b"x\n")  # truncated in place: smaller than where we were
    truncated = tail.read("trader")
    assert truncated is not None and truncated.reset and truncated.text == "x\n"


def test_a_long_file_is_joined_near_its_end_at_a_line_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pt_gui_output, "FIRST_READ_BYTES", 100)
    (tmp_path / "thinker.out").write_bytes(b"".join(b"line %03d\n" % i for i in range(100)))
    chunk = OutputTail(tmp_path).read("thinker")
    assert chunk is not None
    lines = chunk.text.splitlines()
    assert lines[-1] == "line 099"
    assert all(line.startswith("line ") and len(line) == 8 for line in lines)
    assert len(chunk.text) <= 100


def test_trainer_coins_are_found_by_file_name(tmp_path: Path) -> None:
    for name in ("trainer-ETH.out", "trainer-BTC.out", "thinker.out", "trainer-BTC.out.1"):
        (tmp_path / name).write_text("x")
    assert trainer_coins(tmp_path) == ("BTC", "ETH")
    assert trainer_coins(tmp_path / "missing") == ()


@pytest.fixture
def root(display: str) -> Iterator[tk.Tk]:
    r = tk.Tk()
    r.geometry("700x320")
    apply_theme(r)
    yield r
    r.destroy()


def test_panes_follow_the_files_and_keep_the_last_lines(root: tk.Tk, tmp_path: Path) -> None:
    (tmp_path / "thinker.out").write_text("--- started\nthinker: READY\n")
    (tmp_path / "trainer-BTC.out").write_text("BTC: training 1h\n")
    (tmp_path / "trainer-ETH.out").write_text("ETH: training 1h\nETH: done\n")
    view = LiveOutput(root, logs_dir=tmp_path, refresh_ms=100, max_lines=50)
    view.pack(fill="both", expand=True)
    wait_until(root, lambda: "READY" in view.panes["thinker"].content())
    assert "not run" in view.panes["trader"].content()  # a note until the trader writes
    wait_until(root, lambda: "BTC: training" in view.trainer_pane.content())
    assert view.trainer_box.cget("values") == ("BTC", "ETH")

    with (tmp_path / "trader.out").open("w") as f:
        f.writelines(f"tick {i}\n" for i in range(120))
    wait_until(root, lambda: "tick 119" in view.panes["trader"].content())
    trader_lines = view.panes["trader"].content().splitlines()
    assert len(trader_lines) <= 50 and trader_lines[-1] == "tick 119"  # the last lines kept

    view.trainer.set("ETH")
    view.trainer_box.event_generate("<<ComboboxSelected>>")
    wait_until(root, lambda: "ETH: done" in view.trainer_pane.content())
    assert "BTC" not in view.trainer_pane.content()
    view.show_running(["ETH"])
    assert view.running.cget("text") == "running: ETH"
    view.select("trainers")
    pump(root, 0.2)
    screenshot(root, "hub-output-trainers")
    view.destroy()
