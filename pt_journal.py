"""The trade journal (``journal.sqlite3``): every order, fill, trade and equity sample.

Written by one process, the trader (with the paper broker inside it); read by any number of
others (hub, analytics, backtest report) through :meth:`TradeJournal.open_readonly`.

- Every order is committed as an *intent* before it is sent (DESIGN.md §6). After a crash the
  trader reconciles :meth:`~TradeJournal.unfinished_orders` with the broker by client order id.
- Fills are idempotent by (client order id, venue fill id): a fill reported twice, or found
  again during reconciliation, is recorded once.
- Each fill updates its trade's row in the same transaction, from the journal's own lots with
  fees included: a buy adds quantity and cost (+ fee); a sell realises proceeds − fee − the
  average cost of the quantity sold. Metrics therefore read a few thousand trade rows and the
  daily equity, never the fills.

Writes are short ``BEGIN IMMEDIATE`` transactions (WAL, ``synchronous=FULL``); readers see one
consistent state per query, or per :meth:`~TradeJournal.snapshot`. The file format is in
:mod:`pt_journal_schema`; the metrics over it are in :mod:`pt_analytics` and :mod:`pt_metrics`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

from pt_journal_reader import JournalCounts, JournalReader, coin_name, number
from pt_journal_schema import (
    ALL_COINS,
    ALLOWED_NEXT,
    OPEN_TRADE,
    UNFINISHED_ORDER,
    JournalError,
    OrderState,
    PaperWallet,
    TradeRecord,
)
from pt_types import DAY, HOUR, Fill, OrderIntent, OrderTag, Side, Signal

__all__ = ["JournalCounts", "SignalSnapshot", "TradeJournal", "coin_name"]

log = logging.getLogger(__name__)

SignalSnapshot = Signal | Mapping[str, Any] | None
# A sell leaving less than this share of what was bought closes the trade (venue rounding dust).
DUST_FRACTION = 1e-6
_FAR_PAST = -(2**62)
_HOUR_MIN, _DAY_MIN = HOUR // 60, DAY // 60  # equity rows are keyed by minute


def _json_default(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    item = getattr(value, "item", None)  # numpy scalars
    return item() if callable(item) else str(value)


def _signal_json(signal: SignalSnapshot) -> str | None:
    if signal is None:
        return None
    if dataclasses.is_dataclass(signal) and not isinstance(signal, type):
        data: Any = dataclasses.asdict(signal)
    else:
        data = dict(signal)  # type: ignore[arg-type]
    return json.dumps(data, default=_json_default, sort_keys=True)


class TradeJournal(JournalReader):
    """Orders, fills, trades, equity and the paper wallet in one SQLite file (module doc).

    ``mode`` is the writer's mode, stamped on everything it writes and the default filter of its
    queries, so a live trader never sees a demo run's positions or orders; a reader opened by
    :meth:`open_readonly` without a mode sees every mode. ``clock`` times order records unless a
    ``now`` is passed. Write methods raise :class:`JournalError` on a read-only journal.
    """

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Commit several writes together (a paper fill and its wallet, a backtest's batch);
        each write method alone is already its own short transaction."""
        with self._txn(True, "writing"):
            yield

    # -- orders --------------------------------------------------------------------------

    def record_intent(
        self,
        intent: OrderIntent,
        *,
        signal: SignalSnapshot = None,
        trade_group_id: str | None = None,
        now: float | None = None,
    ) -> str:
        """Commit an order before it is sent; returns its client order id (the intent's, or a
        new one). Recording the same id again returns it unchanged, so a retry is harmless.

        The trade group is the coin's open trade, else the one a pending buy started, else a new
        one for a buy; a sell needs an open trade. ``signal`` is the learned-from snapshot."""
        coin, side, tag = coin_name(intent.coin), Side(intent.side), OrderTag(intent.tag)
        if intent.quantity is None and intent.usd_amount is None:
            raise ValueError("an order needs a quantity or a USD amount")
        qty = usd = None
        if intent.quantity is not None:
            qty = number("quantity", intent.quantity, positive=True)
        if intent.usd_amount is not None:
            usd = number("usd_amount", intent.usd_amount, positive=True)
        buy_only, sell_only = tag in (OrderTag.ENTRY, OrderTag.DCA), tag is OrderTag.TRAIL_SELL
        if (buy_only and side is Side.SELL) or (sell_only and side is Side.BUY):
            raise ValueError(f"a {tag.value} order cannot be a {side.value}")
        cid = intent.client_order_id or uuid.uuid4().hex
        at = self._at(now)
        with self._txn(True, "recording an order intent") as conn:
            row = conn.execute(
                "SELECT coin, side, tag FROM orders WHERE client_order_id = ?", (cid,)
            ).fetchone()
            if row is not None:
                if tuple(row) != (coin, side.value, tag.value):
                    raise JournalError(f"client order id {cid} is already used by another order")
                return cid
            group = trade_group_id or self._group_for(conn, coin, side, at)
            conn.execute(
                "INSERT INTO orders (client_order_id, trade_group_id, mode, coin, side, tag, "
                "requested_quantity, requested_usd, state, reason, signal_json, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (cid, group, self._writer_mode, coin, side.value, tag.value, qty, usd,
                 OrderState.INTENT.value, intent.reason, _signal_json(signal), at, at),
            )  # fmt: skip
        log.info("order intent %s %s %s %s: %s", cid, tag.value, side.value, coin, intent.reason)
        return cid

    def _group_for(self, conn: sqlite3.Connection, coin: str, side: Side, at: float) -> str:
        mode = self._writer_mode
        row = conn.execute(
            "SELECT trade_group_id FROM trades INDEXED BY trades_open "
            f"WHERE mode = ? AND coin = ? AND {OPEN_TRADE} "
            "ORDER BY opened_at DESC LIMIT 1",
            (mode, coin),
        ).fetchone()
        if row is None:
            row = conn.execute(
                "SELECT trade_group_id FROM orders INDEXED BY orders_unfinished "
                f"WHERE mode = ? AND coin = ? AND side = 'buy' AND {UNFINISHED_ORDER} "
                "ORDER BY created_at DESC LIMIT 1",
                (mode, coin),
            ).fetchone()
        if row is not None:
            return str(row[0])
        if side is Side.SELL:
            raise JournalError(f"journal {self.path}: no open {coin} trade ({mode}) to sell")
        return f"{coin}-{int(at)}-{uuid.uuid4().hex[:8]}"

    def mark_sent(
        self, client_order_id: str, venue_order_id: str | None, *, now: float | None = None
    ) -> None:
        """The broker accepted the order (``venue_order_id`` when it gave one)."""
        at = self._at(now)
        with self._txn(True, "marking an order sent") as conn:
            cur = conn.execute(
                "UPDATE orders SET venue_order_id = coalesce(venue_order_id, ?), "
                "state = CASE WHEN state = 'intent' THEN 'sent' ELSE state END, updated_at = ? "
                "WHERE client_order_id = ?",
                (venue_order_id, at, client_order_id),
            )
            if cur.rowcount == 0:
                raise JournalError(f"journal {self.path}: no order {client_order_id}")

    def mark_order_state(
        self, client_order_id: str, state: OrderState, *, detail: str = "", now: float | None = None
    ) -> None:
        """Move an order on (``detail``: the venue's words, e.g. why it was rejected). Setting
        the state it already has is a no-op; a finished order cannot change."""
        new = OrderState(state)
        at = self._at(now)
        with self._txn(True, "changing an order's state") as conn:
            row = conn.execute(
                "SELECT state FROM orders WHERE client_order_id = ?", (client_order_id,)
            ).fetchone()
            if row is None:
                raise JournalError(f"journal {self.path}: no order {client_order_id}")
            old = OrderState(row[0])
            if new is not old and new not in ALLOWED_NEXT[old]:
                raise JournalError(
                    f"order {client_order_id} is {old.value}; it cannot become {new.value}"
                )
            conn.execute(
                "UPDATE orders SET state = ?, detail = CASE WHEN ? = '' THEN detail ELSE ? END, "
                "updated_at = ? WHERE client_order_id = ?",
                (new.value, detail, detail, at, client_order_id),
            )

    def record_fill(self, fill: Fill, fill_id: str) -> bool:
        """Record a fill of a journaled order and update its trade; False when this
        ``(client_order_id, fill_id)`` was recorded before (then nothing changes).

        A fill always counts, even on an order thought failed: the venue's word wins. The order
        becomes ``filled`` once its requested quantity is reached, else ``partially_filled``
        until the trader marks it (USD-sized orders are marked by the trader)."""
        q = number("fill quantity", fill.quantity, positive=True)
        p = number("fill price", fill.price, positive=True)
        fee = number("fill fee", fill.fee_usd)
        t = number("fill time", fill.time)
        if not str(fill_id):
            raise ValueError("a fill needs the venue's fill id (any text unique within its order)")
        with self._txn(True, "recording a fill") as conn:
            order = conn.execute(
                "SELECT coin, side, tag, state, requested_quantity, filled_quantity, "
                "trade_group_id, reason, mode FROM orders WHERE client_order_id = ?",
                (fill.client_order_id,),
            ).fetchone()
            if order is None:
                raise JournalError(
                    f"journal {self.path}: fill for unknown order {fill.client_order_id} "
                    "(record_intent comes first)"
                )
            coin, side, tag, state, requested, filled, group, reason, mode = order
            if (coin_name(fill.coin), Side(fill.side).value) != (coin, side):
                raise JournalError(
                    f"fill {fill_id} ({fill.side} {fill.coin}) does not match order "
                    f"{fill.client_order_id} ({side} {coin})"
                )
            cur = conn.execute(
                "INSERT OR IGNORE INTO fills (client_order_id, venue_fill_id, coin, side, "
                "quantity, price, fee_usd, time, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (fill.client_order_id, str(fill_id), coin, side, q, p, fee, t, self._clock()),
            )
            if cur.rowcount == 0:
                return False
            total = filled + q
            if state not in (OrderState.CANCELED.value, OrderState.FILLED.value):
                done = requested is not None and total >= requested * (1 - 1e-9)
                state = (OrderState.FILLED if done else OrderState.PARTIALLY_FILLED).value
            conn.execute(
                "UPDATE orders SET filled_quantity = ?, filled_usd = filled_usd + ?, "
                "fees_usd = fees_usd + ?, state = ?, updated_at = ? WHERE client_order_id = ?",
                (total, q * p, fee, state, t, fill.client_order_id),
            )
            if side == Side.BUY.value:
                first_dca = tag == OrderTag.DCA.value and filled == 0
                _apply_buy(conn, group, coin, mode, (q, p, fee, t), first_dca=first_dca)
            else:
                label = f"{tag}: {reason}" if reason else str(tag)
                _apply_sell(conn, self.path, group, (q, p, fee, t), label)
            _track_open_cost(conn, mode, coin, t)
        return True

    # -- the original fork's names: an order filled at once (backtests, simple callers) ---------

    def _filled_at_once(
        self, intent: OrderIntent, price: float, fee_usd: float, now: float, signal: SignalSnapshot
    ) -> str:
        with self.transaction():
            cid = self.record_intent(intent, signal=signal, now=now)
            self.mark_sent(cid, None, now=now)
            qty = float(intent.quantity or 0.0)
            fill = Fill(cid, intent.coin, intent.side, qty, price, fee_usd, now)
            self.record_fill(fill, f"{cid}-1")
            self.mark_order_state(cid, OrderState.FILLED, now=now)
            order = self.order(cid)
        assert order is not None  # written just above, in the same transaction
        return order.trade_group_id

    def log_entry(
        self,
        coin: str,
        quantity: float,
        price: float,
        fee_usd: float,
        now: float,
        *,
        reason: str = "",
        signal: SignalSnapshot = None,
    ) -> str:
        """An entry buy filled at once; returns the new trade group id."""
        intent = OrderIntent(coin, Side.BUY, OrderTag.ENTRY, reason, quantity=quantity)
        return self._filled_at_once(intent, price, fee_usd, now, signal)

    def log_dca(
        self,
        coin: str,
        quantity: float,
        price: float,
        fee_usd: float,
        now: float,
        *,
        reason: str = "",
        signal: SignalSnapshot = None,
    ) -> str:
        """A DCA buy into the coin's open trade, filled at once; returns the trade group id."""
        intent = OrderIntent(coin, Side.BUY, OrderTag.DCA, reason, quantity=quantity)
        return self._filled_at_once(intent, price, fee_usd, now, signal)

    def log_exit(
        self,
        coin: str,
        price: float,
        fee_usd: float,
        now: float,
        *,
        quantity: float | None = None,
        reason: str = "",
        tag: OrderTag = OrderTag.TRAIL_SELL,
        signal: SignalSnapshot = None,
    ) -> TradeRecord:
        """Sell ``quantity`` (default: all) of the coin's open trade at once; returns the trade."""
        trade = self.open_trade(coin)
        if trade is None:
            raise JournalError(f"journal {self.path}: no open {coin_name(coin)} trade to exit")
        qty = trade.quantity if quantity is None else quantity
        intent = OrderIntent(coin, Side.SELL, tag, reason, quantity=qty)
        group = self._filled_at_once(intent, price, fee_usd, now, signal)
        result = self.trade(group)
        assert result is not None
        return result

    # -- marks, equity, wallet, state ------------------------------------------------------

    def mark_price(self, trade_group_id: str, bid: float, now: float) -> float:
        """Mark an open trade at ``bid``; returns its max floating drawdown (a positive fraction
        of its open cost). Writes only when the drawdown deepens, so marking each tick is cheap."""
        b = number("bid", bid, positive=True)
        rows = self._rows(
            "reading a trade",
            "SELECT quantity, open_cost_usd, max_floating_drawdown, status FROM trades "
            "WHERE trade_group_id = ?",
            (trade_group_id,),
        )
        if not rows:
            raise JournalError(f"journal {self.path}: no trade {trade_group_id}")
        qty, cost, mfd, status = rows[0]
        if status != "open" or cost <= 0 or qty <= 0:
            return float(mfd)
        dd = (cost - qty * b) / cost
        if dd <= mfd:
            return float(mfd)
        with self._txn(True, "marking a trade") as conn:
            conn.execute(
                "UPDATE trades SET max_floating_drawdown = ?, max_floating_drawdown_at = ? "
                "WHERE trade_group_id = ? AND max_floating_drawdown < ?",
                (dd, number("time", now), trade_group_id, dd),
            )
        return float(dd)

    def record_equity(self, now: float, equity: float, cash: float, positions_value: float) -> None:
        """Sample the account (equity = cash + Σ quantity × bid) at every fill and day end.

        Thinned as it ages, always keeping the last sample of each bucket: one per minute for
        the last day, one per hour for the last 30 days, one per UTC day before that. The last
        sample of every UTC day survives, so the daily series of metrics.md stays exact."""
        t = number("time", now)
        values = (
            number("equity", equity),
            number("cash", cash),
            number("positions value", positions_value),
        )
        mode = self._writer_mode
        hour_cut = math.floor((t - DAY) / HOUR) * _HOUR_MIN
        day_cut = math.floor((t - 30 * DAY) / DAY) * _DAY_MIN
        done_hour, done_day = self._compacted.get(mode, (_FAR_PAST, _FAR_PAST))
        with self._txn(True, "recording equity") as conn:
            conn.execute(
                "INSERT INTO equity (mode, minute, time, equity, cash, positions_value) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (mode, minute) DO UPDATE SET "
                "time = excluded.time, equity = excluded.equity, cash = excluded.cash, "
                "positions_value = excluded.positions_value WHERE excluded.time >= time",
                (mode, math.floor(t / 60), t, *values),
            )
            for lo, hi, size in ((done_hour, hour_cut, _HOUR_MIN), (done_day, day_cut, _DAY_MIN)):
                if hi > lo:  # only what aged past a cut since the last call
                    conn.execute(
                        "DELETE FROM equity WHERE mode = ? AND minute >= ? AND minute < ? AND "
                        "minute NOT IN (SELECT max(minute) FROM equity WHERE mode = ? AND "
                        "minute >= ? AND minute < ? GROUP BY minute / ?)",
                        (mode, lo, hi, mode, lo, hi, size),
                    )
        self._compacted[mode] = (max(done_hour, hour_cut), max(done_day, day_cut))

    def set_paper_wallet(self, wallet: PaperWallet, *, now: float | None = None) -> None:
        """Save the wallet; call it inside :meth:`transaction` with its fill so both commit
        together and a restart resumes exactly."""
        cash = number("cash", wallet.cash_usd)
        held = {coin_name(c): number(f"{c} holding", q) for c, q in wallet.holdings.items()}
        at = self._at(now)
        mode = self._writer_mode
        with self._txn(True, "saving the paper wallet") as conn:
            conn.execute(
                "INSERT INTO paper_wallet (mode, cash_usd, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (mode) DO UPDATE SET cash_usd = excluded.cash_usd, "
                "updated_at = excluded.updated_at",
                (mode, cash, at),
            )
            conn.execute("DELETE FROM paper_holdings WHERE mode = ?", (mode,))
            conn.executemany(
                "INSERT INTO paper_holdings (mode, coin, quantity) VALUES (?, ?, ?)",
                [(mode, c, q) for c, q in sorted(held.items()) if q > 0],
            )

    def save_state(self, key: str, value: Any, *, now: float | None = None) -> None:
        """Keep a small JSON value for the trader (e.g. a trailing peak) in its journal, so it
        survives a restart and can commit with the fill that changed it."""
        text = json.dumps(value, default=_json_default, sort_keys=True)
        with self._txn(True, "saving trader state") as conn:
            conn.execute(
                "INSERT INTO trader_state (mode, key, value_json, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (mode, key) DO UPDATE SET value_json = excluded.value_json, "
                "updated_at = excluded.updated_at",
                (self._writer_mode, str(key), text, self._at(now)),
            )


# ---------------------------------------------------------------------------------------------
# Keeping each trade row equal to its lots (inside the fill's transaction)

FillValues = tuple[float, float, float, float]  # quantity, price, fee, time


def _apply_buy(
    conn: sqlite3.Connection,
    group: str,
    coin: str,
    mode: str,
    fill: FillValues,
    *,
    first_dca: bool,
) -> None:
    """A buy adds its quantity and its cost with the fee to the trade (opened by its first buy)."""
    q, p, fee, t = fill
    cost = q * p + fee
    row = conn.execute("SELECT status FROM trades WHERE trade_group_id = ?", (group,)).fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO trades (trade_group_id, coin, mode, status, opened_at, quantity, "
            "bought_quantity, cost_usd, open_cost_usd, fees_usd, dca_count, updated_at) "
            "VALUES (?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?)",
            (group, coin, mode, t, q, q, cost, cost, fee, int(first_dca), t),
        )
        return
    if row[0] == "closed":
        log.warning("journal: a buy fill reopens the closed trade %s", group)
    conn.execute(
        "UPDATE trades SET status = 'open', closed_at = NULL, exit_reason = '', "
        "opened_at = min(opened_at, ?), quantity = quantity + ?, "
        "bought_quantity = bought_quantity + ?, cost_usd = cost_usd + ?, "
        "open_cost_usd = open_cost_usd + ?, fees_usd = fees_usd + ?, dca_count = dca_count + ?, "
        "realized_pnl_pct = 100.0 * realized_pnl_usd / (cost_usd + ?), updated_at = ? "
        "WHERE trade_group_id = ?",
        (t, q, q, cost, cost, fee, int(first_dca), cost, t, group),
    )


def _apply_sell(
    conn: sqlite3.Connection, path: Path, group: str, fill: FillValues, exit_reason: str
) -> None:
    """A sell realises proceeds − fee − the average cost of what it sold; selling (nearly)
    everything closes the trade. The sell price also marks the floating drawdown."""
    q, p, fee, t = fill
    row = conn.execute(
        "SELECT quantity, bought_quantity, cost_usd, open_cost_usd, realized_pnl_usd, "
        "max_floating_drawdown FROM trades WHERE trade_group_id = ?",
        (group,),
    ).fetchone()
    if row is None:
        raise JournalError(f"journal {path}: sell fill for trade {group}, which bought nothing")
    held, bought, cost, open_cost, realized, mfd = (float(v) for v in row)
    if q > held * (1 + 1e-9) + 1e-12:
        log.warning("journal: trade %s sells %s but holds %s", group, q, held)
    left = held - q
    closing = left <= max(1e-12, bought * DUST_FRACTION)
    cost_sold = open_cost if closing or held <= 0 else open_cost * q / held
    realized += q * p - fee - cost_sold
    if open_cost > 0 and held > 0:
        mfd = max(mfd, (open_cost - held * p) / open_cost)
    conn.execute(
        "UPDATE trades SET quantity = ?, open_cost_usd = ?, proceeds_usd = proceeds_usd + ?, "
        "fees_usd = fees_usd + ?, realized_pnl_usd = ?, realized_pnl_pct = ?, "
        "max_floating_drawdown = ?, status = ?, closed_at = ?, exit_reason = ?, updated_at = ? "
        "WHERE trade_group_id = ?",
        (
            0.0 if closing else left,
            0.0 if closing else open_cost - cost_sold,
            q * p,
            fee,
            realized,
            100.0 * realized / cost if cost > 0 else 0.0,
            mfd,
            "closed" if closing else "open",
            t if closing else None,
            exit_reason if closing else "",
            t,
            group,
        ),
    )


def _track_open_cost(conn: sqlite3.Connection, mode: str, coin: str, t: float) -> None:
    """Update today's highest and last Σ open cost, for the coin and for the account."""
    day = math.floor(t / DAY)
    for key, only_coin in ((ALL_COINS, None), (coin, coin)):
        if only_coin is None:
            total = conn.execute(
                "SELECT coalesce(sum(open_cost_usd), 0) FROM trades "
                f"INDEXED BY trades_open WHERE mode = ? AND {OPEN_TRADE}",
                (mode,),
            ).fetchone()[0]
        else:
            total = conn.execute(
                "SELECT coalesce(sum(open_cost_usd), 0) FROM trades "
                f"INDEXED BY trades_open WHERE mode = ? AND coin = ? AND {OPEN_TRADE}",
                (mode, only_coin),
            ).fetchone()[0]
        conn.execute(
            "INSERT INTO open_cost_days (mode, coin, day, max_open_cost, last_open_cost, last_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (mode, coin, day) DO UPDATE SET "
            "max_open_cost = max(max_open_cost, excluded.max_open_cost), "
            "last_open_cost = CASE WHEN excluded.last_at >= last_at "
            "THEN excluded.last_open_cost ELSE last_open_cost END, "
            "last_at = max(last_at, excluded.last_at)",
            (mode, key, day, total, total, t),
        )
