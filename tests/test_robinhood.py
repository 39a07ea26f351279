"""pt_robinhood over real HTTP against the fake Robinhood on 127.0.0.1 (spec §4)."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from pt_errors import ExchangeAuthError, PermanentExchangeError, TemporaryExchangeError
from pt_http import RetryPolicy
from pt_robinhood import (
    ACCOUNTS,
    HOLDINGS,
    ORDERS,
    TRADING_PAIRS,
    RobinhoodClient,
)
from pt_robinhood_wire import (
    InsufficientFundsError,
    OrderNotFoundError,
    OrderTooLargeError,
    OrderTooSmallError,
    TradingPair,
    private_key_from_seed,
    round_down,
    sign,
)
from pt_types import Side
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


def make_client(
    fake: FakeRobinhood,
    clock: Clock | Callable[[], float],
    *,
    seed: bytes = TEST_SEED,
    **kw: Any,
) -> RobinhoodClient:
    options: dict[str, Any] = {
        "base_url": fake.base_url,
        "clock": clock,
        "sleep": clock.sleep if isinstance(clock, Clock) else Clock().sleep,
        "timeout": 2.0,
        "retry": RetryPolicy(attempts=3, base_delay=0.5, max_delay=10.0, jitter=0.0),
    }
    options.update(kw)
    return RobinhoodClient(TEST_API_KEY, seed, **options)


@pytest.fixture
def client(fake: FakeRobinhood, clock: Clock) -> RobinhoodClient:
    return make_client(fake, clock)


def cid() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------------- signing (spec §4.2)

DOC_MESSAGE = (
    "rh-api-6148effc-c0b1-486c-8940-a1d099456be61698708981/api/v1/crypto/trading/orders/POST"
    "{'client_order_id': '131de903-5a9c-4260-abc1-28d562a5dcf0', 'side': 'buy', "
    "'symbol': 'BTC-USD', 'type': 'market', 'market_order_config': {'asset_quantity': '0.1'}}"
)
DOC_SIGNATURE = (
    "q/nEtxp/P2Or3hph3KejBqnw5o9qeuQ+hYRnB56FaHbjDsNUY9KhB1asMxohDnzdVFSD7StaTqjSd9U9HvaRAw=="
)


def test_the_documented_signature_is_reproduced_byte_for_byte() -> None:
    key = private_key_from_seed(TEST_SEED)
    public = base64.b64encode(key.public_key().public_bytes_raw()).decode()
    assert public == "jPItx4TLjcnSUnmnXQQyAKL4eJj3+oWNNMmmm2vATqk="
    assert sign(key, DOC_MESSAGE) == DOC_SIGNATURE


def test_a_64_byte_key_signs_like_its_seed_and_a_get_has_no_body() -> None:
    key = private_key_from_seed(TEST_SEED)
    pair = TEST_SEED + key.public_key().public_bytes_raw()
    message = f"{TEST_API_KEY}1698708981/api/v1/crypto/trading/accounts/GET"
    expected = (
        "08PdjWE9n95K4rcXLZS0z47SdFJ0k/hod/1WRNd2JugZemESR65/J8UJi6yGjd8KRPizSW9goFFqffDOgqGBDQ=="
    )
    assert sign(private_key_from_seed(pair), message) == expected
    with pytest.raises(ValueError, match="32 or 64 bytes"):
        private_key_from_seed(TEST_SEED[:31])


def test_the_client_sends_the_documented_headers(fake: FakeRobinhood, clock: Clock) -> None:
    make_client(fake, clock).account()
    (request,) = fake.server.requests_to(ACCOUNTS)
    assert request.headers["x-api-key"] == TEST_API_KEY
    assert request.headers["x-timestamp"] == str(int(T0))
    message = f"{TEST_API_KEY}{int(T0)}{ACCOUNTS}GET"
    assert request.headers["x-signature"] == sign(private_key_from_seed(TEST_SEED), message)


# ---------------------------------------------------------------------- reads


def test_account(client: RobinhoodClient, fake: FakeRobinhood) -> None:
    account = client.account()
    assert account.buying_power == Decimal("10000")
    assert (account.account_number, account.status, account.currency) == (
        "123456789",
        "active",
        "USD",
    )


def test_holdings_are_read_across_every_page(client: RobinhoodClient, fake: FakeRobinhood) -> None:
    fake.holdings = {c: Decimal(i + 1) / 10 for i, c in enumerate("ABCDE")}
    fake.page_size = 2
    holdings = client.holdings()
    assert [(h.asset_code, h.total_quantity) for h in holdings] == [
        ("A", Decimal("0.1")),
        ("B", Decimal("0.2")),
        ("C", Decimal("0.3")),
        ("D", Decimal("0.4")),
        ("E", Decimal("0.5")),
    ]
    pages = fake.server.requests_to(HOLDINGS)
    assert len(pages) == 3
    assert [p.param("cursor") for p in pages] == [None, "c2", "c4"]
    assert [h.asset_code for h in client.holdings(["c", "e"])] == ["C", "E"]


def test_trading_pairs_have_increments_and_limits(client: RobinhoodClient) -> None:
    pairs = {p.symbol: p for p in client.trading_pairs()}
    assert pairs["BTC-USD"] == TradingPair(
        symbol="BTC-USD",
        asset_code="BTC",
        quote_code="USD",
        asset_increment=Decimal("0.00000001"),
        quote_increment=Decimal("0.01"),
        min_order_size=Decimal("0.000001"),
        max_order_size=Decimal("20"),
        status="tradable",
    )
    assert pairs["ETH-USD"].asset_increment == Decimal("0.000001")
    assert client.trading_pair("eth-usd").min_order_size == Decimal("0.0001")
    with pytest.raises(PermanentExchangeError, match="DOGE-USD is not a trading pair"):
        client.trading_pair("DOGE-USD")


def test_best_bid_ask_uses_the_prices_including_the_spread(
    client: RobinhoodClient, fake: FakeRobinhood
) -> None:
    fake.set_quote("ETH-USD", "2990.5", "3010.25")
    quotes = client.best_bid_ask(["BTC-USD", "ETH-USD"])
    assert quotes["ETH-USD"].bid == Decimal("2990.5")
    assert quotes["ETH-USD"].ask == Decimal("3010.25")
    assert quotes["BTC-USD"].bid == Decimal("59940.00")
    (request,) = fake.server.requests_to("/api/v1/crypto/marketdata/best_bid_ask/")
    assert request.query["symbol"] == ["BTC-USD", "ETH-USD"]


def test_numbers_sent_as_json_numbers_are_parsed_too(
    client: RobinhoodClient, fake: FakeRobinhood
) -> None:
    fake.numbers_as_strings = False
    fake.holdings = {"BTC": Decimal("0.25")}
    assert client.account().buying_power == Decimal("10000.0")
    assert client.holdings()[0].total_quantity == Decimal("0.25")
    assert client.best_bid_ask(["BTC-USD"])["BTC-USD"].ask == Decimal("60060.0")


def test_estimated_price(client: RobinhoodClient) -> None:
    rows = client.estimated_price("BTC-USD", "both", [Decimal("0.1"), Decimal("0.00000002")])
    assert [(r.side, r.quantity, r.price) for r in rows] == [
        ("bid", Decimal("0.1"), Decimal("59940.00")),
        ("ask", Decimal("0.1"), Decimal("60060.00")),
        ("bid", Decimal("0.00000002"), Decimal("59940.00")),
        ("ask", Decimal("0.00000002"), Decimal("60060.00")),
    ]


def test_orders_are_read_across_every_page(client: RobinhoodClient, fake: FakeRobinhood) -> None:
    made = [fake.add_order(quantity=f"0.00{i + 1}", state="filled") for i in range(7)]
    orders = client.orders()
    assert [o.id for o in orders] == [o["id"] for o in reversed(made)]
    assert len(fake.server.requests_to(ORDERS)) == 4  # 2 + 2 + 2 + 1
    assert client.orders(page_size=5)[-1].asset_quantity == Decimal("0.001")


def test_find_order_by_client_id_reads_past_the_first_page(
    client: RobinhoodClient, fake: FakeRobinhood
) -> None:
    target = fake.add_order(client_order_id=cid())
    for _ in range(8):
        fake.add_order()
    found = client.find_order_by_client_id(target["client_order_id"])
    assert found is not None and found.id == target["id"]
    assert len(fake.server.requests_to(ORDERS)) == 5
    assert client.find_order_by_client_id(cid()) is None


def test_a_next_link_to_another_host_is_followed_on_our_own_host(
    client: RobinhoodClient, fake: FakeRobinhood
) -> None:
    fake.holdings = {"BTC": Decimal(1), "ETH": Decimal(2), "SOL": Decimal(3)}
    elsewhere = f"http://203.0.113.9:1{HOLDINGS}?cursor=c2"
    fake.fail(Fault(path_prefix=HOLDINGS, reply=Reply.json({"next": elsewhere, "results": []})))
    assert [h.asset_code for h in client.holdings()] == ["SOL"]
    assert [r.param("cursor") for r in fake.server.requests_to(HOLDINGS)] == [None, "c2"]


def test_a_next_link_that_loops_is_an_error(client: RobinhoodClient, fake: FakeRobinhood) -> None:
    loop = Reply.json({"next": f"{fake.base_url}{HOLDINGS}?cursor=c2", "results": []})
    fake.fail(Fault(path_prefix=HOLDINGS, times=2, reply=loop))
    with pytest.raises(TemporaryExchangeError, match="pagination loops"):
        client.holdings()


def test_get_order_by_id_and_an_unknown_one(client: RobinhoodClient, fake: FakeRobinhood) -> None:
    made = fake.add_order(side="sell", quantity="0.5", symbol="ETH-USD")
    order = client.get_order(made["id"])
    assert (order.symbol, order.side, order.asset_quantity) == ("ETH-USD", "sell", Decimal("0.5"))
    with pytest.raises(OrderNotFoundError):
        client.get_order(str(uuid.uuid4()))


# ---------------------------------------------------------------------- orders


def test_a_market_buy_fills_and_moves_money(client: RobinhoodClient, fake: FakeRobinhood) -> None:
    order_id = cid()
    order = client.place_market_order("btc-usd", Side.BUY, Decimal("0.01"), order_id)
    assert order.state == "filled" and order.terminal
    assert order.filled_quantity == Decimal("0.01")
    assert order.fill_price == Decimal("60060.00")
    (post,) = [r for r in fake.server.requests_to(ORDERS) if r.method == "POST"]
    assert json.loads(post.body) == {
        "client_order_id": order_id,
        "side": "buy",
        "type": "market",
        "symbol": "BTC-USD",
        "market_order_config": {"asset_quantity": "0.01"},
    }
    assert client.account().buying_power == Decimal("10000") - Decimal("600.60")
    assert client.holdings()[0].total_quantity == Decimal("0.01")


def test_quantities_round_down_to_the_increment(
    client: RobinhoodClient, fake: FakeRobinhood
) -> None:
    order = client.place_market_order("BTC-USD", "buy", "0.123456789", cid())
    assert order.asset_quantity == Decimal("0.12345678")
    assert round_down(Decimal("0.0199999"), Decimal("0.001")) == Decimal("0.019")


def test_a_sell_of_the_whole_holding_never_rounds_above_it(
    client: RobinhoodClient, fake: FakeRobinhood
) -> None:
    fake.holdings = {"ETH": Decimal("0.5000009")}  # finer than ETH's 0.000001 increment
    order = client.place_market_order("ETH-USD", Side.SELL, Decimal("0.5000009"), cid())
    assert order.state == "filled"
    assert order.asset_quantity == Decimal("0.5")  # rounding half-up would ask for 0.500001
    assert fake.holdings["ETH"] == Decimal("0.0000009")


def test_below_the_minimum_is_refused_before_sending(
    client: RobinhoodClient, fake: FakeRobinhood
) -> None:
    with pytest.raises(OrderTooSmallError, match=r"rounds down to 0\.000099, below .* 0\.0001"):
        client.place_market_order("ETH-USD", "buy", "0.0000999", cid())
    assert not [r for r in fake.server.requests if r.method == "POST"]


def test_too_much_precision_is_retried_once_with_the_venues_increment(
    client: RobinhoodClient, fake: FakeRobinhood
) -> None:
    fake.enforced_increment["BTC-USD"] = Decimal("0.0001")
    order = client.place_market_order("BTC-USD", "buy", "0.00123456", cid())
    assert order.asset_quantity == Decimal("0.0012")
    posts = [json.loads(r.body) for r in fake.server.requests if r.method == "POST"]
    assert [p["market_order_config"]["asset_quantity"] for p in posts] == ["0.00123456", "0.0012"]
    assert client.trading_pair("BTC-USD").asset_increment == Decimal("0.0001")


def test_precision_retry_that_falls_below_the_minimum_is_a_clear_error(
    client: RobinhoodClient, fake: FakeRobinhood
) -> None:
    fake.enforced_increment["BTC-USD"] = Decimal("0.01")
    with pytest.raises(OrderTooSmallError, match="below Robinhood's minimum"):
        client.place_market_order("BTC-USD", "buy", "0.005", cid())
    assert len([r for r in fake.server.requests if r.method == "POST"]) == 1


def test_the_venues_minimum_refusal_is_final(client: RobinhoodClient, fake: FakeRobinhood) -> None:
    client.trading_pair("BTC-USD")  # cached while the minimum was lower
    fake.pairs["BTC-USD"]["min_order_size"] = "0.01"
    with pytest.raises(OrderTooSmallError, match=r"greater than or equal to 0\.01"):
        client.place_market_order("BTC-USD", "buy", "0.001", cid())
    assert len([r for r in fake.server.requests if r.method == "POST"]) == 1


def test_above_the_maximum_is_refused_before_sending(
    client: RobinhoodClient, fake: FakeRobinhood
) -> None:
    with pytest.raises(OrderTooLargeError, match="above Robinhood's maximum order size 20"):
        client.place_market_order("BTC-USD", "sell", "25", cid())
    with pytest.raises(ValueError, match="badly formed"):
        client.place_market_order("BTC-USD", "sell", "1", "not-a-uuid")
    assert not [r for r in fake.server.requests if r.method == "POST"]


def test_insufficient_buying_power(client: RobinhoodClient, fake: FakeRobinhood) -> None:
    with pytest.raises(InsufficientFundsError, match="Insufficient buying power"):
        client.place_market_order("BTC-USD", "buy", "1", cid())
    assert fake.orders == []


@pytest.mark.parametrize("policy", ["return_original", "reject"])
def test_a_repeated_client_order_id_gives_the_same_order(
    client: RobinhoodClient, fake: FakeRobinhood, policy: str
) -> None:
    fake.duplicate_policy = policy
    order_id = cid()
    first = client.place_market_order("BTC-USD", "buy", "0.001", order_id)
    again = client.place_market_order("BTC-USD", "buy", "0.001", order_id)
    assert again.id == first.id
    assert len(fake.orders) == 1


def test_an_order_whose_answer_was_lost_is_found_not_sent_twice(
    client: RobinhoodClient, fake: FakeRobinhood
) -> None:
    client.trading_pair("BTC-USD")
    order_id = cid()
    fake.fail(Fault(path_prefix=ORDERS, truncate=10))  # created, then the connection is cut
    order = client.place_market_order("BTC-USD", "buy", "0.001", order_id)
    assert order.client_order_id == order_id
    assert len(fake.orders) == 1
    assert len([r for r in fake.server.requests if r.method == "POST"]) == 1


def test_an_order_refused_with_500_is_sent_again(
    client: RobinhoodClient, fake: FakeRobinhood, clock: Clock
) -> None:
    client.trading_pair("BTC-USD")
    fake.fail(Fault(path_prefix=ORDERS, reply=Reply.json({"type": "server_error"}, 500)))
    order = client.place_market_order("BTC-USD", "buy", "0.001", cid())
    assert order.state == "filled"
    assert [r.method for r in fake.server.requests_to(ORDERS)] == ["POST", "GET", "POST"]
    assert clock.sleeps == [0.5]


def test_cancel(client: RobinhoodClient, fake: FakeRobinhood) -> None:
    fake.fill_after_polls = None
    order = client.place_market_order("BTC-USD", "buy", "0.001", cid())
    assert order.state == "open"
    assert client.cancel_order(order.id) == f"Cancel request was submitted for order {order.id}"
    assert client.get_order(order.id).state == "canceled"


# ---------------------------------------------------------------------- waiting


def test_wait_for_order_polls_with_backoff_until_filled(
    client: RobinhoodClient, fake: FakeRobinhood, clock: Clock
) -> None:
    fake.fill_after_polls = 3
    order = client.place_market_order("BTC-USD", "buy", "0.001", cid())
    result = client.wait_for_order(order.id, deadline_s=60)
    assert result.terminal and result.order.state == "filled"
    assert clock.sleeps == [0.5, 0.75]


def test_an_order_that_never_fills_returns_at_the_deadline(
    client: RobinhoodClient, fake: FakeRobinhood, clock: Clock
) -> None:
    fake.fill_after_polls = None
    order = client.place_market_order("BTC-USD", "buy", "0.001", cid())
    start = clock.t
    result = client.wait_for_order(order.id, deadline_s=20)
    assert not result.terminal and result.order.state == "open"
    assert clock.t - start == pytest.approx(20)
    assert max(clock.sleeps) <= 5.0
    assert len(fake.server.requests_to(f"{ORDERS}{order.id}/")) == len(clock.sleeps) + 1


def test_wait_for_order_polls_through_a_server_error(
    client: RobinhoodClient, fake: FakeRobinhood, clock: Clock
) -> None:
    order = client.place_market_order("BTC-USD", "buy", "0.001", cid())
    fake.fail(Fault(path_prefix=f"{ORDERS}{order.id}/", reply=Reply.json({}, 503)))
    result = client.wait_for_order(order.id, deadline_s=10)
    assert result.terminal
    assert clock.sleeps == [0.5]


# ---------------------------------------------------------------------- errors


def test_a_wrong_private_key_is_an_auth_error_with_a_hint(
    fake: FakeRobinhood, clock: Clock
) -> None:
    client = make_client(fake, clock, seed=bytes(range(32)))
    with pytest.raises(ExchangeAuthError, match=r"HTTP 401: Invalid API key or signature.*clock"):
        client.account()
    assert len(fake.server.requests) == 1  # never retried


def test_a_clock_31_seconds_off_is_refused(fake: FakeRobinhood, clock: Clock) -> None:
    client = make_client(fake, lambda: clock.t - 31)
    with pytest.raises(ExchangeAuthError, match="Timestamp is expired"):
        client.holdings()
    assert make_client(fake, lambda: clock.t - 29).holdings() == []


def test_403_is_an_auth_error(client: RobinhoodClient, fake: FakeRobinhood) -> None:
    fake.fail(Fault(reply=Reply.json({"type": "client_error", "errors": []}, 403)))
    with pytest.raises(ExchangeAuthError, match="check the API key, the private key"):
        client.account()


def test_429_waits_for_retry_after(
    client: RobinhoodClient, fake: FakeRobinhood, clock: Clock
) -> None:
    fake.fail(Fault(reply=Reply.json({}, 429, {"Retry-After": "3"})))
    assert client.account().buying_power == Decimal("10000")
    assert clock.sleeps == [3.0]


def test_429_without_retry_after_backs_off(
    client: RobinhoodClient, fake: FakeRobinhood, clock: Clock
) -> None:
    fake.fail(Fault(times=2, reply=Reply(429, b"", content_type="text/plain")))
    client.account()
    assert clock.sleeps == [0.5, 1.0]


def test_persistent_500_gives_up_as_temporary(
    client: RobinhoodClient, fake: FakeRobinhood, clock: Clock
) -> None:
    body = {"type": "server_error", "errors": [{"detail": "Oops.", "attr": None}]}
    fake.fail(Fault(times=5, reply=Reply.json(body, 500)))
    with pytest.raises(TemporaryExchangeError, match=r"HTTP 500: Oops\..*gave up after 3"):
        client.account()
    assert len(fake.server.requests) == 3


def test_a_slow_answer_is_a_temporary_error(fake: FakeRobinhood, clock: Clock) -> None:
    client = make_client(fake, clock, timeout=0.1, retry=RetryPolicy(attempts=1))
    fake.fail(Fault(delay=0.4))
    with pytest.raises(TemporaryExchangeError, match=r"no answer within 0\.1 s"):
        client.account()


def test_a_4xx_is_permanent_with_the_venues_detail(client: RobinhoodClient) -> None:
    with pytest.raises(PermanentExchangeError, match="symbol: Invalid symbol: XYZ-USD"):
        client.best_bid_ask(["XYZ-USD"])


def test_the_fake_rejects_missing_headers(fake: FakeRobinhood) -> None:
    reply = requests.get(fake.base_url + TRADING_PAIRS, timeout=5)
    assert reply.status_code == 400
    assert reply.text.startswith("Request missing required headers")


def test_no_secret_reaches_a_log_line_or_an_error(
    fake: FakeRobinhood, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(fake, clock)
    errors: list[str] = [repr(client)]
    fake.fail(Fault(reply=Reply.json({}, 429, {"Retry-After": "1"})))
    client.account()
    client.place_market_order("BTC-USD", "buy", "0.001", cid())
    fake.enforced_increment["BTC-USD"] = Decimal("0.0001")
    client.place_market_order("BTC-USD", "buy", "0.00012345", cid())
    for bad in (make_client(fake, clock, seed=bytes(32)), make_client(fake, lambda: 0.0)):
        with pytest.raises(ExchangeAuthError) as info:
            bad.account()
        errors.append(str(info.value))
    with pytest.raises(InsufficientFundsError) as refused:
        client.place_market_order("BTC-USD", "buy", "5", cid())
    errors.append(str(refused.value))
    signatures = {r.headers["x-signature"] for r in fake.server.requests}
    seed_b64 = base64.b64encode(TEST_SEED).decode()
    text = caplog.text + "\n".join(errors)
    assert "placing market buy" in caplog.text  # the log was really captured
    assert len(signatures) >= 8
    for secret in (TEST_API_KEY, seed_b64, *signatures):
        assert secret not in text
