"""The notification channels: a JSON webhook, Discord, Telegram and email.

Each adapter sends one :class:`pt_notify_format.Notification` and translates whatever its
library or service says into :class:`pt_notifications.ChannelError`: ``permanent`` when only a
settings change can help (a deleted webhook, a wrong token, an unknown chat, refused SMTP
credentials), with ``retry_after`` when the service asked to wait, plain otherwise. Messages
never contain the token, password or webhook URL: they name the channel and the HTTP status.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import smtplib
import warnings
from collections.abc import Sequence
from typing import Any

import requests
import telegram
import telegram.error
import yagmail
from discord_webhook import DiscordWebhook
from telegram.warnings import PTBDeprecationWarning

from pt_notify_format import (
    APP,
    ChannelError,
    Notification,
    discord_embed,
    plain_text,
    telegram_markdown,
)

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
# Both libraries log request URLs (Telegram's carry the bot token): keep them quiet.
for _noisy in ("httpx", "httpcore", "telegram", "urllib3"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)
# The library warns that retry_after will become a timedelta; _retry_seconds takes both.
warnings.filterwarnings("ignore", message=".*retry_after.*", category=PTBDeprecationWarning)


def _http_error(channel: str, status: int, retry_after: float | None, detail: str) -> ChannelError:
    """HTTP status -> what the worker should do: 429 wait, other 4xx fix the settings, 5xx
    retry."""
    if status == 429:
        return ChannelError(f"{channel}: HTTP 429 rate limited", retry_after=retry_after)
    permanent = 400 <= status < 500
    hint = {
        404: " (the URL no longer exists: create a new one)",
        401: " (refused: check the token)",
        403: " (forbidden: check the permissions)",
    }
    return ChannelError(
        f"{channel}: HTTP {status}{hint.get(status, '')} {detail}".strip(), permanent=permanent
    )


def _retry_after(response: requests.Response) -> float | None:
    try:
        value = response.json().get("retry_after")
    except (ValueError, AttributeError):
        value = None
    if value is None:
        value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class WebhookNotifier:
    """A JSON POST to any URL: ``{"text": ..., "level", "kind", "title", "at", "fields"}`` (the
    ``text`` key is what Slack-compatible receivers show)."""

    def __init__(self, url: str, *, name: str = "webhook", timeout: float = TIMEOUT_S) -> None:
        self.url, self.name, self.timeout = url, name, timeout

    def send(self, n: Notification) -> None:
        body = {
            "text": plain_text(n),
            "level": n.level.name,
            "kind": n.kind.value,
            "title": n.title,
            "at": n.at,
            "fields": dict(n.fields),
            "reason": n.reason,
        }
        try:
            response = requests.post(self.url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ChannelError(
                f"{self.name}: cannot reach the receiver: {type(exc).__name__}"
            ) from None
        if response.status_code >= 300:
            raise _http_error(self.name, response.status_code, _retry_after(response), "")


class DiscordNotifier:
    """A Discord channel webhook (``discord-webhook``), one embed per message."""

    name = "discord"

    def __init__(self, url: str, *, timeout: float = TIMEOUT_S) -> None:
        self.url, self.timeout = url, timeout

    def send(self, n: Notification) -> None:
        hook = DiscordWebhook(
            url=self.url,
            username=APP,
            embeds=[discord_embed(n)],
            rate_limit_retry=False,
            timeout=self.timeout,
        )
        try:
            response = hook.execute()
        except requests.RequestException as exc:
            raise ChannelError(f"discord: cannot reach Discord: {type(exc).__name__}") from None
        except ValueError:  # the library reads the answer as JSON: a proxy's empty page
            raise ChannelError("discord: the answer was not Discord's (a proxy?)") from None
        if response.status_code >= 300:
            detail = ""
            with contextlib.suppress(ValueError, AttributeError):
                detail = str(response.json().get("message", ""))
            raise _http_error("discord", response.status_code, _retry_after(response), detail)


def _retry_seconds(exc: telegram.error.RetryAfter) -> float:
    value = exc.retry_after  # int seconds; a timedelta in later versions of the library
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


class TelegramNotifier:
    """A Telegram bot (``python-telegram-bot``) writing to one chat, in MarkdownV2.
    ``api_url`` is the Bot API base (``https://api.telegram.org``; a local Bot API server or a
    test fake otherwise)."""

    name = "telegram"

    def __init__(
        self,
        token: str,
        chat_id: str,
        *,
        api_url: str = "https://api.telegram.org",
        timeout: float = TIMEOUT_S,
    ) -> None:
        self._token, self.chat_id, self.timeout = token, chat_id, timeout
        self.api_url = api_url.rstrip("/")

    async def _send(self, text: str) -> None:
        bot = telegram.Bot(self._token, base_url=f"{self.api_url}/bot")
        async with bot:
            await bot.send_message(
                self.chat_id,
                text,
                parse_mode="MarkdownV2",
                read_timeout=self.timeout,
                write_timeout=self.timeout,
                connect_timeout=self.timeout,
            )

    def send(self, n: Notification) -> None:
        try:
            asyncio.run(self._send(telegram_markdown(n)))
        except telegram.error.RetryAfter as exc:
            raise ChannelError("telegram: rate limited", retry_after=_retry_seconds(exc)) from None
        except telegram.error.InvalidToken:
            raise ChannelError(
                "telegram: the bot token was refused: check it in Settings", permanent=True
            ) from None
        except (telegram.error.Forbidden, telegram.error.BadRequest) as exc:
            raise ChannelError(
                f"telegram: {exc.message} (check the chat id and that the bot may write to it)",
                permanent=True,
            ) from None
        except telegram.error.TelegramError as exc:  # network errors, timeouts
            raise ChannelError(f"telegram: {type(exc).__name__}: {exc.message}") from None


class EmailNotifier:
    """Email through any SMTP server (``yagmail``); Gmail by default (an app password)."""

    name = "email"

    def __init__(
        self,
        user: str,
        password: str,
        to: Sequence[str],
        *,
        host: str = "smtp.gmail.com",
        port: int = 465,
        security: str = "ssl",
        timeout: float = TIMEOUT_S,
    ) -> None:
        if security not in ("ssl", "starttls", "none"):
            raise ValueError(f"email security must be ssl, starttls or none, not {security!r}")
        self.user, self._password, self.to = user, password, list(to)
        self.host, self.port, self.security, self.timeout = host, port, security, timeout

    def _client(self) -> Any:
        client = yagmail.SMTP(
            self.user,
            self._password,
            host=self.host,
            port=self.port,
            smtp_ssl=self.security == "ssl",
            smtp_starttls=self.security == "starttls",
            smtp_skip_login=False,
            soft_email_validation=False,
            timeout=self.timeout,
        )
        client.log = log  # yagmail's own logger prints to stderr
        return client

    def send(self, n: Notification) -> None:
        subject = f"[{APP}] {n.level.name}: {n.title}"[:200]
        try:
            client = self._client()
            try:
                client.send(to=self.to, subject=subject, contents=plain_text(n))
            finally:
                client.close()
        except smtplib.SMTPAuthenticationError:
            raise ChannelError(
                "email: the SMTP server refused the user name or password "
                "(Gmail needs an app password)",
                permanent=True,
            ) from None
        except smtplib.SMTPRecipientsRefused:
            raise ChannelError("email: the recipient address was refused", permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelError(
                f"email: {type(exc).__name__} from {self.host}:{self.port}"
            ) from None
