"""Notifications: every enabled channel gets each event it wants, without ever blocking the bot.

:class:`NotificationManager` fans a :class:`Notification` out to its channels. Each channel has
its own worker thread and bounded queue, so a slow or dead channel never holds up the caller
(``notify`` only puts on queues) nor the other channels. A worker:

- keeps to the channel's rate (a token bucket from the settings) and to the service's own
  "retry after" answers; what arrives faster than the rate is merged into one digest message,
  never silently dropped. When the queue is full, further non-CRITICAL items are counted instead
  of queued and the next digest says how many; CRITICAL ones are never dropped for a full queue
  or a rate;
- retries a failed send with growing pauses (1, 2, 4 … 30 s, at most ``MAX_ATTEMPTS`` times) and
  logs each failure; nothing is ever raised into the caller;
- turns itself off after a permanent failure (a deleted webhook, a wrong token, an unknown chat)
  and logs what to fix; the channel stays off until the settings change.

The channels themselves (email, Discord, Telegram, webhooks) are in ``pt_notify_channels``;
:func:`from_settings` builds the manager from the settings and the stored secrets.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pt_config_schema import NotificationSettings
from pt_notify_channels import DiscordNotifier, EmailNotifier, TelegramNotifier, WebhookNotifier
from pt_notify_format import (
    SECRET_NAMES,
    SECRET_WHAT,
    ChannelError,
    EventKind,
    Level,
    Notification,
    TokenBucket,
    digest,
    secret_missing_text,
)

log = logging.getLogger(__name__)

__all__ = [
    "ChannelError",
    "ChannelWorker",
    "NotificationManager",
    "Policy",
    "build_channels",
    "from_settings",
]

MAX_ATTEMPTS = 5
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
QUEUE_SIZE = 200


class Channel(Protocol):
    name: str

    def send(self, notification: Notification) -> None:
        """Deliver one message or raise :class:`ChannelError` (secrets never in the text)."""


@dataclass(frozen=True)
class Policy:
    """Which notifications a channel wants and how fast it may send them."""

    min_level: Level = Level.INFO
    kinds: frozenset[EventKind] = frozenset(EventKind)
    per_minute: float = 20.0
    burst: int = 5

    def wants(self, n: Notification) -> bool:
        # a test message, a digest and any CRITICAL problem are never filtered by kind
        always = n.kind in (EventKind.TEST, EventKind.DIGEST) or n.level >= Level.CRITICAL
        return n.level >= self.min_level and (always or n.kind in self.kinds)


class ChannelWorker:
    """One channel's queue and thread (module doc). ``sleep`` and ``clock`` are injectable so
    tests can run the backoff on a fake clock."""

    def __init__(
        self,
        channel: Channel,
        policy: Policy,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.channel, self.policy = channel, policy
        self._clock, self._wall = clock, wall
        self._stop = threading.Event()
        self._sleep = sleep or (lambda s: self._stop.wait(s) and None)
        self._queue: queue.Queue[Notification | None] = queue.Queue()
        self._queue_size = queue_size
        self._lock = threading.Lock()
        self._waiting = 0
        self._dropped = 0
        self.bucket = TokenBucket(policy.per_minute, policy.burst, now=clock())
        self.disabled: str = ""  # why the channel was turned off ("" while it works)
        self.sent = 0
        self._thread = threading.Thread(
            target=self._run, name=f"notify-{channel.name}", daemon=True
        )
        self._thread.start()

    # -- caller side ------------------------------------------------------------------------

    def put(self, n: Notification) -> None:
        """Queue ``n`` without waiting (a full queue drops a waiting non-CRITICAL item's
        place: it is counted, and said in the next digest)."""
        if self.disabled or not self.policy.wants(n):
            return
        with self._lock:
            if self._waiting >= self._queue_size and n.level < Level.CRITICAL:
                self._dropped += 1
                return
            self._waiting += 1
        self._queue.put(n)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (within ``timeout``), then stop."""
        self._queue.put(None)
        self._thread.join(timeout)
        self._stop.set()
        self._thread.join(1.0)

    # -- worker thread ------------------------------------------------------------------------

    def _taken(self, count: int) -> None:
        with self._lock:
            self._waiting -= count

    def _drain(self, batch: list[Notification]) -> bool:
        """Move everything queued now into ``batch``; True when closing was asked for."""
        closing, before = False, len(batch)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                closing = True
            else:
                batch.append(item)
        self._taken(len(batch) - before)
        return closing

    def _run(self) -> None:
        closing = False
        while not closing:
            first = self._queue.get()
            batch = [] if first is None else [first]
            self._taken(len(batch))
            closing = self._drain(batch) or first is None
            while batch and not self._stop.is_set():
                wait = self.bucket.wait(self._clock())
                if wait > 0 and not closing:
                    self._sleep(wait)  # what arrives meanwhile joins the batch
                    closing = self._drain(batch) or closing
                    continue
                batch = self._send_some(batch)

    def _send_some(self, batch: list[Notification]) -> list[Notification]:
        """Send as many single messages as the rate allows and the rest as one digest."""
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        free = max(1, self.bucket.available(self._clock()))
        if len(batch) <= free and not dropped:
            self._deliver(batch[0])
            return batch[1:]
        singles, rest = batch[: free - 1], batch[free - 1 :]
        for n in singles:
            self._deliver(n)
        self._deliver(digest(rest, at=self._wall(), dropped=dropped))
        return []

    def _deliver(self, n: Notification) -> None:
        if self.disabled:
            return
        for attempt in range(MAX_ATTEMPTS):
            self.bucket.take(self._clock())
            try:
                self.channel.send(n)
            except ChannelError as exc:
                if exc.permanent:
                    self.disabled = str(exc)
                    log.error(
                        "%s: turned off until its settings change: %s", self.channel.name, exc
                    )
                    return
                pause = exc.retry_after if exc.retry_after is not None else BACKOFF_S[attempt]
                if exc.retry_after is not None:
                    self.bucket.block(self._clock(), exc.retry_after)
                log.warning(
                    "%s: send failed (attempt %d of %d, next in %.0f s): %s",
                    self.channel.name,
                    attempt + 1,
                    MAX_ATTEMPTS,
                    pause,
                    exc,
                )
                if self._stop.is_set():
                    break
                self._sleep(pause)
                continue
            except Exception:  # a bug in a channel must not kill its worker
                log.exception("%s: unexpected failure while sending", self.channel.name)
                return
            self.sent += 1
            return
        log.error(
            "%s: gave up on %s %r after %d attempts",
            self.channel.name,
            n.level.name,
            n.title,
            MAX_ATTEMPTS,
        )


class NotificationManager:
    """Fans out to every channel's worker; ``notify`` never blocks and never raises."""

    def __init__(self, workers: Iterable[ChannelWorker] = ()) -> None:
        self.workers: list[ChannelWorker] = list(workers)

    @classmethod
    def of(cls, channels: Sequence[tuple[Channel, Policy]], **kw: object) -> NotificationManager:
        return cls(ChannelWorker(c, p, **kw) for c, p in channels)  # type: ignore[arg-type]

    def notify(self, n: Notification) -> None:
        for worker in self.workers:
            try:
                worker.put(n)
            except Exception:  # never into the caller (the trader)
                log.exception("queueing a notification for %s failed", worker.channel.name)

    def close(self, timeout: float = 5.0) -> None:
        for worker in self.workers:
            worker.close(timeout)


def build_channels(
    cfg: NotificationSettings,
    secrets: Mapping[str, str | None],
    *,
    locked: str = "",
    only: str | None = None,
) -> tuple[list[tuple[Channel, Policy]], list[str]]:
    """The enabled channels (``only``: just that one, enabled or not, for a test message) with
    their policies, and why any wanted one was left out: its secret was never stored, or
    (``locked``) the secrets file could not be opened."""
    kinds = frozenset(EventKind(e) for e in cfg.events)
    channels: list[tuple[Channel, Policy]] = []
    problems: list[str] = []

    def wanted(channel: str) -> bool:
        return channel == only if only is not None else bool(getattr(cfg, f"{channel}_enabled"))

    def policy(prefix: str) -> Policy:
        return Policy(
            min_level=Level[getattr(cfg, f"{prefix}_min_level")],
            kinds=kinds,
            per_minute=getattr(cfg, f"{prefix}_per_minute"),
            burst=getattr(cfg, f"{prefix}_burst"),
        )

    def secret(channel: str) -> str | None:
        value = secrets.get(SECRET_NAMES[channel])
        if not value:
            problems.append(
                f"{channel} is on but its {SECRET_WHAT[channel]} cannot be read: {locked}"
                if locked
                else secret_missing_text(channel)
            )
        return value or None

    if wanted("email") and (password := secret("email")):
        email = EmailNotifier(cfg.email_user, password, cfg.email_to, host=cfg.email_host,
                              port=cfg.email_port, security=cfg.email_security)  # fmt: skip
        channels.append((email, policy("email")))
    if wanted("discord") and (url := secret("discord")):
        channels.append((DiscordNotifier(url), policy("discord")))
    if wanted("telegram") and (token := secret("telegram")):
        bot = TelegramNotifier(token, cfg.telegram_chat_id, api_url=cfg.telegram_api_url)
        channels.append((bot, policy("telegram")))
    if wanted("webhook"):
        channels.append((WebhookNotifier(cfg.webhook_url), policy("webhook")))
    return channels, problems


def from_settings(
    cfg: NotificationSettings,
    secrets: Mapping[str, str | None],
    *,
    locked: str = "",
    **worker_kw: Any,
) -> tuple[NotificationManager, list[str]]:
    """The manager for the enabled channels, and why any enabled one was left out (see
    :func:`build_channels`): the bot runs without it, and says so in the log."""
    channels, problems = build_channels(cfg, secrets, locked=locked)
    for problem in problems:
        log.error("notifications: %s", problem)
    return NotificationManager.of(channels, **worker_kw), problems
