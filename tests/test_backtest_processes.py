"""Equivalence with the real processes: ``pt_thinker.py`` and ``pt_trader.py`` in demo mode, run by
the hub's :class:`pt_supervisor.Supervisor`, make the backtest's fills over the same history.

Two simulated days of BTC (2022-06-07 and -08; the settings of tests/test_backtester.py, a model
trained by ``pt_trainer.py`` on the history before them) go through the processes and through
:func:`pt_backtest_engine.run_backtest` with the same settings: the journal's fills must be the
backtest's. The span makes three entries, three DCAs (two in a row once) and two trailing sells.

**How the demo clock is driven.** Not at a speed. At a speed the trader sees the history at
whatever moments its ticks fall on (speed × ``trader.tick_seconds`` apart, more when the machine
is busy), so no two runs trade at the same moments, and a loaded machine can skip the few
minutes a DCA tier was touched. Instead the test does, step by step, what the hub can do: the
demo clock stands still (speed 0) at each of the backtest's step times in turn, and trading is
paused by the hub (the trader's control file) except for one tick whenever an order is due:

1. ``start_clock`` at the step's time ``t``; wait until the thinker's signals are for ``t``;
   then wait for a trader tick that began after those signals were on disk (one after a tick
   whose status was written after they were seen). Paused, it decides and reports as any tick
   does, and keeps its trailing state (a paused tick at the same price leaves nothing for the
   next one to do differently).
2. If that decision sends an order, trading is resumed right after a tick has reported, with
   ``trader.tick_seconds`` raised to 0.25 s in the settings (hot reloaded at each tick), and
   paused again as soon as the next tick has reported: that one tick sends the order, and the
   tick after it comes 0.25 s later, long after the pause. Exactly one tick matters: five of
   the eight orders here would be followed, at the same moment, by another (a neural DCA at
   once, the buy PnL being the fee and slippage below zero; a new entry right after a sell).
   Should the test stall so long that a second tick trades, the order count says so and the
   test fails saying why; a window no tick fell into is tried again, once every tick that
   might still have seen it has reported.

With the clock standing still every tick at ``t`` sees the same price and every age is zero,
so the backtest's one decision per step is exactly what the trader decides at that moment.

**Tolerances** (what a user may expect from the backtest):

- Tags, sides and their order: equal. A missing or extra fill is another trading history.
- Times: equal. The processes can only trade at the moments the clock is stepped to, the
  backtest's steps, so one trader tick of simulated time is one step (20 minutes here), and a
  fill one tick off is a fill at another step's price: another decision, not a rounding.
  (At a running clock a tick is speed × ``tick_seconds`` of simulated time, and the backtest
  to compare with is the one whose ``step_seconds`` is that long.)
- Prices: within a billionth, relative. Both fill at the replay's quote with the paper broker's
  slippage and fee; what is left is float rounding (the trader's quote is the mid ∓ half the
  bid/ask gap, the backtest's the path price × (1 ∓ half the spread)), parts in 10¹⁶. The
  spread model itself (0.05 % quote spread, 0.05 % slippage) would hide real differences: a
  neighbouring step's price is often closer than that.
- Quantities: within 1e-8 coin, the paper broker's rounding unit (8 decimals): a price one
  float ulp apart may round a buy's quantity the other way.

The processes needed one fix for this: ``pt_trader.Runner`` kept each venue price for half a
second of wall time, so whenever the demo clock moved faster than that (a step here, or any
speed with ``tick_seconds`` below 0.5) the trader decided and filled on an earlier moment's
price; here the first entry came an hour late. It now times that memo on the mode's clock
(``test_a_venue_price_is_never_reused_for_another_simulated_moment``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

import pt_config
from pt_backtest_engine import BacktestSpec, run_backtest
from pt_config_schema import Settings
from pt_exchanges import ExchangeManager
from pt_journal_reader import JournalReader
from pt_replay import ReplayMarket, start_clock
from pt_state import DataLayout, Envelope, parse_envelope
from pt_supervisor import Supervisor
from pt_thinker_exchanges import MarketData
from pt_trader import VenuePrices
from pt_types import Mode, OrderTag, Side, WorkerState
from tests.fake_clock import FakeClock
from tests.test_backtester import SETTINGS, btc, utc
from tests.test_trading_e2e import env

T = TypeVar("T")

START, END = utc("2022-06-07"), utc("2022-06-09")
STEP = 1200  # the backtest's largest step: it still visits both of each hour's extremes
TICK = 0.03  # trader.tick_seconds: one tick every 30 ms of wall time
SLOW_TICK = 0.25  # trader.tick_seconds while an order is let through
SIGNAL = 0.01  # predictor.signal_seconds
WAIT_S = 30.0  # the longest any one wait may take before the test gives up
TRIES = 10  # windows per order before the test gives up
# What pt_strategy's reasons start with when the decision sends an order (reworded, the orders
# are not let through and the fills differ: the test fails, it cannot pass wrongly).
ORDER_REASONS = ("start ", "DCA ", "trailing sell ")

Fill = tuple[OrderTag, Side, float, float, float]  # tag, side, time, quantity, price


def when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M")


def envelope(path: Path) -> Envelope | None:
    """A state file as it is on disk now (written atomically: whole or not there)."""
    try:
        return parse_envelope(path.read_bytes(), path)
    except FileNotFoundError:
        return None


class Hub:
    """The hub's side of the run: the supervisor, the demo clock and pausing trading."""

    def __init__(self, layout: DataLayout, settings: dict[str, Any]) -> None:
        self.layout, self.settings = layout, settings
        self.set_tick(TICK)
        start_clock(layout, START, 0.0)  # the model is trained on the history before START
        self.supervisor = Supervisor(layout, env=env())
        self.windows: list[float] = []  # how long each resume → pause window was open
        self.tries = 0

    def wait(self, condition: Callable[[], T | None], what: str) -> T:
        """Poll ``condition`` until it gives a value; fail if a worker is gone or it takes long."""
        deadline = time.monotonic() + WAIT_S
        checked = time.monotonic()
        while (found := condition()) is None:
            now = time.monotonic()
            assert now < deadline, f"timed out waiting for {what}; {self.tails()}"
            if now - checked > 0.25:
                checked = now
                self.check_workers()
            time.sleep(0.002)
        return found

    def check_workers(self) -> None:
        snapshot = self.supervisor.poll()
        for w in snapshot.workers:
            if w.name in ("thinker", "trader"):
                assert w.state in (WorkerState.STARTING, WorkerState.RUNNING), (w, self.tails())

    def tails(self) -> str:
        out = []
        for name in ("thinker", "trader"):
            path = self.layout.logs_dir / f"{name}.out"
            text = path.read_text(errors="replace") if path.exists() else ""
            out.append(f"{name} output ends {text[-1500:]!r}")
        return "; ".join(out)

    # -- the state files ------------------------------------------------------------------------

    def status(self) -> Envelope | None:
        return envelope(self.layout.trader_status_file)

    def status_written_after(self, moment: float) -> Envelope | None:
        env_ = self.status()
        return env_ if env_ is not None and env_.written_at > moment else None

    def status_after(self, seq: int) -> Envelope | None:
        env_ = self.status()
        return env_ if env_ is not None and env_.seq > seq else None

    def signals_for(self, t: float) -> Envelope | None:
        env_ = envelope(self.layout.signals_file)
        return env_ if env_ is not None and env_.data.get("time") == t else None

    def orders(self) -> int:
        if not self.layout.journal_db.exists():
            return 0
        with JournalReader.open_readonly(self.layout.journal_db, mode=Mode.DEMO) as reader:
            return len(reader.orders())

    def tick_begun_after(self, moment: float) -> Envelope:
        """The status of a trader tick that began after ``moment`` (wall time): ticks run one
        after another, so a tick after one whose status was written later began later."""
        earlier = self.wait(lambda: self.status_written_after(moment), "a trader tick")
        return self.next_status(earlier.seq, "the trader's next tick")

    def latest_seq(self) -> int:
        env_ = self.status()
        return 0 if env_ is None else env_.seq

    def next_status(self, seq: int, what: str) -> Envelope:
        return self.wait(lambda: self.status_after(seq), what)

    # -- the run ----------------------------------------------------------------------------------

    def start(self, coin: str) -> None:
        """Start All once the training has finished (thinker, and the trader once the thinker
        is ready); trading is paused before the trader has even imported its modules."""
        sup = self.supervisor

        def trained() -> bool | None:
            w = sup.poll().worker(f"trainer-{coin}")
            assert w is not None
            if w.state is WorkerState.STOPPED:
                assert w.detail == "finished", w.detail
                return True
            return None

        self.wait(trained, f"training {coin}")
        assert sup.start_all() == ""
        self.wait(lambda: sup.poll().start_all == "running" or None, "Start All")
        sup.pause_trading(True)
        first = self.wait(self.status, "the trader's first status")
        assert first.data["problem"] == "paused by the hub: no new orders", first.data

    def step(self, t: float) -> None:
        """One step of the backtest's clock, through the processes."""
        start_clock(self.layout, t, 0.0)
        self.wait(lambda: self.signals_for(t), f"the thinker's signals at {when(t)}")
        seen = time.time()  # the signals for t were on disk before this moment
        decided = self.tick_begun_after(seen)
        assert decided.data.get("time") == t, decided.data
        reasons = [c["reason"] for c in decided.data["coins"]]
        if any(r.startswith(ORDER_REASONS) for r in reasons):
            self.trade(t, reasons)

    def trade(self, t: float, reasons: list[str]) -> None:
        """Let exactly one trader tick at ``t`` send its orders (module doc, step 2)."""
        sup, before = self.supervisor, self.orders()
        for _ in range(TRIES):
            self.tries += 1
            # Right after a tick has reported, while the trader sleeps until its next one:
            last = self.next_status(self.latest_seq(), "a trader tick")
            self.set_tick(SLOW_TICK)
            opened = time.time()
            sup.pause_trading(False)
            self.next_status(last.seq, "the resumed tick")
            sup.pause_trading(True)
            self.windows.append(time.time() - opened)
            self.set_tick(TICK)
            # A tick that saw "run" began after `opened` and loaded the slow period, so the
            # next one saw "pause" if the window was shorter than that. Unless the order is
            # already in, wait until every tick that could have seen "run" has reported.
            made = self.orders() - before
            if made == 0 or self.windows[-1] >= SLOW_TICK / 2:
                self.tick_begun_after(time.time())
                made = self.orders() - before
            assert made <= 1, (
                f"{made} orders at {when(t)}: a second tick saw trading resumed (the test "
                f"stalled {self.windows[-1] * 1000:.0f} ms); the backtest decides once per step"
            )
            if made == 1:
                return
        pytest.fail(f"no order at {when(t)} after {TRIES} resumed ticks; decided: {reasons}")

    def set_tick(self, seconds: float) -> None:
        """The trader's tick period, through the settings file (hot reloaded at each tick)."""
        trader = self.settings["trader"]
        if trader.get("tick_seconds") != seconds or not self.layout.settings_file.exists():
            self.settings["trader"] = {**trader, "tick_seconds": seconds}
            pt_config.save(self.layout.settings_file, self.settings)

    def stop(self) -> None:
        self.supervisor.stop_all()
        for name in ("thinker", "trader"):
            text = (self.layout.logs_dir / f"{name}.out").read_text(errors="replace")
            assert "Traceback" not in text, f"{name}: {text[-3000:]}"


def backtest_fills(settings: Settings) -> list[Fill]:
    spec = BacktestSpec.from_settings(settings, start=START, end=END, step_seconds=STEP)
    fills: list[Fill] = []
    for o in run_backtest(spec, {"BTC": btc()}).orders:
        assert o.fill is not None, f"the backtest's order at {when(o.time)} was refused"
        fills.append((o.intent.tag, o.fill.side, o.time, o.fill.quantity, o.fill.price))
    return fills


def shown(fills: list[Fill]) -> str:
    return "\n".join(f"  {when(t)} {tag.value} {side.value} {q:.8f} at {p:.2f}"
                     for tag, side, t, q, p in fills)  # fmt: skip


def test_the_demo_processes_make_the_backtests_fills(tmp_path: Path) -> None:
    started = time.monotonic()
    data = pt_config.to_data(SETTINGS)
    data["demo"] = {**data["demo"], "start": when(START)[:10]}
    data["predictor"] = {**data["predictor"], "signal_seconds": SIGNAL}
    layout = DataLayout(tmp_path).ensure()
    hub = Hub(layout, dict(data))
    try:
        hub.supervisor.train("BTC")
        backtest = backtest_fills(pt_config.parse(data))  # while the model trains
        hub.start("BTC")
        for t in range(START, END, STEP):
            hub.step(float(t))
        hub.stop()
    finally:
        hub.supervisor.shutdown()
    with JournalReader.open_readonly(layout.journal_db, mode=Mode.DEMO) as reader:
        live = [(f.tag, f.side, f.time, f.quantity, f.price) for f in reader.fills()]

    tags = {tag for tag, *_ in backtest}
    assert len(backtest) >= 6 and tags == {OrderTag.ENTRY, OrderTag.DCA, OrderTag.TRAIL_SELL}
    assert hub.orders() == len(backtest), "the processes sent orders the backtest did not"
    seen = f"processes:\n{shown(live)}\nbacktest:\n{shown(backtest)}"
    assert [f[:3] for f in live] == [f[:3] for f in backtest], seen
    for (*_, q_live, p_live), (*_, q_bt, p_bt) in zip(live, backtest, strict=True):
        assert q_live == pytest.approx(q_bt, rel=0, abs=1e-8), seen
        assert p_live == pytest.approx(p_bt, rel=1e-9), seen
    print(f"{len(live)} fills equal in {time.monotonic() - started:.1f} s; {hub.tries} resumed "
          f"windows, longest {max(hub.windows) * 1000:.0f} ms")  # fmt: skip


def test_a_venue_price_is_never_reused_for_another_simulated_moment() -> None:
    """The trader times its price memo on the mode's clock: a step of the demo clock, either
    way, asks the replay again, while one moment's requests share one answer."""
    clock = FakeClock(float(START))
    market = MarketData(ExchangeManager([ReplayMarket(clock)], clock=clock), clock=clock)
    prices = VenuePrices(market, wall=clock)
    first = prices.quote("BTC")
    assert prices.get("BTC") is prices.get("BTC")  # one moment: one request, one answer
    clock.t += STEP
    later = prices.quote("BTC")
    assert later.time == clock.t and later.bid != first.bid
    clock.t = float(START)  # the hub restarted the demo clock earlier
    assert prices.quote("BTC") == first
