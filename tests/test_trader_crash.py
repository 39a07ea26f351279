"""Kill the trader with SIGKILL at every step of an order's life, restart it, count the orders.

Issue 6, crash safety: whatever step the trader dies at, after a restart there must be exactly
one order at the broker and exactly one journal record of its fill. Each case runs the real
:class:`pt_trader_core.Trader` in a child process (a small driver written to ``tmp_path``) over
a real journal file and a real broker: the :class:`pt_broker_robinhood.RobinhoodBroker` talking
signed HTTP to a :class:`tests.fake_robinhood.FakeRobinhood` served by THIS process (so the
fake's order book survives the kill), or the :class:`pt_broker_paper.PaperBroker` whose book is
the journal itself. The child gets ``pt_trader.crash_hook_from_env`` with
``POWERTRADER_CRASH_AT`` set, so it SIGKILLs itself at exactly that step of its first order
(the entry the hand-made signals make the strategy take). The test then checks the child
really died there (return code and what the journal/fake held at that moment), builds a new
Trader over the same journal and the same fake, reconciles, ticks twice, and counts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pt_broker import Broker, BrokerQuote
from pt_broker_paper import PaperBroker
from pt_broker_robinhood import RobinhoodBroker
from pt_config_schema import Settings
from pt_journal import TradeJournal
from pt_journal_schema import OrderState
from pt_robinhood import RobinhoodClient
from pt_signals import CoinSignal, CoinStatus, SignalsSnapshot, Stage
from pt_trader import CRASH_ENV, CRASH_POINTS, crash_hook_from_env
from pt_trader_core import Trader
from pt_types import Mode, OrderTag
from tests.fake_robinhood import TEST_API_KEY, TEST_SEED, FakeRobinhood

ROOT = Path(__file__).resolve().parent.parent
BID, ASK = 59_940.0, 60_060.0  # the fake's BTC quote; the paper broker quotes the same
DRIVER_TICKS = 3  # a child that was not killed stops after this many ticks
UNSENT = "never reached the broker (crash or error before sending); not resent"
DRIVER = f"""\
import sys
sys.path.insert(0, {str(ROOT)!r})
from tests.test_trader_crash import drive
raise SystemExit(drive(sys.argv[1:]))
"""


def settings() -> Settings:
    return Settings(coins=("BTC",), start_allocation_pct=10.0)


def fresh_signals() -> SignalsSnapshot:
    """LONG 3 (the start level) and SHORT 0 for BTC, just made: the strategy enters BTC once and
    then, holding it at an unchanged price, neither DCAs (neural trigger is LONG ≥ 4) nor sells."""
    now = time.time()
    btc = CoinSignal("BTC", CoinStatus.READY, "ok", now, "m", ASK, 3, 0)
    return SignalsSnapshot(Stage.READY, "ok", now, (btc,), now)


def paper_quote(coin: str) -> BrokerQuote:
    return BrokerQuote(coin, BID, ASK, time.time())


def build(kind: str, base_url: str, journal_path: Path, **kw: Any) -> tuple[Trader, Broker]:
    """The same Trader the child runs and the restart builds: real journal, real broker."""
    broker: Broker
    if kind == "robinhood":
        journal = TradeJournal(journal_path, mode=Mode.LIVE, clock=time.time)
        broker = RobinhoodBroker(RobinhoodClient(TEST_API_KEY, TEST_SEED, base_url=base_url))
    else:
        journal = TradeJournal(journal_path, mode=Mode.PAPER, clock=time.time)
        broker = PaperBroker(journal, paper_quote, fee_pct=0.1, spread_pct=0.0, clock=time.time)
    trader = Trader(
        broker=broker,
        journal=journal,
        signals=fresh_signals,
        clock=time.time,
        settings=settings,
        wait_deadline_s=5.0,
        **kw,
    )
    return trader, broker


def drive(argv: list[str]) -> int:
    """The child: reconcile, then tick until killed (or DRIVER_TICKS ticks: exit 0)."""
    kind, base_url, journal_path = argv
    trader, _ = build(kind, base_url, Path(journal_path), crash_hook=crash_hook_from_env())
    trader.reconcile()
    for _ in range(DRIVER_TICKS):
        trader.tick()
    return 0


def run_child(tmp_path: Path, kind: str, base_url: str, step: str | None) -> None:
    """Run the driver; it must die by SIGKILL when ``step`` is set, else exit 0."""
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTRADER_")}
    if step is not None:
        env[CRASH_ENV] = step
    cmd = [sys.executable, str(script), kind, base_url, str(tmp_path / "journal.sqlite3")]
    done = subprocess.run(
        cmd, check=False, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    expected = 0 if step is None else -signal.SIGKILL
    assert done.returncode == expected, done.stderr


@dataclass(frozen=True)
class AtKill:
    """What the journal held when the child died: its one order's state and fill count."""

    cid: str
    state: OrderState
    fills: int


def at_kill(path: Path) -> AtKill:
    with TradeJournal.open_readonly(path) as journal:
        orders = journal.orders()
        assert len(orders) == 1, orders
        cid = orders[0].client_order_id
        return AtKill(cid, orders[0].state, len(journal.fills(client_order_id=cid)))


def restart_and_settle(
    kind: str, base_url: str, path: Path, step: str | None, first: AtKill
) -> tuple[TradeJournal, Broker]:
    """A new trader over the same journal and broker: reconcile, tick, tick. Returns them."""
    trader, broker = build(kind, base_url, path)
    lines = trader.reconcile()
    if step == "after_intent":
        assert lines == (f"{first.cid}: failed, {UNSENT}",)
    elif step == "after_submit" and kind == "robinhood":
        assert lines == (f"{first.cid}: filled",)  # the fill the child never recorded
    else:  # the paper broker commits its fill with the order; after_fill_record: all done
        assert lines == ()
    journal = trader.journal
    assert journal.unfinished_orders() == ()
    entered = trader.tick().orders
    # Only when the killed intent never reached the broker does the new trader decide afresh.
    assert len(entered) == (1 if step == "after_intent" else 0)
    assert trader.tick().orders == ()  # holding BTC now: no second entry
    return journal, broker


def assert_one_order_one_fill(journal: TradeJournal, step: str | None, first: AtKill) -> str:
    """Exactly one filled order with exactly one fill in the journal; returns its id."""
    orders = journal.orders(coin="BTC")
    filled = [o for o in orders if o.state is OrderState.FILLED]
    assert len(filled) == 1
    order = filled[0]
    others = [o for o in orders if o is not order]
    if step == "after_intent":
        assert [(o.client_order_id, o.state) for o in others] == [(first.cid, OrderState.FAILED)]
        assert order.client_order_id != first.cid
    else:
        assert others == [] and order.client_order_id == first.cid
    assert order.tag is OrderTag.ENTRY
    fills = journal.fills(coin="BTC")
    assert [f.client_order_id for f in fills] == [order.client_order_id]
    trade = journal.open_trade("BTC")
    assert trade is not None and trade.quantity == pytest.approx(fills[0].quantity)
    return order.client_order_id


STEPS: list[str | None] = [None, *CRASH_POINTS]


@pytest.mark.parametrize("fill_after_polls", [0, 2], ids=["fills_at_once", "fills_on_poll"])
@pytest.mark.parametrize("step", STEPS, ids=[s or "no_crash" for s in STEPS])
def test_robinhood_kill_at_each_step(
    tmp_path: Path, step: str | None, fill_after_polls: int
) -> None:
    path = tmp_path / "journal.sqlite3"
    with FakeRobinhood(page_size=2) as fake:
        fake.fill_after_polls = fill_after_polls
        run_child(tmp_path, "robinhood", fake.base_url, step)
        first = at_kill(path)
        at_venue = [o for o in fake.orders if o["symbol"] == "BTC-USD"]
        if step == "after_intent":
            assert (first.state, first.fills, at_venue) == (OrderState.INTENT, 0, [])
        elif step == "after_submit":
            assert (first.state, first.fills) == (OrderState.INTENT, 0)
            assert [o["client_order_id"] for o in at_venue] == [str(uuid.UUID(first.cid))]
            assert at_venue[0]["state"] == ("filled" if fill_after_polls == 0 else "open")
        else:  # after_fill_record, or no crash at all
            assert (first.state, first.fills) == (OrderState.FILLED, 1)
        # Orders of other symbols arrive meanwhile, so the restart must page to find ours.
        for _ in range(3):
            fake.add_order(symbol="ETH-USD", state="filled")

        journal, _ = restart_and_settle("robinhood", fake.base_url, path, step, first)
        cid = assert_one_order_one_fill(journal, step, first)

        btc = [o for o in fake.orders if o["symbol"] == "BTC-USD"]
        assert len(btc) == 1, btc  # exactly one order at the broker for the coin
        venue = btc[0]
        assert venue["client_order_id"] == str(uuid.UUID(cid)) and venue["state"] == "filled"
        order = journal.order(cid)
        assert order is not None and order.venue_order_id == venue["id"]
        (fill,) = journal.fills(client_order_id=cid)
        assert fill.venue_fill_id == f"{venue['id']}-0"
        assert Decimal(repr(fill.quantity)) == Decimal(venue["filled_asset_quantity"])
        assert fill.price == float(venue["average_price"]) == ASK
        # 10 % of 10 000 USD at the ask, rounded down to 1e-8 BTC: 0.01665001 BTC.
        assert venue["filled_asset_quantity"] == "0.01665001"
        assert fake.holdings == {"BTC": Decimal("0.01665001")}
        assert fake.buying_power == Decimal("10000") - Decimal("1000.00")  # 999.9996006 to the cent
        journal.close()


@pytest.mark.parametrize("step", STEPS, ids=[s or "no_crash" for s in STEPS])
def test_paper_kill_at_each_step(tmp_path: Path, step: str | None) -> None:
    path = tmp_path / "journal.sqlite3"
    run_child(tmp_path, "paper", "", step)
    first = at_kill(path)
    if step == "after_intent":
        assert (first.state, first.fills) == (OrderState.INTENT, 0)
    else:  # the paper broker commits fill, order state and wallet in its submit
        assert (first.state, first.fills) == (OrderState.FILLED, 1)

    journal, broker = restart_and_settle("paper", "", path, step, first)
    cid = assert_one_order_one_fill(journal, step, first)
    assert isinstance(broker, PaperBroker)
    # The paper broker's own order book: it knows exactly the one filled order.
    known = [o.client_order_id for o in journal.orders() if broker.order(o.client_order_id)]
    assert known == [cid]
    # 1 000 USD at ask 60 060 -> 0.01665001 BTC (1e-8 steps, rounded down) = 999.99960060 USD,
    # fee 0.1 % = 0.99999960 USD.
    cost = 0.01665001 * ASK
    account = broker.account()
    assert account.quantity("BTC") == pytest.approx(0.01665001, abs=1e-12)
    assert account.cash_usd == pytest.approx(10_000.0 - cost * 1.001, abs=1e-6)
    assert broker.wallet_problems() == ()
    journal.close()


def test_crash_hook_is_inert_unless_set_and_rejects_unknown_steps() -> None:
    hook = crash_hook_from_env({})
    for point in CRASH_POINTS:
        hook(point)  # still alive
    crash_hook_from_env({CRASH_ENV: "after_intent"})("after_submit")  # another step: alive
    with pytest.raises(ValueError, match=CRASH_ENV):
        crash_hook_from_env({CRASH_ENV: "after_lunch"})
