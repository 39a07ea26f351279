"""End to end in demo mode over a bundled crash: the drawdown stop trips, stops every buy, says
why (status file and a CRITICAL webhook message) and stays tripped while the market falls.

The real trainer, thinker and trader run on the simulated clock from 2021-05-10, two days before
the May 2021 crash (BTC fell from about $58,000 to about $31,000 in nine days, ETH by half).
Settings that build large positions fast (10 % first buys, DCA at every -1 %) make the account
fall far enough for a 3 % drawdown stop.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pt_config
from pt_journal_reader import JournalReader
from pt_replay import start_clock
from pt_state import DataLayout
from pt_thinker import read_signals
from pt_trader_risk import DRAWDOWN_KEY
from pt_types import Mode, Side
from tests.fake_notify import FakeReceiver
from tests.test_trading_e2e import SETTINGS, run_demo, train

CRASH_START = 1_620_604_800.0  # 2021-05-10 00:00 UTC
CRASH_DAYS = 10.0
STOP_PCT = 3.0


def test_the_drawdown_stop_trips_in_a_crash_and_stops_buying(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path).ensure()
    with FakeReceiver() as receiver:
        notify = {"send_in_demo": True, "webhook_enabled": True, "webhook_url": receiver.url,
                  "webhook_per_minute": 600, "webhook_burst": 100}  # fmt: skip
        settings = {**SETTINGS, "risk": {"drawdown_stop_pct": STOP_PCT}, "notifications": notify}
        pt_config.save(layout.settings_file, pt_config.parse(settings))
        start_clock(layout, sim_start=CRASH_START, speed=0)
        train(layout)
        seen, stderr, _stage, days = run_demo(layout, sim_start=CRASH_START, sim_days=CRASH_DAYS)
        received = list(receiver.received)

    for name, text in stderr.items():
        assert "Traceback" not in text, f"{name}: {text}"
    assert days >= CRASH_DAYS, f"the run was cut short: {seen}"
    with JournalReader.open_readonly(layout.journal_db, mode=Mode.DEMO) as reader:
        stop = reader.load_state(DRAWDOWN_KEY)
        orders = reader.orders()
        equity = reader.equity_series()
    assert stop is not None and stop["halted_at"] is not None, f"no stop: {stop}; {seen}"
    halted_at = float(stop["halted_at"])
    buys_before = [o for o in orders if o.side is Side.BUY and o.created_at < halted_at]
    buys_after = [o for o in orders if o.side is Side.BUY and o.created_at >= halted_at]
    assert buys_before and not buys_after, (len(buys_before), len(buys_after), seen)

    # The report shows the fall: the equity went at least the stop's percent below its peak.
    peak_before = float(equity.equity[equity.time <= halted_at].max())
    lowest = float(equity.equity.min())
    assert (peak_before - lowest) / peak_before * 100 >= STOP_PCT
    # The recorded equity never went above the peak the stop measured from (the samples are
    # thinned, so the journal's highest may be lower; how high it got depends on the timing of
    # the ticks at 40,000x: one run reached $10,561 before the crash).
    assert peak_before <= float(stop["peak"]) * (1 + 1e-9)

    # The thinker measured what the risk limits use: ATR %, volume state and correlations.
    snapshot = read_signals(layout)
    assert snapshot is not None and snapshot.correlation(30) is not None
    btc = snapshot.coin("BTC")
    assert btc is not None and btc.market is not None and btc.market.volume is not None
    assert btc.market.atr_pct is not None and btc.market.atr_pct > 0

    # The hub's source says why, and the user was told once, as CRITICAL.
    status = json.loads(layout.trader_status_file.read_text())["data"]
    assert status["risk"]["halted"] and status["problem"].startswith("drawdown stop: the account")
    alarms = [m for m in received if m["kind"] == "risk_limit"]
    assert len(alarms) == 1 and alarms[0]["level"] == "CRITICAL", alarms
    assert "below its peak" in alarms[0]["text"]
    print(f"drawdown stop at {time.strftime('%Y-%m-%d %H:%M', time.gmtime(halted_at))} UTC: "
          f"{len(buys_before)} buys before, none after; equity low {lowest:,.2f} "
          f"from peak {peak_before:,.2f}; {seen}")  # fmt: skip
