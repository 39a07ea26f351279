"""End to end in demo mode: the real trainer, thinker and trader on an accelerated clock.

Two coins are replayed through three simulated weeks of a volatile stretch of the bundled history
in under a minute. The run must produce entries, DCAs and trailing sells, the models (trained at
the start) must still give signals at the end because the thinker keeps learning, and the
journal's fills must reconcile to the cent with the paper wallet (issue 6, "Done when"). The
trader's notifications go to a webhook receiver on 127.0.0.1: one message per filled order,
saying what the journal says (issue 8).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pt_config
from pt_broker import BrokerQuote
from pt_broker_paper import PaperBroker
from pt_journal import TradeJournal
from pt_journal_reader import JournalReader
from pt_journal_schema import FillRecord
from pt_replay import change_speed, read_clock, sim_time, start_clock
from pt_signals import Stage
from pt_state import DataLayout, write_control
from pt_thinker import read_signals
from pt_types import ControlCommand, Mode, OrderTag, Side
from tests.fake_notify import FakeReceiver

ROOT = Path(__file__).resolve().parent.parent
COINS = ("BTC", "ETH")
SIM_START = 1_651_363_200.0  # 2022-05-01 00:00 UTC: the week before and into the LUNA crash
SPEED = 40_000.0  # simulated seconds per real second: ~2.8 h per trader tick (0.25 s)
SIM_DAYS = 21.0  # past the 14 days after which a model that stopped learning is stale
WALL_LIMIT_S = 120.0  # 21 days at 40,000x take 45 s of wall time when the machine keeps up
STARTING_CASH = 10_000.0
WANTED = (OrderTag.ENTRY, OrderTag.DCA, OrderTag.TRAIL_SELL)

# Chosen so that a week of 2022 is enough for every kind of order: a low start level, a 10 %
# first buy, shallow DCA tiers, and a trailing line just above cost.
SETTINGS = {
    "coins": list(COINS),
    "trade_start_level": 2,
    "start_allocation_pct": 10.0,
    "dca_multiplier": 1.0,
    "dca_levels": [-1.0, -2.0, -3.0],
    "max_dca_buys_per_24h": 2,
    "pm_start_pct_no_dca": 1.0,
    "pm_start_pct_with_dca": 0.5,
    "trailing_gap_pct": 0.3,
    "predictor": {"signal_seconds": 0.2},
    "trader": {"tick_seconds": 0.25},
    "paper": {"starting_cash_usd": STARTING_CASH},
}


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("POWERTRADER_")}


def demo_fills(layout: DataLayout) -> tuple[FillRecord, ...]:
    """The demo journal's fills, read the way the hub reads them (read-only, while trading)."""
    if not layout.journal_db.exists():
        return ()
    with JournalReader.open_readonly(layout.journal_db, mode=Mode.DEMO) as reader:
        return reader.fills()


def tag_counts(fills: tuple[FillRecord, ...]) -> Counter[OrderTag]:
    """Orders (not fill rows) per tag: one order may fill in several parts."""
    return Counter(tag for tag, _ in {(f.tag, f.client_order_id) for f in fills})


def thinker_ready(layout: DataLayout) -> bool:
    snapshot = read_signals(layout)
    return snapshot is not None and snapshot.stage is Stage.READY


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert proc.poll() is None, f"exited with {proc.returncode} while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def simulated_days(layout: DataLayout, sim_start: float = SIM_START) -> float:
    clock = read_clock(layout)
    return 0.0 if clock is None else (sim_time(clock, time.time()) - sim_start) / 86_400


def no_quotes(coin: str) -> BrokerQuote:
    raise AssertionError("the reconciliation check must not need prices")


def train(layout: DataLayout) -> None:
    """Both coins with the real trainer, on history cut at the (standing) demo clock."""
    for coin in COINS:
        result = subprocess.run(
            [sys.executable, str(ROOT / "pt_trainer.py"), coin, "--data-dir", str(layout.root)],
            capture_output=True, text=True, env=env(), timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr


def run_demo(
    layout: DataLayout, *, sim_start: float = SIM_START, sim_days: float = SIM_DAYS
) -> tuple[str, dict[str, str], Stage | None, float]:
    """Thinker and trader for ``sim_days`` simulated days (or the wall limit), then STOP.

    Returns what was seen (for failure messages), each process's stderr, the thinker's stage just
    before the stop and the simulated days reached then."""
    procs: dict[str, subprocess.Popen[str]] = {}
    stderr: dict[str, str] = {}
    ready = {"thinker": lambda: thinker_ready(layout), "trader": layout.trader_status_file.exists}
    first_seen: dict[str, str] = {}
    stage: Stage | None = None
    days = 0.0
    started = time.monotonic()
    try:
        for name in ("thinker", "trader"):
            procs[name] = subprocess.Popen(
                [sys.executable, str(ROOT / f"pt_{name}.py"), "--data-dir", str(layout.root)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env(),
            )  # fmt: skip
            wait_for(ready[name], procs[name], f"the {name} to get ready")
        change_speed(layout, SPEED)  # the demo starts now, with both processes warmed up
        started = time.monotonic()
        while time.monotonic() - started < WALL_LIMIT_S:
            counts = tag_counts(demo_fills(layout))
            for tag in counts:
                first_seen.setdefault(tag.value, f"day {simulated_days(layout, sim_start):.1f}")
            days = simulated_days(layout, sim_start)
            if days >= sim_days or any(p.poll() is not None for p in procs.values()):
                break
            time.sleep(0.5)
        snapshot = read_signals(layout)
        stage = snapshot.stage if snapshot else None
        for name in procs:
            write_control(layout, name, ControlCommand.STOP)
        for name, proc in procs.items():
            assert proc.wait(timeout=30) == 0, f"{name} exited with {proc.returncode}"
    finally:
        for name, proc in procs.items():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            stderr[name] = proc.stderr.read() if proc.stderr else ""
    elapsed = time.monotonic() - started
    seen = (
        f"after {elapsed:.0f} s wall ({days:.1f} simulated days from "
        f"{time.strftime('%Y-%m-%d', time.gmtime(sim_start))} at {SPEED:g}x), first fill per tag "
        f"at {first_seen}"
    )
    return seen, stderr, stage, days


def test_demo_run_trades_and_the_journal_reconciles_with_the_paper_wallet(
    tmp_path: Path,
) -> None:
    layout = DataLayout(tmp_path).ensure()
    receiver = FakeReceiver().__enter__()
    notify = {"send_in_demo": True, "webhook_enabled": True, "webhook_url": receiver.url,
              "webhook_per_minute": 600, "webhook_burst": 100}  # fmt: skip
    pt_config.save(layout.settings_file, pt_config.parse({**SETTINGS, "notifications": notify}))
    # The clock stands still while the models train and the processes warm up, so every run
    # trades the same stretch of history however slow this machine is.
    start_clock(layout, sim_start=SIM_START, speed=0)
    train(layout)
    try:
        seen, stderr, stage, days = run_demo(layout)
    finally:
        receiver.__exit__(None, None, None)

    for name, text in stderr.items():
        assert "Traceback" not in text, f"{name}: {text}"
    fills = demo_fills(layout)
    counts = tag_counts(fills)
    tails = "; ".join(f"{n} stderr ends {e[-800:]!r}" for n, e in stderr.items())
    assert days >= SIM_DAYS, f"the run was cut short: {seen}; {tails}"
    assert all(counts[t] for t in WANTED), f"orders per tag {dict(counts)} {seen}; {tails}"
    print(f"orders per tag {dict(counts)} {seen}")
    # Trained at day 0, the models still signal at day 21: the thinker's learning keeps them fresh.
    assert stage is Stage.READY, f"thinker stage {stage} at the end; {tails}"
    assert layout.trader_status_file.exists()
    assert {f.coin for f in fills} <= set(COINS)

    # Independent reconciliation: the wallet is what the fills say, to the cent.
    with JournalReader.open_readonly(layout.journal_db, mode=Mode.DEMO) as reader:
        wallet = reader.paper_wallet()
    assert wallet is not None
    cash = STARTING_CASH
    held: dict[str, Decimal] = {}
    for f in fills:
        assert f.venue_fill_id.startswith("paper-"), f
        sign = 1 if f.side is Side.BUY else -1
        cash -= sign * f.quantity * f.price + f.fee_usd
        held[f.coin] = held.get(f.coin, Decimal(0)) + sign * Decimal(repr(f.quantity))
    assert abs(cash - wallet.cash_usd) < 0.005, (cash, wallet.cash_usd)
    for coin in sorted(set(held) | set(wallet.holdings)):
        assert float(held.get(coin, Decimal(0))) == wallet.quantity(coin), coin

    check_notifications(layout, receiver.received)

    # The paper broker's own check agrees (its journal opened only after both processes ended).
    journal = TradeJournal(layout.journal_db, mode=Mode.DEMO)
    try:
        broker = PaperBroker(journal, no_quotes, starting_cash_usd=1.0)
        assert broker.starting_cash_usd == STARTING_CASH  # the wallet was resumed, not new
        assert broker.wallet_problems() == ()
    finally:
        journal.close()


def check_notifications(layout: DataLayout, received: list[dict[str, Any]]) -> None:
    """One webhook message per filled order (the trader flushes its queue when it stops), each
    with the order's reason; a closed trade's message carries the journal's PnL."""
    with JournalReader.open_readonly(layout.journal_db, mode=Mode.DEMO) as reader:
        orders = [o for o in reader.orders() if o.filled_quantity > 0 and o.state.finished]
        closed = {t.trade_group_id: t for t in reader.trades(status="closed")}
    kinds = {
        OrderTag.ENTRY: "trade_opened",
        OrderTag.DCA: "dca",
        OrderTag.TRAIL_SELL: "trade_closed",
    }
    expected = [
        (kinds[o.tag], o.coin, o.reason)
        for o in orders
        if o.tag is not OrderTag.TRAIL_SELL or o.trade_group_id in closed
    ]
    trades = [m for m in received if m["kind"] in kinds.values()]
    got = [(m["kind"], str(m["title"]).split(":")[0], m["reason"]) for m in trades]
    assert sorted(got) == sorted(expected), (len(got), len(expected))
    assert all(m["title"].endswith("(demo)") for m in trades)
    pnl = sorted(f"${t.realized_pnl_usd:,.2f}".replace("$-", "-$") for t in closed.values())
    assert sorted(m["fields"]["PnL"] for m in trades if m["kind"] == "trade_closed") == pnl
