"""The Robinhood broker over real HTTP against the fake Robinhood on 127.0.0.1 (spec §4)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from pt_broker import Broker, BrokerQuote, UnknownOrderError
from pt_broker_robinhood import RobinhoodBroker
from pt_errors import ExchangeAuthError, TemporaryExchangeError
from pt_http import RetryPolicy
from pt_journal_schema import OrderState
from pt_robinhood import ORDERS, RobinhoodClient
from pt_types import OrderIntent, OrderTag, Side
from tests.fake_clock import FakeClock
from tests.fake_http import Fault, Reply
from tests.fake_robinhood import TEST_API_KEY, TEST_SEED, FakeRobinhood

T0 = 1_700_000_000.0


class Clock(FakeClock):
    def __init__(self, t: float = T0) -> None:
        super().__init__(t)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeRobinhood]:
    with FakeRobinhood(clock=clock) as venue:
        yield venue


def make_broker(fake: FakeRobinhood, clock: Clock, seed: bytes = TEST_SEED) -> RobinhoodBroker:
    client = RobinhoodClient(
        TEST_API_KEY,
        seed,
        base_url=fake.base_url,
        clock=clock,
        sleep=clock.sleep,
        timeout=2.0,
        retry=RetryPolicy(attempts=2, base_delay=0.5, max_delay=10.0, jitter=0.0),
    )
    return RobinhoodBroker(client, clock=clock)


@pytest.fixture
def broker(fake: FakeRobinhood, clock: Clock) -> RobinhoodBroker:
    return make_broker(fake, clock)


def buy(usd: float, coin: str = "BTC") -> OrderIntent:
    return OrderIntent(coin, Side.BUY, OrderTag.ENTRY, "test", usd_amount=usd)


def sell(qty: float, coin: str = "BTC") -> OrderIntent:
    return OrderIntent(coin, Side.SELL, OrderTag.TRAIL_SELL, "test", quantity=qty)


def posted(fake: FakeRobinhood) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in fake.server.requests_to(ORDERS) if r.method == "POST"]


def cid() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------------- reads


def test_account_quote_and_minimum(broker: RobinhoodBroker, fake: FakeRobinhood) -> None:
    assert isinstance(broker, Broker) and broker.name == "robinhood"
    fake.holdings = {"BTC": Decimal("0.5"), "DOGE": Decimal("100")}
    account = broker.account()
    assert account.cash_usd == 10_000.0
    assert dict(account.holdings) == {"BTC": 0.5, "DOGE": 100.0}  # all holdings, not only ours
    assert broker.quote("btc") == BrokerQuote("BTC", 59_940.0, 60_060.0, T0)
    # ETH: (min 0.0001 + increment 0.000001) x ask 3003 = 0.303303 -> 0.31 USD.
    assert broker.min_order_usd("ETH") == 0.31


# ---------------------------------------------------------------------- orders


def test_a_buy_by_usd_becomes_a_quantity_at_the_ask(
    broker: RobinhoodBroker, fake: FakeRobinhood
) -> None:
    # $100 / 60 060 = 0.0016650016... -> 0.00166500 BTC (increment 0.00000001).
    order_id = cid()
    report = broker.submit(buy(100.0), order_id)
    (body,) = posted(fake)
    assert body["market_order_config"] == {"asset_quantity": "0.001665"}
    assert body["symbol"] == "BTC-USD" and body["side"] == "buy"
    assert report.state is OrderState.FILLED and report.terminal
    assert report.client_order_id == order_id
    ((fill_id, fill),) = report.fills
    assert fill_id == f"{report.venue_order_id}-0"
    assert (fill.quantity, fill.price, fill.fee_usd) == (0.001665, 60_060.0, 0.0)
    assert fill.time == pytest.approx(T0) and fill.client_order_id == order_id
    assert report.filled_quantity == 0.001665 and report.average_price == 60_060.0
    assert fake.holdings["BTC"] == Decimal("0.001665")


def test_a_sell_by_quantity_is_rounded_down_and_fills_at_the_bid(
    broker: RobinhoodBroker, fake: FakeRobinhood
) -> None:
    fake.holdings = {"BTC": Decimal("0.5")}
    report = broker.submit(sell(0.123456789), cid())
    (body,) = posted(fake)
    assert body["market_order_config"] == {"asset_quantity": "0.12345678"}
    assert report.state is OrderState.FILLED
    assert report.fills[0][1].price == 59_940.0
    assert fake.holdings["BTC"] == Decimal("0.37654322")


def test_eth_rounding_uses_its_own_increment(broker: RobinhoodBroker, fake: FakeRobinhood) -> None:
    # $10 / 3003 = 0.00333000333 -> 0.00333 ETH (increment 0.000001).
    broker.submit(buy(10.0, "ETH"), cid())
    (body,) = posted(fake)
    assert body["market_order_config"] == {"asset_quantity": "0.00333"}


def test_refusals_come_back_as_rejected_reports(
    broker: RobinhoodBroker, fake: FakeRobinhood
) -> None:
    # Below the minimum: 0.01 USD of ETH is 0.000003 ETH < 0.0001; nothing is sent.
    small = broker.submit(buy(0.01, "ETH"), cid())
    assert small.rejected and small.terminal and "minimum order size" in small.message
    # More than held: checked against the holding before sending.
    fake.holdings = {"BTC": Decimal("0.01")}
    too_much = broker.submit(sell(0.02), cid())
    assert too_much.rejected and "0.01 available" in too_much.message
    assert posted(fake) == []
    # Robinhood itself refuses: not enough buying power (20 000 USD > 10 000).
    refused_id = cid()
    refused = broker.submit(buy(20_000.0), refused_id)
    assert refused.rejected and "Insufficient buying power" in refused.message
    assert len(posted(fake)) == 1 and fake.orders == []
    assert broker.order(refused_id) is None  # the venue never made an order of it


def test_a_bad_quote_sends_nothing(broker: RobinhoodBroker, fake: FakeRobinhood) -> None:
    fake.set_quote("BTC-USD", "60100", "60000")
    report = broker.submit(buy(100.0), cid())
    assert report.rejected and "above the ask" in report.message
    assert posted(fake) == []


@pytest.mark.parametrize("policy", ["return_original", "reject"])
def test_resubmitting_the_same_id_after_a_restart_makes_one_order(
    fake: FakeRobinhood, clock: Clock, policy: str
) -> None:
    fake.duplicate_policy = policy
    order_id = cid()
    first = make_broker(fake, clock).submit(buy(100.0), order_id)
    fake.set_quote("BTC-USD", "49950", "50050")  # a new ask would size a different order
    again = make_broker(fake, clock).submit(buy(100.0), order_id)  # a restarted trader
    assert len(fake.orders) == 1
    assert again.venue_order_id == first.venue_order_id and again.fills == first.fills
    assert fake.holdings["BTC"] == Decimal("0.001665")


def test_a_resubmitted_sell_that_already_filled_is_that_order_not_a_refusal(
    fake: FakeRobinhood, clock: Clock
) -> None:
    fake.holdings = {"BTC": Decimal("0.01")}
    order_id = cid()
    first = make_broker(fake, clock).submit(sell(0.01), order_id)
    assert first.state is OrderState.FILLED and fake.holdings["BTC"] == 0
    again = make_broker(fake, clock).submit(sell(0.01), order_id)  # restarted: 0 held now
    assert not again.rejected and again.fills == first.fills
    assert len(fake.orders) == 1


def test_resubmitting_in_the_same_process_does_not_post_again(
    broker: RobinhoodBroker, fake: FakeRobinhood
) -> None:
    order_id = cid()
    first = broker.submit(buy(100.0), order_id)
    assert broker.submit(buy(100.0), order_id) == first
    assert len(posted(fake)) == 1


def test_order_lookup_scans_every_page_after_a_restart(fake: FakeRobinhood, clock: Clock) -> None:
    fake.page_size = 2
    journal_id = uuid.uuid4().hex  # the journal's own ids are undashed hex
    make_broker(fake, clock).submit(buy(100.0), journal_id)
    for _ in range(5):  # newer history pushes ours to the third page
        fake.add_order(state="filled")
    restarted = make_broker(fake, clock)
    before = len(fake.server.requests_to(ORDERS))
    report = restarted.order(journal_id)
    assert report is not None and report.client_order_id == journal_id
    assert report.state is OrderState.FILLED and report.filled_quantity == 0.001665
    pages = fake.server.requests_to(ORDERS)[before:]
    assert len(pages) == 3 and pages[-1].param("cursor") == "c4"
    assert restarted.order(cid()) is None
    assert restarted.order("not-a-uuid") is None
    with pytest.raises(ValueError, match="must be a UUID"):
        restarted.submit(buy(100.0), "not-a-uuid")


def test_wait_stops_at_the_deadline_and_reports_the_fill_when_it_comes(
    broker: RobinhoodBroker, fake: FakeRobinhood, clock: Clock
) -> None:
    fake.fill_after_polls = None  # the venue sits on it
    order_id = cid()
    sent = broker.submit(buy(100.0), order_id)
    assert sent.state is OrderState.SENT and not sent.terminal and sent.fills == ()
    start = clock()
    waited = broker.wait(order_id, 5.0)
    assert waited.state is OrderState.SENT and not waited.terminal
    assert 5.0 <= clock() - start <= 5.0 + 1e-9
    fake.fill_after_polls = 2
    done = broker.wait(order_id, 30.0)
    assert done.state is OrderState.FILLED and done.terminal and len(done.fills) == 1
    # After a restart, wait finds the order first (it is already terminal: no polling).
    restarted = make_broker(fake, clock)
    assert restarted.wait(order_id, 1.0).fills == done.fills
    with pytest.raises(UnknownOrderError):
        restarted.wait(cid(), 1.0)


def test_a_partial_fill_is_reported_as_partial(
    broker: RobinhoodBroker, fake: FakeRobinhood
) -> None:
    fake.fill_after_polls = None
    order_id = cid()
    sent = broker.submit(buy(100.0), order_id)
    (order,) = fake.orders
    order.update(
        state="partially_filled",
        executions=[
            {"effective_price": "60000", "quantity": "0.001", "timestamp": "2023-11-14T22:13:20Z"}
        ],
    )
    report = broker.order(order_id)
    assert report is not None and report.state is OrderState.PARTIALLY_FILLED
    assert not report.terminal and report.fills[0][0] == f"{sent.venue_order_id}-0"
    assert report.fills[0][1].time == T0


def test_auth_and_temporary_errors_propagate(fake: FakeRobinhood, clock: Clock) -> None:
    wrong_seed = base64.b64decode("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    stranger = make_broker(fake, clock, seed=wrong_seed)
    with pytest.raises(ExchangeAuthError):
        stranger.account()
    with pytest.raises(ExchangeAuthError):
        stranger.submit(buy(100.0), cid())
    with pytest.raises(ExchangeAuthError):
        stranger.order(cid())
    broker = make_broker(fake, clock)
    fake.fail(Fault(ORDERS, times=20, reply=Reply.json({"type": "server_error"}, 503)))
    with pytest.raises(TemporaryExchangeError):
        broker.submit(buy(100.0), cid())
    assert fake.orders == []
