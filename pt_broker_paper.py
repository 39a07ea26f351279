"""The paper broker: market orders filled at once against real quotes, the wallet in the journal.

Used in demo mode (quotes from the bundled history replay) and paper mode (quotes from the
live public venues); the quotes are injected as ``prices``, so this module does no market I/O.

Cost model (settings ``paper``): a buy fills at ``ask × (1 + spread_pct/100)``, a sell at
``bid × (1 − spread_pct/100)``; the fee is ``fee_pct/100`` of the fill's notional, paid in USD
on top of a buy and out of a sell's proceeds. A USD-sized buy becomes a quantity at the quoted
ask, rounded down to ``10^-quantity_decimals``; the spread then makes it cost slightly more than
asked (slippage), as it would at a venue.

Why the journal holds everything: the wallet (cash and holdings), the fill, the order's journal
state and this broker's own record of the order (what :meth:`PaperBroker.order` answers) are
written in ONE journal transaction. A crash leaves either all of them or none, so the wallet
always reconciles with the recorded fills (:meth:`PaperBroker.wallet_problems`) and a new
PaperBroker over the same file resumes exactly, knowing every order it ever answered.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from pt_broker import (
    BrokerAccount,
    BrokerQuote,
    OrderRefused,
    OrderReport,
    UnknownOrderError,
    quote_problem,
)
from pt_config_schema import PaperSettings
from pt_errors import MarketDataError
from pt_fills import FillModel, FillRefused
from pt_journal import TradeJournal, coin_name
from pt_journal_schema import JournalError, OrderState, PaperWallet
from pt_strategy import MIN_ORDER_USD
from pt_types import Fill, OrderIntent, Side

log = logging.getLogger(__name__)

ORDER_KEY = "paper_broker/order/"  # + client order id: this broker's record of the order
START_KEY = "paper_broker/starting_cash_usd"
VENUE_PREFIX = "paper-"
CASH_TOLERANCE_USD = 0.005  # half a cent: what "reconciles to the cent" allows


def _report_json(report: OrderReport) -> dict[str, Any]:
    return {
        "venue_order_id": report.venue_order_id,
        "state": report.state.value,
        "filled_quantity": report.filled_quantity,
        "average_price": report.average_price,
        "fee_usd": report.fee_usd,
        "terminal": report.terminal,
        "message": report.message,
        "fills": [
            [fid, f.coin, f.side.value, f.quantity, f.price, f.fee_usd, f.time]
            for fid, f in report.fills
        ],
    }


def _report_from_json(cid: str, d: Mapping[str, Any]) -> OrderReport:
    fills = tuple(
        (str(fid), Fill(cid, str(coin), Side(side), float(q), float(p), float(fee), float(t)))
        for fid, coin, side, q, p, fee, t in d["fills"]
    )
    price = d["average_price"]
    return OrderReport(
        cid,
        d["venue_order_id"],
        OrderState(d["state"]),
        float(d["filled_quantity"]),
        None if price is None else float(price),
        float(d["fee_usd"]),
        fills,
        bool(d["terminal"]),
        str(d["message"]),
    )


class PaperBroker:
    """A :class:`pt_broker.Broker` that fills at once at the injected quotes (module doc).

    ``starting_cash_usd`` funds a new wallet only; an existing wallet in the journal (this
    journal's mode) is resumed as it is. ``min_order_usd`` is the smallest USD buy accepted
    (the original's $0.50). ``max_quote_age_s`` (off by default: the trader checks quote age
    against the strategy's limit) rejects quotes older than that by ``clock``."""

    def __init__(
        self,
        journal: TradeJournal,
        prices: Callable[[str], BrokerQuote],
        *,
        starting_cash_usd: float = 10_000.0,
        fee_pct: float = 0.1,
        spread_pct: float = 0.05,
        clock: Callable[[], float] = time.time,
        min_order_usd: float = MIN_ORDER_USD,
        quantity_decimals: int = 8,
        max_quote_age_s: float | None = None,
        name: str = "paper",
    ) -> None:
        if not (math.isfinite(starting_cash_usd) and starting_cash_usd > 0):
            raise ValueError(f"starting_cash_usd must be above 0, got {starting_cash_usd!r}")
        self._journal = journal
        self._prices = prices
        self.costs = FillModel(fee_pct, spread_pct, quantity_decimals, float(min_order_usd))
        self._clock = clock
        self._max_quote_age = max_quote_age_s
        self._name = name
        self._lock = threading.Lock()
        with journal.transaction():
            wallet = journal.paper_wallet()
            if wallet is None:
                wallet = PaperWallet(float(starting_cash_usd), {})
                journal.set_paper_wallet(wallet)
                journal.save_state(START_KEY, float(starting_cash_usd))
                log.info("paper wallet opened with %.2f USD", starting_cash_usd)
            else:
                log.info(
                    "paper wallet resumed: %.2f USD and %d holdings (starting_cash_usd only "
                    "applies to a new wallet)",
                    wallet.cash_usd,
                    len(wallet.holdings),
                )
            start = journal.load_state(START_KEY)
        self._wallet = wallet
        self.starting_cash_usd: float | None = None if start is None else float(start)

    @classmethod
    def from_settings(
        cls,
        journal: TradeJournal,
        prices: Callable[[str], BrokerQuote],
        paper: PaperSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> PaperBroker:
        """The broker the settings' ``paper`` section describes (demo and paper modes)."""
        return cls(
            journal,
            prices,
            starting_cash_usd=paper.starting_cash_usd,
            fee_pct=paper.fee_pct,
            spread_pct=paper.spread_pct,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"PaperBroker(journal={str(self._journal.path)!r}, mode={self._journal.mode})"

    @property
    def name(self) -> str:
        return self._name

    # -- reads ---------------------------------------------------------------------------------

    def account(self) -> BrokerAccount:
        wallet = self._wallet
        # A buy of notional n costs n × (1 + fee): leave room for the fee, rounded down to cents.
        spendable = self.costs.spendable(wallet.cash_usd)
        return BrokerAccount(wallet.cash_usd, dict(wallet.holdings), buying_power_usd=spendable)

    def quote(self, coin: str) -> BrokerQuote:
        return self._prices(coin_name(coin))

    def min_order_usd(self, coin: str) -> float:
        return self.costs.min_order_usd

    def order(self, client_order_id: str) -> OrderReport | None:
        data = self._journal.load_state(ORDER_KEY + str(client_order_id))
        return None if data is None else _report_from_json(str(client_order_id), data)

    def wait(self, client_order_id: str, deadline_s: float) -> OrderReport:
        """Paper orders are final when submitted: no waiting."""
        report = self.order(client_order_id)
        if report is None:
            raise UnknownOrderError(f"paper broker: no order {client_order_id}")
        return report

    # -- orders --------------------------------------------------------------------------------

    def submit(self, intent: OrderIntent, client_order_id: str) -> OrderReport:
        """Fill (or reject) the order and commit everything it changed in one transaction.

        The order must be in the journal first (``record_intent``, DESIGN.md §6); an order the
        journal already finished is never sent. The same id again returns the first answer."""
        cid = str(client_order_id or intent.client_order_id)
        if not cid:
            raise ValueError("an order needs a client order id")
        with self._lock:
            known = self.order(cid)
            if known is not None:
                return known
            record = self._journal.order(cid)
            if record is None:
                raise JournalError(f"order {cid} is not in the journal (record_intent comes first)")
            if (record.coin, record.side) != (coin_name(intent.coin), Side(intent.side)):
                raise JournalError(
                    f"order {cid} is journaled as {record.side.value} {record.coin}, not "
                    f"{Side(intent.side).value} {coin_name(intent.coin)}"
                )
            if record.state.finished:
                raise JournalError(f"order {cid} is already {record.state.value} in the journal")
            now = self._clock()
            report, wallet = self._execute(intent, cid, now)
            with self._journal.transaction():
                if report.fills:
                    self._journal.mark_sent(cid, report.venue_order_id, now=now)
                    for fill_id, fill in report.fills:
                        self._journal.record_fill(fill, fill_id)
                    self._journal.mark_order_state(cid, OrderState.FILLED, now=now)
                    self._journal.set_paper_wallet(wallet, now=now)
                else:
                    self._journal.mark_order_state(
                        cid, OrderState.REJECTED, detail=report.message, now=now
                    )
                self._journal.save_state(ORDER_KEY + cid, _report_json(report), now=now)
            self._wallet = wallet
        if report.rejected:
            log.warning("paper order %s rejected: %s", cid, report.message)
        else:
            log.info("paper order %s: %s", cid, report.message)
        return report

    def _execute(
        self, intent: OrderIntent, cid: str, now: float
    ) -> tuple[OrderReport, PaperWallet]:
        """The fill and the wallet after it, or a rejection and the wallet unchanged."""
        coin, side = coin_name(intent.coin), Side(intent.side)
        costs = self.costs
        try:
            quote = self._checked_quote(coin, now)
            if side is Side.BUY:
                qty = costs.buy_quantity(intent.usd_amount, intent.quantity, quote.ask, coin)
                price = costs.buy_price(quote.ask)
            else:
                qty = costs.sell_quantity(intent.quantity, self._wallet.quantity(coin), coin)
                price = costs.sell_price(quote.bid)
            return self._fill(cid, coin, side, qty, price=price, now=now)
        except (OrderRefused, FillRefused) as refused:
            return OrderReport.rejection(cid, str(refused)), self._wallet

    def _checked_quote(self, coin: str, now: float) -> BrokerQuote:
        try:
            quote = self._prices(coin)
        except MarketDataError as exc:
            raise OrderRefused(f"no {coin} price: {exc}") from None
        problem = quote_problem(quote, coin)
        if not problem and self._max_quote_age is not None:
            age = now - quote.time
            if age > self._max_quote_age:
                problem = f"the {coin} quote is {age:.0f} s old (limit {self._max_quote_age:g} s)"
        if problem:
            raise OrderRefused(f"no fill: {problem}")
        return quote

    def _fill(
        self, cid: str, coin: str, side: Side, qty: Decimal, *, price: float, now: float
    ) -> tuple[OrderReport, PaperWallet]:
        wallet = self._wallet
        quantity = float(qty)
        notional = quantity * price
        fee = self.costs.fee(quantity, price)
        holdings = dict(wallet.holdings)
        held = Decimal(repr(holdings.get(coin, 0.0)))
        if side is Side.BUY:
            cost = notional + fee
            if cost > wallet.cash_usd + 1e-9:
                raise OrderRefused(
                    f"insufficient cash: buying {qty} {coin} costs {cost:.2f} USD with the fee, "
                    f"the paper wallet has {wallet.cash_usd:.2f} USD"
                )
            cash = wallet.cash_usd - cost
            held += qty
        else:
            cash = wallet.cash_usd + notional - fee
            held -= qty
        if held > 0:
            holdings[coin] = float(held)
        else:
            holdings.pop(coin, None)
        venue_id = VENUE_PREFIX + cid
        fill = Fill(cid, coin, side, quantity, price, fee, now)
        report = OrderReport(
            cid,
            venue_id,
            OrderState.FILLED,
            quantity,
            price,
            fee,
            ((f"{venue_id}-1", fill),),
            True,
            f"{side.value} {qty} {coin} at {price:.8g} (fee {fee:.4f} USD)",
        )
        return report, PaperWallet(cash, holdings)

    # -- checks --------------------------------------------------------------------------------

    def wallet_problems(self, tolerance_usd: float = CASH_TOLERANCE_USD) -> tuple[str, ...]:
        """Where the journal's wallet disagrees with its paper fills ("" problems: none).

        Cash must equal the starting cash − Σ buys (quantity × price + fee) + Σ sells
        (quantity × price − fee), to ``tolerance_usd``; each holding must equal Σ bought − Σ
        sold of the coin. Only this broker's fills (venue fill id ``paper-…``) count."""
        with self._journal.snapshot():
            wallet = self._journal.paper_wallet()
            start = self._journal.load_state(START_KEY)
            fills = [
                f for f in self._journal.iter_fills() if f.venue_fill_id.startswith(VENUE_PREFIX)
            ]
        if wallet is None or start is None:
            return ("no paper wallet (or its starting cash) in the journal",)
        cash = float(start)
        held: dict[str, Decimal] = {}
        for f in fills:
            sign = 1 if f.side is Side.BUY else -1
            cash -= sign * f.quantity * f.price + f.fee_usd
            held[f.coin] = held.get(f.coin, Decimal(0)) + sign * Decimal(repr(f.quantity))
        problems = []
        if abs(cash - wallet.cash_usd) > tolerance_usd:
            problems.append(f"cash {wallet.cash_usd:.2f} USD, fills say {cash:.2f} USD")
        for coin in sorted(set(held) | set(wallet.holdings)):
            expected = float(held.get(coin, Decimal(0)))
            if abs(expected - wallet.quantity(coin)) > 1e-12:
                problems.append(f"{coin} {wallet.quantity(coin)!r}, fills say {expected!r}")
        return tuple(problems)
