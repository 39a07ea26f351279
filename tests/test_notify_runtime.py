"""A process's notifications: secrets opened (or reported locked), the demo switch, hot reload,
CRITICAL log records and a crashing process reaching real receivers on 127.0.0.1."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pt_config
import pt_logging
from pt_config_schema import Settings
from pt_journal import TradeJournal
from pt_locks import SingleInstanceLock
from pt_notify_format import SECRET_NAMES, Notification, trade_opened, worker_event
from pt_notify_runtime import ProcessNotifier, read_notify_secrets
from pt_notify_watch import ArbitrageWatch, DailySummary
from pt_process import run_process
from pt_secrets_keysource import PassphraseKeySource
from pt_secrets_vault import SecretStore
from pt_state import DataLayout
from pt_thinker_exchanges import ArbitrageOpportunity
from pt_types import Mode
from tests.fake_notify import FakeDiscord, FakeReceiver

PASSPHRASE = "correct horse battery staple"
AT = 1_717_000_000.0


def eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[DataLayout]:
    yield DataLayout(tmp_path / "data").ensure()
    pt_logging.reset_logging()


def settings(mode: str = "paper", **notifications: Any) -> Settings:
    return pt_config.parse({"mode": mode, "notifications": notifications})


def store_discord(layout: DataLayout, url: str) -> None:
    source = PassphraseKeySource(PASSPHRASE, n=2**14)  # cheap scrypt: a test, not a vault
    SecretStore(layout, source).set(SECRET_NAMES["discord"], url)


def opened(at: float = AT) -> Any:
    return trade_opened("BTC", 0.01, 60_000.0, reason="LONG 3", mode="paper", at=at)


def test_a_passphrase_vault_opens_only_with_the_passphrase_and_the_webhook_works_without(
    layout: DataLayout, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with FakeDiscord() as discord, FakeReceiver() as receiver:
        store_discord(layout, discord.url)
        cfg = settings(discord_enabled=True, webhook_enabled=True, webhook_url=receiver.url)
        notifier = ProcessNotifier(layout, "trader")
        notifier.update(cfg)
        assert list(notifier.channels) == ["webhook"]
        (problem,) = notifier.problems
        assert problem.startswith("discord is on but its webhook URL cannot be read: the "
                                  "secrets file is locked with a passphrase")  # fmt: skip
        notifier.notify(opened())
        eventually(lambda: len(receiver.received) == 1)

        notifier.unlock(PASSPHRASE)  # what Start All hands over
        notifier.update(cfg)
        assert list(notifier.channels) == ["discord", "webhook"] and notifier.problems == ()
        notifier.notify(opened())
        eventually(lambda: len(discord.messages) == 1 and len(receiver.received) == 2)
        logging.getLogger("test").warning("posting to %s failed", discord.url)
        notifier.close()
    assert discord.messages[0]["embeds"][0]["title"] == "BTC: trade opened (paper)"
    assert FakeDiscord.HOOK_TOKEN not in pt_logging.redact(discord.url)  # registered secret


def test_a_wrong_passphrase_is_reported_and_nothing_is_sent_by_that_channel(
    layout: DataLayout,
) -> None:
    store_discord(layout, "https://discord.com/api/webhooks/1/abc")
    secrets, why = read_notify_secrets(layout, settings(discord_enabled=True).notifications,
                                       "not the passphrase")  # fmt: skip
    assert secrets == {} and "passphrase" in why
    nothing, reason = read_notify_secrets(layout, settings().notifications, None)
    assert nothing == {} and reason == ""  # no channel needs a secret: the vault is not touched


def test_demo_mode_sends_nothing_unless_asked_and_settings_changes_rebuild(
    layout: DataLayout,
) -> None:
    with FakeReceiver() as receiver:
        hook = {"webhook_enabled": True, "webhook_url": receiver.url}
        notifier = ProcessNotifier(layout, "trader")
        notifier.update(settings("demo", **hook))
        assert not notifier.channels
        notifier.notify(opened())
        notifier.update(settings("demo", send_in_demo=True, **hook))
        assert list(notifier.channels) == ["webhook"]
        notifier.notify(opened(AT + 1))
        eventually(lambda: len(receiver.received) == 1)
        notifier.update(settings("paper", **{**hook, "events": "dca"}))
        notifier.notify(opened(AT + 2))  # trade_opened now switched off
        notifier.update(settings("paper"))  # webhook off: its worker is closed
        assert list(notifier.channels) == []
        notifier.notify(opened(AT + 3))
        notifier.close()
        time.sleep(0.2)
    assert [m["at"] for m in receiver.received] == [AT + 1]


def test_a_critical_log_record_becomes_a_notification(layout: DataLayout) -> None:
    pt_logging.setup_logging("trader", layout.root, console=False)
    with FakeReceiver() as receiver:
        notifier = ProcessNotifier(layout, "trader").install()
        notifier.update(settings(webhook_enabled=True, webhook_url=receiver.url))
        logging.getLogger("pt_trader_core").error("an error is not critical")
        logging.getLogger("pt_trader_core").critical("trading stopped: %s", "keys refused")
        eventually(lambda: len(receiver.received) == 1)
        notifier.close()
        logging.getLogger("pt_trader_core").critical("after close: not sent")
        time.sleep(0.2)
    (message,) = receiver.received
    assert (message["kind"], message["level"]) == ("log", "CRITICAL")
    assert message["title"] == "trader: trading stopped: keys refused"
    assert message["fields"] == {"Logger": "pt_trader_core"}


def test_a_crashing_process_says_so_before_it_dies(layout: DataLayout) -> None:
    with FakeReceiver() as receiver:
        pt_config.save(layout.settings_file,
                       settings(webhook_enabled=True, webhook_url=receiver.url))  # fmt: skip

        def body(*_: object) -> int:
            raise ZeroDivisionError("a bug")

        with pytest.raises(ZeroDivisionError):
            run_process("thinker", str(layout.root), body)
        # Sent before run_process returned: the queue is flushed on the way out.
        assert [(m["level"], m["title"]) for m in receiver.received] == [
            ("CRITICAL", "thinker: thinker crashed: ZeroDivisionError: a bug")
        ]
    lock = SingleInstanceLock(layout.lock_file("thinker"))  # released on the way out too
    lock.acquire()
    lock.release()


# -- watchers: the daily summary and arbitrage ------------------------------------------------

DAY0 = 1_717_200_000.0 - 1_717_200_000.0 % 86_400  # 2024-06-01 00:00 UTC


def test_the_daily_summary_covers_the_day_before_once(tmp_path: Path) -> None:
    sent: list[Notification] = []
    summary = DailySummary(sent.append)
    journal = TradeJournal(tmp_path / "j.sqlite3", mode=Mode.PAPER)
    try:
        summary.check(DAY0 + 3600, journal, "paper")  # the day it starts in: not summarised
        journal.log_entry("BTC", 0.1, 60_000.0, 6.0, DAY0 + 7200, reason="LONG 3")
        journal.log_exit("BTC", 61_000.0, 6.1, DAY0 + 9000, reason="trailing sell")
        journal.log_entry("ETH", 1.0, 3_000.0, 3.0, DAY0 + 10_000, reason="LONG 4")
        journal.record_equity(DAY0 + 20_000, 10_087.0, 7_087.0, 3_000.0)
        summary.check(DAY0 + 80_000, journal, "paper")
        assert sent == []
        summary.check(DAY0 + 86_400 + 5, journal, "paper")  # the next day's first loop
        summary.check(DAY0 + 86_400 + 60, journal, "paper")  # once a day
    finally:
        journal.close()
    (n,) = sent
    assert n.title == "Daily summary 2024-06-01 (paper): $87.90 realized"
    assert dict(n.fields) == {"Trades closed": "1 (1 won)", "Realized PnL": "$87.90",
                              "Open trades": "1", "Account value": "$10,087.00"}  # fmt: skip


class Venues:
    """Two venues' quotes, the way MarketData answers (its own tests cover the maths)."""

    def __init__(self) -> None:
        self.calls = 0
        self.gap: list[ArbitrageOpportunity] = []

    def detect_arbitrage_opportunities(
        self, symbols: Iterable[str], min_spread_pct: float = 0.5
    ) -> list[ArbitrageOpportunity]:
        self.calls += 1
        return [o for o in self.gap if o.net_spread_pct >= min_spread_pct]


def test_an_arbitrage_gap_is_said_once_per_cooldown() -> None:
    sent: list[Notification] = []
    now = [1000.0]
    watch = ArbitrageWatch(sent.append, every_s=60, cooldown_s=3600, wall=lambda: now[0])
    venues = Venues()
    venues.gap = [ArbitrageOpportunity("BTC", "kucoin", 60_000.0, "binance", 60_900.0, 1.5,
                                       1.3, True, AT)]  # fmt: skip
    watch.check(object(), ["BTC"], 0.5)  # the demo's market: nothing to ask
    watch.check(venues, ["BTC"], 0.5)
    watch.check(venues, ["BTC"], 0.5)  # within a minute: the venues are not asked again
    now[0] += 61
    watch.check(venues, ["BTC"], 0.5)  # asked, same gap: not said again
    now[0] += 3600
    watch.check(venues, ["BTC"], 2.0)  # a higher threshold: nothing
    now[0] += 61
    watch.check(venues, ["BTC"], 0.5)
    assert venues.calls == 4 and len(sent) == 2
    assert sent[0].title == "BTC: 1.30% between kucoin and binance after fees"
    assert dict(sent[0].fields) == {"Buy": "kucoin $60,000", "Sell": "binance $60,900",
                                    "Net": "1.30%"}  # fmt: skip
    assert "USD vs USDT" in sent[0].body


def test_texts_are_redacted_before_they_leave_the_process(layout: DataLayout) -> None:
    token = "123456:" + "S" * 35
    with FakeReceiver() as receiver:
        notifier = ProcessNotifier(layout, "hub")
        notifier.update(settings(webhook_enabled=True, webhook_url=receiver.url))
        tail = f"ConnectionError: ... url: /bot{token}/sendMessage"
        notifier.notify(worker_event("thinker", f"died with code 1: {tail}", restarted=False,
                                     gave_up=False, at=AT))  # fmt: skip
        eventually(lambda: len(receiver.received) == 1)
        notifier.close()
    assert token not in str(receiver.received[0]) and "/bot" in receiver.received[0]["text"]
