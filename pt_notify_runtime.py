"""A process's notifications: the channels its settings ask for, with the secrets it can open.

The hub, the thinker and the trader each own one :class:`ProcessNotifier`. It builds a
:class:`pt_notifications.NotificationManager` from the settings and the stored secrets, and
builds it again when the notification settings, the mode or the secrets file change (hot
reload: a channel turned on in the SETTINGS tab starts sending within a tick). It is also the
process's CRITICAL-log hook (:func:`pt_logging.set_critical_hook`), so a CRITICAL record becomes
a notification without the code that logged it knowing about channels.

Secrets: a vault locked with the OS keyring opens by itself; one locked with a passphrase opens
only with the passphrase the hub hands over (Start All asks for it). Without it the webhook
still works and the other channels are reported as locked, never silently missing. Every value
read is registered with :func:`pt_logging.register_secret`, so no log line can carry it.

Demo mode replays hours per second of simulated trades; it sends nothing unless
``notifications.send_in_demo`` is on (the "Send test" button works in every mode).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pt_logging
from pt_config_schema import NotificationSettings, Settings
from pt_notifications import NotificationManager, from_settings
from pt_notify_format import SECRET_NAMES, Notification, channels_with_secrets, from_log
from pt_secrets_keysource import KeyringKeySource, KeySource, PassphraseKeySource, SecretsError
from pt_secrets_vault import VAULT_NAME, SecretStore, read_header
from pt_state import DataLayout, StatKey, stat_key
from pt_types import Mode

log = logging.getLogger(__name__)

__all__ = ["LOCKED", "ProcessNotifier", "read_notify_secrets"]

CLOSE_TIMEOUT_S = 5.0
LOCKED = (
    "the secrets file is locked with a passphrase that was not given (the hub's Start All asks "
    "for it; or keep the secrets in the OS keyring)"
)
Build = Callable[..., tuple[NotificationManager, list[str]]]


def read_notify_secrets(
    layout: DataLayout,
    cfg: NotificationSettings,
    passphrase: str | None,
    *,
    channels: Sequence[str] | None = None,
) -> tuple[dict[str, str | None], str]:
    """The stored secrets of the enabled channels (or of ``channels``), and why they could not
    be read ("" when they could, or when none is needed or stored). Values read are
    registered for redaction."""
    wanted = channels_with_secrets(cfg) if channels is None else channels
    names = [SECRET_NAMES[c] for c in wanted if c in SECRET_NAMES]
    if not names:
        return {}, ""
    try:
        header = read_header(layout)
        if header is None or not set(names) & set(header.names):
            return {}, ""  # never stored: from_settings names each missing one
        source: KeySource
        if header.key_source == KeyringKeySource.kind:
            source = KeyringKeySource()
        elif passphrase is None:
            return {}, LOCKED
        else:
            source = PassphraseKeySource(passphrase)
        values = SecretStore(layout, source).get_many(names)
    except SecretsError as exc:
        return {}, str(exc)
    for value in values.values():
        if value:
            pt_logging.register_secret(value)
    return values, ""


def redacted(n: Notification) -> Notification:
    """``n`` with :func:`pt_logging.redact` applied to every text it carries."""
    fields = tuple((name, pt_logging.redact(value)) for name, value in n.fields)
    return replace(n, title=pt_logging.redact(n.title), body=pt_logging.redact(n.body),
                   reason=pt_logging.redact(n.reason), fields=fields)  # fmt: skip


class ProcessNotifier:
    """One process's channels (module doc). ``notify`` never blocks and never raises; call
    :meth:`update` with the settings in force (each tick: it only compares and stats)."""

    def __init__(
        self,
        layout: DataLayout,
        process: str,
        *,
        passphrase: str | None = None,
        build: Build = from_settings,
        worker_kw: Mapping[str, Any] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.layout, self.process = layout, process
        self._passphrase = passphrase
        self._build, self._worker_kw, self._wall = build, dict(worker_kw or {}), wall
        self._lock = threading.Lock()
        self._manager = NotificationManager()
        self._key: tuple[NotificationSettings, Mode, StatKey | None, bool] | None = None
        self.problems: tuple[str, ...] = ()

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels sending now (their names)."""
        return tuple(w.channel.name for w in self._manager.workers if not w.disabled)

    def unlock(self, passphrase: str | None) -> None:
        """The passphrase of the secrets file (the hub got it at Start All); rebuilds at the
        next :meth:`update`."""
        with self._lock:
            if passphrase is not None and passphrase != self._passphrase:
                self._passphrase, self._key = passphrase, None

    def update(self, settings: Settings) -> None:
        """Rebuild the channels when the notification settings, mode or secrets changed."""
        cfg = settings.notifications
        vault = stat_key(self.layout.secrets_dir / VAULT_NAME)
        key = (cfg, settings.mode, vault, self._passphrase is not None)
        if key == self._key:
            return
        with self._lock:
            self._key = key
            old = self._manager
            problems: list[str] = []
            if settings.mode is Mode.DEMO and not cfg.send_in_demo:
                manager = NotificationManager()
                if any(getattr(cfg, f"{c}_enabled") for c in (*SECRET_NAMES, "webhook")):
                    log.info("notifications are off in demo mode (notifications.send_in_demo)")
            else:
                secrets, locked = read_notify_secrets(self.layout, cfg, self._passphrase)
                manager, problems = self._build(cfg, secrets, locked=locked, **self._worker_kw)
            self._manager, self.problems = manager, tuple(problems)
        if manager.workers:
            log.info("%s notifications go to %s", self.process, ", ".join(self.channels))
        old.close(CLOSE_TIMEOUT_S)

    def notify(self, n: Notification) -> None:
        """Queue ``n`` for every channel, its texts redacted first: a crash's last output line
        can hold a URL with a token, which must not travel to another service."""
        self._manager.notify(redacted(n))

    def critical_hook(self, entry: pt_logging.LogEntry) -> None:
        """:func:`pt_logging.set_critical_hook`'s target: a CRITICAL record, as a notification."""
        self.notify(from_log(entry.process, entry.logger, entry.msg, at=entry.ts))

    def install(self) -> ProcessNotifier:
        pt_logging.set_critical_hook(self.critical_hook)
        return self

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Send what is queued (within ``timeout``) and stop; the hook is removed first."""
        pt_logging.set_critical_hook(None)
        with self._lock:
            manager, self._manager = self._manager, NotificationManager()
        manager.close(timeout)
