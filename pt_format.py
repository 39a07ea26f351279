"""How prices are written everywhere (spec §4.4): decimals by magnitude, trailing zeros trimmed.

One rule for the trader's reasons, the hub's tables and charts, and the notifications, so a
price reads the same wherever the user meets it (``43,250.5``, ``0.1234``, ``0.00001234``).
"""

from __future__ import annotations

PRICE_PLACES = ((1000, 2), (100, 3), (1, 4), (0.1, 5), (0.01, 6), (0.001, 7))  # else 8


def price_decimals(value: float) -> int:
    """Decimals by magnitude, so a 0.00012 coin and a 43,000 coin are both readable."""
    size = abs(value)
    return next((places for least, places in PRICE_PLACES if size >= least), 8)


def price_text(value: float) -> str:
    """``value`` with :func:`price_decimals` decimals, thousands separated, zeros trimmed."""
    return f"{value:,.{price_decimals(value)}f}".rstrip("0").rstrip(".")
