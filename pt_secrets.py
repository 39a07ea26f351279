"""Credentials encrypted at rest: the Robinhood keys and any other named secret.

The original kept the Robinhood trading key as plain base64 in ``r_secret.txt`` next to the code
(spec §6); anyone who could read that file could trade the account. Here every secret lives in
one encrypted, owner-only vault file (:mod:`pt_secrets_vault`) whose key comes from a key source
(:mod:`pt_secrets_keysource`): the OS keyring when the optional ``keyring`` package is installed
with a usable backend, else a passphrase stretched with scrypt.

scrypt cost (n=2**15, r=8, p=1: 32 MiB of memory) measured about 0.1 s per derivation on a
2-core AMD EPYC server (n=2**16: 0.22 s, n=2**17: 0.5 s): unnoticeable at start-up, yet every
guess at a stolen file costs an attacker the same. The key is derived once per process and
cached; the parameters are stored in the vault header, so a later version can raise them.

This module is the face: the store, the Robinhood credentials (Ed25519 seed and API key), the
import of the original's plain files, and a small command line. Every value loaded is registered
with :func:`pt_logging.register_secret`; no message, repr or log line here holds a secret.

Command line (``--data-dir`` as everywhere: else ``$POWERTRADER_HOME``, else ``./user_data``)::

    python pt_secrets.py [--data-dir DIR] [--no-keyring] import-original FOLDER
    python pt_secrets.py [--data-dir DIR] status
"""

from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import pt_logging
from pt_notify_format import SECRET_NAMES, SECRET_WHAT, secret_problem
from pt_secrets_keysource import (
    KeyringKeySource,
    KeySource,
    PassphraseKeySource,
    SecretsError,
    WrongKeyError,
    keyring_available,
)
from pt_secrets_vault import SecretStore, VaultHeader, damaged_error, read_header
from pt_state import DataLayout, resolve_data_dir

log = logging.getLogger(__name__)

__all__ = [
    "ImportResult",
    "KeySource",
    "KeyringKeySource",
    "PassphraseKeySource",
    "RobinhoodCredentials",
    "SecretStore",
    "SecretsError",
    "VaultHeader",
    "WrongKeyError",
    "check_new_passphrase",
    "choose_key_source",
    "generate_keypair",
    "import_original_keys",
    "load_robinhood",
    "parse_private_key",
    "public_key_b64",
    "read_header",
    "save_robinhood",
]

SEED_BYTES = 32
RH_API_KEY, RH_PRIVATE_KEY = "robinhood.api_key", "robinhood.private_key"
ORIGINAL_KEY_FILE, ORIGINAL_SECRET_FILE = "r_key.txt", "r_secret.txt"
MIN_PASSPHRASE = 8
EXIT_ERROR = 1


# ---------------------------------------------------------------------------------------------
# Robinhood credentials


def _ed25519(seed: bytes) -> Ed25519PrivateKey:
    if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
        size = len(seed) if isinstance(seed, bytes) else type(seed).__name__
        raise ValueError(f"an Ed25519 private key seed is {SEED_BYTES} bytes, got {size}")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_b64(seed: bytes) -> str:
    """Base64 of the raw 32-byte public key: what the user pastes into Robinhood's portal."""
    return base64.b64encode(_ed25519(seed).public_key().public_bytes_raw()).decode("ascii")


def generate_keypair() -> tuple[bytes, str]:
    """A new Ed25519 key: (32-byte private seed, base64 public key for Robinhood)."""
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    return seed, public_key_b64(seed)


def parse_private_key(text: str, source: str) -> bytes:
    """The 32-byte seed from base64 of a 32-byte seed or a 64-byte seed + public key.

    Robinhood's Python sample prints the 32-byte seed, its Node sample the 64-byte pair; both are
    accepted. For the pair the second half must be the public key of the first, which catches a
    truncated or mixed-up paste. ``source`` (a file or "the pasted key") names it in errors.
    """
    compact = "".join(text.split())
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise SecretsError(
            f"{source} is not valid base64; it should hold the base64 of your Ed25519 "
            f"private key ({SEED_BYTES} or {2 * SEED_BYTES} bytes)"
        ) from None
    if len(raw) not in (SEED_BYTES, 2 * SEED_BYTES):
        raise SecretsError(
            f"{source} decodes to {len(raw)} bytes; an Ed25519 private key is {SEED_BYTES} bytes "
            f"(seed) or {2 * SEED_BYTES} bytes (seed + public key)"
        )
    seed = raw[:SEED_BYTES]
    pt_logging.register_secret(compact)
    pt_logging.register_secret(base64.b64encode(seed).decode("ascii"))
    public = _ed25519(seed).public_key().public_bytes_raw()
    if len(raw) == 2 * SEED_BYTES and raw[SEED_BYTES:] != public:
        raise SecretsError(
            f"{source} holds {2 * SEED_BYTES} bytes but the second half is not the public key "
            "of the first: this is not an Ed25519 key pair (copied incompletely?)"
        )
    return seed


@dataclass(frozen=True, repr=False)
class RobinhoodCredentials:
    """The API key and the Ed25519 private seed; its repr and str hide both."""

    api_key: str
    private_key_seed: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.api_key, str) or not self.api_key.strip():
            raise ValueError("the Robinhood API key is empty")
        if self.api_key != self.api_key.strip() or any(c.isspace() for c in self.api_key):
            raise ValueError("the Robinhood API key contains spaces or line breaks")
        _ed25519(self.private_key_seed)
        seed = self.private_key_seed
        pt_logging.register_secret(self.api_key)
        pt_logging.register_secret(base64.b64encode(seed).decode("ascii"))
        pair = seed + _ed25519(seed).public_key().public_bytes_raw()
        pt_logging.register_secret(base64.b64encode(pair).decode("ascii"))
        pt_logging.register_secret(seed.hex())

    def __repr__(self) -> str:
        return "RobinhoodCredentials(api_key=<hidden>, private_key_seed=<hidden>)"

    def private_key(self) -> Ed25519PrivateKey:
        return _ed25519(self.private_key_seed)

    @property
    def public_key_b64(self) -> str:
        return public_key_b64(self.private_key_seed)


def save_robinhood(store: SecretStore, creds: RobinhoodCredentials) -> None:
    seed_b64 = base64.b64encode(creds.private_key_seed).decode("ascii")
    store.update({RH_API_KEY: creds.api_key, RH_PRIVATE_KEY: seed_b64})


def load_robinhood(store: SecretStore) -> RobinhoodCredentials | None:
    """The stored credentials, None when none are stored; half a pair is an error, not None."""
    if not {RH_API_KEY, RH_PRIVATE_KEY} & set(store.names()):
        return None
    values = store.get_many([RH_API_KEY, RH_PRIVATE_KEY])
    api_key, seed_b64 = values[RH_API_KEY], values[RH_PRIVATE_KEY]
    if api_key is None or seed_b64 is None:
        missing = RH_API_KEY if api_key is None else RH_PRIVATE_KEY
        raise SecretsError(
            f"incomplete Robinhood credentials in {store.path}: {missing} is missing; "
            "enter the keys again in the API wizard"
        )
    seed = parse_private_key(seed_b64, f"the stored {RH_PRIVATE_KEY}")
    try:
        return RobinhoodCredentials(api_key, seed)
    except ValueError as exc:
        raise damaged_error(store.path, f"stored Robinhood credentials: {exc}") from None


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_original_keys` did, and what the user should do next."""

    api_key_file: Path
    secret_file: Path
    secret_bytes: int
    public_key_b64: str
    replaced: bool
    warnings: tuple[str, ...] = ()

    @property
    def advice(self) -> str:
        return (
            f"The keys are now stored encrypted. {self.api_key_file} and {self.secret_file} still "
            "hold them in plain text and are no longer needed: delete them yourself (and any "
            f"{ORIGINAL_KEY_FILE}.bak_* / {ORIGINAL_SECRET_FILE}.bak_* copies)."
        )


def _read_original(path: Path, what: str) -> str:
    try:
        text = path.read_text(encoding="utf-8-sig").strip()
    except FileNotFoundError:
        raise SecretsError(f"{path} not found; it should hold your {what}") from None
    except UnicodeDecodeError:
        raise SecretsError(f"{path} is not a text file; it should hold your {what}") from None
    except OSError as exc:
        raise SecretsError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not text:
        raise SecretsError(f"{path} is empty; it should hold your {what}")
    return text


def import_original_keys(folder: Path, store: SecretStore) -> ImportResult:
    """Encrypt the original program's plain ``r_key.txt`` / ``r_secret.txt`` into ``store``.

    The plain files are left alone: deleting a user's files is the user's call, and the advice
    in the result tells them to.
    """
    key_file, secret_file = folder / ORIGINAL_KEY_FILE, folder / ORIGINAL_SECRET_FILE
    api_key = _read_original(key_file, "Robinhood API key")
    pt_logging.register_secret(api_key)
    secret_text = _read_original(secret_file, "base64 Ed25519 private key")
    seed = parse_private_key(secret_text, str(secret_file))
    try:
        creds = RobinhoodCredentials(api_key, seed)
    except ValueError as exc:
        raise SecretsError(f"{key_file}: {exc}") from None
    warnings = []
    if len(api_key) < 10:
        warnings.append(f"the API key in {key_file} is shorter than 10 characters; check it")
    replaced = RH_API_KEY in store.names()
    save_robinhood(store, creds)
    size = len(base64.b64decode("".join(secret_text.split())))
    log.info("imported Robinhood credentials from %s", folder)
    return ImportResult(
        key_file, secret_file, size, creds.public_key_b64, replaced, tuple(warnings)
    )


# ---------------------------------------------------------------------------------------------
# Choosing the key source, and the command line

AskPassphrase = Callable[[bool], str]
"""Asks the user for the passphrase; the argument is True when a new vault is being created
(a wizard then asks twice and explains that a forgotten passphrase cannot be recovered)."""


def check_new_passphrase(passphrase: str) -> None:
    """The rule for a new passphrase, shared by the CLI and the hub's wizard."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise ValueError(f"choose a passphrase of at least {MIN_PASSPHRASE} characters")


def choose_key_source(
    layout: DataLayout, ask_passphrase: AskPassphrase, *, use_keyring: bool = True
) -> KeySource:
    """The key source for this data folder: whatever the existing vault was locked with, else
    the OS keyring when usable (and ``use_keyring``), else a new passphrase from the user.

    Following the vault's own header means installing ``keyring`` later does not lock the user
    out of a passphrase vault.
    """
    header = read_header(layout)
    if header is not None:
        if header.key_source == KeyringKeySource.kind:
            if not keyring_available():
                raise SecretsError(
                    f"secrets file {header.path} is locked with a key in the OS keyring, but no "
                    "usable keyring is available here (is the 'keyring' package installed?)"
                )
            return KeyringKeySource()
        if header.key_source == PassphraseKeySource.kind:
            return PassphraseKeySource(ask_passphrase(False))
        raise damaged_error(header.path, f"unknown key source {header.key_source!r}")
    if use_keyring and keyring_available():
        return KeyringKeySource()
    passphrase = ask_passphrase(True)
    check_new_passphrase(passphrase)
    return PassphraseKeySource(passphrase)


def _ask_on_terminal(new: bool) -> str:
    if not new:
        return getpass.getpass("Passphrase of the PowerTrader secrets: ")
    print(  # noqa: T201
        "The keys will be encrypted with a passphrase. Keep it safe: it cannot be recovered.",
        file=sys.stderr,
    )
    first = getpass.getpass(f"New passphrase (at least {MIN_PASSPHRASE} characters): ")
    check_new_passphrase(first)
    if getpass.getpass("Type it again: ") != first:
        raise SecretsError("the two passphrases differ; nothing was saved")
    return first


def status_lines(layout: DataLayout) -> list[str]:
    """What is configured, from the vault header alone: no key, no secret values."""
    header = read_header(layout)
    if header is None:
        where = layout.secrets_dir / "secrets.enc"
        return [f"secrets file: {where} (none yet)", "Robinhood credentials: not configured"]
    names = set(header.names)
    robinhood = {RH_API_KEY, RH_PRIVATE_KEY}
    if robinhood <= names:
        rh = "configured (API key and private key)"
    elif robinhood & names:
        rh = f"incomplete ({', '.join(sorted(robinhood - names))} missing)"
    else:
        rh = "not configured"
    others = ", ".join(sorted(names - robinhood)) or "none"
    return [
        f"secrets file: {header.path} (locked with: {header.key_source})",
        f"Robinhood credentials: {rh}",
        f"other secrets: {others}",
    ]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pt_secrets.py", description="Manage PowerTrader's encrypted credentials."
    )
    p.add_argument("--data-dir", help="data folder (default: $POWERTRADER_HOME, else ./user_data)")
    p.add_argument(
        "--no-keyring", action="store_true", help="use a passphrase even if an OS keyring exists"
    )
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import-original", help="encrypt the original's r_key.txt/r_secret.txt")
    imp.add_argument("folder", type=Path, help="folder holding r_key.txt and r_secret.txt")
    sub.add_parser("status", help="say which credentials are configured (never prints them)")
    notify = sub.add_parser(
        "set-notify", help="store a notification channel's secret (asked hidden, or --stdin)"
    )
    notify.add_argument("channel", choices=sorted(SECRET_NAMES))
    notify.add_argument("--stdin", action="store_true", help="read the value from standard input")
    notify.add_argument("--clear", action="store_true", help="remove the stored value")
    return p


def set_notify_secret(store: SecretStore, channel: str, value: str | None) -> str:
    """Store (or with None remove) a notification channel's secret; returns what was done."""
    name, what = SECRET_NAMES[channel], SECRET_WHAT[channel]
    if value is None:
        return f"removed the {channel} {what}" if store.delete(name) else f"no {channel} {what}"
    problem = secret_problem(channel, value)
    if problem:
        raise ValueError(f"not stored: {problem}")
    store.set(name, value.strip())
    return f"stored the {channel} {what} (encrypted)"


def _notify_value(args: argparse.Namespace) -> str | None:
    if args.clear:
        return None
    if args.stdin:
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass(f"{args.channel} {SECRET_WHAT[args.channel]} (not shown): ")


def main(argv: Sequence[str] | None = None, *, ask_passphrase: AskPassphrase | None = None) -> int:
    args = _parser().parse_args(argv)
    layout = DataLayout(resolve_data_dir(args.data_dir))
    try:
        if args.command == "status":
            sys.stdout.write("".join(line + "\n" for line in status_lines(layout)))
            return 0
        if args.command == "set-notify":
            value = _notify_value(args)
            if value is not None and secret_problem(args.channel, value):  # before any unlock
                raise ValueError(f"not stored: {secret_problem(args.channel, value)}")
            ask = _ask_on_terminal if ask_passphrase is None else ask_passphrase
            source = choose_key_source(layout.ensure(), ask, use_keyring=not args.no_keyring)
            done = set_notify_secret(SecretStore(layout, source), args.channel, value)
            sys.stdout.write(done + "\n")
            return 0
        if not args.folder.is_dir():
            raise SecretsError(f"{args.folder} is not a folder")
        ask = _ask_on_terminal if ask_passphrase is None else ask_passphrase
        source = choose_key_source(layout, ask, use_keyring=not args.no_keyring)
        result = import_original_keys(args.folder, SecretStore(layout, source))
    except (SecretsError, ValueError) as exc:
        print(f"pt_secrets: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_ERROR
    except (EOFError, KeyboardInterrupt):
        print("pt_secrets: no passphrase given; nothing was saved", file=sys.stderr)  # noqa: T201
        return EXIT_ERROR
    kept = "" if result.secret_bytes == SEED_BYTES else " (64-byte key pair: kept its 32-byte seed)"
    lines = [
        f"{'replaced' if result.replaced else 'stored'} the Robinhood credentials{kept}",
        f"public key: {result.public_key_b64} (must match the one registered at Robinhood)",
        *(f"warning: {w}" for w in result.warnings),
        result.advice,
    ]
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
