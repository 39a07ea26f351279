"""The notification panel's worker side (no Tk): storing channel secrets, sending a test.

Both run on a :class:`pt_gui_background.Background` worker thread, never on Tk's: opening the
secrets file derives a key (scrypt, ~0.1 s) and a test message waits on a remote service for up
to ten seconds. Every failure becomes a message the user can act on; no value, token or
password ever appears in one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pt_logging
import pt_secrets as ps
from pt_config_schema import NotificationSettings
from pt_gui_keywizard_worker import Done, Outcome, Vault, VaultState, run_vault_job
from pt_notifications import ChannelError, build_channels
from pt_notify_format import SECRET_NAMES, SECRET_WHAT, test_message
from pt_notify_runtime import read_notify_secrets
from pt_secrets_vault import read_header
from pt_state import DataLayout

log = logging.getLogger(__name__)

CHANNELS = ("email", "discord", "telegram", "webhook")
LABELS = {"email": "Email", "discord": "Discord", "telegram": "Telegram", "webhook": "Webhook"}


# -- storing secrets ---------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class SecretJob:
    """``kind``: probe (what is stored), store or remove one channel's secret."""

    kind: str
    channel: str = ""
    value: str = field(default="", repr=False)
    passphrase: str = field(default="", repr=False)
    confirm: str = field(default="", repr=False)


@dataclass(frozen=True)
class SecretsDone:
    done: Done
    stored: frozenset[str]  # the channels whose secret is stored now
    channel: str = ""  # the job's

    @property
    def vault(self) -> VaultState | None:
        return self.done.vault


def _dispatch(vault: Vault, job: SecretJob) -> Done:
    if job.kind == "probe":
        return Done("probe", True)
    store = vault.store(job.passphrase, job.confirm)
    value = job.value if job.kind == "store" else None
    text = ps.set_notify_secret(store, job.channel, value)
    return Done(job.kind, True, Outcome(text[:1].upper() + text[1:] + "."))


def run_secret_job(layout: DataLayout, vault: Vault, job: SecretJob) -> SecretsDone:
    done = run_vault_job(vault, job, _dispatch)
    return SecretsDone(done, stored_channels(layout), job.channel)


def stored_channels(layout: DataLayout) -> frozenset[str]:
    """Channels whose secret the file holds (its header: nothing decrypted)."""
    try:
        header = read_header(layout)
    except ps.SecretsError:
        return frozenset()
    names = set(header.names) if header else set()
    return frozenset(c for c, name in SECRET_NAMES.items() if name in names)


# -- a test message -----------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class TestJob:
    """Send a test message by ``channel`` with the form's settings (saved or not)."""

    channel: str
    settings: NotificationSettings
    passphrase: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TestResult:
    channel: str
    outcome: Outcome
    need_passphrase: bool = False  # ask, then send the same job again with it


def needs_passphrase(layout: DataLayout, channel: str, passphrase: str | None) -> bool:
    """The channel's secret is stored in a passphrase-locked file and none was given yet."""
    if passphrase is not None or channel not in SECRET_NAMES:
        return False
    header = read_header(layout)
    return (
        header is not None
        and header.key_source == "passphrase"
        and SECRET_NAMES[channel] in header.names
    )


def send_test(
    layout: DataLayout, job: TestJob, *, wall: Callable[[], float] = time.time
) -> TestResult:
    """Build the one channel from the form's settings and its stored secret, and send."""
    name = LABELS[job.channel]
    try:
        if needs_passphrase(layout, job.channel, job.passphrase):
            return TestResult(job.channel, Outcome("Passphrase needed.", "warn"), True)
        secrets, locked = read_notify_secrets(
            layout, job.settings, job.passphrase, channels=(job.channel,)
        )
        built, problems = build_channels(job.settings, secrets, locked=locked, only=job.channel)
        if problems or not built:
            why = problems[0] if problems else "nothing to send with"
            return TestResult(job.channel, Outcome(f"{name}: {why}", "error"))
        channel, _policy = built[0]
        channel.send(test_message(name, at=wall()))
    except ChannelError as exc:
        return TestResult(job.channel, Outcome(f"{name}: {pt_logging.redact(str(exc))}", "error"))
    except ps.SecretsError as exc:
        return TestResult(job.channel, Outcome(f"{name}: {pt_logging.redact(str(exc))}", "error"))
    log.info("test message sent by %s", job.channel)
    where = {
        "email": "look in the inbox of " + ", ".join(job.settings.email_to),
        "discord": "look in the Discord channel",
        "telegram": "look in the Telegram chat",
        "webhook": "the receiver accepted it",
    }[job.channel]
    return TestResult(job.channel, Outcome(f"{name}: test message sent; {where}.", "ok"))


def secret_label(channel: str) -> str:
    return f"{LABELS[channel]} {SECRET_WHAT[channel]}"
