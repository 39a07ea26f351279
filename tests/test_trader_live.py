"""The trader process in live mode: stored keys, Robinhood, and the price check against the venues.

Each test runs ``pt_trader.py --once`` as a child process over a real data folder: the keys in a
passphrase-locked vault, Robinhood played by :class:`tests.fake_robinhood.FakeRobinhood` (which
checks every signature) and the market-data venues by :class:`tests.fake_kucoin.FakeKucoin`, both
on 127.0.0.1 and served by this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pt_config import parse, save
from pt_journal import TradeJournal
from pt_journal_schema import OrderState
from pt_ohlcv import load_bundled
from pt_secrets import PassphraseKeySource, RobinhoodCredentials, SecretStore, save_robinhood
from pt_signals import (
    SIGNALS_SCHEMA,
    CoinSignal,
    CoinStatus,
    SignalsSnapshot,
    Stage,
    snapshot_to_data,
)
from pt_state import DataLayout, StateWriter
from pt_types import OrderTag
from tests.fake_kucoin import FakeKucoin
from tests.fake_robinhood import TEST_API_KEY, TEST_SEED, FakeRobinhood

ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = "correct horse battery staple"
VENUE_NOW = 1_709_251_200  # 2024-03-01 00:00 UTC: the fake KuCoin's "now" in bundled history


@dataclass
class Live:
    layout: DataLayout
    robinhood: FakeRobinhood
    kucoin: FakeKucoin
    venue_mid: float

    def set_broker_mid(self, mid: float) -> None:
        """Robinhood's BTC quote: ``mid`` with a 0.1 % spread either side."""
        self.robinhood.set_quote("BTC-USD", f"{mid * 0.999:.2f}", f"{mid * 1.001:.2f}")

    def run(self, *args: str, stdin: str = PASSPHRASE + "\n") -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTRADER_")}
        cmd = [sys.executable, str(ROOT / "pt_trader.py"), "--data-dir", str(self.layout.root)]
        return subprocess.run(
            [*cmd, "--once", *args],
            input=stdin,
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.layout.trader_status_file.read_text())["data"]
        return data


def store_keys(layout: DataLayout) -> None:
    store = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
    save_robinhood(store, RobinhoodCredentials(TEST_API_KEY, TEST_SEED))


def write_signals(layout: DataLayout, long_level: int = 3) -> None:
    """Fresh signals on the wall clock (live mode's clock): LONG at the start level for BTC."""
    now = time.time()
    btc = CoinSignal("BTC", CoinStatus.READY, "ok", now, "m", 60_000.0, long_level, 0)
    snapshot = SignalsSnapshot(Stage.READY, "ok", now, (btc,))
    StateWriter(layout.signals_file, SIGNALS_SCHEMA).write(snapshot_to_data(snapshot))


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    hourly = {"BTC": load_bundled("BTC")}
    with FakeRobinhood() as robinhood, FakeKucoin(hourly, now=VENUE_NOW) as kucoin:
        layout = DataLayout(tmp_path).ensure()
        settings = {
            "mode": "live",
            "coins": ["BTC"],
            "start_allocation_pct": 10.0,
            "exchanges": {
                "order": ["kucoin"],
                "kucoin_url": kucoin.base_url,
                "robinhood_url": robinhood.base_url,
                "timeout_seconds": 5,
            },
        }
        save(layout.settings_file, parse(settings))
        write_signals(layout)
        venue_mid = float(hourly["BTC"].until(VENUE_NOW).close[-1])
        world = Live(layout, robinhood, kucoin, venue_mid)
        world.set_broker_mid(venue_mid)
        yield world


def test_live_mode_enters_at_robinhood_with_the_stored_keys(live: Live) -> None:
    store_keys(live.layout)
    done = live.run("--passphrase-stdin")
    assert done.returncode == 0, done.stderr
    placed = live.robinhood.orders
    assert len(placed) == 1 and placed[0]["side"] == "buy"
    with TradeJournal.open_readonly(live.layout.journal_db) as journal:
        orders = journal.orders()
    assert [(o.coin, o.tag, o.state) for o in orders] == [
        ("BTC", OrderTag.ENTRY, OrderState.FILLED)
    ]
    assert uuid.UUID(orders[0].client_order_id) == uuid.UUID(placed[0]["client_order_id"])
    assert orders[0].requested_usd == pytest.approx(1000.0)  # 10 % of the 10 000 buying power
    status = live.status()
    assert status["mode"] == "live" and status["problem"] == ""
    assert status["coins"][0]["reason"].startswith("start BTC: LONG 3")
    assert PASSPHRASE not in done.stderr and TEST_API_KEY not in done.stderr


def test_a_broker_price_far_from_the_venues_places_no_order(live: Live) -> None:
    store_keys(live.layout)
    live.set_broker_mid(live.venue_mid * 1.05)  # Robinhood 5 % above KuCoin; the limit is 2 %
    done = live.run("--passphrase-stdin")
    assert done.returncode == 0, done.stderr
    assert live.robinhood.orders == []
    problem = live.status()["coins"][0]["problem"]
    assert "5.00% from the other venues' median" in problem and "max 2%" in problem
    assert not live.layout.journal_db.exists() or _no_orders(live.layout)


def test_no_reference_price_means_no_order(live: Live) -> None:
    store_keys(live.layout)
    live.kucoin.hourly.clear()  # the venue knows no BTC: no median to check Robinhood against
    done = live.run("--passphrase-stdin")
    assert done.returncode == 0, done.stderr
    assert live.robinhood.orders == []
    assert "no reference price from the other venues" in live.status()["coins"][0]["problem"]


def _no_orders(layout: DataLayout) -> bool:
    with TradeJournal.open_readonly(layout.journal_db) as journal:
        return len(journal.orders()) == 0


def test_live_mode_without_stored_keys_exits_2_and_says_how_to_add_them(live: Live) -> None:
    done = live.run()
    assert done.returncode == 2
    assert "no Robinhood credentials are stored" in done.stderr
    assert "import-original" in done.stderr
    assert live.robinhood.orders == []


def test_a_locked_vault_without_the_passphrase_exits_2_and_says_why(live: Live) -> None:
    store_keys(live.layout)
    done = live.run()  # no --passphrase-stdin
    assert done.returncode == 2
    assert "locked with a passphrase" in done.stderr and "--passphrase-stdin" in done.stderr


def test_a_wrong_passphrase_exits_2_and_sends_nothing(live: Live) -> None:
    store_keys(live.layout)
    done = live.run("--passphrase-stdin", stdin="not the passphrase\n")
    assert done.returncode == 2
    assert "trader cannot start in live mode" in done.stderr
    assert "not the passphrase" not in done.stderr
    assert live.robinhood.orders == []
    assert Decimal(live.robinhood.buying_power) == Decimal("10000")
