"""The settings schema: every setting, its default, its allowed values and what it means.

The original program's trading settings keep their names, defaults and meaning (they live at the
top level of ``settings.json`` exactly as in the original ``gui_settings.json``); settings that
are new in this version live in sections (``demo``, ``paper``, ``exchanges``, ...).

Validation is strict on purpose: a JSON ``true`` is not a level, ``"3"`` is not a number and a
``0`` stays ``0`` (the original silently turned a 0 into the previous value). Every model is
frozen so a loaded configuration cannot change under the code that reads it.
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pt_types import Mode

COIN_PATTERN = re.compile(r"^[A-Z0-9]{1,15}$")
CHART_TIMEFRAMES: tuple[str, ...] = (
    "1m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "1w",
)  # fmt: skip
Venue = Literal["kucoin", "binance", "coinbase"]
EXCHANGE_NAMES: tuple[Venue, ...] = ("kucoin", "binance", "coinbase")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_COINS = ("BTC", "ETH", "XRP", "BNB", "DOGE")
DEFAULT_DCA_LEVELS = (-2.5, -5.0, -10.0, -20.0, -30.0, -40.0, -50.0)


def _split_commas(value: object) -> object:
    """Let lists be typed as text (``"BTC, ETH"``), as in the original settings dialog."""
    if isinstance(value, str):
        return tuple(part.strip() for part in re.split(r"[,\s]+", value) if part.strip())
    return tuple(value) if isinstance(value, list) else value


def _numbers_from_text(value: object) -> object:
    parts = _split_commas(value)
    if isinstance(parts, tuple) and all(isinstance(p, str) for p in parts):
        try:
            return tuple(float(p) for p in parts)
        except ValueError:
            return value  # left for the schema to reject with its own message
    return parts


_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class _Section(BaseModel):
    model_config = _STRICT


class DemoSettings(_Section):
    """Demo mode: bundled real history replayed on a simulated clock, paper broker."""

    speed: float = Field(
        60.0, gt=0, le=100_000, description="simulated seconds per real second (60 = 1 h per min)"
    )
    start: str = Field(
        "2024-01-01",
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="the simulated date the demo clock starts at (YYYY-MM-DD, UTC)",
    )
    spread_pct: float = Field(
        0.05, ge=0, le=5, description="bid/ask spread around the replayed price, in percent"
    )


class PaperSettings(_Section):
    """The paper broker's wallet and cost model (used in demo and paper modes)."""

    starting_cash_usd: float = Field(
        10_000.0, gt=0, le=1e9, description="cash in the paper wallet at the start"
    )
    fee_pct: float = Field(0.1, ge=0, le=5, description="fee charged on every fill, in percent")
    spread_pct: float = Field(
        0.05, ge=0, le=5, description="extra slippage over the quoted bid/ask, in percent"
    )


class ExchangeSettings(_Section):
    """Market-data venues, tried in order, and where their APIs live."""

    order: tuple[Venue, ...] = Field(
        EXCHANGE_NAMES, min_length=1, description="venues for candles and prices, first wins"
    )
    kucoin_url: str = Field("https://api.kucoin.com", pattern=r"^https?://\S+$")
    binance_url: str = Field("https://api.binance.com", pattern=r"^https?://\S+$")
    coinbase_url: str = Field("https://api.coinbase.com", pattern=r"^https?://\S+$")
    robinhood_url: str = Field("https://trading.robinhood.com", pattern=r"^https?://\S+$")
    timeout_seconds: float = Field(10.0, gt=0, le=120, description="per HTTP request")
    outlier_pct: float = Field(
        2.0, gt=0, le=50, description="a venue this far from the median price is ignored"
    )

    @field_validator("order")
    @classmethod
    def _no_repeated_venue(cls, order: tuple[str, ...]) -> tuple[str, ...]:
        repeated = sorted({v for v in order if order.count(v) > 1})
        if repeated:
            raise ValueError(f"venue listed twice: {', '.join(repeated)}")
        return order


class PredictorSettings(_Section):
    """The kNN pattern predictor (trainer and thinker)."""

    pattern_length: int = Field(
        1, ge=1, le=8, description="closed candles per pattern (the original used 1)"
    )
    target_matches: int = Field(
        20, ge=1, le=500, description="how many similar past patterns a prediction aims for"
    )
    distance: Literal["relative", "absolute"] = Field(
        "relative", description="pattern distance: the original's relative one, or absolute"
    )
    bound_pct: float = Field(
        0.5, ge=0, le=10, description="bound lines sit this far beyond the predicted low/high"
    )
    signal_seconds: float = Field(
        2.0, gt=0, le=300, description="how often the thinker refreshes prices and levels"
    )


class TraderSettings(_Section):
    """The trader's pace and its refusals: when in doubt, it does not trade."""

    tick_seconds: float = Field(1.0, gt=0, le=60, description="real seconds between trader ticks")
    max_signal_age_seconds: float = Field(
        120.0, gt=0, le=3600, description="older thinker signals start no trade (real seconds)"
    )
    max_quote_age_seconds: float = Field(
        60.0, gt=0, le=3600, description="an older price places no order (real seconds)"
    )
    max_spread_pct: float = Field(
        2.0, gt=0, le=50, description="a wider bid/ask spread than this places no order"
    )
    max_quote_deviation_pct: float = Field(
        2.0,
        gt=0,
        le=50,
        description="live: a broker price this far from the other venues' median places no order",
    )


NOTIFY_EVENTS = (
    "trade_opened", "dca", "trade_closed", "worker_crashed", "worker_restarted", "risk_limit",
    "daily_summary", "arbitrage", "training_finished", "volume_anomaly",
)  # fmt: skip
# Sent unless switched off; a volume anomaly is opt-in (several a day across five coins).
DEFAULT_EVENTS = tuple(e for e in NOTIFY_EVENTS if e != "volume_anomaly")
NotifyLevel = Literal["INFO", "WARNING", "ERROR", "CRITICAL"]
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HOST_RE = re.compile(r"^[A-Za-z0-9.-]+$")
CHAT_RE = re.compile(r"^(-?\d+|@[A-Za-z0-9_]{5,})$")
URL_RE = re.compile(r"^https?://[^\s/]+\S*$")


def _rate(default: float) -> Any:
    return Field(
        default, gt=0, le=600, description="messages per minute at most; more become one digest"
    )


def _burst(default: int) -> Any:
    return Field(default, ge=1, le=100, description="messages that may go at once")


def _level(default: NotifyLevel) -> Any:
    return Field(default, description="the least severe level this channel gets")


class NotificationSettings(_Section):
    """Email, Discord, Telegram and webhooks. Passwords, tokens and the Discord webhook URL are
    kept encrypted with the keys (Settings → notification secrets), never in this file."""

    events: Annotated[tuple[str, ...], BeforeValidator(_split_commas)] = Field(
        DEFAULT_EVENTS, description="events that are sent (CRITICAL problems always are)"
    )
    arbitrage_min_pct: float = Field(
        0.5, ge=0, le=50, description="arbitrage: the least gap between venues after fees, %"
    )
    send_in_demo: bool = Field(
        False, description="demo mode sends too (its trades are simulated, hours per second)"
    )
    email_enabled: bool = Field(False, description="send email (Gmail needs an app password)")
    email_host: str = Field("smtp.gmail.com", description="the SMTP server's host name")
    email_port: int = Field(465, ge=1, le=65535)
    email_security: Literal["ssl", "starttls", "none"] = Field(
        "ssl", description="ssl (port 465), starttls (port 587) or none (local servers only)"
    )
    email_user: str = Field("", description="the SMTP login, usually your address")
    email_to: Annotated[tuple[str, ...], BeforeValidator(_split_commas)] = Field(
        (), description="who gets the mail (comma-separated addresses)"
    )
    email_min_level: NotifyLevel = _level("WARNING")
    email_per_minute: float = _rate(6.0)
    email_burst: int = _burst(3)
    discord_enabled: bool = Field(False, description="post to a Discord channel's webhook")
    discord_min_level: NotifyLevel = _level("INFO")
    discord_per_minute: float = _rate(20.0)
    discord_burst: int = _burst(5)
    telegram_enabled: bool = Field(False, description="message you through a Telegram bot")
    telegram_chat_id: str = Field("", description="numeric id or @channelname")
    telegram_api_url: str = Field("https://api.telegram.org", description="the Bot API server")
    telegram_min_level: NotifyLevel = _level("INFO")
    telegram_per_minute: float = _rate(20.0)
    telegram_burst: int = _burst(5)
    webhook_enabled: bool = Field(False, description="POST JSON to a URL (Slack-compatible)")
    webhook_url: str = Field("", description="http(s) URL that takes a JSON POST")
    webhook_min_level: NotifyLevel = _level("INFO")
    webhook_per_minute: float = _rate(30.0)
    webhook_burst: int = _burst(5)

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [e for e in events if e not in NOTIFY_EVENTS]
        if unknown:
            raise ValueError(
                f"unknown event {', '.join(map(repr, unknown))}; known: {', '.join(NOTIFY_EVENTS)}"
            )
        return events

    @field_validator("telegram_chat_id", mode="before")
    @classmethod
    def _chat_id_text(cls, value: Any) -> Any:
        """A numeric chat id may be given as a number (``pt_config.py set ... 12345``)."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("email_host")
    @classmethod
    def _host(cls, host: str) -> str:
        if not HOST_RE.match(host):
            raise ValueError(f"not a host name: {host!r} (e.g. smtp.gmail.com)")
        return host

    @field_validator("telegram_chat_id")
    @classmethod
    def _chat_id(cls, chat: str) -> str:
        if chat and not CHAT_RE.match(chat):
            raise ValueError(
                f"not a chat id: {chat!r}; a number (e.g. 123456789 or -1001234567890 for a "
                "group) or @channelname"
            )
        return chat

    @field_validator("telegram_api_url", "webhook_url")
    @classmethod
    def _url(cls, url: str, info: ValidationInfo) -> str:
        if (url or info.field_name == "telegram_api_url") and not URL_RE.match(url):
            raise ValueError(f"not an http(s) URL: {url!r} (e.g. https://example.com/hook)")
        return url

    @field_validator("email_to")
    @classmethod
    def _addresses(cls, to: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in to if not EMAIL_RE.match(a)]
        if bad:
            raise ValueError(f"not an email address: {', '.join(map(repr, bad))}")
        return to

    @model_validator(mode="after")
    def _enabled_channels_are_complete(self) -> NotificationSettings:
        missing = [
            ("email", "email_user", self.email_enabled and not self.email_user),
            ("email", "email_to", self.email_enabled and not self.email_to),
            ("Telegram", "telegram_chat_id", self.telegram_enabled and not self.telegram_chat_id),
            ("the webhook", "webhook_url", self.webhook_enabled and not self.webhook_url),
        ]
        for channel, name, is_missing in missing:
            if is_missing:
                raise ValueError(f"{channel} is on but {name} is empty: fill it in or turn it off")
        return self


class VolumeSettings(_Section):
    """Volume analysis of each coin's hourly candles (the thinker; shown on the coin's tile)."""

    anomaly_window: int = Field(
        50, ge=5, le=500, description="hourly candles the newest volume is compared with"
    )
    anomaly_z: float = Field(
        3.0, gt=0, le=20, description="a volume this many standard deviations off is an anomaly"
    )
    trend_lookback: int = Field(
        10, ge=2, le=200, description="hourly candles the volume trend is measured over"
    )
    trend_threshold_pct: float = Field(
        10.0, ge=0, le=1000, description="volume SMA change (%) that counts as a trend"
    )


class SizingSettings(_Section):
    """How large a first buy is: the fixed ``start_allocation_pct``, or by volatility."""

    method: Literal["fixed", "volatility"] = Field(
        "fixed", description="fixed: start_allocation_pct; volatility: base % × target/ATR %"
    )
    base_pct: float = Field(
        2.0, gt=0, le=100, description="volatility sizing: % of account at the target ATR %"
    )
    min_pct: float = Field(1.0, gt=0, le=100, description="volatility sizing: least % of account")
    max_pct: float = Field(10.0, gt=0, le=100, description="volatility sizing: most % of account")
    target_atr_pct: float = Field(
        3.0, gt=0, le=100, description="the daily ATR % that gets exactly the base %"
    )
    atr_period: int = Field(14, ge=2, le=200, description="daily candles in the ATR (Wilder)")

    @model_validator(mode="after")
    def _bounds_in_order(self) -> SizingSettings:
        if self.min_pct > self.max_pct:
            raise ValueError(
                f"min_pct {self.min_pct:g} is above max_pct {self.max_pct:g}: lower min_pct "
                "or raise max_pct"
            )
        return self


class RiskSettings(_Section):
    """Optional limits checked before every buy; all off by default (the original strategy has
    no stop loss on purpose). A percent of 0 (or 100 for a share of the account) is off."""

    max_exposure_pct: float = Field(
        100.0, gt=0, le=100, description="value in trades after a buy, at most % of account"
    )
    max_coin_pct: float = Field(
        100.0, gt=0, le=100, description="one coin's position after a buy, at most % of account"
    )
    volatility_position_pct: float = Field(
        0.0, ge=0, le=100, description="0 off; else a position's cap in % at the target ATR %, "
        "scaled by target/ATR %",
    )  # fmt: skip
    max_spread_pct: float = Field(
        0.0, ge=0, le=50, description="0 off; else a wider bid/ask spread buys nothing"
    )
    max_venue_gap_pct: float = Field(
        0.0, ge=0, le=50, description="0 off; else venues further apart than this buy nothing"
    )
    drawdown_stop_pct: float = Field(
        0.0, ge=0, lt=100, description="0 off; else a fall this far from the peak stops buying"
    )
    drawdown_pause_all: bool = Field(
        False, description="at the drawdown stop, also stop selling (pause the trader)"
    )
    correlation_days: Literal[7, 30, 90] = Field(
        30, description="the daily returns correlations are measured over"
    )
    correlation_threshold: float = Field(
        0.8, gt=0, le=1, description="an entry correlated above this with a holding is flagged"
    )
    block_correlated_entries: bool = Field(
        False, description="refuse such an entry instead of only flagging it"
    )


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="least severe level written to the log files"
    )
    max_bytes: int = Field(
        5_000_000, ge=10_000, le=1_000_000_000, description="size at which a log file rotates"
    )
    backup_count: int = Field(5, ge=1, le=100, description="rotated log files kept per process")
    console: bool = Field(True, description="also print readable log lines to the terminal")


class Settings(BaseModel):
    """Every setting of PowerTrader AI (``settings.json`` in the data folder)."""

    model_config = _STRICT

    mode: Mode = Field(Mode.DEMO, description="demo (no network, no keys), paper, or live")
    coins: Annotated[tuple[str, ...], BeforeValidator(_split_commas)] = Field(
        DEFAULT_COINS, description="coins the bot manages; nothing else is ever traded"
    )
    trade_start_level: int = Field(
        3, ge=1, le=7, description="LONG level that starts a trade (with SHORT 0)"
    )
    start_allocation_pct: float = Field(
        0.005, ge=0, le=100, description="first buy as % of account value (minimum $0.50)"
    )
    dca_multiplier: float = Field(
        2.0, ge=0, le=100, description="a DCA buys this many times the position's value"
    )
    dca_levels: Annotated[tuple[float, ...], BeforeValidator(_numbers_from_text)] = Field(
        DEFAULT_DCA_LEVELS,
        min_length=1,
        description="loss in % that triggers each DCA stage; the last one repeats",
    )
    max_dca_buys_per_24h: int = Field(
        2, ge=0, le=100, description="DCA buys per coin per rolling 24 h (0 = no DCA)"
    )
    pm_start_pct_no_dca: float = Field(
        5.0, ge=0, le=1000, description="trailing profit line start above cost, no DCA yet"
    )
    pm_start_pct_with_dca: float = Field(
        2.5, ge=0, le=1000, description="trailing profit line start above cost after a DCA"
    )
    trailing_gap_pct: float = Field(
        0.5, ge=0, lt=100, description="how far the trailing line follows behind the peak"
    )
    timeframes: tuple[str, ...] = Field(
        CHART_TIMEFRAMES, min_length=1, description="timeframes offered on the charts"
    )
    default_timeframe: str = Field("1h", description="chart timeframe shown first")
    candles_limit: int = Field(120, ge=10, le=1500, description="candles drawn per chart")
    ui_refresh_seconds: float = Field(1.0, ge=0.1, le=60, description="hub refresh period")
    chart_refresh_seconds: float = Field(10.0, ge=1, le=3600, description="chart refresh period")
    auto_start_scripts: bool = Field(False, description="Start All when the hub opens")
    demo: DemoSettings = DemoSettings()
    paper: PaperSettings = PaperSettings()
    exchanges: ExchangeSettings = ExchangeSettings()
    predictor: PredictorSettings = PredictorSettings()
    trader: TraderSettings = TraderSettings()
    notifications: NotificationSettings = NotificationSettings()
    volume: VolumeSettings = VolumeSettings()
    sizing: SizingSettings = SizingSettings()
    risk: RiskSettings = RiskSettings()
    logging: LoggingSettings = LoggingSettings()

    @field_validator("coins")
    @classmethod
    def _valid_coin_list(cls, coins: tuple[str, ...]) -> tuple[str, ...]:
        coins = tuple(c.strip().upper() for c in coins)
        if not coins:
            raise ValueError("the coin list is empty; name at least one coin, e.g. BTC")
        bad = [c for c in coins if not COIN_PATTERN.match(c)]
        if bad:
            raise ValueError(f"not a coin symbol: {', '.join(map(repr, bad))}")
        repeated = sorted({c for c in coins if coins.count(c) > 1})
        if repeated:
            raise ValueError(f"coin listed twice: {', '.join(repeated)}")
        return coins

    @field_validator("dca_levels")
    @classmethod
    def _dca_levels_deepen(cls, levels: tuple[float, ...]) -> tuple[float, ...]:
        if any(not -100 < x < 0 for x in levels):
            raise ValueError("each DCA level is a loss in percent, between -100 and 0")
        if any(b > a for a, b in itertools.pairwise(levels)):
            raise ValueError("DCA levels must go deeper (or stay equal) from one stage to the next")
        return levels

    @field_validator("timeframes")
    @classmethod
    def _known_timeframes(cls, tfs: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [tf for tf in tfs if tf not in CHART_TIMEFRAMES]
        if unknown:
            raise ValueError(f"unknown timeframe {', '.join(map(repr, unknown))}")
        return tfs

    @field_validator("default_timeframe")
    @classmethod
    def _offered_timeframe(cls, tf: str, info: ValidationInfo) -> str:
        offered = info.data.get("timeframes", CHART_TIMEFRAMES)
        if tf not in offered:
            raise ValueError(f"{tf!r} is not one of the chart timeframes {', '.join(offered)}")
        return tf
