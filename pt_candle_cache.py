"""The candle cache (``candles.sqlite3``): closed candles are downloaded once, ever.

The thinker, trainer and backtester ask for years of candles in seven timeframes for several
coins on every start; downloading that each time would be slow and would run into the venues'
rate limits. So closed candles are stored here with the venue they came from, and per
(coin, timeframe) the span ``[covered_from, covered_to)`` that has been fetched. A source is only
asked for what lies outside that span: newer candles after it (incremental updates) and older
history before it (backward extension). Candles missing *inside* the span were missing at the
venue (an outage) and are never asked for again.

The candle still forming is never stored as closed: it changes until its period ends. Every
``get`` that reaches it asks the source again (the span ends at its open time) and returns it
last, marked forming. A candle the source has not published yet, at the live edge, is not
covered either, so a venue that lags by a candle is simply asked again.

SQLite in WAL mode, schema versioned with ``PRAGMA user_version``, writes in short
``BEGIN IMMEDIATE`` transactions (never held across a download), so one writer and any number of
read-only readers (:meth:`CandleCache.open_readonly`) can share the file across processes.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from pt_errors import PowerTraderError
from pt_types import Candles, Timeframe

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 10.0
_DELETE_HINT = "it only holds downloaded candles: delete it and they will be downloaded again"

# Each entry migrates from user_version == index to index + 1.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE candles (
            coin TEXT NOT NULL, tf TEXT NOT NULL, time INTEGER NOT NULL,
            open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL,
            volume REAL NOT NULL, venue TEXT NOT NULL,
            PRIMARY KEY (coin, tf, time)
        ) WITHOUT ROWID""",
        """CREATE TABLE coverage (
            coin TEXT NOT NULL, tf TEXT NOT NULL,
            covered_from INTEGER NOT NULL, covered_to INTEGER NOT NULL,
            PRIMARY KEY (coin, tf)
        ) WITHOUT ROWID""",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION

_SELECT = (
    "SELECT time, open, high, low, close, volume FROM candles "
    "WHERE coin = ? AND tf = ? AND time >= ? AND time < ? ORDER BY time"
)
_INSERT = (
    "INSERT OR REPLACE INTO candles (coin, tf, time, open, high, low, close, volume, venue) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_MERGE_COVERAGE = (
    "INSERT INTO coverage (coin, tf, covered_from, covered_to) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (coin, tf) DO UPDATE SET "
    "covered_from = min(covered_from, excluded.covered_from), "
    "covered_to = max(covered_to, excluded.covered_to)"
)


class CandleCacheError(PowerTraderError):
    """The cache file cannot be used; the message names it and says what to do."""


class CandleSource(Protocol):
    """Anything that serves candles: a venue, the replay market, the exchange manager."""

    def candles(self, coin: str, timeframe: Timeframe, start: int, end: int) -> Candles: ...


CandleFetcher = Callable[[str, Timeframe, int, int], Candles]
Span = tuple[int, int]


def _fetch(
    source: CandleSource | CandleFetcher, coin: str, tf: Timeframe, a: int, b: int
) -> tuple[Candles, str]:
    """Candles in ``[a, b)`` from ``source`` and the name of the venue that served them."""
    first_success = getattr(source, "first_success", None)
    if callable(first_success):  # an ExchangeManager says which venue answered
        what = f"{coin} {tf.value} candles"
        result, venue = first_success(what, lambda v: v.candles(coin, tf, a, b))
        return result, str(venue)
    venue = str(getattr(source, "name", "unknown"))
    if hasattr(source, "candles"):
        return source.candles(coin, tf, a, b), venue
    if callable(source):
        return source(coin, tf, a, b), venue
    raise TypeError(f"candle source {source!r} has no candles() method")


def _to_candles(rows: Sequence[tuple[float, ...]]) -> Candles:
    if not rows:
        return Candles.empty()
    table = np.array(rows, dtype=np.float64).T.copy()
    return Candles(table[0].astype(np.int64), table[1], table[2], table[3], table[4], table[5])


def _rows(candles: Candles, coin: str, tf: str, venue: str) -> Iterator[tuple[object, ...]]:
    c = candles
    columns = (c.time, c.open, c.high, c.low, c.close, c.volume)
    for t, o, h, lo, cl, v in zip(*(x.tolist() for x in columns), strict=True):
        yield (coin, tf, t, o, h, lo, cl, v, venue)


def _concat(a: Candles, b: Candles, *, forming: bool) -> Candles:
    return Candles(
        np.concatenate([a.time, b.time]),
        np.concatenate([a.open, b.open]),
        np.concatenate([a.high, b.high]),
        np.concatenate([a.low, b.low]),
        np.concatenate([a.close, b.close]),
        np.concatenate([a.volume, b.volume]),
        forming=forming,
    )


def _between(candles: Candles, start: int, end: int) -> Candles:
    lo, hi = np.searchsorted(candles.time, [start, end], side="left")
    return candles.slice(int(lo), int(hi))


class CandleCache:
    """Closed candles per (coin, timeframe) in one SQLite file, fetched from a source on demand.

    One object per process and file; its methods may be called from several threads (a lock
    serialises them). ``clock`` decides which candle is still forming, so it must be the same
    clock the source uses (the simulated one in demo mode).
    """

    def __init__(
        self, path: Path, *, clock: Callable[[], float] = time.time, readonly: bool = False
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._clock = clock
        self._lock = threading.Lock()
        self._conn = self._connect()
        try:
            self._check_schema()
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def open_readonly(cls, path: Path, *, clock: Callable[[], float] = time.time) -> CandleCache:
        """A reader that cannot write: for processes that only show or analyse candles."""
        return cls(path, clock=clock, readonly=True)

    # -- connection and schema ------------------------------------------------------------

    def _error(self, what: str, exc: sqlite3.Error) -> CandleCacheError:
        hint = ""
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            hint = f" The file is damaged or is not a candle cache; {_DELETE_HINT}."
        return CandleCacheError(f"candle cache {self.path}: {what} failed: {exc}.{hint}")

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(what, exc) from exc

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            target, uri = self.path.resolve().as_uri() + "?mode=ro", True
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            target, uri = str(self.path), False
        try:
            conn = sqlite3.connect(
                target,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
                uri=uri,
            )
        except sqlite3.Error as exc:
            how = "read-only " if self.readonly else ""
            raise CandleCacheError(
                f"cannot open candle cache {self.path} {how}({exc}); it is created by the first "
                "process that fetches candles"
            ) from exc
        if not self.readonly:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                conn.close()
                raise self._error("opening", exc) from exc
        return conn

    def _check_schema(self) -> None:
        with self._guard("reading the schema version"):
            if self.readonly:
                self._check_version(self._version())
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                version = self._version()
                self._check_version(version)
                for steps in _MIGRATIONS[version:]:
                    for statement in steps:
                        self._conn.execute(statement)
                # PRAGMA takes no parameters; the value is this module's own integer constant.
                self._conn.execute(f"PRAGMA user_version = {int(SCHEMA_VERSION)}")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            if version < SCHEMA_VERSION:
                log.info("candle cache %s: schema %s -> %s", self.path, version, SCHEMA_VERSION)

    def _version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise CandleCacheError(
                f"candle cache {self.path} has schema version {version}, newer than this version "
                f"of PowerTrader understands ({SCHEMA_VERSION}): it was written by a newer "
                f"PowerTrader. Update PowerTrader, or delete the file ({_DELETE_HINT})."
            )
        if self.readonly and version < SCHEMA_VERSION:
            state = "is empty" if version == 0 else f"has the older schema version {version}"
            raise CandleCacheError(
                f"candle cache {self.path} {state}; a read-only reader cannot set it up. It is "
                "created or upgraded by the first process that fetches candles."
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> CandleCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock, self._guard(what):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- reading -------------------------------------------------------------------------

    def read(self, coin: str, timeframe: Timeframe, start: int, end: int) -> Candles:
        """Closed candles opening in ``[start, end)`` from the cache alone (no source)."""
        key = (coin.strip().upper(), Timeframe(timeframe).value, int(start), int(end))
        with self._lock, self._guard("reading candles"):
            rows = self._conn.execute(_SELECT, key).fetchall()
        return _to_candles(rows)

    def covered(self, coin: str, timeframe: Timeframe) -> tuple[int, int] | None:
        """``(covered_from, covered_to)``: the span of open times already fetched, if any."""
        key = (coin.strip().upper(), Timeframe(timeframe).value)
        with self._lock, self._guard("reading the covered span"):
            row = self._conn.execute(
                "SELECT covered_from, covered_to FROM coverage WHERE coin = ? AND tf = ?", key
            ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def venues(self, coin: str, timeframe: Timeframe) -> dict[str, int]:
        """How many cached candles of the series came from each venue."""
        key = (coin.strip().upper(), Timeframe(timeframe).value)
        with self._lock, self._guard("reading venues"):
            rows = self._conn.execute(
                "SELECT venue, count(*) FROM candles WHERE coin = ? AND tf = ? GROUP BY venue", key
            ).fetchall()
        return {str(venue): int(n) for venue, n in rows}

    # -- fetching ------------------------------------------------------------------------

    def get(
        self,
        coin: str,
        timeframe: Timeframe,
        start: int,
        end: int,
        source: CandleSource | CandleFetcher,
    ) -> Candles:
        """Candles opening in ``[start, end)``; only what the cache lacks is asked of ``source``.

        The forming candle, when in range, is fetched afresh and returned last with
        ``forming=True``. Source errors propagate; whatever was cached before stays.
        """
        if self.readonly:
            raise CandleCacheError(
                f"candle cache {self.path} is open read-only; only a writer can fetch candles"
            )
        tf = Timeframe(timeframe)
        name = coin.strip().upper()
        if end <= start:
            return Candles.empty()
        a, b = tf.candle_open(start), tf.candle_open(end - 1) + tf.seconds
        span = self.covered(name, tf)
        tail = Candles.empty()
        if span is None:
            tail = self._extend(name, tf, a, b, source)
        else:
            if a < span[0]:
                self._extend(name, tf, a, span[0], source)
            if b > span[1]:
                tail = self._extend(name, tf, span[1], b, source)
        closed = self.read(name, tf, start, end)
        tail = _between(tail, start, end)
        if len(closed) and len(tail):
            tail = tail.slice(int(np.searchsorted(tail.time, closed.time[-1], side="right")))
        if not len(tail):
            return closed
        return _concat(closed, tail, forming=True)

    def _extend(
        self, coin: str, tf: Timeframe, a: int, b: int, source: CandleSource | CandleFetcher
    ) -> Candles:
        """Fetch ``[a, b)``, store its closed candles and widen the span; returns the rest.

        What is returned is the part at the live edge that was not stored: the forming candle.
        """
        fetched, venue = _fetch(source, coin, tf, a, b)
        live = tf.candle_open(int(self._clock() // 1))
        rows = _between(fetched, a, b)
        limit = min(b, live)
        if rows.forming and len(rows):
            limit = min(limit, int(rows.time[-1]))
        cut = int(np.searchsorted(rows.time, limit, side="left"))
        closed, tail = rows.slice(0, cut), rows.slice(cut)
        covered_to = max(limit, a)
        if b >= live and not len(tail):
            # The source has nothing at the live edge yet: ask again for what it has not shown.
            covered_to = int(closed.time[-1]) + tf.seconds if len(closed) else a
        self._store(coin, tf, closed, venue, (a, covered_to))
        return tail

    def _store(self, coin: str, tf: Timeframe, closed: Candles, venue: str, span: Span) -> None:
        a, b = span
        with self._write("storing candles") as conn:
            conn.executemany(_INSERT, _rows(closed, coin, tf.value, venue))
            row = conn.execute(
                "SELECT covered_from, covered_to FROM coverage WHERE coin = ? AND tf = ?",
                (coin, tf.value),
            ).fetchone()
            if row is not None and (b < row[0] or a > row[1]):
                log.warning(
                    "candle cache %s: %s %s fetched span [%s, %s) does not touch the covered "
                    "span [%s, %s) (clock went backwards?); span left as it was",
                    self.path, coin, tf.value, a, b, row[0], row[1],
                )  # fmt: skip
                return
            conn.execute(_MERGE_COVERAGE, (coin, tf.value, a, b))
        log.debug("%s %s: stored %d candles from %s", coin, tf.value, len(closed), venue)
