"""The encrypted vault file behind :class:`SecretStore` (the face is :mod:`pt_secrets`).

One AES-GCM encrypted file, ``<data>/secrets/secrets.enc``, holds every secret, owner-only
(0600 in a 0700 folder, repaired with a warning on load), replaced atomically so a crash never
leaves half a vault. The file is JSON: a readable header (format, key source kind, the source's
public parameters such as the scrypt salt, and the secret *names*) plus nonce and ciphertext.
The header is the AES-GCM associated data, so changing any of it is detected like a changed
ciphertext. Names are readable without the key on purpose: the hub and ``status`` can say
"Robinhood: configured" without asking for the passphrase. Values never are.

Owner-only is checked by POSIX mode bits; on Windows the data folder under the user profile is
protected by its inherited ACLs, which this module does not inspect.

A fresh random 96-bit nonce per write; with one writer saving a handful of times this is far
from the 2**32 messages per key where random nonces become a concern.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import pt_logging
from pt_locks import SingleInstanceLock
from pt_secrets_keysource import KeySource, SecretsError, WrongKeyError
from pt_state import AlreadyRunningError, DataLayout, atomic_write_bytes

log = logging.getLogger(__name__)

FORMAT = "pt-secrets/1"
VAULT_NAME = "secrets.enc"
FILE_MODE, DIR_MODE = 0o600, 0o700
NONCE_BYTES = 12
_SECRET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _check_secret_name(name: str) -> str:
    if not isinstance(name, str) or not _SECRET_NAME.fullmatch(name):
        raise ValueError(
            f"invalid secret name {name!r}: 1-64 letters, digits, '_', '-', '.', "
            "starting with a letter or digit"
        )
    return name


# ---------------------------------------------------------------------------------------------
# The vault file


@dataclass(frozen=True)
class VaultHeader:
    """The readable part of the vault: enough to pick the key source and list what is stored."""

    path: Path
    key_source: str
    params: Mapping[str, Any]
    names: tuple[str, ...]
    nonce: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)

    def associated_data(self) -> bytes:
        """What AES-GCM authenticates besides the ciphertext: everything a reader trusts."""
        head = {"format": FORMAT, "key_source": self.key_source, "params": dict(self.params)}
        head["names"] = list(self.names)
        return json.dumps(head, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def to_bytes(self) -> bytes:
        obj = json.loads(self.associated_data())
        obj["nonce"] = base64.b64encode(self.nonce).decode("ascii")
        obj["ciphertext"] = base64.b64encode(self.ciphertext).decode("ascii")
        return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode("utf-8")


def damaged_error(path: Path, why: str) -> SecretsError:
    return SecretsError(
        f"damaged secrets file {path} ({why}); restore it from a backup, or delete it and enter "
        "the credentials again"
    )


def _parse_header(path: Path, raw: bytes) -> VaultHeader:
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise damaged_error(path, "not valid JSON") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise damaged_error(path, f"not a {FORMAT} file")
    kind, params, names = obj.get("key_source"), obj.get("params"), obj.get("names")
    if not isinstance(kind, str) or not isinstance(params, dict) or not isinstance(names, list):
        raise damaged_error(path, "header incomplete")
    if not all(isinstance(n, str) for n in names):
        raise damaged_error(path, "bad secret names")
    try:
        nonce = base64.b64decode(str(obj.get("nonce")), validate=True)
        ciphertext = base64.b64decode(str(obj.get("ciphertext")), validate=True)
    except (binascii.Error, ValueError):
        raise damaged_error(path, "nonce or ciphertext is not base64") from None
    if len(nonce) != NONCE_BYTES:
        raise damaged_error(path, "bad nonce")
    return VaultHeader(path, kind, params, tuple(names), nonce, ciphertext)


def fix_mode(path: Path, mode: int) -> None:
    """Owner-only on POSIX; a looser mode (a copy, a restore from backup) is repaired, loudly."""
    if os.name != "posix":
        return
    try:
        current = path.stat().st_mode & 0o777
        if current != mode:
            path.chmod(mode)
            log.warning(
                "%s had permissions %03o, not owner-only; set them to %03o", path, current, mode
            )
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SecretsError(f"cannot make {path} owner-only: {exc.strerror or exc}") from None


def read_header(layout: DataLayout) -> VaultHeader | None:
    """The vault's header (no key needed), None when nothing was ever stored.

    The names and key source are not authenticated until the vault is opened with its key; use
    them for display and for choosing the key source, not for security decisions.
    """
    path = layout.secrets_dir / VAULT_NAME
    fix_mode(layout.secrets_dir, DIR_MODE)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SecretsError(f"cannot read secrets file {path}: {exc.strerror or exc}") from None
    fix_mode(path, FILE_MODE)
    return _parse_header(path, raw)


class SecretStore:
    """Named secrets (``robinhood.api_key``, ``telegram.token``…) in one encrypted vault file.

    Every read opens the file again, so a process sees what the hub saved a moment ago; the key
    is derived once and cached by the key source. Writes are read-modify-write under a lock file,
    so the CLI and the hub cannot lose each other's changes.
    """

    def __init__(self, layout: DataLayout, key_source: KeySource) -> None:
        self._layout = layout
        self._source = key_source
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._layout.secrets_dir / VAULT_NAME

    def __repr__(self) -> str:
        return f"SecretStore({self.path}, key_source={self._source.kind})"

    def names(self) -> tuple[str, ...]:
        """Which secrets are stored (from the header: no key needed, nothing decrypted)."""
        header = read_header(self._layout)
        return () if header is None else header.names

    def get(self, name: str) -> str | None:
        return self._open().get(_check_secret_name(name))

    def get_many(self, names: Sequence[str]) -> dict[str, str | None]:
        values = self._open()
        return {name: values.get(_check_secret_name(name)) for name in names}

    def set(self, name: str, value: str) -> None:
        self.update({name: value})

    def update(self, values: Mapping[str, str]) -> None:
        """Store several secrets in one atomic write (a key pair is never half saved)."""
        for name, value in values.items():
            _check_secret_name(name)
            if not isinstance(value, str):
                raise TypeError(f"secret {name!r} must be a str, got {type(value).__name__}")
            pt_logging.register_secret(value)
        self._modify(lambda current: {**current, **values})

    def delete(self, name: str) -> bool:
        """Forget ``name``; True if it was stored."""
        _check_secret_name(name)
        if name not in self.names():
            return False
        self._modify(lambda current: {k: v for k, v in current.items() if k != name})
        return True

    def _open(self) -> dict[str, str]:
        header = read_header(self._layout)
        return {} if header is None else self._decrypt(header)

    def _key(self, header: VaultHeader) -> bytes:
        if header.key_source != self._source.kind:
            raise SecretsError(
                f"secrets file {header.path} is locked with a {header.key_source} key, not a "
                f"{self._source.kind}; open it with the {header.key_source}"
            )
        try:
            return self._source.derive(header.params)
        except SecretsError as exc:
            raise SecretsError(f"secrets file {header.path}: {exc}") from None

    def _decrypt(self, header: VaultHeader) -> dict[str, str]:
        key = self._key(header)
        try:
            plain = AESGCM(key).decrypt(header.nonce, header.ciphertext, header.associated_data())
        except InvalidTag:
            hint = self._source.wrong_key_hint
            raise WrongKeyError(f"{hint} or damaged secrets file {header.path}") from None
        try:
            values = json.loads(plain)
        except (ValueError, UnicodeDecodeError):
            raise damaged_error(header.path, "content is not JSON") from None
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise damaged_error(header.path, "content is not a table of names and text")
        for value in values.values():
            pt_logging.register_secret(value)
        return values

    def _modify(self, change: Callable[[dict[str, str]], Mapping[str, str]]) -> None:
        folder = self._layout.secrets_dir
        try:
            folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            self._layout.locks_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SecretsError(f"cannot create {folder}: {exc.strerror or exc}") from None
        fix_mode(folder, DIR_MODE)
        try:
            with self._lock, SingleInstanceLock(self._layout.lock_file("secrets")):
                self._write(change)
        except AlreadyRunningError:
            raise SecretsError(
                "another PowerTrader program is saving secrets right now; try again in a moment"
            ) from None

    def _write(self, change: Callable[[dict[str, str]], Mapping[str, str]]) -> None:
        header = read_header(self._layout)
        if header is None:
            params, current = self._source.new_params(self._layout.secrets_dir), {}
        else:
            params, current = dict(header.params), self._decrypt(header)
        values = dict(sorted(change(current).items()))
        names = tuple(values)
        new = VaultHeader(self.path, self._source.kind, params, names, b"", b"")
        key = self._source.derive(params)
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(values).encode("utf-8")
        ciphertext = AESGCM(key).encrypt(nonce, plain, new.associated_data())
        blob = VaultHeader(self.path, new.key_source, params, names, nonce, ciphertext).to_bytes()
        try:
            atomic_write_bytes(self.path, blob)
        except OSError as exc:
            raise SecretsError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        fix_mode(self.path, FILE_MODE)
        log.info("saved secrets file %s (%d names)", self.path, len(names))
