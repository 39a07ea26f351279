"""A process's cache of the coins' predictor tables, shared by the backtests it runs.

Why: a table (:class:`pt_backtest_engine.CoinHours`: the predictor warmed up on all history
before the span, then replayed over it) is most of a backtest's time, and runs that differ only
in trading settings (DCA levels, trailing margins, allocation, risk limits) need the same one.
Optimisation trials, walk-forward windows and a comparison's candidates reuse it from here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import fields

from pt_backtest_engine import CoinHours, HoursKey
from pt_types import Candles

# Predictor tables a process keeps per coin: the trials run grouped by the tables they need, so
# one would do; the second covers a dask worker that picks up a trial of the next group early.
TABLES_PER_COIN = 2


class TableCache:
    """The last ``capacity`` coins' predictor tables a process built (a
    :class:`pt_backtest_engine.HoursStore`), least recently used dropped first.

    Why: a table takes most of a trial's time and is the same for every trial with the same
    :class:`HoursKey` on the same candles. An entry is keyed by the key and the candles'
    identity and holds the candles, so an id is never reused while its entry lives; candles
    that merely look equal are another entry. The tables' arrays are made read-only when kept:
    a run that wrote into a shared table would fail instead of changing the next trial's.
    Thread-safe (a dask worker runs trials on several threads); a table may then be built twice.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, 0)
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[HoursKey, int], tuple[Candles, CoinHours]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: HoursKey, hourly: Candles) -> CoinHours | None:
        with self._lock:
            entry = self._entries.get((key, id(hourly)))
            if entry is None or entry[0] is not hourly:
                self.misses += 1
                return None
            self._entries.move_to_end((key, id(hourly)))
            self.hits += 1
            return entry[1]

    def put(self, key: HoursKey, hourly: Candles, hours: CoinHours) -> None:
        for f in fields(hours.table):
            value = getattr(hours.table, f.name)
            if hasattr(value, "setflags"):
                value.setflags(write=False)
        with self._lock:
            self._entries[key, id(hourly)] = (hourly, hours)
            self._entries.move_to_end((key, id(hourly)))
            self._trim()

    def resize(self, capacity: int) -> None:
        with self._lock:
            self.capacity = max(capacity, 0)
            self._trim()

    def _trim(self) -> None:
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
