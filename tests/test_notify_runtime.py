"""A process's notifications: secrets opened (or reported locked), the demo switch, hot reload,
CRITICAL log records and a crashing process reaching real receivers on 127.0.0.1."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pt_config
import pt_logging
from pt_config_schema import Settings
from pt_locks import SingleInstanceLock
from pt_notify_format import SECRET_NAMES, trade_opened
from pt_notify_runtime import ProcessNotifier, read_notify_secrets
from pt_process import run_process
from pt_secrets_keysource import PassphraseKeySource
from pt_secrets_vault import SecretStore
from pt_state import DataLayout
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
