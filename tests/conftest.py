"""Shared fixtures."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tests.gui_support import virtual_display


@pytest.fixture(scope="session")
def display() -> Iterator[str]:
    """A virtual X display for the whole test session (started on first use)."""
    with virtual_display() as name:
        yield name


@pytest.fixture(autouse=True)
def _collect_tk_garbage(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a GUI test, collect its garbage here, on the Tk thread: a window left in a
    reference cycle holds Tk variables, and a later collection on some worker thread of
    another test would finalise them there, which Tk refuses ("main thread is not in main
    loop"). A real hub exits with its window, so only the test session can meet this."""
    yield
    if "display" in request.fixturenames:
        gc.collect()
