"""What a notification says, and how each channel shows it (pure: no network, no clock).

A :class:`Notification` is built by the event constructors below (a trade opened, a DCA, a trade
closed with its PnL, a worker that crashed, ...), each carrying the decision's reason where
there is one. The formatters turn it into plain text (email, webhooks), a Discord embed, or
Telegram MarkdownV2, within each service's length limits. :func:`digest` folds a burst into one
message, and :class:`TokenBucket` decides when a channel may send again; both take ``now``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

from pt_config_schema import NotificationSettings
from pt_format import price_text

APP = "PowerTrader AI"


SECRET_NAMES = {  # kept encrypted with the keys (pt_secrets), never in settings.json
    "email": "notify.email.password",
    "discord": "notify.discord.url",
    "telegram": "notify.telegram.token",
}
SECRET_WHAT = {"email": "SMTP password", "discord": "webhook URL", "telegram": "bot token"}
_SECRET_FORMS = {
    "discord": (
        re.compile(r"^https?://[^\s/]+(/api(/v\d+)?)/webhooks/\d+/[\w-]+/?$"),
        "a Discord webhook URL looks like https://discord.com/api/webhooks/<id>/<token> "
        "(channel settings → Integrations → Webhooks → Copy Webhook URL)",
    ),
    "telegram": (
        re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$"),
        "a bot token looks like 123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11 (from @BotFather)",
    ),
    "email": (re.compile(r"^\S.*$"), "the password is empty"),
}


def channels_with_secrets(cfg: NotificationSettings) -> tuple[str, ...]:
    """The enabled channels that need a stored secret (email, Discord, Telegram)."""
    return tuple(c for c in SECRET_NAMES if getattr(cfg, f"{c}_enabled"))


def secret_missing_text(channel: str) -> str:
    return (
        f"{channel} is on but its {SECRET_WHAT[channel]} is not stored: add it with "
        f"Settings → Notifications → Secrets…, or python pt_secrets.py set-notify {channel}"
    )


def missing_secrets(cfg: NotificationSettings, stored: Collection[str]) -> dict[str, str]:
    """``<channel>_enabled`` → why that channel cannot be on: its secret was never stored.
    ``stored``: the vault's secret names (its header; no key needed)."""
    return {
        f"{c}_enabled": secret_missing_text(c)
        for c in channels_with_secrets(cfg)
        if SECRET_NAMES[c] not in stored
    }


def secret_problem(channel: str, value: str) -> str:
    """Why ``value`` cannot be ``channel``'s secret ("" when it can); never repeats the value."""
    form = _SECRET_FORMS.get(channel)
    if form is None:
        return f"unknown channel {channel!r}; one of {', '.join(SECRET_NAMES)}"
    return "" if form[0].match(value.strip()) else form[1]


class ChannelError(Exception):
    """A send failed. ``permanent``: retrying cannot help (fix the settings); otherwise the
    worker retries. ``retry_after``: the service asked to wait that many seconds."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.permanent, self.retry_after = permanent, retry_after


class Level(IntEnum):
    """The logging levels' numbers, so a log record's level maps straight onto one."""

    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50


class EventKind(StrEnum):
    TRADE_OPENED = "trade_opened"
    DCA = "dca"
    TRADE_CLOSED = "trade_closed"
    WORKER_CRASHED = "worker_crashed"
    WORKER_RESTARTED = "worker_restarted"
    RISK_LIMIT = "risk_limit"
    DAILY_SUMMARY = "daily_summary"
    ARBITRAGE = "arbitrage"
    TRAINING_FINISHED = "training_finished"
    VOLUME_ANOMALY = "volume_anomaly"
    LOG = "log"  # a CRITICAL log record
    TEST = "test"  # the settings' "Send test" button
    DIGEST = "digest"  # several merged by a channel's rate limit


LEVEL_COLOURS = {  # Discord embed colours (0xRRGGBB), the hub's palette
    Level.INFO: 0x4DA3FF,
    Level.WARNING: 0xFFB347,
    Level.ERROR: 0xFF5C6C,
    Level.CRITICAL: 0xB0002A,
}


@dataclass(frozen=True)
class Notification:
    kind: EventKind
    level: Level
    title: str
    at: float
    body: str = ""
    fields: tuple[tuple[str, str], ...] = ()
    reason: str = ""
    merged: tuple[Notification, ...] = field(default=(), repr=False)  # a digest's parts


def _money(value: float) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def _price(value: float) -> str:
    return "$" + price_text(value)


def _buy(
    kind: EventKind, title: str, qty: float, price: float, *, reason: str, at: float
) -> Notification:
    fields = (("Quantity", f"{qty:g}"), ("Price", _price(price)), ("Cost", _money(qty * price)))
    return Notification(kind, Level.INFO, title, at, fields=fields, reason=reason)


def trade_opened(
    coin: str, qty: float, price: float, *, reason: str, mode: str, at: float
) -> Notification:
    return _buy(
        EventKind.TRADE_OPENED, f"{coin}: trade opened ({mode})", qty, price, reason=reason, at=at
    )


def dca(
    coin: str, qty: float, price: float, stage: int, *, reason: str, mode: str, at: float
) -> Notification:
    return _buy(
        EventKind.DCA, f"{coin}: DCA stage {stage} ({mode})", qty, price, reason=reason, at=at
    )


def trade_closed(
    coin: str,
    qty: float,
    price: float,
    pnl: float,
    pnl_pct: float,
    *,
    reason: str,
    mode: str,
    at: float,
) -> Notification:
    outcome = "gain" if pnl >= 0 else "loss"
    return Notification(
        EventKind.TRADE_CLOSED,
        Level.INFO,
        f"{coin}: trade closed, {outcome} {_money(pnl)} ({pnl_pct:+.2f}%) ({mode})",
        at,
        fields=(("Quantity", f"{qty:g}"), ("Price", _price(price)), ("PnL", _money(pnl))),
        reason=reason,
    )


def worker_event(
    worker: str, detail: str, *, restarted: bool, gave_up: bool, at: float
) -> Notification:
    """A worker died (and is being restarted, or was given up on)."""
    if gave_up:
        return Notification(
            EventKind.WORKER_CRASHED, Level.CRITICAL, f"{worker} stopped for good: {detail}", at
        )
    kind = EventKind.WORKER_RESTARTED if restarted else EventKind.WORKER_CRASHED
    verb = "restarted" if restarted else "crashed"
    return Notification(
        kind, Level.ERROR if not restarted else Level.WARNING, f"{worker} {verb}", at, body=detail
    )


def training_finished(coin: str, detail: str, *, at: float) -> Notification:
    return Notification(
        EventKind.TRAINING_FINISHED, Level.INFO, f"{coin}: training finished", at, body=detail
    )


def daily_summary(
    day: str,
    *,
    closed: int,
    wins: int,
    pnl: float,
    equity: float | None,
    open_trades: int,
    mode: str,
    at: float,
) -> Notification:
    """One UTC day: trades closed (wins), their realized PnL, the account at the day's end."""
    fields = [("Trades closed", f"{closed} ({wins} won)"), ("Realized PnL", _money(pnl)),
              ("Open trades", str(open_trades))]  # fmt: skip
    if equity is not None:
        fields.append(("Account value", _money(equity)))
    return Notification(
        EventKind.DAILY_SUMMARY,
        Level.INFO,
        f"Daily summary {day} ({mode}): {_money(pnl)} realized",
        at,
        fields=tuple(fields),
    )


def arbitrage(
    coin: str,
    buy: tuple[str, float],
    sell: tuple[str, float],
    net_pct: float,
    *,
    mixed_currencies: bool,
    at: float,
) -> Notification:
    """A price gap between venues: buy at one's ask, sell at another's bid, net of fees.
    Information only: the bot does not trade it."""
    buy_text, sell_text = f"{buy[0]} {_price(buy[1])}", f"{sell[0]} {_price(sell[1])}"
    note = (
        "USD vs USDT: part of the gap may be the stablecoin's price. " if mixed_currencies else ""
    )
    return Notification(
        EventKind.ARBITRAGE,
        Level.INFO,
        f"{coin}: {net_pct:.2f}% between {buy[0]} and {sell[0]} after fees",
        at,
        body=f"{note}Information only: the bot does not trade gaps between venues.",
        fields=(("Buy", buy_text), ("Sell", sell_text), ("Net", f"{net_pct:.2f}%")),
    )


def volume_anomaly(
    coin: str, relative: float | None, z: float | None, detail: str, *, candle_time: int, at: float
) -> Notification:
    """A coin's last closed hour traded unusually much (or little)."""
    size = f"{relative:.1f}× its usual volume" if relative is not None else "unusual volume"
    sigma = f" ({z:+.1f} σ)" if z is not None else ""
    return Notification(
        EventKind.VOLUME_ANOMALY,
        Level.INFO,
        f"{coin}: volume anomaly, {size}{sigma}",
        at,
        body=detail,
        fields=(("Hour", _when(candle_time)),),
    )


def risk_limit(reason: str, *, mode: str, at: float) -> Notification:
    """A risk limit stopped trading (the drawdown stop): CRITICAL, so it always goes out."""
    return Notification(
        EventKind.RISK_LIMIT, Level.CRITICAL, f"Trading stopped by a risk limit ({mode})", at,
        body=reason,
    )  # fmt: skip


def from_log(process: str, logger: str, message: str, *, at: float) -> Notification:
    """A CRITICAL log record (pt_logging's hook)."""
    return Notification(
        EventKind.LOG,
        Level.CRITICAL,
        f"{process}: {message}"[:200],
        at,
        body=message,
        fields=(("Logger", logger),),
    )


def test_message(channel: str, *, at: float) -> Notification:
    return Notification(
        EventKind.TEST,
        Level.INFO,
        f"Test message for {channel}",
        at,
        body=f"If you can read this, {APP} can reach you by {channel}.",
    )


def digest(items: Sequence[Notification], *, at: float, dropped: int = 0) -> Notification:
    """Several notifications as one message: the highest level, one line each, newest last.
    ``dropped``: how many a full queue had to leave out (never a CRITICAL one)."""
    lines = [f"{_when(n.at)} {n.level.name} {n.title}" for n in items]
    if dropped:
        lines.append(f"... and {dropped} more not shown (the channel's queue was full)")
    level = max((n.level for n in items), default=Level.INFO)
    count = len(items) + dropped
    return Notification(
        EventKind.DIGEST,
        level,
        f"{count} notifications",
        at,
        body="\n".join(lines),
        merged=tuple(items),
    )


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- formats -----------------------------------------------------------------------------------


def plain_text(n: Notification) -> str:
    """Email bodies and webhook ``text``: title, body, fields, the reason, the time."""
    parts = [f"[{n.level.name}] {n.title}"]
    if n.body:
        parts.append(n.body)
    parts.extend(f"{name}: {value}" for name, value in n.fields)
    if n.reason:
        parts.append(f"Reason: {n.reason}")
    parts.append(f"{_when(n.at)} · {APP}")
    return "\n".join(parts)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def discord_embed(n: Notification) -> dict[str, Any]:
    """One embed within Discord's limits (title 256, description 4096, 25 fields of 256/1024,
    footer 2048)."""
    embed: dict[str, Any] = {
        "title": _cut(n.title, 256),
        "color": LEVEL_COLOURS[n.level],
        "timestamp": datetime.fromtimestamp(n.at, tz=UTC).isoformat(),
        "footer": {"text": _cut(f"{n.level.name} · {APP}", 2048)},
    }
    description = "\n".join(x for x in (n.body, f"Reason: {n.reason}" if n.reason else "") if x)
    if description:
        embed["description"] = _cut(description, 4096)
    if n.fields:
        embed["fields"] = [
            {"name": _cut(name, 256), "value": _cut(value, 1024), "inline": True}
            for name, value in n.fields[:25]
        ]
    return embed


_MD_SPECIAL = re.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")


def md_escape(text: str) -> str:
    """Telegram MarkdownV2: every special character escaped (the API rejects the message
    otherwise)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def telegram_markdown(n: Notification) -> str:
    """MarkdownV2 within Telegram's 4096 characters: bold title, then the rest."""
    lines = [f"*{md_escape(n.level.name)}* {md_escape(n.title)}"]
    if n.body:
        lines.append(md_escape(n.body))
    lines.extend(f"_{md_escape(name)}:_ {md_escape(value)}" for name, value in n.fields)
    if n.reason:
        lines.append(f"_Reason:_ {md_escape(n.reason)}")
    text = "\n".join(lines)
    if len(text) > 4096:
        text = text[:4090].rstrip("\\") + md_escape("…")
    return text


# -- rate limit ----------------------------------------------------------------------------------


class TokenBucket:
    """``capacity`` messages at once, refilled at ``per_minute``; pure (the caller gives
    ``now``, a monotonic clock)."""

    def __init__(self, per_minute: float, capacity: int, *, now: float) -> None:
        if per_minute <= 0 or capacity < 1:
            raise ValueError("a rate limit needs per_minute > 0 and capacity >= 1")
        self.rate = per_minute / 60.0
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self.stamp = now
        self.blocked_until = -math.inf

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def available(self, now: float) -> int:
        """Whole messages that may go now (0 while the service asked to wait)."""
        self._refill(now)
        return 0 if now < self.blocked_until else int(self.tokens)

    def take(self, now: float, count: int = 1) -> None:
        self._refill(now)
        self.tokens -= count

    def wait(self, now: float) -> float:
        """Seconds until one message may go."""
        self._refill(now)
        need = 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate
        return max(need, self.blocked_until - now, 0.0)

    def block(self, now: float, seconds: float) -> None:
        """The service said "retry after ``seconds``": nothing goes before then."""
        self.blocked_until = max(self.blocked_until, now + max(0.0, seconds))
