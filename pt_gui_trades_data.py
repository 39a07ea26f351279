"""What the hub's trading panels show, read and formatted off the Tk thread (no tkinter here).

:class:`TradesLoader` reads ``state/trader_status.json`` (schema ``trader_status/1``) and the
journal's fills and builds a :class:`TradesView`: ready text for "Current trades", the
"Account" box and the "Trade history" (original-behaviour.md §4.4). It re-reads the status
file only when its stat changed (and builds nothing new when its ``seq`` did not), and opens
the journal only when the database or its WAL changed, then takes only the fills above the
last row id it has seen, replaying them with the journal's own average-cost accounting to give
each sell its realized PnL. The widgets are in :mod:`pt_gui_trades`.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from pt_format import price_text
from pt_gui_theme import Tone, tone_of
from pt_journal import DUST_FRACTION, TradeJournal
from pt_journal_schema import FillRecord, JournalError, JournalMissingError
from pt_metrics import DASH, fmt_usd
from pt_state import DataLayout, StateReader, stat_key
from pt_strategy import StrategyConfig
from pt_strategy_display import dca_affordability
from pt_trader import STATUS_SCHEMA
from pt_types import DAY, Mode, OrderTag, Side

log = logging.getLogger(__name__)

HISTORY_LINES = 250
STALE_AFTER_S = 30.0  # wall seconds without a new status: the trader is not writing
READ_TIMEOUT_S = 2.0

# ---------------------------------------------------------------------------------------------
# Formats (spec §4.4): pure, so they are tested without Tk


def fmt_price(value: float | None) -> str:
    """``$43,250.5``, ``$0.1234``: decimals by magnitude, trailing zeros trimmed."""
    if value is None or not math.isfinite(value):
        return DASH
    return f"{'-' if value < 0 else ''}${price_text(abs(value))}"


def fmt_signed_pct(value: float | None) -> str:
    """A percentage that is already in percent: ``+1.23%``."""
    return f"{value:+.2f}%" if value is not None and math.isfinite(value) else DASH


def fmt_qty(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value:,.8f}".rstrip("0").rstrip(".") or "0"


def fmt_when(t: float | None, tz: tzinfo | None, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
    return DASH if t is None else datetime.fromtimestamp(t, tz=tz).strftime(pattern)


# ---------------------------------------------------------------------------------------------
# What the panels show, as text (built on the worker thread)


@dataclass(frozen=True)
class TradeRow:
    coin: str
    cells: tuple[str, ...]  # one per column of the table
    problem: str = ""


@dataclass(frozen=True)
class AccountLine:
    label: str
    value: str
    tone: Tone = "neutral"


@dataclass(frozen=True)
class HistoryLine:
    fill_id: int
    time: float
    text: str
    tone: Tone = "neutral"


@dataclass(frozen=True)
class TradesView:
    """Everything the three panels show; the Tk thread only copies it into widgets."""

    status_seq: int
    fills_seen: int
    mode: str
    note: str  # "status 12:00:01" (and whether it is stale)
    problem: str  # the trader's own problem (paused, auth, clock), or an unreadable journal
    stale: bool
    rules: str  # the settings behind the DCA and trail columns
    rows: tuple[TradeRow, ...]
    account: tuple[AccountLine, ...]
    history: tuple[HistoryLine, ...]  # newest first

    @property
    def coin_problems(self) -> tuple[str, ...]:
        return tuple(f"{r.coin}: {r.problem}" for r in self.rows if r.problem)


def _num(raw: Mapping[str, Any], key: str) -> float | None:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def rules_text(config: StrategyConfig) -> str:
    """The settings the original put in its column titles; too wide for a title, so they go
    next to the table's heading."""
    return (
        f"trail starts +{config.pm_start_pct_no_dca:g}% (+{config.pm_start_pct_with_dca:g}% "
        f"after a DCA), gap {config.trailing_gap_pct:g}% · max {config.max_dca_buys_per_24h} "
        "DCA / 24 h"
    )


def _next_dca(raw: Mapping[str, Any]) -> str:
    price = _num(raw, "next_dca_price")
    if price is None:
        return str(raw.get("next_dca_display") or DASH)
    return f"{fmt_price(price)} · {raw.get('next_dca_source') or DASH}"


def _trail(raw: Mapping[str, Any]) -> str:
    line = _num(raw, "trailing_line")
    if line is None:
        return DASH
    dist = fmt_signed_pct(_num(raw, "trailing_distance_pct"))
    if raw.get("trailing_active"):
        return f"{fmt_price(line)} · ACTIVE · peak {fmt_price(_num(raw, 'trailing_peak'))} · {dist}"
    return f"{fmt_price(line)} · waiting · {dist}"


def trade_row(raw: Mapping[str, Any], dca_24h: int, config: StrategyConfig) -> TradeRow:
    """One coin of ``trader_status/1`` as table cells."""
    coin = str(raw.get("coin", "?"))
    qty = _num(raw, "quantity") or 0.0
    bid, held = _num(raw, "bid"), qty > 0
    value = qty * bid if bid is not None and held else None
    cells = (
        coin,
        fmt_qty(qty) if held else "0",
        fmt_usd(value),
        fmt_price(_num(raw, "avg_cost")) if held else DASH,
        fmt_price(_num(raw, "ask")),
        fmt_signed_pct(_num(raw, "pnl_buy_pct")),
        fmt_price(bid),
        fmt_signed_pct(_num(raw, "pnl_sell_pct")),
        str(int(_num(raw, "dca_stage") or 0)) if held else DASH,
        f"{dca_24h}/{config.max_dca_buys_per_24h}" if held else DASH,
        _next_dca(raw) if held else DASH,
        _trail(raw) if held else DASH,
    )
    return TradeRow(coin, cells, str(raw.get("problem") or ""))


def trade_rows(
    data: Mapping[str, Any], dca_24h: Mapping[str, int], config: StrategyConfig
) -> tuple[TradeRow, ...]:
    """Held coins, and every coin that cannot trade (its problem must be seen), in the
    settings' coin order."""
    coins = [c for c in data.get("coins", ()) if isinstance(c, Mapping)]
    shown = [c for c in coins if (_num(c, "quantity") or 0) > 0 or c.get("problem")]
    order = {coin: i for i, coin in enumerate(config.coins)}
    shown.sort(key=lambda c: (order.get(str(c.get("coin")), len(order)), str(c.get("coin"))))
    return tuple(trade_row(c, dca_24h.get(str(c.get("coin")), 0), config) for c in shown)


def account_lines(
    data: Mapping[str, Any] | None, realized: float | None, config: StrategyConfig
) -> tuple[AccountLine, ...]:
    """The Account box (spec §4.4), with DCA affordability from the same rules as the trader."""
    account = data.get("account") if data else None
    raw: Mapping[str, Any] = account if isinstance(account, Mapping) else {}
    total, cash, in_trade = (
        _num(raw, "total_value"),
        _num(raw, "cash"),
        _num(raw, "percent_in_trade"),
    )
    holdings = total - cash if total is not None and cash is not None else None
    spread = single = DASH
    if total is not None and total > 0:
        afford = dca_affordability(config, total)
        spread, single = str(afford.spread), str(afford.single)
    return (
        AccountLine("Total account value", fmt_usd(total)),
        AccountLine("Holdings value", fmt_usd(holdings)),
        AccountLine("Buying power", fmt_usd(cash)),
        AccountLine("Percent in trade", DASH if in_trade is None else f"{in_trade:.2f}%"),
        AccountLine("DCA levels (spread)", spread),
        AccountLine("DCA levels (single)", single),
        AccountLine("Total realized", fmt_usd(realized, signed=True), tone_of(realized)),
    )


# ---------------------------------------------------------------------------------------------
# The journal's fills, replayed in row order to know each sell's realized PnL


@dataclass
class _Lot:
    held: float = 0.0
    bought: float = 0.0
    open_cost: float = 0.0


@dataclass
class FillBook:
    """Fills seen so far (worker-only, mutable): each trade's open lot, as the journal's own
    accounting keeps it (average cost, fees included), the newest history lines, the realized
    total and each coin's DCA orders since its last sell."""

    tz: tzinfo | None = None
    limit: int = HISTORY_LINES
    last_id: int = 0
    last_time: float | None = None
    count: int = 0
    realized: float = 0.0
    lots: dict[str, _Lot] = field(default_factory=dict)
    lines: deque[HistoryLine] = field(default_factory=deque)
    dca: dict[str, dict[str, float]] = field(default_factory=dict)  # coin → order id → time

    def add(self, fill: FillRecord, reason: str) -> None:
        lot = self.lots.setdefault(fill.trade_group_id, _Lot())
        q, p, fee = fill.quantity, fill.price, fill.fee_usd
        extra: list[str] = []
        tone: Tone = "neutral"
        if fill.side is Side.BUY:
            if fill.tag is OrderTag.DCA and lot.held > 0:
                avg = lot.open_cost / lot.held
                extra.append(f"pnl@trade={(p - avg) / avg * 100:+.2f}%")
                self.dca.setdefault(fill.coin, {}).setdefault(fill.client_order_id, fill.time)
            lot.held, lot.bought, lot.open_cost = (
                lot.held + q,
                lot.bought + q,
                lot.open_cost + q * p + fee,
            )
        else:
            left = lot.held - q
            closing = left <= max(1e-12, lot.bought * DUST_FRACTION)
            cost_sold = lot.open_cost if closing or lot.held <= 0 else lot.open_cost * q / lot.held
            realized = q * p - fee - cost_sold
            self.realized += realized
            if cost_sold > 0:
                extra.append(f"pnl@trade={realized / cost_sold * 100:+.2f}%")
            extra.append(f"realized={realized:+,.2f}")
            tone = tone_of(realized)
            lot.held, lot.open_cost = (0.0, 0.0) if closing else (left, lot.open_cost - cost_sold)
            self.dca.pop(fill.coin, None)
        what = fill.side.value.upper() + ("" if fill.tag is OrderTag.ENTRY else f"/{fill.tag}")
        parts = [fmt_when(fill.time, self.tz), f"{what} {fill.coin}", f"qty={fmt_qty(q)}",
                 f"px={fmt_price(p)}", *extra]  # fmt: skip
        if reason:
            parts.append(f"reason: {reason}")
        self.lines.appendleft(HistoryLine(fill.id, fill.time, " | ".join(parts), tone))
        while len(self.lines) > self.limit:
            self.lines.pop()
        self.last_id, self.count = max(self.last_id, fill.id), self.count + 1
        self.last_time = fill.time if self.last_time is None else max(self.last_time, fill.time)

    def dca_24h(self, now: float | None) -> dict[str, int]:
        """DCA orders after each coin's last sell within 24 h of ``now`` (the mode's time)."""
        if now is None:
            return {}
        return {c: sum(1 for t in ts.values() if 0 <= now - t < DAY) for c, ts in self.dca.items()}


# ---------------------------------------------------------------------------------------------
# The loader: every file read, on the worker thread


def _check_status(data: Any) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("coins"), list):
        raise ValueError("trader status data must be an object with a 'coins' list")


class TradesLoader:
    """Reads the trader status and the journal's new fills, and builds a :class:`TradesView`
    when anything changed (None otherwise). ``status_reads``/``journal_reads`` count the times
    a file was actually parsed or opened, ``fills_read`` the fill rows fetched. ``mode`` limits
    the journal to one mode's fills (None: every mode)."""

    def __init__(
        self,
        layout: DataLayout,
        *,
        mode: Mode | None = None,
        tz: tzinfo | None = None,
        wall: Callable[[], float] = time.time,
        stale_after_s: float = STALE_AFTER_S,
        busy_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        self.layout, self.mode, self.tz = layout, mode, tz
        self._wall, self._stale_after, self._timeout = wall, stale_after_s, busy_timeout_s
        self._status = StateReader(
            layout.trader_status_file, STATUS_SCHEMA, validate=_check_status, clock=wall
        )
        self._seq = -1
        self._stale = False
        self._journal_key: tuple[object, ...] | None = None
        self._journal_problem = ""
        self._book = FillBook(tz)
        self._config: StrategyConfig | None = None
        self.status_reads = self.journal_reads = self.fills_read = 0

    def load(self, config: StrategyConfig) -> TradesView | None:
        changed = self._read_status() | self._read_journal() | (config != self._config)
        env = self._status.last
        stale = env is not None and self._wall() - env.written_at > self._stale_after
        if not changed and stale == self._stale:
            return None
        self._config, self._stale = config, stale
        return self._build(config)

    def _read_status(self) -> bool:
        if not self._status.has_changed():
            return False
        self.status_reads += 1
        env = self._status.read()
        if env is None or env.seq == self._seq:
            return False
        self._seq = env.seq
        return True

    def _journal_stat(self) -> tuple[object, ...]:
        """The database and its WAL: a commit changes the WAL, a checkpoint the database. An
        empty WAL counts as none: opening a reader creates one, and it holds nothing."""
        db = self.layout.journal_db
        wal = stat_key(db.with_name(db.name + "-wal"))
        return (stat_key(db), wal if wal is not None and wal[2] > 0 else None)

    def _read_journal(self) -> bool:
        key = self._journal_stat()
        if key == self._journal_key:
            return False
        self._journal_key = key
        if key[0] is None:
            had = self._book.count > 0
            self._book = FillBook(self.tz)
            return had
        self.journal_reads += 1
        try:
            with (
                TradeJournal.open_readonly(
                    self.layout.journal_db, mode=self.mode, busy_timeout_s=self._timeout
                ) as journal,
                journal.snapshot(),
            ):
                changed = self._new_fills(journal)
        except JournalMissingError:
            return False
        except JournalError as exc:
            self._journal_key = None  # try again next time
            if str(exc) != self._journal_problem:
                log.warning("trade history: %s", exc)
            self._journal_problem = str(exc)
            return True
        if self._journal_problem:
            log.info("trade history: the journal reads again")
            self._journal_problem = ""
            changed = True
        return changed

    def _new_fills(self, journal: TradeJournal) -> bool:
        """Only the fills above the last row id; a full replay when the count says a fill was
        recorded with an older time (reconciliation) or the journal was replaced."""
        total, book = journal.counts().fills, self._book
        if total == book.count:
            return False
        fetched = journal.fills(since=book.last_time)
        fresh = [f for f in fetched if f.id > book.last_id]
        self.fills_read += len(fetched)
        if book.count + len(fresh) != total:
            self._book = book = FillBook(self.tz)
            fresh = list(journal.fills())
            self.fills_read += len(fresh)
        fresh.sort(key=lambda f: f.id)
        if len(fresh) > 20:
            reasons = {o.client_order_id: o.reason for o in journal.orders()}
        else:
            found = {f.client_order_id: journal.order(f.client_order_id) for f in fresh}
            reasons = {cid: o.reason for cid, o in found.items() if o is not None}
        for fill in fresh:
            book.add(fill, reasons.get(fill.client_order_id, ""))
        return True

    def _build(self, config: StrategyConfig) -> TradesView:
        env = self._status.last
        data: Mapping[str, Any] | None = env.data if env is not None else None
        now = _num(data, "time") if data else None
        rows = trade_rows(data, self._book.dca_24h(now), config) if data else ()
        if env is None:
            note = "no trader status yet"
        else:
            note = f"status {fmt_when(env.written_at, self.tz, '%H:%M:%S')}"
            note += " · not updating (trader stopped?)" if self._stale else ""
        problem = str(data.get("problem") or "") if data else ""
        if self._journal_problem:
            problem = "; ".join(filter(None, (problem, f"trade history: {self._journal_problem}")))
        return TradesView(
            status_seq=self._seq,
            fills_seen=self._book.count,
            mode=str(data.get("mode") or "") if data else "",
            note=note,
            problem=problem,
            stale=self._stale,
            rules=rules_text(config),
            rows=rows,
            account=account_lines(data, self._book.realized if self._book.count else None, config),
            history=tuple(self._book.lines),
        )
