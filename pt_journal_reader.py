"""Reading the trade journal: the connection, consistent snapshots and every query.

:class:`JournalReader` is the read side of :class:`pt_journal.TradeJournal` (which adds the
writes); the hub, analytics and reports use it through ``TradeJournal.open_readonly(path)``,
which opens the file with ``mode=ro`` so that a reader can never change it. Each query is one
consistent state; :meth:`JournalReader.snapshot` makes several queries share one while the
trader keeps writing. Queries take a ``mode`` that defaults to the journal's own (a writer's
mode; a reader opened without one sees every mode).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

import pt_metrics as pm
from pt_journal_schema import (
    BUSY_TIMEOUT_S,
    FILL_COLUMNS,
    MIGRATIONS,
    OPEN_TRADE,
    ORDER_COLUMNS,
    TRADE_COLUMNS,
    UNFINISHED_ORDER,
    FillRecord,
    JournalError,
    Migration,
    OrderRecord,
    OrderState,
    PaperWallet,
    TradeRecord,
    check_version,
    connect,
    fill_from_row,
    guard,
    migrate,
    order_from_row,
    schema_version,
    trade_from_row,
)
from pt_types import Mode, OrderTag

log = logging.getLogger(__name__)

Clock = Callable[[], float]
_COIN = re.compile(r"^[A-Z0-9]{1,20}$")


@dataclasses.dataclass(frozen=True)
class JournalCounts:
    trades: int
    open_trades: int
    orders: int
    fills: int
    equity_samples: int


def coin_name(coin: str) -> str:
    """``btc `` → ``BTC``; anything but letters and digits is refused (it names files too)."""
    name = str(coin).strip().upper()
    if not _COIN.match(name):
        raise ValueError(f"invalid coin {coin!r}: use letters and digits, like BTC")
    return name


def number(name: str, value: float | None, *, positive: bool = False) -> float:
    """``value`` as a float, refusing NaN, infinities and negatives (and 0 when ``positive``)."""
    if value is None or isinstance(value, bool) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    v = float(value)
    if v < 0 or (positive and v == 0):
        raise ValueError(f"{name} must be {'above' if positive else 'at least'} 0, got {v!r}")
    return v


class _Where:
    """``WHERE`` clauses from fixed fragments; values only ever travel as parameters."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: list[object] = []

    def add(self, fragment: str, *values: object) -> None:
        self.parts.append(fragment)
        self.params.extend(values)

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.parts) if self.parts else ""


def _order_by(column: str, newest_first: bool, limit: int | None, tie: str = "") -> str:
    direction = "DESC" if newest_first else "ASC"
    sql = f" ORDER BY {column} {direction}" + (f", {tie} {direction}" if tie else "")
    return sql + (" LIMIT ?" if limit is not None else "")


def _limit(limit: int | None) -> list[object]:
    if limit is None:
        return []
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit must be a whole number >= 0, got {limit!r}")
    return [limit]


class JournalReader:
    """The journal file and its queries; :class:`pt_journal.TradeJournal` adds the writes.

    Opening it as a writer (``readonly=False``) creates or upgrades the file with
    ``migrations``. One object per process; its methods may be called from several threads."""

    def __init__(
        self,
        path: Path,
        *,
        mode: Mode | None = Mode.DEMO,
        clock: Clock = time.time,
        readonly: bool = False,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        if not readonly and mode is None:
            raise ValueError("a journal writer needs a mode (demo, paper or live)")
        self.path = Path(path)
        self.mode = None if mode is None else Mode(mode)
        self.readonly = readonly
        self.schema_version = len(migrations)
        self._clock = clock
        self._timeout = busy_timeout_s
        self._lock = threading.RLock()
        self._depth = 0
        self._writing = False
        self._compacted: dict[str, tuple[int, int]] = {}
        self._conn = connect(self.path, readonly=readonly, timeout_s=busy_timeout_s)
        try:
            if readonly:
                with self._guard("reading the schema version"):
                    version = schema_version(self._conn)
                check_version(self.path, version, self.schema_version, readonly=True)
            else:
                found = migrate(self._conn, self.path, migrations, busy_timeout_s)
                if found < self.schema_version:
                    log.info("journal %s: schema %s -> %s", self.path, found, self.schema_version)
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def open_readonly(
        cls, path: Path, *, mode: Mode | None = None, busy_timeout_s: float = BUSY_TIMEOUT_S
    ) -> Self:
        """A reader that cannot write (``mode=ro``): for the hub, analytics and reports."""
        return cls(path, mode=mode, readonly=True, busy_timeout_s=busy_timeout_s)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions --------------------------------------------------------------------

    def _guard(self, what: str) -> contextlib.AbstractContextManager[None]:
        return guard(self.path, what, self._timeout)

    @contextlib.contextmanager
    def _txn(self, write: bool, what: str) -> Iterator[sqlite3.Connection]:
        if write and self.readonly:
            raise JournalError(f"journal {self.path} is open read-only; {what} needs the writer")
        with self._lock:
            if self._depth:  # inside transaction() or snapshot(): join it
                if write and not self._writing:
                    raise JournalError(f"{what}: cannot write inside a read snapshot")
                self._depth += 1
                try:
                    with self._guard(what):
                        yield self._conn
                finally:
                    self._depth -= 1
                return
            with self._guard(what):
                self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            self._depth, self._writing = 1, write
            try:
                with self._guard(what):
                    yield self._conn
                    self._conn.execute("COMMIT")
            except BaseException:  # the body or the commit failed: leave no transaction open
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
            finally:
                self._depth, self._writing = 0, False

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Let several queries see one consistent state while the trader keeps writing."""
        with self._txn(False, "reading"):
            yield

    def _rows(self, what: str, sql: str, params: Sequence[object] = ()) -> list[Any]:
        with self._txn(False, what) as conn:
            return conn.execute(sql, params).fetchall()

    def _filter(self, mode: Mode | None) -> Mode | None:
        return Mode(mode) if mode is not None else self.mode

    @property
    def _writer_mode(self) -> str:
        if self.mode is None:
            raise JournalError(f"journal {self.path} is open read-only")
        return self.mode.value

    def _at(self, now: float | None) -> float:
        return self._clock() if now is None else number("time", now)

    def unfinished_orders(self, *, mode: Mode | None = None) -> tuple[OrderRecord, ...]:
        """Orders not known to be finished (intent, sent, partially filled), oldest first: what
        the trader reconciles with the broker on restart before it does anything else."""
        where = _Where()
        where.add(UNFINISHED_ORDER)
        if (m := self._filter(mode)) is not None:
            where.add("mode = ?", m.value)
        sql = (
            f"SELECT {ORDER_COLUMNS} FROM orders INDEXED BY orders_unfinished{where.sql()} "
            "ORDER BY created_at"
        )
        return tuple(order_from_row(r) for r in self._rows("reading orders", sql, where.params))

    def paper_wallet(self, *, mode: Mode | None = None) -> PaperWallet | None:
        """The paper broker's wallet as last saved (None before the first save); a reader
        without a mode reads the paper mode's."""
        m = (self._filter(mode) or Mode.PAPER).value
        with self.snapshot():
            cash = self._rows(
                "reading the wallet", "SELECT cash_usd FROM paper_wallet WHERE mode = ?", (m,)
            )
            held = self._rows(
                "reading the wallet",
                "SELECT coin, quantity FROM paper_holdings WHERE mode = ? ORDER BY coin",
                (m,),
            )
        if not cash:
            return None
        return PaperWallet(float(cash[0][0]), {str(c): float(q) for c, q in held})

    def load_state(self, key: str, default: Any = None, *, mode: Mode | None = None) -> Any:
        m = (self._filter(mode) or Mode.PAPER).value
        rows = self._rows(
            "reading trader state",
            "SELECT value_json FROM trader_state WHERE mode = ? AND key = ?",
            (m, str(key)),
        )
        return json.loads(rows[0][0]) if rows else default

    # -- queries -------------------------------------------------------------------------

    def _where(
        self,
        column: str,
        since: float | None,
        until: float | None,
        *,
        coin: str | None = None,
        mode: Mode | None,
        mode_column: str = "mode",
    ) -> _Where:
        where = _Where()
        if (m := self._filter(mode)) is not None:
            where.add(f"{mode_column} = ?", m.value)
        if since is not None:
            where.add(f"{column} >= ?", number("since", since))
        if until is not None:
            where.add(f"{column} < ?", number("until", until))
        if coin is not None:
            where.add("coin = ?", coin_name(coin))
        return where

    def order(self, client_order_id: str) -> OrderRecord | None:
        sql = f"SELECT {ORDER_COLUMNS} FROM orders WHERE client_order_id = ?"
        rows = self._rows("reading an order", sql, (client_order_id,))
        return order_from_row(rows[0]) if rows else None

    def orders(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        coin: str | None = None,
        trade_group_id: str | None = None,
        tag: OrderTag | None = None,
        state: OrderState | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        mode: Mode | None = None,
    ) -> tuple[OrderRecord, ...]:
        """Orders created in ``[since, until)``, oldest first unless ``newest_first``."""
        where = self._where("created_at", since, until, coin=coin, mode=mode)
        if trade_group_id is not None:
            where.add("trade_group_id = ?", trade_group_id)
        if tag is not None:
            where.add("tag = ?", OrderTag(tag).value)
        if state is not None:
            where.add("state = ?", OrderState(state).value)
        sql = f"SELECT {ORDER_COLUMNS} FROM orders{where.sql()}"
        sql += _order_by("created_at", newest_first, limit)
        rows = self._rows("reading orders", sql, [*where.params, *_limit(limit)])
        return tuple(order_from_row(r) for r in rows)

    def trade(self, trade_group_id: str) -> TradeRecord | None:
        sql = f"SELECT {TRADE_COLUMNS} FROM trades WHERE trade_group_id = ?"
        rows = self._rows("reading a trade", sql, (trade_group_id,))
        return trade_from_row(rows[0]) if rows else None

    def open_trades(self, *, mode: Mode | None = None) -> tuple[TradeRecord, ...]:
        return self.trades(status="open", mode=mode)

    def open_trade(self, coin: str, *, mode: Mode | None = None) -> TradeRecord | None:
        found = self.trades(status="open", coin=coin, mode=mode, limit=1, newest_first=True)
        return found[0] if found else None

    def trades(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        coin: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        mode: Mode | None = None,
    ) -> tuple[TradeRecord, ...]:
        """Trades whose last event (the close; the open while open) is in ``[since, until)``."""
        if status not in (None, "open", "closed"):
            raise ValueError(f"trade status must be 'open' or 'closed', got {status!r}")
        source, at = "trades", "coalesce(closed_at, opened_at)"
        if status == "open":  # the trader asks this every tick: the small partial index
            source, at = "trades INDEXED BY trades_open", "opened_at"
        where = self._where(at, since, until, coin=coin, mode=mode)
        if status is not None:
            where.add(OPEN_TRADE if status == "open" else "status = 'closed'")
        sql = f"SELECT {TRADE_COLUMNS} FROM {source}{where.sql()}"
        sql += _order_by(at, newest_first, limit)
        rows = self._rows("reading trades", sql, [*where.params, *_limit(limit)])
        return tuple(trade_from_row(r) for r in rows)

    def fills(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        coin: str | None = None,
        client_order_id: str | None = None,
        trade_group_id: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        mode: Mode | None = None,
    ) -> tuple[FillRecord, ...]:
        """Fills at times in ``[since, until)``, oldest first unless ``newest_first``."""
        return tuple(
            self.iter_fills(
                since=since,
                until=until,
                coin=coin,
                client_order_id=client_order_id,
                trade_group_id=trade_group_id,
                limit=limit,
                newest_first=newest_first,
                mode=mode,
            )
        )

    def iter_fills(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        coin: str | None = None,
        client_order_id: str | None = None,
        trade_group_id: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        mode: Mode | None = None,
    ) -> Iterator[FillRecord]:
        """Like :meth:`fills`, a batch at a time, so an export of a million fills stays small."""
        where = self._where("f.time", since, until, mode=mode, mode_column="o.mode")
        if coin is not None:
            where.add("f.coin = ?", coin_name(coin))
        if client_order_id is not None:
            where.add("f.client_order_id = ?", client_order_id)
        if trade_group_id is not None:
            where.add("o.trade_group_id = ?", trade_group_id)
        # One order: its fills; one trade: its orders' fills; else the fills by time, so that an
        # export streams in time order without sorting a million rows.
        if client_order_id is not None:
            source = "fills f JOIN orders o"
        elif trade_group_id is not None:
            source = "orders o INDEXED BY orders_group JOIN fills f"
        else:
            source = "fills f INDEXED BY fills_time JOIN orders o"
        sql = (
            f"SELECT {FILL_COLUMNS} FROM {source} "
            f"ON o.client_order_id = f.client_order_id{where.sql()}"
        ) + _order_by("f.time", newest_first, limit, "f.id")
        params = [*where.params, *_limit(limit)]
        with self._txn(False, "reading fills") as conn:
            cursor = conn.execute(sql, params)
            while batch := cursor.fetchmany(5000):
                yield from (fill_from_row(r) for r in batch)

    def counts(self, *, mode: Mode | None = None) -> JournalCounts:
        """How many rows of each kind (for status lines and tests)."""
        m = self._filter(mode)
        only = "" if m is None else " AND mode = ?"
        fills = (
            "SELECT count(*) FROM fills WHERE 1"
            if m is None
            else "SELECT count(*) FROM fills f JOIN orders o "
            "ON o.client_order_id = f.client_order_id WHERE o.mode = ?"
        )
        queries = (
            f"SELECT count(*) FROM trades WHERE 1{only}",
            f"SELECT count(*) FROM trades INDEXED BY trades_open WHERE {OPEN_TRADE}{only}",
            f"SELECT count(*) FROM orders WHERE 1{only}",
            fills,
            f"SELECT count(*) FROM equity WHERE 1{only}",
        )
        params = [] if m is None else [m.value]
        with self.snapshot():
            found = [int(self._rows("counting", sql, params)[0][0]) for sql in queries]
        return JournalCounts(*found)

    def equity_series(
        self, *, since: float | None = None, until: float | None = None, mode: Mode | None = None
    ) -> pm.EquitySeries:
        """Equity samples in ``[since, until)``, ascending."""
        where = self._where("time", since, until, mode=mode)
        sql = f"SELECT time, equity, cash, positions_value FROM equity{where.sql()} ORDER BY time"
        rows = self._rows("reading equity", sql, where.params)
        if not rows:
            return pm.EquitySeries.empty()
        a = np.array(rows, dtype=np.float64).T.copy()
        return pm.EquitySeries(a[0], a[1], a[2], a[3])

    def deployed_series(self, *, mode: Mode | None = None) -> pm.DeployedSeries:
        """Σ open cost per (coin, UTC day), coin ``*`` for the whole account."""
        where = self._where("day", None, None, mode=mode)
        rows = self._rows(
            "reading open cost",
            "SELECT coin, day, max_open_cost, last_open_cost FROM open_cost_days"
            f"{where.sql()} ORDER BY coin, day",
            where.params,
        )
        if not rows:
            return pm.DeployedSeries.empty()
        coins, days, high, last = zip(*rows, strict=True)
        return pm.DeployedSeries(
            np.array(coins, dtype=np.str_),
            np.array(days, dtype=np.int64),
            np.array(high, dtype=np.float64),
            np.array(last, dtype=np.float64),
        )

    def trade_table(self, *, mode: Mode | None = None) -> pm.TradeTable:
        """All trades as columns, for the metrics (one query, no object per trade)."""
        where = self._where("opened_at", None, None, mode=mode)
        rows = self._rows(
            "reading trades",
            "SELECT trade_group_id, coin, exit_reason, opened_at, closed_at, cost_usd, "
            "open_cost_usd, realized_pnl_usd, realized_pnl_pct, max_floating_drawdown, dca_count "
            f"FROM trades{where.sql()} ORDER BY opened_at",
            where.params,
        )
        if not rows:
            return pm.TradeTable.empty()
        ids, coins, reasons, *numbers, dca = (list(c) for c in zip(*rows, strict=True))
        opened, closed, cost, open_cost, pnl, pct, mfd = (
            np.array(c, dtype=np.float64) for c in numbers
        )
        return pm.TradeTable(
            trade_group_id=np.array(ids, dtype=np.str_),
            coin=np.array(coins, dtype=np.str_),
            opened_at=opened,
            closed_at=closed,  # NULL (open) becomes NaN
            cost_usd=cost,
            open_cost_usd=open_cost,
            realized_pnl_usd=pnl,
            realized_pnl_pct=pct,
            max_floating_drawdown=mfd,
            dca_count=np.array(dca, dtype=np.int64),
            exit_reason=np.array(reasons, dtype=np.str_),
        )

    def latest_mode(self) -> Mode | None:
        """The mode of the newest equity sample or trade: the mode the trader runs in now."""
        newest: list[tuple[float, Mode]] = []
        with self.snapshot():
            for m in Mode:
                for sql in (
                    "SELECT max(minute) * 60 FROM equity WHERE mode = ?",
                    "SELECT max(coalesce(closed_at, opened_at)) FROM trades WHERE mode = ?",
                ):
                    (t,) = self._rows("reading the mode", sql, (m.value,))[0]
                    if t is not None:
                        newest.append((float(t), m))
        return max(newest)[1] if newest else None
