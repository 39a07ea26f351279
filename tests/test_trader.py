"""The trader core against a real journal and the paper broker, with hand-computed numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import pt_config
from pt_broker import BrokerAccount, BrokerQuote, OrderReport
from pt_broker_paper import PaperBroker
from pt_config import parse, save
from pt_config_schema import Settings
from pt_errors import ExchangeAuthError
from pt_journal import TradeJournal
from pt_journal_schema import OrderState, PaperWallet
from pt_notify_format import EventKind, Notification
from pt_replay import read_clock, sim_time, start_clock
from pt_signals import (
    SIGNALS_SCHEMA,
    CoinSignal,
    CoinStatus,
    SignalsSnapshot,
    Stage,
    snapshot_to_data,
)
from pt_state import DataLayout, StateWriter, read_heartbeat
from pt_trader_core import CHECK_KEYS, Trader
from pt_types import Fill, Mode, OrderIntent, OrderTag, Side

T0 = 1_700_000_000.0


@dataclass
class World:
    """Fake time, fake prices and hand-made signals around a real journal and paper wallet."""

    path: Path
    now: float = T0
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)
    levels: dict[str, tuple[int, int]] = field(default_factory=dict)
    signal_age: float = 1.0
    settings: Settings = field(
        default_factory=lambda: Settings(coins=("BTC", "ETH"), start_allocation_pct=10.0)
    )

    def clock(self) -> float:
        return self.now

    def quote(self, coin: str) -> BrokerQuote:
        bid, ask = self.prices[coin]
        return BrokerQuote(coin, bid, ask, self.now)

    def snapshot(self) -> SignalsSnapshot:
        coins = tuple(
            CoinSignal(c, CoinStatus.READY, "ok", self.now - self.signal_age, "m", 1.0, lo, sh)
            for c, (lo, sh) in self.levels.items()
        )
        return SignalsSnapshot(Stage.READY, "ok", self.now, coins, self.now - self.signal_age)

    def journal(self) -> TradeJournal:
        return TradeJournal(self.path, mode=Mode.PAPER, clock=self.clock)

    def paper(self, journal: TradeJournal, cash: float = 10_000.0) -> PaperBroker:
        return PaperBroker(
            journal, self.quote, starting_cash_usd=cash, fee_pct=0.1, spread_pct=0.0,
            clock=self.clock,
        )  # fmt: skip

    def trader(self, journal: TradeJournal, broker: Any, **kw: Any) -> Trader:
        return Trader(
            broker=broker,
            journal=journal,
            signals=self.snapshot,
            clock=self.clock,
            settings=lambda: self.settings,
            wall=self.clock,
            **kw,
        )


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "journal.sqlite3")


def test_entry_dca_trailing_sell_reconcile_to_the_cent(world: World) -> None:
    world.prices = {"BTC": (100.0, 100.0), "ETH": (50.0, 50.0)}
    world.levels = {"BTC": (3, 0), "ETH": (1, 0)}
    journal = world.journal()
    broker = world.paper(journal)
    sent: list[Notification] = []
    trader = world.trader(journal, broker, notify=sent.append)
    assert trader.reconcile() == ()

    # Entry: 10 % of 10 000 = 1 000 USD at ask 100 -> 10 BTC, fee 1.00.
    result = trader.tick()
    assert [r.state for r in result.orders] == [OrderState.FILLED]
    trade = journal.open_trade("BTC")
    assert trade is not None and trade.quantity == pytest.approx(10.0)
    assert trade.open_cost_usd == pytest.approx(1001.0)
    assert journal.open_trade("ETH") is None  # LONG 1 < start level 3

    # DCA: ask 97 is -3 % (hard tier -2.5 %); 2 x value (10 x 97) = 1 940 USD -> 20 BTC.
    world.now += 60
    world.prices["BTC"] = (97.0, 97.0)
    world.levels["BTC"] = (0, 0)
    trader.tick()
    trade = journal.open_trade("BTC")
    assert trade is not None and trade.dca_count == 1
    assert trade.quantity == pytest.approx(30.0)
    assert trade.open_cost_usd == pytest.approx(1001.0 + 1941.94)

    # Trailing after a DCA: base line = avg cost x 1.025 = 100.55; bid 102 arms it (peak 102,
    # line 101.49). A NEW trader (restart) must remember that peak and sell at 101.
    world.now += 60
    world.prices["BTC"] = (102.0, 102.0)
    assert trader.tick().orders == ()
    journal.close()
    world.now += 60
    world.prices["BTC"] = (101.0, 101.0)
    journal = world.journal()
    broker = world.paper(journal)
    trader = world.trader(journal, broker, notify=sent.append)
    trader.reconcile()
    result = trader.tick()
    assert [r.state for r in result.orders] == [OrderState.FILLED]
    assert journal.open_trade("BTC") is None
    tags = [f.tag for f in journal.fills()]
    assert tags == [OrderTag.ENTRY, OrderTag.DCA, OrderTag.TRAIL_SELL]
    # 10 000 - 1 001 - 1 941.94 + 30 x 101 - 3.03 fee = 10 084.03
    assert round(broker.account().cash_usd, 2) == 10_084.03
    assert broker.wallet_problems() == ()
    assert broker.account().quantity("BTC") == 0.0
    closed = journal.trades(status="closed")
    assert len(closed) == 1 and round(closed[0].realized_pnl_usd, 2) == 84.03
    assert journal.equity_series()  # equity recorded each tick
    # One notification per fill, each with the decision's reason; the close with its PnL.
    assert [n.title for n in sent] == [
        "BTC: trade opened (paper)",
        "BTC: DCA stage 1 (paper)",
        f"BTC: trade closed, gain $84.03 (+{closed[0].realized_pnl_pct:.2f}%) (paper)",
    ]
    orders = journal.orders()
    assert [n.reason for n in sent] == [o.reason for o in orders] and all(o.reason for o in orders)
    assert dict(sent[2].fields)["PnL"] == "$84.03" and sent[0].at == T0


def test_a_failing_notification_never_stops_an_order_being_recorded(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.prices = {"BTC": (100.0, 100.0), "ETH": (50.0, 50.0)}
    world.levels = {"BTC": (3, 0)}
    journal = world.journal()

    def broken(n: Notification) -> None:
        raise RuntimeError("channel bug")

    trader = world.trader(journal, world.paper(journal), notify=broken)
    assert [r.state for r in trader.tick().orders] == [OrderState.FILLED]
    assert journal.open_trade("BTC") is not None
    assert "notification for order" in caplog.text and "channel bug" in caplog.text


def test_a_cash_capped_entry_leaves_room_for_the_paper_fee(world: World) -> None:
    """The whole wallet on one coin: without room for the 0.1 % fee the buy would be rejected."""
    world.settings = Settings(coins=("BTC",), start_allocation_pct=100.0)
    world.prices = {"BTC": (100.0, 100.0)}
    world.levels = {"BTC": (3, 0)}
    journal = world.journal()
    broker = world.paper(journal, cash=1_000.0)
    assert broker.account().buying_power_usd == 999.0  # 1 000 / 1.001, down to the cent
    result = world.trader(journal, broker).tick()
    assert [r.state for r in result.orders] == [OrderState.FILLED]
    assert "capped to the cash $999.00" in result.coins[0].decision.reason  # type: ignore[union-attr]
    cash = broker.account().cash_usd
    assert 0 <= cash < 0.01  # 999 + 0.999 fee
    assert broker.wallet_problems() == ()


def test_unmanaged_holdings_are_left_alone(world: World) -> None:
    world.prices = {"BTC": (100.0, 100.0), "ETH": (50.0, 50.0), "DOGE": (0.1, 0.1)}
    world.levels = {"BTC": (0, 0), "ETH": (0, 0), "DOGE": (7, 0)}
    journal = world.journal()
    journal.set_paper_wallet(PaperWallet(10_000.0, {"DOGE": 50.0}))
    broker = world.paper(journal)
    trader = world.trader(journal, broker)
    for _ in range(3):
        world.now += 10
        assert trader.tick().orders == ()
    assert broker.account().quantity("DOGE") == 50.0
    assert journal.orders() == ()
    assert [c.coin for c in trader.tick().coins] == ["BTC", "ETH"]


def test_stale_signals_make_no_entry(world: World) -> None:
    world.prices = {"BTC": (100.0, 100.0), "ETH": (50.0, 50.0)}
    world.levels = {"BTC": (7, 0), "ETH": (7, 0)}
    world.signal_age = 500.0
    journal = world.journal()
    trader = world.trader(journal, world.paper(journal), max_signal_age_s=120.0)
    result = trader.tick()
    assert result.orders == () and journal.orders() == ()
    assert "stale" in result.problem
    world.signal_age = 1.0
    assert len(trader.tick().orders) == 2  # fresh again: both coins enter


def limits(**trader: float) -> Settings:
    return pt_config.parse({"coins": ["BTC", "ETH"], "start_allocation_pct": 10, "trader": trader})


def test_the_spread_and_signal_age_limits_come_from_the_settings(world: World) -> None:
    world.prices = {"BTC": (100.0, 103.0), "ETH": (50.0, 50.0)}  # BTC spread 3 %
    world.levels = {"BTC": (7, 0), "ETH": (7, 0)}
    world.signal_age = 200.0
    journal = world.journal()
    trader = world.trader(journal, world.paper(journal))
    world.settings = limits(max_signal_age_seconds=300.0)
    result = trader.tick()
    assert [o.coin for o in journal.orders()] == ["ETH"]  # BTC's 3 % spread is over 2 %
    assert "spread" in next(c.problem for c in result.coins if c.coin == "BTC")
    world.settings = limits(max_signal_age_seconds=100.0)
    world.now += 10
    assert "stale" in trader.tick().problem


def test_rejection_is_shown_and_not_retried_every_tick(world: World) -> None:
    world.settings = Settings(coins=("BTC",), start_allocation_pct=10.0)
    world.prices = {"BTC": (100.0, 100.0)}
    world.levels = {"BTC": (3, 0)}
    journal = world.journal()
    broker = LedgerBroker(world.quote, reject="below the minimum order size for BTC-USD")
    trader = world.trader(journal, broker, reject_cooldown_s=60.0)
    first = trader.tick()
    assert [r.state for r in first.orders] == [OrderState.REJECTED]
    assert "below the minimum order size" in first.coins[0].problem
    world.now += 5
    second = trader.tick()
    assert second.orders == () and "rejected" in second.coins[0].problem
    assert len(journal.orders()) == 1
    world.now += 60
    assert len(trader.tick().orders) == 1  # after the cool-down it may try again


@dataclass
class LedgerBroker:
    """A venue with its own order book (not the journal): what a crash can leave behind."""

    quote_fn: Callable[[str], BrokerQuote]
    orders: dict[str, OrderReport] = field(default_factory=dict)
    auth_fails: bool = False
    reject: str = ""  # when set, every order is refused with this message

    @property
    def name(self) -> str:
        return "ledger"

    def account(self) -> BrokerAccount:
        if self.auth_fails:
            raise ExchangeAuthError("401 unauthorized")
        return BrokerAccount(10_000.0, {})

    def quote(self, coin: str) -> BrokerQuote:
        return self.quote_fn(coin)

    def min_order_usd(self, coin: str) -> float:
        return 0.5

    def submit(self, intent: OrderIntent, client_order_id: str) -> OrderReport:
        if self.reject:
            return OrderReport(client_order_id, None, OrderState.REJECTED, message=self.reject)
        if client_order_id not in self.orders:
            q = self.quote_fn(intent.coin)
            qty = (intent.usd_amount or 0.0) / q.ask
            fill = Fill(client_order_id, intent.coin, intent.side, qty, q.ask, 0.5, q.time)
            self.orders[client_order_id] = OrderReport(
                client_order_id, "v-" + client_order_id, OrderState.FILLED, qty, q.ask, 0.5,
                (("fill-1", fill),), True,
            )  # fmt: skip
        return self.orders[client_order_id]

    def order(self, client_order_id: str) -> OrderReport | None:
        return self.orders.get(client_order_id)

    def wait(self, client_order_id: str, deadline_s: float) -> OrderReport:
        return self.orders[client_order_id]


def _entry(coin: str = "BTC") -> OrderIntent:
    return OrderIntent(coin, Side.BUY, OrderTag.ENTRY, "test entry", usd_amount=1000.0)


def test_restart_marks_an_unsent_intent_failed_and_does_not_resend(world: World) -> None:
    world.prices = {"BTC": (100.0, 100.0), "ETH": (50.0, 50.0)}
    journal = world.journal()
    broker = LedgerBroker(world.quote)
    cid = journal.record_intent(_entry())
    trader = world.trader(journal, broker)
    assert trader.reconcile() == (
        f"{cid}: failed, never reached the broker (crash or error before sending); not resent",
    )
    order = journal.order(cid)
    assert order is not None and order.state is OrderState.FAILED
    assert broker.orders == {} and journal.fills() == ()
    assert journal.unfinished_orders() == ()


def test_restart_records_fills_the_journal_missed_exactly_once(world: World) -> None:
    world.prices = {"BTC": (100.0, 100.0), "ETH": (50.0, 50.0)}
    journal = world.journal()
    broker = LedgerBroker(world.quote)
    cid = journal.record_intent(_entry())
    broker.submit(_entry(), cid)  # sent and filled, then the trader died
    sent: list[Notification] = []
    trader = world.trader(journal, broker, notify=sent.append)
    assert trader.reconcile() == (f"{cid}: filled",)
    assert trader.reconcile() == ()  # nothing unfinished any more
    assert [n.kind for n in sent] == [EventKind.TRADE_OPENED]  # found at restart: said once
    # Recorded twice (a second restart replays the same report): still one fill.
    trader._record_report(cid, broker.orders[cid])
    fills = journal.fills(client_order_id=cid)
    assert [(f.venue_fill_id, f.quantity, f.price) for f in fills] == [("fill-1", 10.0, 100.0)]
    trade = journal.open_trade("BTC")
    assert trade is not None and trade.open_cost_usd == pytest.approx(1000.5)
    order = journal.order(cid)
    assert order is not None and order.state is OrderState.FILLED
    assert order.venue_order_id == "v-" + cid


def test_sent_but_unrecorded_order_is_not_sent_again(world: World) -> None:
    world.prices = {"BTC": (100.0, 100.0), "ETH": (50.0, 50.0)}
    world.levels = {"BTC": (3, 0), "ETH": (0, 0)}
    journal = world.journal()
    broker = LedgerBroker(world.quote)
    cid = journal.record_intent(_entry())
    journal.mark_sent(cid, None)
    broker.submit(_entry(), cid)
    trader = world.trader(journal, broker)
    trader.reconcile()
    trader.tick()  # BTC is now held: the strategy must not enter again
    assert list(broker.orders) == [cid]
    assert len(journal.fills()) == 1


def test_auth_error_stops_trading_with_a_visible_reason(world: World) -> None:
    world.prices = {"BTC": (100.0, 100.0), "ETH": (50.0, 50.0)}
    world.levels = {"BTC": (3, 0), "ETH": (3, 0)}
    journal = world.journal()
    broker = LedgerBroker(world.quote, auth_fails=True)
    trader = world.trader(journal, broker, auth_backoff_s=60.0)
    result = trader.tick()
    assert CHECK_KEYS in result.problem and result.orders == ()
    broker.auth_fails = False
    world.now += 10
    assert CHECK_KEYS in trader.tick().problem  # backs off: no hammering of the venue
    world.now += 60
    assert len(trader.tick().orders) == 2 and trader.auth_problem == ""


# --- the process ----------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
SIM_START = 1_709_251_200.0  # 2024-03-01 00:00 UTC, inside the bundled history


def test_the_process_enters_in_demo_mode_and_writes_its_status(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path).ensure()
    save(
        layout.settings_file,
        parse({"coins": ["BTC"], "mode": "demo", "start_allocation_pct": 10.0}),
    )
    start_clock(layout, SIM_START, 1.0)
    now = sim_time(read_clock(layout) or pytest.fail("no clock"), time.time())
    coin = CoinSignal("BTC", CoinStatus.READY, "ok", now, "m", 60_000.0, 4, 0)
    snap = SignalsSnapshot(Stage.READY, "ok", now, (coin,))
    StateWriter(layout.signals_file, SIGNALS_SCHEMA).write(snapshot_to_data(snap))
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTRADER_")}
    cmd = [sys.executable, str(ROOT / "pt_trader.py"), "--data-dir", str(tmp_path), "--once"]
    done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with TradeJournal.open_readonly(layout.journal_db) as journal:
        orders = journal.orders()
        assert [(o.coin, o.tag, o.state) for o in orders] == [
            ("BTC", OrderTag.ENTRY, OrderState.FILLED)
        ]
        assert orders[0].requested_usd == pytest.approx(1000.0)  # 10 % of 10 000
    status = json.loads(layout.trader_status_file.read_text())
    assert status["schema"] == "trader_status/1"
    data = status["data"]
    assert data["mode"] == "demo" and data["problem"] == ""
    btc = data["coins"][0]
    assert btc["coin"] == "BTC" and btc["reason"].startswith("start BTC: LONG 4")
    assert data["account"]["cash"] == pytest.approx(10_000.0)  # decided before the buy
    assert read_heartbeat(layout, "trader") is not None
