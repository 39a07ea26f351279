"""Real Tk windows on a virtual X display (Xvfb), and screenshots of them for review.

GUI tests never skip: without Xvfb they fail with a message saying how to get it
(``make test`` installs it when run as root).
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import time
import tkinter as tk
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import ImageGrab

from pt_gui_theme import apply_theme

SCREENSHOTS = Path(__file__).resolve().parent / "artifacts" / "screenshots"


def _free_display() -> int:
    for number in range(90, 200):
        if (
            not Path(f"/tmp/.X{number}-lock").exists()
            and not Path(f"/tmp/.X11-unix/X{number}").exists()
        ):
            return number
    raise RuntimeError("no free X display number between :90 and :199")


@contextmanager
def virtual_display(width: int = 1400, height: int = 900) -> Iterator[str]:
    """Start Xvfb, point DISPLAY at it for the duration, and stop it afterwards."""
    if shutil.which("Xvfb") is None:
        raise RuntimeError(
            "GUI tests need Xvfb (a virtual screen): install the 'xvfb' package "
            "(make test installs it automatically when run as root)"
        )
    number = _free_display()
    name = f":{number}"
    proc = subprocess.Popen(
        ["Xvfb", name, "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"Xvfb did not start on {name}")
        time.sleep(0.05)
    previous = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = name
    try:
        yield name
    finally:
        if previous is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = previous
        proc.terminate()
        proc.wait(timeout=10)


def pump(root: tk.Misc, seconds: float = 0.2) -> None:
    """Let Tk process events (and ``after`` callbacks) for a while."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        root.update()
        time.sleep(0.01)


@contextmanager
def themed_root(geometry: str) -> Iterator[tk.Tk]:
    """A themed Tk window of ``geometry``; destroyed and garbage-collected here, on the Tk
    thread, so no worker thread's collection finalises it later (Tk refuses that)."""
    win = tk.Tk()
    win.geometry(geometry)
    apply_theme(win)
    yield win
    win.destroy()
    del win
    gc.collect()


def wait_until(
    root: tk.Misc, check: Callable[[], bool], timeout: float = 5.0, what: str = "the window"
) -> None:
    """Pump Tk until ``check()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pump(root, 0.02)


def screenshot(widget: tk.Misc, name: str) -> Path:
    """Save what ``widget`` shows as tests/artifacts/screenshots/<name>.png."""
    widget.update()
    x, y = widget.winfo_rootx(), widget.winfo_rooty()
    box = (x, y, x + widget.winfo_width(), y + widget.winfo_height())
    image = ImageGrab.grab(bbox=box, xdisplay=os.environ["DISPLAY"])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    image.save(path)
    return path
