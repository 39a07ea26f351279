"""The risk limits inside the trader: a refused buy is never sent and says why, the drawdown
stop holds across a restart until the user resumes, and it notifies once (CRITICAL)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from pt_config import parse
from pt_correlation import CorrelationMatrix
from pt_journal_schema import OrderState
from pt_market_state import MarketState
from pt_notify_format import EventKind, Level, Notification
from pt_risk import RiskLimits, gate_buys
from pt_signals import SignalsSnapshot
from pt_strategy import Decision, MarketView
from pt_thinker_exchanges import AggregatedPrice, aggregate_quotes
from pt_trader import VenuePrices, risk_data
from pt_trader_risk import DRAWDOWN_KEY
from pt_types import OrderIntent, OrderTag, Quote, Side
from tests.test_trader import World


@dataclass
class RiskWorld(World):
    """A world whose thinker also reports ATR % and a BTC/ETH correlation."""

    atr: dict[str, float] = field(default_factory=dict)
    rho: float | None = None

    def snapshot(self) -> SignalsSnapshot:
        snap = super().snapshot()
        coins = tuple(
            replace(c, market=MarketState(None, "", self.atr.get(c.coin), "")) for c in snap.coins
        )
        matrices: tuple[CorrelationMatrix, ...] = ()
        if self.rho is not None:
            values = ((1.0, self.rho), (self.rho, 1.0))
            matrices = (CorrelationMatrix(("BTC", "ETH"), values, 30, 30),)
        return replace(snap, coins=coins, correlations=matrices)


def world_with(tmp_path: Path, **settings: object) -> RiskWorld:
    tmp_path.mkdir(exist_ok=True)
    data = {"coins": ["BTC", "ETH"], "start_allocation_pct": 10.0} | settings
    return RiskWorld(tmp_path / "journal.sqlite3", settings=parse(data))


def test_a_concentration_limit_refuses_the_entry_and_says_why(tmp_path: Path) -> None:
    world = world_with(tmp_path, risk={"max_coin_pct": 5})
    world.prices = {"BTC": (100.0, 100.0), "ETH": (50.0, 50.0)}
    world.levels = {"BTC": (3, 0)}
    journal = world.journal()
    result = world.trader(journal, world.paper(journal)).tick()
    assert result.orders == () and journal.open_trade("BTC") is None
    btc = next(v for v in result.coins if v.coin == "BTC")
    assert btc.problem.startswith("risk limit (max_coin_pct): BTC would be 10.0% of the account")
    assert btc.decision is not None and "refused: risk limit" in btc.decision.reason
    allowed = world_with(tmp_path, risk={"max_coin_pct": 10})
    allowed.prices, allowed.levels = world.prices, world.levels
    assert [r.state for r in allowed.trader(journal, allowed.paper(journal)).tick().orders] == [
        OrderState.FILLED
    ]


def test_the_volatility_limit_and_volatility_sizing_use_the_thinkers_atr(tmp_path: Path) -> None:
    world = world_with(
        tmp_path, sizing={"method": "volatility"}, risk={"volatility_position_pct": 5}
    )
    world.prices = {"BTC": (100.0, 100.0), "ETH": (50.0, 50.0)}
    world.levels = {"BTC": (3, 0)}
    journal = world.journal()
    trader = world.trader(journal, world.paper(journal))
    result = trader.tick()  # no ATR yet: sized fixed (10 %), and the limit refuses
    btc = next(v for v in result.coins if v.coin == "BTC")
    assert result.orders == () and "ATR % is not known yet" in btc.problem
    world.atr["BTC"] = 1.5  # calm: 2 % x 3/1.5 = 4 % of 10 000 = 400; cap 5 % x 2 = 10 %
    world.now += 60
    result = trader.tick()
    assert [r.state for r in result.orders] == [OrderState.FILLED]
    order = journal.orders()[-1]
    assert order.requested_usd == pytest.approx(400.0)
    assert "volatility sizing (ATR 14 is 1.50% of the price" in order.reason


def test_a_correlated_entry_is_noted_or_refused(tmp_path: Path) -> None:
    world = world_with(tmp_path)
    world.prices = {"BTC": (100.0, 100.0), "ETH": (50.0, 50.0)}
    world.levels, world.rho = {"BTC": (3, 0)}, 0.93
    journal = world.journal()
    trader = world.trader(journal, world.paper(journal))
    trader.tick()  # BTC bought
    world.levels = {"ETH": (3, 0)}
    world.now += 60
    trader.tick()
    eth = journal.orders()[-1]
    assert (eth.coin, eth.state) == ("ETH", OrderState.FILLED)
    assert "note: ETH moves with BTC (correlation 0.93 > 0.8): little diversification" in eth.reason
    strict = world_with(tmp_path / "strict", risk={"block_correlated_entries": True},
                        coins=["BTC", "ETH", "XRP"])  # fmt: skip
    strict.prices = {"BTC": (100.0, 100.0), "ETH": (50.0, 50.0), "XRP": (1.0, 1.0)}
    strict.levels, strict.rho = {"BTC": (3, 0)}, 0.93
    own = strict.journal()
    trader = strict.trader(own, strict.paper(own))
    trader.tick()  # BTC bought
    strict.levels = {"ETH": (3, 0), "XRP": (3, 0)}
    strict.now += 60
    result = trader.tick()
    refused = next(v for v in result.coins if v.coin == "ETH")
    assert refused.problem.startswith("risk limit (block_correlated_entries): ETH moves with BTC")
    # no correlation known for XRP: allowed (an alert needs a measured correlation)
    assert [o.coin for o in own.orders()] == ["BTC", "XRP"]


def test_drawdown_stop_holds_over_a_restart_until_resumed(tmp_path: Path) -> None:
    world = world_with(tmp_path, risk={"drawdown_stop_pct": 5})
    world.prices = {"BTC": (100.0, 100.0), "ETH": (50.0, 50.0)}
    world.levels = {"BTC": (3, 0)}
    journal = world.journal()
    sent: list[Notification] = []
    resume: list[float] = []
    trader = world.trader(journal, world.paper(journal), notify=sent.append,
                          resume_requested=lambda: resume[-1] if resume else None)  # fmt: skip
    trader.tick()  # 10 BTC for 1 000 (+1 fee): value 9 999
    world.levels = {"BTC": (0, 0)}
    # BTC halves: value 9 999 - 500 = 9 499, 5.0 % below the peak; DCA tier -2.5 % is hit
    world.now += 60
    world.prices["BTC"] = (50.0, 50.0)
    result = trader.tick()
    assert result.orders == ()
    assert result.risk is not None and result.risk.halted
    assert result.problem.startswith("drawdown stop: the account is 5.0% below its peak")
    btc = next(v for v in result.coins if v.coin == "BTC")
    assert "risk limit (drawdown_stop_pct)" in btc.problem
    assert [(n.kind, n.level) for n in sent if n.kind is EventKind.RISK_LIMIT] == [
        (EventKind.RISK_LIMIT, Level.CRITICAL)
    ]
    status = risk_data(result.risk, result.account.total_value if result.account else None)
    assert status["halted"] and status["drawdown_pct"] == pytest.approx(5.0, abs=0.01)

    # A restart keeps the stop (it lives in the journal) and does not notify again.
    journal.close()
    journal = world.journal()
    assert journal.load_state(DRAWDOWN_KEY)["halted_at"] == world.now
    trader = world.trader(journal, world.paper(journal), notify=sent.append,
                          resume_requested=lambda: resume[-1] if resume else None)  # fmt: skip
    world.now += 60
    again = trader.tick()
    assert again.orders == () and again.risk is not None and again.risk.halted
    assert len([n for n in sent if n.kind is EventKind.RISK_LIMIT]) == 1

    # A trailing sell would still go out (the stop blocks buys only); resuming releases it.
    resume.append(world.now + 1)
    world.now += 60
    released = trader.tick()
    assert released.risk is not None and not released.risk.halted
    assert released.risk.peak == pytest.approx(9_499.0, abs=0.01)  # measured from now on
    assert [o.tag for o in journal.orders()][-1] is OrderTag.DCA


def test_drawdown_pause_all_sends_no_sell_either(tmp_path: Path) -> None:
    world = world_with(tmp_path, risk={"drawdown_stop_pct": 1, "drawdown_pause_all": True},
                       pm_start_pct_no_dca=0.5, trailing_gap_pct=0.1)  # fmt: skip
    world.prices = {"BTC": (100.0, 100.0), "ETH": (50.0, 50.0)}
    world.levels = {"BTC": (3, 0)}
    journal = world.journal()
    trader = world.trader(journal, world.paper(journal))
    trader.tick()
    world.levels = {}
    for bid in (80.0, 101.0, 100.8):  # falls (stop), then a trailing sell would trigger
        world.now += 60
        world.prices["BTC"] = (bid, bid)
        result = trader.tick()
        assert result.orders == ()
    sell = next(v for v in result.coins if v.coin == "BTC").decision
    assert sell is not None and [i.side for i in sell.intents] == [Side.SELL]
    assert "the trader is paused until you resume" in result.problem
    assert len(journal.orders()) == 1


class Venues:
    """get_aggregated_current_price over fixed quotes, counting the calls."""

    def __init__(self, mids: dict[str, float]) -> None:
        self.mids, self.calls = mids, 0

    def get_aggregated_current_price(self, symbol: str) -> AggregatedPrice:
        self.calls += 1
        quotes = [Quote(symbol, v, m - 0.05, m + 0.05, m, 0.0) for v, m in self.mids.items()]
        return aggregate_quotes(symbol, quotes, outlier_pct=5.0, now=0.0)


def test_venue_prices_share_one_round_of_requests_per_tick_and_give_the_gap() -> None:
    venues = Venues({"kucoin": 100.0, "binance": 100.4, "coinbase": 100.2})
    wall = [0.0]
    prices = VenuePrices(venues, wall=lambda: wall[0])  # type: ignore[arg-type]
    quote = prices.quote("BTC")
    # the best bid (100.35) is above the best ask (99.95) across venues: no spread on the median
    assert (quote.bid, quote.ask) == pytest.approx((100.2, 100.2))
    assert prices.reference("BTC") == pytest.approx(100.2)
    assert prices.gap_pct("BTC") == pytest.approx(0.4 / 100.2 * 100)
    assert venues.calls == 1
    wall[0] = 1.0
    prices.gap_pct("BTC")
    assert venues.calls == 2


def test_gate_buys_leaves_sells_alone_and_counts_earlier_buys() -> None:
    buy_btc = OrderIntent("BTC", Side.BUY, OrderTag.ENTRY, "start BTC", usd_amount=300.0)
    buy_eth = OrderIntent("ETH", Side.BUY, OrderTag.ENTRY, "start ETH", usd_amount=300.0)
    sell = OrderIntent("XRP", Side.SELL, OrderTag.TRAIL_SELL, "sell XRP", quantity=5.0)
    decisions = tuple(Decision(i.coin, (i,), None, i.reason) for i in (buy_btc, buy_eth, sell))
    markets = {c: MarketView(10.0, 10.0, 0.0) for c in ("BTC", "ETH", "XRP")}
    limits = RiskLimits(max_exposure_pct=5.0)  # 500 of 10 000: BTC fits, then ETH does not
    kept, refused = gate_buys(decisions, limits, account_value=10_000.0, positions={"XRP": 100.0},
                              markets=markets, inputs={})  # fmt: skip
    assert [d.intents for d in kept] == [(buy_btc,), (), (sell,)]
    assert list(refused) == ["ETH"] and "7.0% of the account" in refused["ETH"]
    halted, why = gate_buys(decisions, RiskLimits(), account_value=10_000.0, positions={},
                            markets=markets, inputs={}, halted="drawdown stop")  # fmt: skip
    assert [d.intents for d in halted] == [(), (), (sell,)] and set(why) == {"BTC", "ETH"}
