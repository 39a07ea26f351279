"""The paper broker against a real journal file: fills, fees, wallet, restarts and refusals.

Prices are hand-picked so the figures can be worked on paper (each test says how)."""

from __future__ import annotations

import math
import sqlite3
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from pt_broker import Broker, BrokerQuote, OrderReport, UnknownOrderError, broker_quote
from pt_broker_paper import PaperBroker
from pt_config_schema import PaperSettings
from pt_errors import TemporaryExchangeError
from pt_fills import round_down
from pt_journal import TradeJournal
from pt_journal_schema import JournalError, OrderState, PaperWallet
from pt_types import Mode, OrderIntent, OrderTag, Quote, Side

T0 = 1_700_000_000.0
CENT = 0.005  # "to the cent"


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Prices:
    """The market as the paper broker sees it: settable quotes, or an outage."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.quotes: dict[str, tuple[float, float]] = {"BTC": (39_900.0, 40_000.0)}
        self.down: str = ""

    def set(self, coin: str, bid: float, ask: float) -> None:
        self.quotes[coin] = (bid, ask)

    def __call__(self, coin: str) -> BrokerQuote:
        if self.down:
            raise TemporaryExchangeError(self.down)
        bid, ask = self.quotes[coin]
        return BrokerQuote(coin, bid, ask, self.clock())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def prices(clock: Clock) -> Prices:
    return Prices(clock)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite3"


@pytest.fixture
def journal(path: Path, clock: Clock) -> Iterator[TradeJournal]:
    with TradeJournal(path, mode=Mode.PAPER, clock=clock) as j:
        yield j


def make_broker(journal: TradeJournal, prices: Prices, clock: Clock, **kw: float) -> PaperBroker:
    options: dict[str, float] = {"starting_cash_usd": 10_000.0, "fee_pct": 0.1, "spread_pct": 0.5}
    options.update(kw)
    return PaperBroker(journal, prices, clock=clock, **options)  # type: ignore[arg-type]


@pytest.fixture
def broker(journal: TradeJournal, prices: Prices, clock: Clock) -> PaperBroker:
    return make_broker(journal, prices, clock)


def order(
    journal: TradeJournal,
    broker: PaperBroker,
    side: Side,
    *,
    usd: float | None = None,
    qty: float | None = None,
    coin: str = "BTC",
    tag: OrderTag | None = None,
) -> OrderReport:
    """What the trader does: journal the intent, then submit it."""
    tag = tag or (OrderTag.ENTRY if side is Side.BUY else OrderTag.TRAIL_SELL)
    intent = OrderIntent(coin, side, tag, "test", usd_amount=usd, quantity=qty)
    cid = journal.record_intent(intent)
    return broker.submit(intent, cid)


# ---------------------------------------------------------------------- fills


def test_a_buy_fills_at_the_ask_plus_spread_and_pays_the_fee(
    journal: TradeJournal, broker: PaperBroker
) -> None:
    # $1000 at the ask 40 000 -> 0.025 BTC; price 40 000 x 1.005 = 40 200;
    # notional 0.025 x 40 200 = 1005.00; fee 0.1 % = 1.005; cash 10 000 - 1006.005 = 8993.995.
    report = order(journal, broker, Side.BUY, usd=1000.0)
    assert report.state is OrderState.FILLED and report.terminal and not report.rejected
    assert report.filled_quantity == 0.025
    assert report.average_price == pytest.approx(40_200.0)
    assert report.fee_usd == pytest.approx(1.005)
    ((fill_id, fill),) = report.fills
    assert fill_id == f"paper-{report.client_order_id}-1"
    assert (fill.quantity, fill.side, fill.coin, fill.time) == (0.025, Side.BUY, "BTC", T0)
    account = broker.account()
    assert account.cash_usd == pytest.approx(8993.995, abs=CENT)
    assert account.quantity("BTC") == 0.025 and account.sellable("btc") == 0.025
    # The journal has the fill, the order finished, the trade open at cost + fee, the wallet.
    record = journal.order(report.client_order_id)
    assert record is not None and record.state is OrderState.FILLED
    assert record.venue_order_id == report.venue_order_id
    trade = journal.open_trade("BTC")
    assert trade is not None and trade.cost_usd == pytest.approx(1006.005)
    assert journal.paper_wallet() == PaperWallet(account.cash_usd, {"BTC": 0.025})


def test_a_sell_fills_at_the_bid_minus_spread_and_the_trade_closes(
    journal: TradeJournal, broker: PaperBroker, prices: Prices
) -> None:
    order(journal, broker, Side.BUY, usd=1000.0)  # cash 8993.995, 0.025 BTC (test above)
    prices.set("BTC", 44_000.0, 44_100.0)
    # 0.025 at 44 000 x 0.995 = 43 780 -> 1094.50; fee 1.0945; cash 8993.995 + 1093.4055.
    report = order(journal, broker, Side.SELL, qty=0.025)
    assert report.state is OrderState.FILLED
    assert report.average_price == pytest.approx(43_780.0)
    assert report.fee_usd == pytest.approx(1.0945)
    account = broker.account()
    assert account.cash_usd == pytest.approx(10_087.4005, abs=CENT)
    assert account.holdings == {}
    (trade,) = journal.trades(status="closed")
    assert trade.realized_pnl_usd == pytest.approx(1093.4055 - 1006.005)


def test_a_usd_buy_is_rounded_down_to_the_increment(
    journal: TradeJournal, broker: PaperBroker, prices: Prices
) -> None:
    prices.set("BTC", 29_990.0, 30_000.0)
    # $100 / 30 000 = 0.0033333333... -> 0.00333333 BTC, at 30 150 each, plus 0.1 %.
    report = order(journal, broker, Side.BUY, usd=100.0)
    assert report.filled_quantity == 0.00333333
    cost = 0.00333333 * 30_150.0 * 1.001
    assert broker.account().cash_usd == pytest.approx(10_000.0 - cost, abs=1e-9)


def test_float_noise_does_not_leave_dust_and_a_true_remainder_rounds_down() -> None:
    step = Decimal("0.00000001")
    assert round_down(0.1 + 0.2, step) == Decimal("0.3")  # 0.30000000000000004
    assert round_down(0.29999999999999999, step) == Decimal("0.3")
    assert round_down(0.123456789, step) == Decimal("0.12345678")


def test_selling_a_position_summed_from_several_buys_sells_it_all(
    journal: TradeJournal, broker: PaperBroker, prices: Prices
) -> None:
    prices.set("BTC", 9_999.0, 10_000.0)
    order(journal, broker, Side.BUY, usd=1000.0)  # 0.1
    order(journal, broker, Side.BUY, usd=2000.0, tag=OrderTag.DCA)  # 0.2
    trade = journal.open_trade("BTC")
    assert trade is not None and trade.quantity == 0.1 + 0.2 != 0.3
    report = order(journal, broker, Side.SELL, qty=trade.quantity)
    assert report.filled_quantity == 0.3
    assert broker.account().holdings == {} and journal.open_trade("BTC") is None


# ---------------------------------------------------------------------- idempotency, restart


def test_submitting_the_same_id_twice_makes_one_order(
    journal: TradeJournal, broker: PaperBroker
) -> None:
    intent = OrderIntent("BTC", Side.BUY, OrderTag.ENTRY, "test", usd_amount=1000.0)
    cid = journal.record_intent(intent)
    first = broker.submit(intent, cid)
    again = broker.submit(intent, cid)
    assert again == first
    assert len(journal.fills()) == 1
    assert broker.account().quantity("BTC") == 0.025
    # The trader recording the reported fill again changes nothing either.
    ((fill_id, fill),) = first.fills
    assert journal.record_fill(fill, fill_id) is False
    assert broker.wait(cid, 5.0) == first


def test_a_restart_resumes_the_wallet_and_still_knows_its_orders(
    path: Path, prices: Prices, clock: Clock
) -> None:
    with TradeJournal(path, mode=Mode.PAPER, clock=clock) as journal:
        broker = make_broker(journal, prices, clock)
        bought = order(journal, broker, Side.BUY, usd=1000.0)
        refused = order(journal, broker, Side.BUY, usd=50_000.0)
        before = broker.account()
    with TradeJournal(path, mode=Mode.PAPER, clock=clock) as journal:
        # A different starting cash in the settings does not reset a wallet that exists.
        broker = make_broker(journal, prices, clock, starting_cash_usd=500.0)
        assert broker.account() == before
        assert broker.starting_cash_usd == 10_000.0
        assert broker.order(bought.client_order_id) == bought
        assert broker.order(refused.client_order_id) == refused
        assert broker.order(str(uuid.uuid4())) is None
        intent = OrderIntent("BTC", Side.BUY, OrderTag.ENTRY, "test", usd_amount=1000.0)
        assert broker.submit(intent, bought.client_order_id) == bought
        assert broker.account() == before and len(journal.fills()) == 1
        assert broker.wallet_problems() == ()


def test_the_settings_paper_section_builds_the_broker(
    journal: TradeJournal, prices: Prices, clock: Clock
) -> None:
    paper = PaperSettings(starting_cash_usd=2_000.0, fee_pct=0.0, spread_pct=0.0)
    broker = PaperBroker.from_settings(journal, prices, paper, clock=clock)
    report = order(journal, broker, Side.BUY, usd=1000.0)  # 0.025 at exactly 40 000, no fee
    assert (report.average_price, report.fee_usd) == (40_000.0, 0.0)
    assert broker.account().cash_usd == 1_000.0


def test_the_wallet_modes_are_separate(path: Path, prices: Prices, clock: Clock) -> None:
    with TradeJournal(path, mode=Mode.PAPER, clock=clock) as journal:
        order(journal, make_broker(journal, prices, clock), Side.BUY, usd=1000.0)
    with TradeJournal(path, mode=Mode.DEMO, clock=clock) as journal:
        assert make_broker(journal, prices, clock).account().cash_usd == 10_000.0


def test_a_failed_transaction_changes_nothing_and_the_order_can_be_sent_again(
    path: Path, journal: TradeJournal, broker: PaperBroker
) -> None:
    # A real SQLite failure in the middle of the broker's transaction (after the fill and the
    # wallet were written, at the broker's order record): everything is rolled back.
    with sqlite3.connect(path) as other:
        other.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON trader_state "
            "WHEN NEW.key LIKE 'paper_broker/order/%' "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    intent = OrderIntent("BTC", Side.BUY, OrderTag.ENTRY, "test", usd_amount=1000.0)
    cid = journal.record_intent(intent)
    with pytest.raises(JournalError, match="disk full"):
        broker.submit(intent, cid)
    assert journal.fills() == () and journal.open_trade("BTC") is None
    assert journal.paper_wallet() == PaperWallet(10_000.0, {})
    assert broker.account().cash_usd == 10_000.0 and broker.order(cid) is None
    record = journal.order(cid)
    assert record is not None and record.state is OrderState.INTENT
    with sqlite3.connect(path) as other:
        other.execute("DROP TRIGGER boom")
    assert broker.submit(intent, cid).state is OrderState.FILLED
    assert len(journal.fills()) == 1 and broker.wallet_problems() == ()


# ---------------------------------------------------------------------- refusals


def assert_refused(
    journal: TradeJournal, broker: PaperBroker, report: OrderReport, words: str
) -> None:
    assert report.rejected and report.terminal and report.fills == ()
    assert report.venue_order_id is None and report.filled_quantity == 0
    assert words in report.message
    record = journal.order(report.client_order_id)
    assert record is not None and record.state is OrderState.REJECTED
    assert words in record.detail
    assert broker.order(report.client_order_id) == report


def test_insufficient_cash_is_a_rejection_not_an_exception(
    journal: TradeJournal, broker: PaperBroker
) -> None:
    # $9990 buys 0.24975 BTC at 40 200 = 10 039.95 + fee: more than the 10 000 held.
    report = order(journal, broker, Side.BUY, usd=9_990.0)
    assert_refused(journal, broker, report, "insufficient cash")
    assert broker.account().cash_usd == 10_000.0 and journal.fills() == ()


def test_selling_more_than_held_is_refused(journal: TradeJournal, broker: PaperBroker) -> None:
    order(journal, broker, Side.BUY, usd=1000.0)
    report = order(journal, broker, Side.SELL, qty=0.0251)
    assert_refused(journal, broker, report, "holds 0.025")
    assert broker.account().quantity("BTC") == 0.025


def test_below_the_minimum_is_refused(journal: TradeJournal, broker: PaperBroker) -> None:
    assert broker.min_order_usd("BTC") == 0.50
    report = order(journal, broker, Side.BUY, usd=0.49)
    assert_refused(journal, broker, report, "below the minimum 0.50")
    assert order(journal, broker, Side.BUY, usd=0.50).state is OrderState.FILLED


@pytest.mark.parametrize(
    "case",
    [
        (math.nan, 40_000.0, "bid is not a finite number"),
        (39_900.0, math.inf, "ask is not a finite number"),
        (0.0, 40_000.0, "bid is 0.0"),
        (39_900.0, -1.0, "ask is -1.0"),
        (40_100.0, 40_000.0, "above the ask"),
    ],
)
def test_a_bad_quote_never_fills(
    journal: TradeJournal, broker: PaperBroker, prices: Prices, case: tuple[float, float, str]
) -> None:
    bid, ask, words = case
    prices.set("BTC", bid, ask)
    report = order(journal, broker, Side.BUY, usd=100.0)
    assert_refused(journal, broker, report, words)
    assert broker.account().cash_usd == 10_000.0


def test_no_price_and_a_quote_for_another_coin_never_fill(
    journal: TradeJournal, broker: PaperBroker, prices: Prices, clock: Clock
) -> None:
    prices.down = "replay: no candle at 12:00: exchange outage"
    assert_refused(journal, broker, order(journal, broker, Side.BUY, usd=100.0), "outage")
    prices.down = ""
    wrong = make_broker(journal, lambda coin: BrokerQuote("ETH", 1.0, 2.0, T0), clock)  # type: ignore[arg-type]
    assert_refused(journal, wrong, order(journal, wrong, Side.BUY, usd=100.0), "not BTC")


def test_a_stale_quote_is_refused_when_an_age_limit_is_set(
    journal: TradeJournal, prices: Prices, clock: Clock
) -> None:
    broker = make_broker(journal, prices, clock, max_quote_age_s=60.0)
    prices.clock = Clock(T0 - 61)
    assert_refused(journal, broker, order(journal, broker, Side.BUY, usd=100.0), "61 s old")


def test_an_order_not_in_the_journal_or_already_finished_is_never_sent(
    journal: TradeJournal, broker: PaperBroker
) -> None:
    intent = OrderIntent("BTC", Side.BUY, OrderTag.ENTRY, "test", usd_amount=100.0)
    with pytest.raises(JournalError, match="record_intent comes first"):
        broker.submit(intent, str(uuid.uuid4()))
    cid = journal.record_intent(intent)
    journal.mark_order_state(cid, OrderState.FAILED)
    with pytest.raises(JournalError, match="already failed"):
        broker.submit(intent, cid)
    other = OrderIntent("ETH", Side.BUY, OrderTag.ENTRY, "test", usd_amount=100.0)
    with pytest.raises(JournalError, match="not buy ETH"):
        broker.submit(other, journal.record_intent(intent))
    assert broker.account().cash_usd == 10_000.0
    with pytest.raises(UnknownOrderError):
        broker.wait(str(uuid.uuid4()), 1.0)


# ---------------------------------------------------------------------- reconciliation


def test_the_wallet_always_reconciles_with_the_fills(
    journal: TradeJournal, broker: PaperBroker, prices: Prices, clock: Clock
) -> None:
    prices.set("ETH", 2_990.0, 3_000.0)
    steps: list[tuple[str, Side, float]] = [
        ("BTC", Side.BUY, 1234.56),
        ("ETH", Side.BUY, 777.77),
        ("BTC", Side.BUY, 2_000.0),
        ("ETH", Side.SELL, 0.1),
        ("BTC", Side.SELL, 0.03),
        ("ETH", Side.BUY, 50_000.0),  # refused: not enough cash
        ("ETH", Side.SELL, 10.0),  # refused: more than held
    ]
    for i, (coin, side, amount) in enumerate(steps):
        clock.t += 60
        bid, ask = prices.quotes[coin]
        prices.set(coin, bid * (1 + 0.01 * (i % 3 - 1)), ask * (1 + 0.01 * (i % 3 - 1)))
        if side is Side.BUY:
            order(journal, broker, side, usd=amount, coin=coin, tag=OrderTag.DCA if i > 1 else None)
        else:
            order(journal, broker, side, qty=amount, coin=coin, tag=OrderTag.MANUAL)
        assert broker.wallet_problems() == ()
        # The same sum, by hand: starting cash - cash = sum(buys q*p + fee) - sum(sells q*p - fee).
        spent = sum(
            (f.quantity * f.price + f.fee_usd)
            if f.side is Side.BUY
            else -(f.quantity * f.price - f.fee_usd)
            for f in journal.fills()
        )
        wallet = journal.paper_wallet()
        assert wallet is not None
        assert 10_000.0 - wallet.cash_usd == pytest.approx(spent, abs=CENT)
    assert len(journal.fills()) == 5
    assert len(journal.orders(state=OrderState.REJECTED)) == 2


def test_a_wallet_that_disagrees_with_the_fills_is_reported(
    journal: TradeJournal, broker: PaperBroker
) -> None:
    order(journal, broker, Side.BUY, usd=1000.0)
    journal.set_paper_wallet(PaperWallet(8994.10, {"BTC": 0.025, "ETH": 1.0}))
    expected_cash = 10_000.0 - 0.025 * 40_200.0 * 1.001  # 8993.995
    assert broker.wallet_problems() == (
        f"cash 8994.10 USD, fills say {expected_cash:.2f} USD",
        "ETH 1.0, fills say 0.0",
    )
    journal.set_paper_wallet(PaperWallet(expected_cash + 0.004, {"BTC": 0.025}))
    assert broker.wallet_problems() == ()  # within half a cent


# ---------------------------------------------------------------------- protocol


def test_the_paper_broker_is_a_broker_and_market_quotes_feed_it(
    journal: TradeJournal, broker: PaperBroker
) -> None:
    assert isinstance(broker, Broker) and broker.name == "paper"
    q = Quote("btc", "replay", 39_990.0, 40_010.0, 40_000.0, T0)
    assert broker_quote(q) == BrokerQuote("BTC", 39_990.0, 40_010.0, T0)
    assert broker.quote("btc") == BrokerQuote("BTC", 39_900.0, 40_000.0, T0)
