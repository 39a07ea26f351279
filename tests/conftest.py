"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gui_support import virtual_display


@pytest.fixture(scope="session")
def display() -> Iterator[str]:
    """A virtual X display for the whole test session (started on first use)."""
    with virtual_display() as name:
        yield name
