"""The trade journal's file format: tables, migrations, connections, errors and record types.

Kept apart from :mod:`pt_analytics` (which writes and reads the journal) so that the layout of
``journal.sqlite3`` can be read in one place, and so that a future schema change is one more
entry in :data:`MIGRATIONS` and nothing else.

Versioning: ``PRAGMA user_version`` is the number of migrations applied. Each migration runs
inside the same ``BEGIN IMMEDIATE`` transaction as the version bump, so an upgrade either
happens whole or not at all. A file from a newer PowerTrader AI is refused, never "fixed": its
owner has to update. Readers never migrate; they open the file read-only (``mode=ro``).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pt_errors import PowerTraderError
from pt_types import Mode, OrderTag, Position, Side

BUSY_TIMEOUT_S = 10.0
ALL_COINS = "*"


class JournalError(PowerTraderError):
    """The journal cannot be used as asked; the message names the file and what to do."""


class JournalMissingError(JournalError):
    """A reader found no journal: nothing has been traded in this data folder yet."""


class OrderState(StrEnum):
    """An order's life: ``intent`` is committed before it is sent, so a crash at any point
    leaves a record that the trader reconciles with the broker on restart."""

    INTENT = "intent"
    SENT = "sent"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self not in UNFINISHED_STATES


UNFINISHED_STATES = (OrderState.INTENT, OrderState.SENT, OrderState.PARTIALLY_FILLED)
# The partial indexes' conditions, spelled as literals: SQLite uses a partial index only for a
# query whose WHERE repeats its condition, and a bound parameter cannot. Queries on these hot
# paths also name their index (INDEXED BY): a fresh journal has no statistics, and the planner
# would otherwise scan every trade of the mode, or every order, on each fill.
OPEN_TRADE = "status = 'open'"
UNFINISHED_ORDER = "state IN ('intent', 'sent', 'partially_filled')"
# Which state may follow which when the trader says so; fills move states on their own.
ALLOWED_NEXT: Mapping[OrderState, frozenset[OrderState]] = {
    OrderState.INTENT: frozenset(OrderState) - {OrderState.INTENT},
    OrderState.SENT: frozenset(OrderState) - {OrderState.INTENT, OrderState.SENT},
    OrderState.PARTIALLY_FILLED: frozenset({OrderState.FILLED, OrderState.CANCELED}),
    OrderState.FILLED: frozenset(),
    OrderState.CANCELED: frozenset(),
    OrderState.REJECTED: frozenset(),
    OrderState.FAILED: frozenset(),
}

# ---------------------------------------------------------------------------------------------
# Schema

_V1 = (
    # One row per position's life (a trade group: entry, its DCAs, its exit), kept up to date on
    # every fill so that metrics never need to read the fills. cost_usd: every buy with its fee;
    # open_cost_usd: the average cost of what is still held; fees_usd: buy and sell fees.
    """CREATE TABLE trades (
        trade_group_id TEXT PRIMARY KEY,
        coin TEXT NOT NULL,
        mode TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
        opened_at REAL NOT NULL,
        closed_at REAL,
        quantity REAL NOT NULL DEFAULT 0,
        bought_quantity REAL NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0,
        open_cost_usd REAL NOT NULL DEFAULT 0,
        proceeds_usd REAL NOT NULL DEFAULT 0,
        fees_usd REAL NOT NULL DEFAULT 0,
        realized_pnl_usd REAL NOT NULL DEFAULT 0,
        realized_pnl_pct REAL NOT NULL DEFAULT 0,
        dca_count INTEGER NOT NULL DEFAULT 0,
        exit_reason TEXT NOT NULL DEFAULT '',
        max_floating_drawdown REAL NOT NULL DEFAULT 0,
        max_floating_drawdown_at REAL,
        updated_at REAL NOT NULL
    )""",
    "CREATE INDEX trades_open ON trades (mode, coin, opened_at) WHERE status = 'open'",
    "CREATE INDEX trades_activity ON trades (mode, coalesce(closed_at, opened_at))",
    """CREATE TABLE orders (
        client_order_id TEXT PRIMARY KEY,
        venue_order_id TEXT,
        trade_group_id TEXT NOT NULL,
        mode TEXT NOT NULL,
        coin TEXT NOT NULL,
        side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
        tag TEXT NOT NULL,
        requested_quantity REAL,
        requested_usd REAL,
        filled_quantity REAL NOT NULL DEFAULT 0,
        filled_usd REAL NOT NULL DEFAULT 0,
        fees_usd REAL NOT NULL DEFAULT 0,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '',
        signal_json TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    "CREATE INDEX orders_unfinished ON orders (mode, created_at) "
    "WHERE state IN ('intent', 'sent', 'partially_filled')",
    "CREATE INDEX orders_group ON orders (trade_group_id, created_at)",
    "CREATE INDEX orders_created ON orders (mode, created_at)",
    "CREATE INDEX orders_venue ON orders (venue_order_id) WHERE venue_order_id IS NOT NULL",
    # A venue's fill id is unique within its order: recording the same fill twice is a no-op.
    """CREATE TABLE fills (
        id INTEGER PRIMARY KEY,
        client_order_id TEXT NOT NULL,
        venue_fill_id TEXT NOT NULL,
        coin TEXT NOT NULL,
        side TEXT NOT NULL,
        quantity REAL NOT NULL,
        price REAL NOT NULL,
        fee_usd REAL NOT NULL,
        time REAL NOT NULL,
        recorded_at REAL NOT NULL,
        UNIQUE (client_order_id, venue_fill_id)
    )""",
    "CREATE INDEX fills_time ON fills (time)",
    # Equity samples keyed by minute (the last sample of a minute wins), thinned with age.
    """CREATE TABLE equity (
        mode TEXT NOT NULL,
        minute INTEGER NOT NULL,
        time REAL NOT NULL,
        equity REAL NOT NULL,
        cash REAL NOT NULL,
        positions_value REAL NOT NULL,
        PRIMARY KEY (mode, minute)
    ) WITHOUT ROWID""",
    # Σ cost of open positions per UTC day (its highest and its last), per coin and '*' for all.
    """CREATE TABLE open_cost_days (
        mode TEXT NOT NULL,
        coin TEXT NOT NULL,
        day INTEGER NOT NULL,
        max_open_cost REAL NOT NULL,
        last_open_cost REAL NOT NULL,
        last_at REAL NOT NULL,
        PRIMARY KEY (mode, coin, day)
    ) WITHOUT ROWID""",
    """CREATE TABLE paper_wallet (
        mode TEXT PRIMARY KEY,
        cash_usd REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    """CREATE TABLE paper_holdings (
        mode TEXT NOT NULL,
        coin TEXT NOT NULL,
        quantity REAL NOT NULL,
        PRIMARY KEY (mode, coin)
    ) WITHOUT ROWID""",
    """CREATE TABLE trader_state (
        mode TEXT NOT NULL,
        key TEXT NOT NULL,
        value_json TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (mode, key)
    ) WITHOUT ROWID""",
)

Migration = Sequence[str] | Callable[[sqlite3.Connection], None]
# Entry i migrates a file from user_version i to i + 1. Append; never edit a released entry.
MIGRATIONS: tuple[Migration, ...] = (_V1,)
SCHEMA_VERSION = len(MIGRATIONS)
OUR_TABLES = frozenset({"trades", "orders", "fills", "equity"})

_KEEP_HINT = (
    "Keep the file, it is your trade record: rename it (for example to journal-damaged.sqlite3) "
    "and PowerTrader AI starts a new journal; `sqlite3 <file> .recover` may rescue its content"
)


def translate(path: Path, what: str, exc: sqlite3.Error, timeout_s: float) -> JournalError:
    """An SQLite error as a JournalError saying which file, what failed and what to do."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return JournalError(
            f"journal {path} is locked: {what} waited {timeout_s:g} s for another process "
            "(a second trader, or a tool with the file open). Stop it and try again."
        )
    if "readonly" in text or "read-only" in text:
        return JournalError(f"journal {path} is open read-only; {what} needs the trader's writer")
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return JournalError(
            f"journal {path} is damaged or is not a PowerTrader AI journal ({what}: {exc}). "
            f"{_KEEP_HINT}."
        )
    return JournalError(f"journal {path}: {what} failed: {exc}")


@contextlib.contextmanager
def guard(path: Path, what: str, timeout_s: float) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(path, what, exc, timeout_s) from exc


def connect(path: Path, *, readonly: bool, timeout_s: float) -> sqlite3.Connection:
    """An autocommit connection (we issue BEGIN ourselves); WAL and full sync for a writer.

    ``synchronous=FULL``: an intent must survive a power cut once the order has been sent."""
    if readonly:
        if not path.exists():
            raise JournalMissingError(
                f"no journal yet at {path} (nothing traded in this data folder)"
            )
        target, uri = path.resolve().as_uri() + "?mode=ro", True
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        target, uri = str(path), False
    with guard(path, "opening", timeout_s):
        conn = sqlite3.connect(
            target, timeout=timeout_s, isolation_level=None, check_same_thread=False, uri=uri
        )
    try:
        with guard(path, "opening", timeout_s):
            if not readonly:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
    except BaseException:
        conn.close()
        raise
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {str(r[0]) for r in rows}


def check_version(path: Path, version: int, target: int, *, readonly: bool) -> None:
    if version > target:
        raise JournalError(
            f"journal {path} has schema version {version}, newer than this PowerTrader AI "
            f"understands ({target}): it was written by a newer version. Update PowerTrader AI."
        )
    if readonly and version < target:
        state = "is empty" if version == 0 else f"has the older schema version {version}"
        raise JournalError(
            f"journal {path} {state}; a reader cannot set it up. The trader creates or upgrades "
            "it when it starts."
        )


def migrate(
    conn: sqlite3.Connection, path: Path, migrations: Sequence[Migration], timeout_s: float
) -> int:
    """Bring the file to ``len(migrations)`` in one transaction; returns the version found."""
    target = len(migrations)
    with guard(path, "upgrading the schema", timeout_s):
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = schema_version(conn)
            check_version(path, version, target, readonly=False)
            if version == 0 and (foreign := _tables(conn) - OUR_TABLES):
                raise JournalError(
                    f"{path} is an SQLite file but not a PowerTrader AI journal (it has the "
                    f"tables {', '.join(sorted(foreign))}). Move it away or choose another "
                    "data folder."
                )
            for step in migrations[version:]:
                if callable(step):
                    step(conn)
                else:
                    for statement in step:
                        conn.execute(statement)
            # PRAGMA takes no parameters; the value is an int computed here.
            conn.execute(f"PRAGMA user_version = {int(target)}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return version


# ---------------------------------------------------------------------------------------------
# Records: what the journal hands out (raw rows never leave pt_analytics)


@dataclass(frozen=True)
class TradeRecord:
    """A position's life. Amounts in USD; ``realized_pnl_pct`` in percent of ``cost_usd``;
    ``max_floating_drawdown`` a positive fraction of the open cost."""

    trade_group_id: str
    coin: str
    mode: Mode
    status: str
    opened_at: float
    closed_at: float | None
    quantity: float
    bought_quantity: float
    cost_usd: float
    open_cost_usd: float
    proceeds_usd: float
    fees_usd: float
    realized_pnl_usd: float
    realized_pnl_pct: float
    dca_count: int
    exit_reason: str
    max_floating_drawdown: float
    max_floating_drawdown_at: float | None
    updated_at: float

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    @property
    def avg_cost(self) -> float:
        return self.open_cost_usd / self.quantity if self.quantity > 0 else 0.0

    @property
    def result(self) -> str:
        """win / loss / draw by the PnL rounded to cents (metrics.md), or open."""
        if self.is_open:
            return "open"
        cents = round(self.realized_pnl_usd, 2)
        return "win" if cents > 0 else "loss" if cents < 0 else "draw"

    def position(self) -> Position:
        return Position(
            self.coin, self.quantity, self.open_cost_usd, self.dca_count, self.opened_at
        )


TRADE_COLUMNS = (
    "trade_group_id, coin, mode, status, opened_at, closed_at, quantity, bought_quantity, "
    "cost_usd, open_cost_usd, proceeds_usd, fees_usd, realized_pnl_usd, realized_pnl_pct, "
    "dca_count, exit_reason, max_floating_drawdown, max_floating_drawdown_at, updated_at"
)


def _opt(v: Any) -> float | None:
    return None if v is None else float(v)


def trade_from_row(row: Sequence[Any]) -> TradeRecord:
    q, bought, cost, open_cost, proceeds, fees, pnl, pct = (float(v) for v in row[6:14])
    return TradeRecord(
        str(row[0]), str(row[1]), Mode(row[2]), str(row[3]), float(row[4]), _opt(row[5]),
        q, bought, cost, open_cost, proceeds, fees, pnl, pct,
        int(row[14]), str(row[15]), float(row[16]), _opt(row[17]), float(row[18]),
    )  # fmt: skip


@dataclass(frozen=True)
class OrderRecord:
    """An order as journaled; ``signal`` is the learned-from signal snapshot stored with it."""

    client_order_id: str
    venue_order_id: str | None
    trade_group_id: str
    mode: Mode
    coin: str
    side: Side
    tag: OrderTag
    requested_quantity: float | None
    requested_usd: float | None
    filled_quantity: float
    filled_usd: float
    fees_usd: float
    state: OrderState
    reason: str
    detail: str
    signal: Mapping[str, Any] | None
    created_at: float
    updated_at: float

    @property
    def avg_price(self) -> float | None:
        return self.filled_usd / self.filled_quantity if self.filled_quantity > 0 else None


ORDER_COLUMNS = (
    "client_order_id, venue_order_id, trade_group_id, mode, coin, side, tag, requested_quantity, "
    "requested_usd, filled_quantity, filled_usd, fees_usd, state, reason, detail, signal_json, "
    "created_at, updated_at"
)


def order_from_row(row: Sequence[Any]) -> OrderRecord:
    signal = None if row[15] is None else json.loads(row[15])
    return OrderRecord(
        str(row[0]), None if row[1] is None else str(row[1]), str(row[2]), Mode(row[3]),
        str(row[4]), Side(row[5]), OrderTag(row[6]), _opt(row[7]), _opt(row[8]),
        float(row[9]), float(row[10]), float(row[11]), OrderState(row[12]), str(row[13]),
        str(row[14]), signal, float(row[16]), float(row[17]),
    )  # fmt: skip


@dataclass(frozen=True)
class FillRecord:
    """An executed part of an order, with the order's trade group and tag for context."""

    id: int
    client_order_id: str
    venue_fill_id: str
    trade_group_id: str
    tag: OrderTag
    coin: str
    side: Side
    quantity: float
    price: float
    fee_usd: float
    time: float


FILL_COLUMNS = (
    "f.id, f.client_order_id, f.venue_fill_id, o.trade_group_id, o.tag, f.coin, f.side, "
    "f.quantity, f.price, f.fee_usd, f.time"
)


def fill_from_row(row: Sequence[Any]) -> FillRecord:
    return FillRecord(
        int(row[0]), str(row[1]), str(row[2]), str(row[3]), OrderTag(row[4]), str(row[5]),
        Side(row[6]), float(row[7]), float(row[8]), float(row[9]), float(row[10]),
    )  # fmt: skip


@dataclass(frozen=True)
class PaperWallet:
    """The paper broker's cash and holdings, kept in the journal so a restart resumes them."""

    cash_usd: float
    holdings: Mapping[str, float] = field(default_factory=dict)

    def quantity(self, coin: str) -> float:
        return float(self.holdings.get(coin.upper(), 0.0))
