"""Notifications against real receivers on 127.0.0.1: what each got, rate limits and digests,
a dead channel not blocking the others, and no secret in any log line."""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pt_config
import pt_notify_format as nf
from pt_config_schema import NOTIFY_EVENTS
from pt_notifications import (
    ChannelError,
    ChannelWorker,
    NotificationManager,
    Policy,
    from_settings,
)
from pt_notify_channels import DiscordNotifier, EmailNotifier, TelegramNotifier, WebhookNotifier
from pt_notify_format import EventKind, Level, Notification, TokenBucket
from tests.fake_http import Fault
from tests.fake_notify import FakeDiscord, FakeReceiver, FakeTelegram

AT = 1_717_000_000.0


def opened(coin: str = "BTC", at: float = AT) -> Notification:
    return nf.trade_opened(coin, 0.01, 60_000.0, reason="LONG 3 >= start level 3",
                           mode="paper", at=at)  # fmt: skip


def eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- formatting (pure) -------------------------------------------------------------------------


def test_a_trade_message_carries_its_reason_in_every_format() -> None:
    n = nf.trade_closed("ETH", 0.5, 3_000.0, 42.5, 2.9, reason="trailing line crossed",
                        mode="demo", at=AT)  # fmt: skip
    text = nf.plain_text(n)
    assert text.splitlines()[0] == "[INFO] ETH: trade closed, gain $42.50 (+2.90%) (demo)"
    assert "Reason: trailing line crossed" in text and "2024-05-29 16:26:40 UTC" in text
    embed = nf.discord_embed(n)
    assert embed["description"] == "Reason: trailing line crossed"
    assert {"name": "PnL", "value": "$42.50", "inline": True} in embed["fields"]
    assert embed["color"] == nf.LEVEL_COLOURS[Level.INFO]
    md = nf.telegram_markdown(n)
    assert md.startswith("*INFO* ETH: trade closed, gain $42\\.50 \\(\\+2\\.90%\\) \\(demo\\)")
    assert "_Reason:_ trailing line crossed" in md


def test_formats_keep_to_the_services_limits() -> None:
    long = Notification(EventKind.LOG, Level.CRITICAL, "x" * 300, AT, body="y." * 5000,
                        fields=tuple((f"f{i}", "v" * 2000) for i in range(30)))  # fmt: skip
    embed = nf.discord_embed(long)
    assert len(embed["title"]) == 256 and len(embed["description"]) == 4096
    assert len(embed["fields"]) == 25 and all(len(f["value"]) == 1024 for f in embed["fields"])
    md = nf.telegram_markdown(long)
    assert len(md) <= 4096 and not md.endswith("\\\\")
    assert nf.md_escape("a_b*c[d]e(f)g~h`i>j#k+l-m=n|o{p}q.r!s\\") == (
        "a\\_b\\*c\\[d\\]e\\(f\\)g\\~h\\`i\\>j\\#k\\+l\\-m\\=n\\|o\\{p\\}q\\.r\\!s\\\\"
    )


def test_a_digest_names_every_merged_item_and_takes_the_highest_level() -> None:
    items = [opened("BTC"), nf.worker_event("trader", "code 1", restarted=False, gave_up=True,
                                            at=AT + 1)]  # fmt: skip
    d = nf.digest(items, at=AT + 2, dropped=3)
    assert d.kind is EventKind.DIGEST and d.level is Level.CRITICAL
    assert d.title == "5 notifications"
    assert "BTC: trade opened (paper)" in d.body and "trader stopped for good" in d.body
    assert "and 3 more not shown" in d.body


def test_token_bucket() -> None:
    bucket = TokenBucket(per_minute=60, capacity=2, now=0.0)
    assert bucket.available(0.0) == 2
    bucket.take(0.0, 2)
    assert bucket.available(0.0) == 0 and bucket.wait(0.0) == pytest.approx(1.0)
    assert bucket.available(1.0) == 1
    bucket.block(1.0, 5.0)  # the service said "retry after 5 s"
    assert bucket.available(3.0) == 0 and bucket.wait(3.0) == pytest.approx(3.0)
    assert bucket.available(6.0) == 2  # refilled to capacity, never beyond
    with pytest.raises(ValueError, match="per_minute"):
        TokenBucket(per_minute=0, capacity=1, now=0.0)


def test_policy_filters_by_level_and_kind() -> None:
    policy = Policy(min_level=Level.WARNING, kinds=frozenset({EventKind.WORKER_CRASHED}))
    crash = nf.worker_event("thinker", "code 1", restarted=False, gave_up=False, at=AT)
    assert policy.wants(crash) and not policy.wants(opened())
    assert Policy().wants(opened())
    stop = nf.risk_limit("drawdown stop: 20% below the peak", mode="paper", at=AT)
    assert stop.level is Level.CRITICAL and policy.wants(stop)  # not in kinds: CRITICAL still goes
    assert not Policy(kinds=frozenset()).wants(
        nf.volume_anomaly("BTC", 4.2, 3.5, "anomaly", candle_time=0, at=AT)
    )


# -- channels against receivers ------------------------------------------------------------


def test_webhook_receiver_gets_the_json() -> None:
    with FakeReceiver() as receiver:
        manager = NotificationManager.of([(WebhookNotifier(receiver.url), Policy())])
        manager.notify(opened())
        eventually(lambda: len(receiver.received) == 1)
        manager.close()
    got = receiver.received[0]
    assert got["kind"] == "trade_opened" and got["level"] == "INFO"
    assert got["reason"] == "LONG 3 >= start level 3" and "Reason: LONG 3" in got["text"]
    assert got["fields"]["Price"] == "$60,000"


def test_discord_gets_an_embed_and_a_429_is_waited_out() -> None:
    with FakeDiscord() as discord:
        discord.fail(Fault("/api/webhooks", reply=FakeDiscord.rate_limited(0.3)))
        manager = NotificationManager.of([(DiscordNotifier(discord.url), Policy())])
        started = time.monotonic()
        manager.notify(opened())
        eventually(lambda: len(discord.messages) == 1)
        took = time.monotonic() - started
        manager.close()
        calls = discord.server.requests_to("/api/webhooks")
    assert len(calls) == 2 and took >= 0.3  # the retry came after retry_after
    body = discord.messages[0]
    assert body["username"] == "PowerTrader AI"
    assert body["embeds"][0]["title"] == "BTC: trade opened (paper)"


def test_a_deleted_discord_webhook_turns_the_channel_off(caplog: pytest.LogCaptureFixture) -> None:
    with FakeDiscord() as discord:
        worker = ChannelWorker(DiscordNotifier(discord.url + "x"), Policy())
        worker.put(opened())
        eventually(lambda: bool(worker.disabled))
        worker.put(opened("ETH"))  # ignored while off
        worker.close()
        assert len(discord.server.requests_to("/api/")) == 1
    assert "HTTP 404" in worker.disabled and "create a new one" in worker.disabled
    assert "turned off until its settings change" in caplog.text
    assert FakeDiscord.HOOK_TOKEN not in caplog.text


def test_telegram_markdown_message_and_flood_control(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeTelegram() as tg:
        tg.fail(Fault("/bot", times=2, reply=FakeTelegram.error(429, "Too Many Requests: "
                                                                 "retry after 1", 1)))  # fmt: skip
        channel = TelegramNotifier(tg.TOKEN, tg.CHAT, api_url=tg.base_url)
        manager = NotificationManager.of([(channel, Policy())])
        manager.notify(opened())
        eventually(lambda: len(tg.messages) == 1, 15)
        manager.close()
    sent = tg.messages[0]
    assert sent["parse_mode"] == "MarkdownV2" and str(sent["chat_id"]) == tg.CHAT
    assert sent["text"].startswith("*INFO* BTC: trade opened \\(paper\\)")
    assert "rate limited" in caplog.text
    for record in caplog.records:
        assert tg.TOKEN not in record.getMessage()


def test_an_unknown_telegram_chat_is_a_settings_problem() -> None:
    with FakeTelegram() as tg:
        channel = TelegramNotifier(tg.TOKEN, "999", api_url=tg.base_url)
        with pytest.raises(ChannelError, match=r"(?i)chat not found") as raised:
            channel.send(opened())
        assert raised.value.permanent
        wrong = TelegramNotifier("123456:WRONG-token-wrong-token-x", tg.CHAT, api_url=tg.base_url)
        with pytest.raises(ChannelError, match="token was refused") as refused:
            wrong.send(opened())
        assert refused.value.permanent and "WRONG" not in str(refused.value)


# -- the workers ----------------------------------------------------------------------------


class Gated:
    """A channel that waits for ``gate`` before each send (to hold a worker busy)."""

    def __init__(self, inner: WebhookNotifier, gate: threading.Event) -> None:
        self.inner, self.gate, self.name = inner, gate, inner.name

    def send(self, notification: Notification) -> None:
        self.gate.wait(5)
        self.inner.send(notification)


def test_a_burst_is_merged_into_a_digest_not_dropped() -> None:
    with FakeReceiver() as receiver:
        gate = threading.Event()  # the burst arrives while the first message is being sent
        channel = Gated(WebhookNotifier(receiver.url), gate)
        worker = ChannelWorker(channel, Policy(per_minute=60, burst=2))
        for i in range(10):
            worker.put(opened(f"C{i}", at=AT + i))
        gate.set()
        eventually(lambda: len(receiver.received) >= 2)
        worker.close()
    titles = [r["title"] for r in receiver.received]
    assert len(titles) <= 3  # not ten messages
    texts = "\n".join(r["text"] for r in receiver.received)
    assert all(f"C{i}: trade opened" in texts for i in range(10))  # every one said
    assert any(t.endswith("notifications") for t in titles)


def test_a_dead_channel_blocks_neither_the_caller_nor_the_others() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{s.getsockname()[1]}/hook"  # nothing listens there
    with FakeReceiver() as receiver, FakeReceiver() as slow:
        slow.fail(Fault("/hook", times=10, delay=2.0))  # answers, but late
        manager = NotificationManager.of([
            (WebhookNotifier(dead_url, name="dead", timeout=1), Policy()),
            (WebhookNotifier(slow.url, name="slow", timeout=5), Policy()),
            (WebhookNotifier(receiver.url, name="good"), Policy()),
        ])  # fmt: skip
        started = time.monotonic()
        for i in range(3):
            manager.notify(opened(f"C{i}"))
        assert time.monotonic() - started < 0.05  # notify only queues
        eventually(lambda: len(receiver.received) >= 1, 2.0)  # not held up by the others
        assert time.monotonic() - started < 1.5
        manager.close(timeout=0.5)


def test_a_full_queue_keeps_critical_ones_and_counts_the_rest() -> None:
    with FakeReceiver() as receiver:
        release = threading.Event()
        channel = Gated(WebhookNotifier(receiver.url), release)
        worker = ChannelWorker(channel, Policy(burst=50), queue_size=3)
        worker.put(opened("FIRST"))
        time.sleep(0.2)  # the worker holds FIRST, blocked in send
        for i in range(6):
            worker.put(opened(f"C{i}"))
        worker.put(nf.worker_event("trader", "code 1", restarted=False, gave_up=True, at=AT))
        release.set()
        eventually(lambda: any("stopped for good" in r["text"] for r in receiver.received))
        worker.close()
    texts = "\n".join(r["text"] for r in receiver.received)
    assert "C0: trade opened" in texts and "C5" not in texts  # the queue held three
    assert "and 3 more not shown" in texts
    assert "trader stopped for good" in texts  # CRITICAL past a full queue


def test_a_failing_send_is_retried_with_growing_pauses(caplog: pytest.LogCaptureFixture) -> None:
    pauses: list[float] = []
    calls: list[Notification] = []

    class Flaky:
        name = "flaky"

        def send(self, notification: Notification) -> None:
            calls.append(notification)
            if len(calls) < 3:
                raise ChannelError("flaky: HTTP 503")

    worker = ChannelWorker(Flaky(), Policy(), sleep=pauses.append)
    worker.put(opened())
    eventually(lambda: worker.sent == 1)
    worker.close()
    assert pauses == [1.0, 2.0] and len(calls) == 3
    assert caplog.text.count("send failed") == 2


# -- email -------------------------------------------------------------------------------------


class Inbox:
    """aiosmtpd's handler: records what arrives."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    """A real SMTP server on 127.0.0.1 that accepts user "bot@example.com" / "app-password"."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    def check(server: object, session: object, envelope: object, mechanism: str,
              data: Any) -> AuthResult:  # fmt: skip
        ok = data.login == b"bot@example.com" and data.password == b"app-password"
        return AuthResult(success=ok, handled=False)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=check,
                            auth_require_tls=False)  # fmt: skip
    controller.start()
    yield port, inbox
    controller.stop()


def test_email_arrives_with_subject_and_reason(smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    channel = EmailNotifier("bot@example.com", "app-password", ["me@example.com"],
                            host="127.0.0.1", port=port, security="none")  # fmt: skip
    manager = NotificationManager.of([(channel, Policy())])
    manager.notify(opened())
    eventually(lambda: len(inbox.mails) == 1)
    manager.close()
    sender, to, content = inbox.mails[0]
    mail = email.message_from_bytes(content, policy=email.policy.default)
    assert to == ["me@example.com"] and "bot@example.com" in sender
    assert mail["Subject"] == "[PowerTrader AI] INFO: BTC: trade opened (paper)"
    body = mail.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Reason: LONG 3 >= start level 3" in text and "Price: $60,000" in text


def test_wrong_smtp_credentials_turn_email_off(
    smtp: tuple[int, Inbox], caplog: pytest.LogCaptureFixture
) -> None:
    port, inbox = smtp
    channel = EmailNotifier("bot@example.com", "wrong-secret", ["me@example.com"],
                            host="127.0.0.1", port=port, security="none")  # fmt: skip
    with pytest.raises(ChannelError, match="app password") as refused:
        channel.send(opened())
    assert refused.value.permanent and inbox.mails == []
    worker = ChannelWorker(channel, Policy())
    worker.put(opened())
    eventually(lambda: bool(worker.disabled))
    worker.close()
    assert "wrong-secret" not in caplog.text


# -- settings ------------------------------------------------------------------------------------


def test_the_settings_event_names_are_the_event_kinds() -> None:
    assert set(NOTIFY_EVENTS) <= {k.value for k in EventKind}
    assert set(NOTIFY_EVENTS) == {k.value for k in EventKind} - {"log", "test", "digest"}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"email_enabled": True, "email_to": "me@example.com"}, "email_user is empty"),
        ({"email_enabled": True, "email_user": "bot@example.com"}, "email_to is empty"),
        ({"email_to": "me@example.com, not-an-address"}, "not an email address: 'not-an-address'"),
        ({"telegram_enabled": True}, "telegram_chat_id is empty"),
        ({"telegram_chat_id": "12ab"}, "not a chat id: '12ab'; a number"),
        ({"webhook_url": "ftp://example.com/hook"}, "not an http(s) URL: 'ftp://example.com/hook'"),
        ({"telegram_api_url": ""}, "not an http(s) URL: ''"),
        ({"email_host": "smtp gmail"}, "not a host name: 'smtp gmail'"),
        ({"webhook_enabled": True}, "webhook_url is empty"),
        ({"events": "trade_opened, lunch"}, "unknown event 'lunch'"),
    ],
)
def test_incomplete_or_malformed_channel_settings_are_refused(
    data: dict[str, object], words: str
) -> None:
    with pytest.raises(pt_config.SettingsError) as refused:
        pt_config.parse({"notifications": data})
    assert words in str(refused.value) and "notifications" in str(refused.value)


def test_from_settings_builds_the_enabled_channels_and_names_missing_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FakeReceiver() as receiver, FakeTelegram() as tg:
        cfg = pt_config.parse({"notifications": {
            "events": "trade_closed", "webhook_enabled": True, "webhook_url": receiver.url,
            "telegram_enabled": True, "telegram_chat_id": tg.CHAT, "telegram_api_url": tg.base_url,
            "discord_enabled": True, "discord_min_level": "ERROR",
        }}).notifications  # fmt: skip
        secrets = {"notify.telegram.token": tg.TOKEN, "notify.discord.url": None}
        manager, problems = from_settings(cfg, secrets)
        assert problems == [
            "discord is on but its webhook URL is not stored: add it with Settings → "
            "Notifications → Secrets…, or python pt_secrets.py set-notify discord"
        ]
        assert [w.channel.name for w in manager.workers] == ["telegram", "webhook"]
        manager.notify(opened())  # trade_opened is switched off
        closed = nf.trade_closed("BTC", 0.01, 61_000.0, 9.9, 1.6, reason="trail", mode="demo",
                                 at=AT)  # fmt: skip
        manager.notify(closed)
        eventually(lambda: len(receiver.received) == 1 and len(tg.messages) == 1)
        manager.close()
    assert receiver.received[0]["kind"] == "trade_closed"
    assert "discord is on but its webhook URL is not stored" in caplog.text


def test_the_worker_keeps_going_after_waiting_for_its_rate() -> None:
    with FakeReceiver() as receiver:
        worker = ChannelWorker(WebhookNotifier(receiver.url), Policy(per_minute=600, burst=1))
        worker.put(opened("A"))
        eventually(lambda: len(receiver.received) == 1)
        worker.put(opened("B"))  # no token yet: the worker waits ~0.1 s for it
        eventually(lambda: len(receiver.received) == 2)
        time.sleep(0.2)
        worker.put(opened("C"))  # still served after that wait
        eventually(lambda: len(receiver.received) == 3, 3.0)
        worker.close()
    assert [r["title"][:1] for r in receiver.received] == ["A", "B", "C"]
