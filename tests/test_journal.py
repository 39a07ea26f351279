"""The trade journal on real SQLite files: cost basis, crash-safe orders, idempotent fills,
equity thinning, migrations, bad files, read-only readers and a reader beside a writer process."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import pt_metrics as pm
from pt_analytics import PerformanceTracker
from pt_journal import TradeJournal
from pt_journal_schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    JournalError,
    JournalMissingError,
    OrderState,
    PaperWallet,
)
from pt_types import (
    DAY,
    HOUR,
    Fill,
    Mode,
    OrderIntent,
    OrderTag,
    Side,
    Signal,
    Timeframe,
    TimeframeSignal,
)

PROJECT = Path(__file__).resolve().parents[1]
T0 = 1_704_067_200.0  # 2024-01-01 00:00 UTC


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite3"


@pytest.fixture
def journal(path: Path) -> Iterator[TradeJournal]:
    with TradeJournal(path, mode=Mode.PAPER, clock=lambda: T0) as j:
        yield j


def buy(coin: str, tag: OrderTag = OrderTag.ENTRY, qty: float = 1.0, cid: str = "") -> OrderIntent:
    return OrderIntent(
        coin, Side.BUY, tag, f"{tag.value} {coin}", quantity=qty, client_order_id=cid
    )


def sell(coin: str, qty: float, cid: str = "", tag: OrderTag = OrderTag.TRAIL_SELL) -> OrderIntent:
    return OrderIntent(
        coin, Side.SELL, tag, "trail line crossed", quantity=qty, client_order_id=cid
    )


def fill(
    j: TradeJournal, cid: str, qty: float, price: float, *, fee: float, t: float, fid: str = "1"
) -> bool:
    order = j.order(cid)
    assert order is not None
    return j.record_fill(Fill(cid, order.coin, order.side, qty, price, fee, t), fid)


# -- cost basis ------------------------------------------------------------------------------


def test_cost_basis_comes_from_the_journals_own_lots_with_fees(journal: TradeJournal) -> None:
    group = journal.log_entry("BTC", 0.01, 40_000, 0.40, T0 + HOUR, reason="LONG 4 on 1h, 4h")
    trade = journal.trade(group)
    assert trade is not None and trade.is_open
    assert (trade.quantity, trade.cost_usd, trade.open_cost_usd) == (0.01, 400.40, 400.40)
    assert journal.log_dca("BTC", 0.01, 38_000, 0.38, T0 + DAY, reason="hard tier -5%") == group
    trade = journal.trade(group)
    assert trade is not None
    assert trade.cost_usd == pytest.approx(780.78) and trade.avg_cost == pytest.approx(39_039)
    assert trade.dca_count == 1 and trade.position().dca_stage == 1
    closed = journal.log_exit("BTC", 41_000, 0.82, T0 + 3 * DAY, reason="fell under 40 950")
    assert closed.trade_group_id == group and closed.status == "closed"
    assert closed.proceeds_usd == pytest.approx(820.0)
    assert closed.fees_usd == pytest.approx(1.60)
    assert closed.realized_pnl_usd == pytest.approx(820 - 0.82 - 780.78)  # 38.40
    assert closed.realized_pnl_pct == pytest.approx(38.40 / 780.78 * 100)
    assert (closed.quantity, closed.open_cost_usd, closed.closed_at) == (0.0, 0.0, T0 + 3 * DAY)
    assert closed.exit_reason == "TRAIL_SELL: fell under 40 950"
    assert closed.result == "win"
    assert [o.tag for o in journal.orders(trade_group_id=group)] == [
        OrderTag.ENTRY,
        OrderTag.DCA,
        OrderTag.TRAIL_SELL,
    ]


def test_a_losing_trade_is_recorded_and_counted_as_a_loss(journal: TradeJournal) -> None:
    journal.log_entry("ETH", 1.0, 2_000, 2.0, T0)
    closed = journal.log_exit("ETH", 1_900, 1.9, T0 + DAY, tag=OrderTag.MANUAL)
    assert closed.cost_usd == 2_002.0  # a buy's cost is positive, fee included
    assert closed.realized_pnl_usd == pytest.approx(1_900 - 1.9 - 2_002)  # -103.90
    assert closed.realized_pnl_usd < 0 and closed.realized_pnl_pct < 0
    assert closed.result == "loss"
    stats = PerformanceTracker(journal, tz=UTC).metrics(T0 + 2 * DAY).trades
    assert (stats.trades, stats.wins, stats.losses) == (1, 0, 1)
    assert stats.win_rate == 0.0 and stats.profit_factor == 0.0
    assert stats.realized_pnl_usd == pytest.approx(-103.90)


def test_partial_sells_realise_at_average_cost(journal: TradeJournal) -> None:
    group = journal.log_entry("SOL", 2.0, 100, 2.0, T0)  # cost 202, 101 a coin
    journal.log_exit("SOL", 120, 0.6, T0 + HOUR, quantity=0.5)
    trade = journal.trade(group)
    assert trade is not None and trade.is_open
    assert trade.realized_pnl_usd == pytest.approx(60 - 0.6 - 50.5)  # 8.90
    assert trade.quantity == 1.5 and trade.open_cost_usd == pytest.approx(151.5)
    closed = journal.log_exit("SOL", 90, 1.35, T0 + 2 * HOUR)
    assert closed.realized_pnl_usd == pytest.approx(8.9 + (135 - 1.35 - 151.5))  # -8.95
    assert closed.result == "loss" and closed.status == "closed"


def test_rounding_dust_left_by_a_sell_closes_the_trade(journal: TradeJournal) -> None:
    group = journal.log_entry("XRP", 1000.0, 0.5, 0.0, T0)
    closed = journal.log_exit("XRP", 0.6, 0.0, T0 + HOUR, quantity=1000.0 - 1e-7)
    assert closed.trade_group_id == group and closed.status == "closed"
    assert closed.realized_pnl_usd == pytest.approx((1000 - 1e-7) * 0.6 - 500)


# -- orders and fills ------------------------------------------------------------------------


def test_fills_are_recorded_once_per_venue_fill_id(journal: TradeJournal) -> None:
    cid = journal.record_intent(buy("BTC", qty=0.3))
    assert fill(journal, cid, 0.1, 50_000, fee=5.0, t=T0 + 1, fid="f1") is True
    assert fill(journal, cid, 0.1, 50_000, fee=5.0, t=T0 + 1, fid="f1") is False  # reported again
    order = journal.order(cid)
    assert order is not None
    assert (order.filled_quantity, order.state) == (0.1, OrderState.PARTIALLY_FILLED)
    assert fill(journal, cid, 0.2, 50_500, fee=10.1, t=T0 + 2, fid="f2") is True
    order = journal.order(cid)
    assert order is not None and order.state is OrderState.FILLED
    assert order.avg_price == pytest.approx((5_000 + 10_100) / 0.3)
    assert order.fees_usd == pytest.approx(15.1)
    trade = journal.trade(order.trade_group_id)
    assert trade is not None
    assert trade.quantity == pytest.approx(0.3)
    assert trade.cost_usd == pytest.approx(15_100 + 15.1)
    assert journal.counts().fills == 2
    assert [f.venue_fill_id for f in journal.fills(client_order_id=cid)] == ["f1", "f2"]


def test_the_intent_is_committed_before_sending_and_survives_a_kill(path: Path) -> None:
    code = f"""
        import os, signal, sys
        from pathlib import Path
        from pt_journal import TradeJournal
        from pt_types import Mode, OrderIntent, OrderTag, Side
        j = TradeJournal(Path({str(path)!r}), mode=Mode.LIVE)
        intent = OrderIntent("BTC", Side.BUY, OrderTag.ENTRY, "LONG 5", usd_amount=25.0)
        cid = j.record_intent(intent, signal={{"long": 5, "short": 0}})
        print(cid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # crash right where the order would be sent
    """
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    cid = done.stdout.strip()
    with TradeJournal(path, mode=Mode.LIVE) as j:  # the trader restarts
        (pending,) = j.unfinished_orders()
        assert pending.client_order_id == cid and pending.state is OrderState.INTENT
        assert (pending.requested_usd, pending.reason) == (25.0, "LONG 5")
        assert pending.signal == {"long": 5, "short": 0}
        # reconciliation: the broker knows it and it filled
        j.mark_sent(cid, "rh-1")
        j.record_fill(Fill(cid, "BTC", Side.BUY, 0.0005, 50_000, 0.1, T0), "rh-fill-1")
        j.mark_order_state(cid, OrderState.FILLED)
        assert j.unfinished_orders() == ()
        assert j.open_trade("BTC") is not None


def test_unfinished_orders_are_what_needs_reconciling(path: Path) -> None:
    with TradeJournal(path, mode=Mode.DEMO, clock=lambda: T0) as demo:
        demo.record_intent(buy("ETH"))  # another mode's order
    times = iter(T0 + i for i in range(100))
    with TradeJournal(path, mode=Mode.LIVE, clock=lambda: next(times)) as j:
        ids = [j.record_intent(buy(c)) for c in ("BTC", "ETH", "XRP", "BNB", "DOGE", "SOL")]
        j.mark_sent(ids[1], "v-eth")
        fill(j, ids[2], 0.5, 1.0, fee=0.0, t=T0)  # partially filled
        fill(j, ids[3], 1.0, 1.0, fee=0.0, t=T0)  # filled
        j.mark_order_state(ids[4], OrderState.REJECTED, detail="insufficient funds")
        j.mark_sent(ids[5], "v-sol")
        j.mark_order_state(ids[5], OrderState.CANCELED)
        unfinished = j.unfinished_orders()
        assert [o.client_order_id for o in unfinished] == ids[:3]
        assert [o.state for o in unfinished] == [
            OrderState.INTENT,
            OrderState.SENT,
            OrderState.PARTIALLY_FILLED,
        ]
        assert unfinished[1].venue_order_id == "v-eth"
        rejected = j.order(ids[4])
        assert rejected is not None and rejected.detail == "insufficient funds"
        assert len(j.unfinished_orders(mode=Mode.DEMO)) == 1


def test_order_states_move_forward_only(journal: TradeJournal) -> None:
    cid = journal.record_intent(buy("BTC"))
    journal.mark_sent(cid, "v1")
    journal.mark_sent(cid, "v1")  # again: no change, no error
    journal.mark_order_state(cid, OrderState.CANCELED)
    journal.mark_order_state(cid, OrderState.CANCELED)  # same state: a no-op
    with pytest.raises(JournalError, match="is canceled; it cannot become filled"):
        journal.mark_order_state(cid, OrderState.FILLED)
    with pytest.raises(JournalError, match="no order nope"):
        journal.mark_sent("nope", None)


def test_recording_an_intent_again_returns_the_same_order(journal: TradeJournal) -> None:
    first = journal.record_intent(buy("BTC", cid="c-1"))
    assert journal.record_intent(buy("BTC", cid="c-1")) == first == "c-1"
    assert journal.counts().orders == 1
    with pytest.raises(JournalError, match="already used"):
        journal.record_intent(buy("ETH", cid="c-1"))


def test_bad_fills_and_orders_are_refused(journal: TradeJournal) -> None:
    cid = journal.record_intent(buy("BTC"))
    with pytest.raises(JournalError, match="unknown order"):
        journal.record_fill(Fill("missing", "BTC", Side.BUY, 1, 1, 0, T0), "f")
    with pytest.raises(JournalError, match="does not match"):
        journal.record_fill(Fill(cid, "ETH", Side.BUY, 1, 1, 0, T0), "f")
    for qty, price, fee in ((0, 1, 0), (1, float("nan"), 0), (1, 1, -1), (1, float("inf"), 0)):
        with pytest.raises(ValueError, match="fill"):
            journal.record_fill(Fill(cid, "BTC", Side.BUY, qty, price, fee, T0), "f")
    with pytest.raises(ValueError, match="quantity or a USD amount"):
        journal.record_intent(OrderIntent("BTC", Side.BUY, OrderTag.ENTRY, "x"))
    with pytest.raises(ValueError, match="TRAIL_SELL order cannot be a buy"):
        journal.record_intent(OrderIntent("BTC", Side.BUY, OrderTag.TRAIL_SELL, "x", quantity=1))
    with pytest.raises(ValueError, match="invalid coin"):
        journal.record_intent(OrderIntent("BTC/USD", Side.BUY, OrderTag.ENTRY, "x", quantity=1))
    with pytest.raises(JournalError, match="no open DOGE trade"):
        journal.record_intent(sell("DOGE", 1.0))
    assert journal.counts().fills == 0


def test_the_learned_from_signal_is_stored_with_the_order(journal: TradeJournal) -> None:
    tf = TimeframeSignal(Timeframe.H4, int(T0), 101.0, 95.0, 100.5, 96.0)
    sig = Signal("BTC", 97.0, 5, 0, T0, (tf,), model_version="m-3")
    cid = journal.record_intent(buy("BTC"), signal=sig)
    order = journal.order(cid)
    assert order is not None and order.signal is not None
    assert (order.signal["long_level"], order.signal["model_version"]) == (5, "m-3")
    assert order.signal["timeframes"][0]["timeframe"] == "4h"
    assert order.signal["timeframes"][0]["low_bound"] == 96.0


def test_queries_take_ranges_coins_and_limits(journal: TradeJournal) -> None:
    for day, coin in enumerate(("BTC", "ETH", "BTC", "XRP")):
        journal.log_entry(coin, 1.0, 10.0, 0.0, T0 + day * DAY)
        journal.log_exit(coin, 11.0, 0.0, T0 + day * DAY + HOUR)
    journal.log_entry("ETH", 1.0, 10.0, 0.0, T0 + 9 * DAY)
    assert len(journal.trades()) == 5
    assert [t.coin for t in journal.trades(since=T0 + DAY, until=T0 + 3 * DAY)] == ["ETH", "BTC"]
    assert [t.coin for t in journal.trades(coin="btc")] == ["BTC", "BTC"]
    newest = journal.trades(limit=2, newest_first=True)
    assert [(t.coin, t.status) for t in newest] == [("ETH", "open"), ("XRP", "closed")]
    assert [t.coin for t in journal.open_trades()] == ["ETH"]
    assert len(journal.trades(status="closed")) == 4
    fills = journal.fills(since=T0 + DAY, until=T0 + 2 * DAY, coin="ETH")
    assert [(f.side, f.tag) for f in fills] == [
        (Side.BUY, OrderTag.ENTRY),
        (Side.SELL, OrderTag.TRAIL_SELL),
    ]
    assert len(journal.fills(limit=3, newest_first=True)) == 3
    assert len(journal.orders(tag=OrderTag.TRAIL_SELL)) == 4
    assert len(journal.orders(since=T0 + 9 * DAY)) == 1  # the clock stamps orders at T0…
    with pytest.raises(ValueError, match="limit"):
        journal.trades(limit=-1)


def test_marks_keep_the_deepest_floating_drawdown(journal: TradeJournal) -> None:
    group = journal.log_entry("BTC", 1.0, 100.0, 0.0, T0)
    assert journal.mark_price(group, 95.0, T0 + 1) == pytest.approx(0.05)
    assert journal.mark_price(group, 98.0, T0 + 2) == pytest.approx(0.05)  # not shallower
    assert journal.mark_price(group, 80.0, T0 + 3) == pytest.approx(0.20)
    trade = journal.trade(group)
    assert trade is not None
    assert trade.max_floating_drawdown == pytest.approx(0.2)
    assert trade.max_floating_drawdown_at == T0 + 3
    journal.log_dca("BTC", 1.0, 80.0, 0.0, T0 + 4)  # cost 180 for 2 coins
    assert journal.mark_price(group, 70.0, T0 + 5) == pytest.approx(40 / 180)
    journal.log_exit("BTC", 100.0, 0.0, T0 + 6)
    assert journal.mark_price(group, 1.0, T0 + 7) == pytest.approx(40 / 180)  # closed: frozen


# -- equity, wallet, state, modes ----------------------------------------------------------


def test_equity_is_thinned_with_age_but_keeps_every_day_end(journal: TradeJournal) -> None:
    step = 300  # a sample every 5 minutes for 45 days
    times = T0 + np.arange(0, 45 * DAY, step, dtype=np.float64)
    values = 10_000 + 500 * np.sin(np.arange(len(times)) / 50.0)
    with journal.transaction():
        for t, v in zip(times.tolist(), values.tolist(), strict=True):
            journal.record_equity(t, v, v - 100, 100)
        journal.record_equity(times[-1] + 10, 1.0, 1.0, 0.0)  # same minute: the later one wins
    now = float(times[-1]) + 10
    kept = journal.equity_series()
    last_day, month = kept.time >= now - DAY - HOUR, kept.time >= now - 31 * DAY
    assert np.sum(last_day) <= 24 * 12 + 12  # every 5-minute sample of the last day (and a bit)
    assert np.sum(month & ~last_day) <= 30 * 24  # one an hour
    assert np.sum(~month) <= 15  # one a day
    assert len(kept.time) == journal.counts().equity_samples < len(times) / 10
    every_time, every_value = np.r_[times, now], np.r_[values, 1.0]
    everything = pm.EquitySeries(every_time, every_value, every_value, every_value)
    exact, thinned = pm.daily_equity(everything), pm.daily_equity(kept)
    assert thinned.days.tolist() == exact.days.tolist()
    assert thinned.equity.tolist() == exact.equity.tolist()
    assert kept.equity[-1] == 1.0 and kept.time[-1] == now


def test_the_paper_wallet_resumes_and_commits_with_its_fill(path: Path) -> None:
    with TradeJournal(path, mode=Mode.PAPER, clock=lambda: T0) as j:
        assert j.paper_wallet() is None
        j.set_paper_wallet(PaperWallet(10_000.0, {}))
        cid = j.record_intent(buy("BTC", qty=0.1))
        with pytest.raises(RuntimeError), j.transaction():
            fill(j, cid, 0.1, 50_000, fee=5.0, t=T0)
            j.set_paper_wallet(PaperWallet(4_995.0, {"btc": 0.1}))
            raise RuntimeError("crash between the fill and the wallet")
        assert j.paper_wallet() == PaperWallet(10_000.0, {})  # neither was kept
        assert j.counts().fills == 0
        with j.transaction():
            fill(j, cid, 0.1, 50_000, fee=5.0, t=T0)
            j.set_paper_wallet(PaperWallet(4_995.0, {"btc": 0.1}))
    with TradeJournal.open_readonly(path) as reader:
        wallet = reader.paper_wallet()
        assert wallet == PaperWallet(4_995.0, {"BTC": 0.1}) and wallet.quantity("btc") == 0.1
        assert reader.paper_wallet(mode=Mode.DEMO) is None


def test_trader_state_survives_a_restart(path: Path) -> None:
    with TradeJournal(path, mode=Mode.LIVE) as j:
        j.save_state("trail:BTC", {"peak": 101_500.5, "active": True})
    with TradeJournal(path, mode=Mode.LIVE) as j:
        assert j.load_state("trail:BTC") == {"peak": 101_500.5, "active": True}
        assert j.load_state("trail:ETH", "none") == "none"
    with TradeJournal(path, mode=Mode.DEMO) as j:
        assert j.load_state("trail:BTC") is None


def test_modes_are_kept_apart(path: Path) -> None:
    with TradeJournal(path, mode=Mode.DEMO) as demo:
        demo.log_entry("BTC", 1.0, 100.0, 0.0, T0)
        demo.record_equity(T0, 1000, 900, 100)
    with TradeJournal(path, mode=Mode.LIVE) as live:
        assert live.open_trades() == () and live.open_trade("BTC") is None
        live.log_entry("BTC", 2.0, 100.0, 0.0, T0 + DAY)  # a new live trade, not the demo one
        assert live.counts().trades == 1
    with TradeJournal.open_readonly(path) as reader:
        assert reader.counts().trades == 2 and len(reader.open_trades(mode=Mode.DEMO)) == 1
        assert reader.latest_mode() is Mode.LIVE
        assert PerformanceTracker(reader, tz=UTC).get_dashboard_metrics(T0 + DAY).mode == "live"


# -- the file: migrations, newer, damaged, locked, read-only ------------------------------


def tables(path: Path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        con.close()


def user_version(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("PRAGMA user_version").fetchone()[0])
    finally:
        con.close()


@pytest.mark.parametrize("start", ["missing", "empty file", "bare v0 database"])
def test_a_journal_is_created_from_nothing(path: Path, start: str) -> None:
    if start == "empty file":
        path.write_bytes(b"")
    elif start == "bare v0 database":
        con = sqlite3.connect(path)
        con.execute("PRAGMA journal_mode=WAL")
        con.close()
    with TradeJournal(path, mode=Mode.PAPER) as j:
        j.log_entry("BTC", 1.0, 10.0, 0.0, T0)
    assert user_version(path) == SCHEMA_VERSION
    assert {"trades", "orders", "fills", "equity", "paper_wallet"} <= tables(path)


def _v2_backfill(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE trades SET note = 'migrated ' || coin")


V2 = (*MIGRATIONS, ("ALTER TABLE trades ADD COLUMN note TEXT NOT NULL DEFAULT ''",), _v2_backfill)


def test_a_journal_from_a_previous_schema_is_upgraded_keeping_its_data(path: Path) -> None:
    with TradeJournal(path, mode=Mode.PAPER) as old:
        group = old.log_entry("ETH", 1.0, 2000.0, 2.0, T0)
    with TradeJournal(path, mode=Mode.PAPER, migrations=V2) as new:
        assert new.schema_version == user_version(path) == len(V2)
        trade = new.trade(group)
        assert trade is not None and trade.cost_usd == 2002.0
        new.log_exit("ETH", 2100.0, 2.1, T0 + DAY)
    con = sqlite3.connect(path)
    assert con.execute("SELECT note, status FROM trades").fetchall() == [("migrated ETH", "closed")]
    con.close()
    # and the older program now refuses the newer file, writer and reader alike
    for opener in (lambda: TradeJournal(path), lambda: TradeJournal.open_readonly(path)):
        with pytest.raises(JournalError, match="Update PowerTrader AI") as err:
            opener()
        assert str(path) in str(err.value) and f"version {len(V2)}" in str(err.value)


def test_a_failing_migration_changes_nothing(path: Path) -> None:
    with TradeJournal(path, mode=Mode.PAPER) as j:
        j.log_entry("BTC", 1.0, 10.0, 0.0, T0)
    broken = (*MIGRATIONS, ("ALTER TABLE trades ADD COLUMN x REAL", "SELECT * FROM no_such_table"))
    with pytest.raises(JournalError, match="no_such_table") as err:
        TradeJournal(path, mode=Mode.PAPER, migrations=broken)
    assert str(path) in str(err.value)
    assert user_version(path) == SCHEMA_VERSION
    with TradeJournal(path, mode=Mode.PAPER) as j:  # untouched, still usable
        assert j.counts().trades == 1 and j.trade_table().cost_usd.tolist() == [10.0]


def test_a_newer_schema_is_refused_with_a_clear_message(path: Path) -> None:
    TradeJournal(path).close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(JournalError) as err:
        TradeJournal.open_readonly(path)
    message = str(err.value)
    assert str(path) in message and "newer" in message and "Update PowerTrader AI" in message


def test_a_damaged_file_is_a_clear_error_and_is_left_alone(path: Path) -> None:
    path.write_bytes(b"this is not an SQLite database\n" * 200)
    before = path.read_bytes()
    for opener in (lambda: TradeJournal(path), lambda: TradeJournal.open_readonly(path)):
        with pytest.raises(JournalError, match="damaged or is not a PowerTrader AI journal") as err:
            opener()
        assert str(path) in str(err.value) and "Keep the file" in str(err.value)
    assert path.read_bytes() == before


def test_damage_found_while_reading_is_a_clear_error(path: Path) -> None:
    with TradeJournal(path, mode=Mode.PAPER) as j, j.transaction():
        for i in range(300):
            j.log_entry(f"C{i}", 1.0, 10.0, 0.0, T0 + i)
    data = bytearray(path.read_bytes())
    data[8192:] = b"\xa5" * (len(data) - 8192)  # keep the header, wreck the tables
    path.write_bytes(bytes(data))
    with TradeJournal.open_readonly(path) as reader, pytest.raises(JournalError) as err:
        PerformanceTracker(reader).get_dashboard_metrics(T0)
    assert str(path) in str(err.value) and "damaged" in str(err.value)


def test_another_sqlite_file_is_not_taken_for_a_journal(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE candles (x)")
    con.close()
    with pytest.raises(JournalError, match="not a PowerTrader AI journal"):
        TradeJournal(path)
    assert tables(path) == {"candles"}


def test_a_locked_journal_is_a_clear_error(path: Path) -> None:
    j = TradeJournal(path, mode=Mode.PAPER, busy_timeout_s=0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        with pytest.raises(JournalError) as err:
            j.record_equity(T0, 1.0, 1.0, 0.0)
        assert "is locked" in str(err.value) and "another process" in str(err.value)
        assert str(path) in str(err.value)
        with pytest.raises(JournalError, match="is locked"):
            TradeJournal(path, busy_timeout_s=0.2)  # opening checks the schema under the lock
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        j.close()
    with TradeJournal(path, mode=Mode.PAPER) as again:  # usable once the lock is gone
        again.record_equity(T0, 1.0, 1.0, 0.0)


def test_readers_never_write(path: Path) -> None:
    with TradeJournal(path, mode=Mode.PAPER) as j:
        j.log_entry("BTC", 1.0, 100.0, 0.1, T0)
        j.record_equity(T0, 1000.0, 900.0, 100.0)
        j.log_exit("BTC", 90.0, 0.1, T0 + DAY)
        j.record_equity(T0 + DAY, 989.8, 989.8, 0.0)
    before = (
        path.stat().st_mtime_ns,
        path.stat().st_size,
        hashlib.sha256(path.read_bytes()).digest(),
    )
    with TradeJournal.open_readonly(path) as reader:
        d = PerformanceTracker(reader, tz=UTC).get_dashboard_metrics(T0 + 2 * DAY)
        assert d.kpis.total_trades == 1
        assert len(reader.fills()) == len(reader.orders()) == 2
        assert reader.unfinished_orders() == () and reader.counts().equity_samples == 2
        with pytest.raises(JournalError, match="read-only"):
            reader.record_equity(T0 + 3 * DAY, 1.0, 1.0, 0.0)
        with pytest.raises(JournalError, match="read-only"):
            reader.log_entry("ETH", 1.0, 1.0, 0.0, T0)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):  # even bypassing us
            reader._conn.execute("DELETE FROM trades")
    after = (
        path.stat().st_mtime_ns,
        path.stat().st_size,
        hashlib.sha256(path.read_bytes()).digest(),
    )
    assert after == before


def test_a_reader_finds_no_journal_or_one_not_set_up(path: Path) -> None:
    with pytest.raises(JournalMissingError, match="no journal yet"):
        TradeJournal.open_readonly(path)
    assert not path.exists()
    path.write_bytes(b"")
    with pytest.raises(JournalError, match="is empty; a reader cannot set it up"):
        TradeJournal.open_readonly(path)


# -- the dashboard over a journal ----------------------------------------------------------


def test_the_dashboard_of_a_small_journal(journal: TradeJournal) -> None:
    j = journal
    j.record_equity(T0, 1000.0, 1000.0, 0.0)
    btc = j.log_entry("BTC", 0.01, 40_000, 0.40, T0 + HOUR)
    j.mark_price(btc, 38_000, T0 + DAY)
    j.record_equity(T0 + DAY, 979.6, 599.6, 380.0)
    j.log_dca("BTC", 0.01, 38_000, 0.38, T0 + DAY + 1)
    j.log_exit("BTC", 41_000, 0.82, T0 + 3 * DAY)
    j.record_equity(T0 + 3 * DAY, 1038.4, 1038.4, 0.0)  # day 2 missing: carried forward
    j.log_entry("ETH", 1.0, 900, 1.0, T0 + 4 * DAY)
    j.log_exit("ETH", 850, 0.85, T0 + 4 * DAY + 6 * HOUR)
    j.record_equity(T0 + 4 * DAY + 6 * HOUR, 986.55, 986.55, 0.0)
    j.log_entry("XRP", 100.0, 0.5, 0.05, T0 + 4 * DAY + 7 * HOUR)
    j.record_equity(T0 + 4 * DAY + 8 * HOUR, 986.0, 936.5, 49.5)
    now = T0 + 4 * DAY + 9 * HOUR
    d = PerformanceTracker(j, tz=UTC, recent_limit=2).get_dashboard_metrics(now)
    k = d.kpis
    assert (k.total_trades, k.win_rate, k.open_trades) == (2, 0.5, 1)
    assert k.realized_pnl_usd == pytest.approx(38.40 - 51.85)
    assert k.today_realized_pnl_usd == pytest.approx(-51.85)
    assert k.today_equity_change_usd == pytest.approx(986.0 - 1038.4)
    assert k.open_cost_usd == pytest.approx(50.05)
    assert (k.equity_usd, k.cash_usd, k.positions_value_usd) == (986.0, 936.5, 49.5)
    assert k.max_floating_drawdown == pytest.approx((900 + 1 - 850) / 901)  # ETH, sold at 850
    assert k.max_drawdown == pytest.approx(1 - 986.0 / 1038.4)
    assert d.dates == ("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05")
    assert d.equity == (1000.0, 979.6, 979.6, 1038.4, 986.0)
    assert d.drawdown == pytest.approx((0, 0.0204, 0.0204, 0, 1 - 986.0 / 1038.4))
    assert [p.label for p in d.periods] == ["today", "7d", "30d", "all"]
    assert d.period("today").trades.trades == 1 and d.period("7d").trades.trades == 2
    assert d.period("all").capital_deployed_usd == pytest.approx(901.0)  # ETH > BTC 780.78
    assert [(c.coin, c.trades.profit_factor) for c in d.coins] == [
        ("BTC", float("inf")),
        ("XRP", None),
        ("ETH", 0.0),
    ]
    assert [(r.coin, r.result) for r in d.recent_trades] == [("XRP", "open"), ("ETH", "loss")]
    held = (3 * DAY - HOUR) + 6 * HOUR + 2 * HOUR  # BTC, ETH, XRP (still open)
    assert d.period("all").exposure == pytest.approx(held / (now - T0))


def test_today_starts_at_local_midnight(journal: TradeJournal) -> None:
    journal.log_entry("BTC", 1.0, 100.0, 0.0, T0)
    journal.log_exit("BTC", 110.0, 0.0, T0 + DAY + 3 * HOUR)  # 22:00 the day before in New York
    now = T0 + DAY + 12 * HOUR
    new_york = timezone(timedelta(hours=-5))
    assert PerformanceTracker(journal, tz=new_york).midnight(now) == T0 + DAY + 5 * HOUR
    utc = PerformanceTracker(journal, tz=UTC).get_dashboard_metrics(now)
    ny = PerformanceTracker(journal, tz=new_york).get_dashboard_metrics(now)
    assert utc.kpis.today_realized_pnl_usd == 10.0
    assert ny.kpis.today_realized_pnl_usd == 0.0 and ny.period("today").trades.trades == 0


# -- a reader beside a writer process -------------------------------------------------------


def _write_trades(path: str, trades: int) -> None:
    """Child process: the trader's pattern, one short transaction per fill and per sample."""
    with TradeJournal(Path(path), mode=Mode.PAPER, clock=lambda: T0) as j:
        t = T0
        for i in range(trades):
            coin = ("BTC", "ETH", "XRP")[i % 3]
            price = 100.0 + (i % 7) - 3
            j.log_entry(coin, 1.0, 100.0, 0.1, t)
            j.record_equity(t, 1000.0 + i, 900.0 + i, 100.0)
            j.log_dca(coin, 1.0, 98.0, 0.1, t + 60)
            j.log_exit(coin, price, 0.2, t + 120)
            j.record_equity(t + 120, 1000.0 + i + 1, 1000.0 + i + 1, 0.0)
            t += 6 * HOUR


def test_a_reader_process_computes_metrics_while_the_trader_writes(path: Path) -> None:
    TradeJournal(path, mode=Mode.PAPER).close()  # the file exists before the reader opens it
    trades = 150
    ctx = multiprocessing.get_context("spawn")
    writer = ctx.Process(target=_write_trades, args=(str(path), trades))
    writer.start()
    seen_trades, seen_fills = [0], [0]
    with TradeJournal.open_readonly(path) as reader:
        tracker = PerformanceTracker(reader, mode=Mode.PAPER, tz=UTC)
        deadline = time.monotonic() + 120
        while writer.is_alive() and time.monotonic() < deadline:
            d = tracker.get_dashboard_metrics(T0 + 60 * DAY)
            c = reader.counts()
            assert c.fills == c.orders  # each order and its fill commit together
            assert d.kpis.total_trades >= seen_trades[-1] and c.fills >= seen_fills[-1]
            assert d.kpis.total_trades == d.period("all").trades.trades
            seen_trades.append(d.kpis.total_trades)
            seen_fills.append(c.fills)
        writer.join(timeout=60)
        assert writer.exitcode == 0
        final = tracker.get_dashboard_metrics(T0 + 60 * DAY)
        assert final.kpis.total_trades == trades and reader.counts().fills == 3 * trades
    assert len(set(seen_trades)) > 2, "the reader never saw the writer's progress"
