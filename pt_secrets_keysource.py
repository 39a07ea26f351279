"""Where the key that encrypts the secrets comes from: the OS keyring, or a passphrase (scrypt).

Kept apart from :mod:`pt_secrets` so the vault does not care how its key is obtained, and so a
new source (a hardware token, say) is one small class. A source does two things: prepare a new
vault (choose the public parameters stored in its header, e.g. the scrypt salt; a keyring source
also stores a fresh random key in the keyring) and derive the 256-bit key from those parameters.

``keyring`` is an optional package: :func:`keyring_available` says whether it is installed and
has a usable backend (not the "fail" or "null" one a headless Linux box often has).
"""

from __future__ import annotations

import base64
import binascii
import importlib
import logging
import os
import secrets
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

import pt_logging
from pt_errors import PowerTraderError

log = logging.getLogger(__name__)

KEY_BYTES = 32
SALT_BYTES = 16
# About 0.1 s and 32 MiB per derivation (measured, see pt_secrets); stored per vault.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
# Bounds on parameters read from a file: a tampered header must not make us allocate gigabytes.
_N_RANGE, _R_RANGE, _P_RANGE = (2**14, 2**20), (1, 16), (1, 4)
KEYRING_SERVICE = "PowerTrader AI"


class SecretsError(PowerTraderError):
    """The secrets cannot be read or written; the message says why and never holds a secret."""


class WrongKeyError(SecretsError):
    """The key does not open the vault: a wrong passphrase or a damaged (tampered) file.

    AES-GCM cannot tell those two apart, and saying "wrong passphrase" alone would mislead the
    user whose file was damaged, so the message names both. A wizard can ask again on this.
    """


class KeySource(Protocol):
    """Supplies the vault's key. ``kind`` is written to the vault header, so a later load can
    tell the user which source a file needs; ``wrong_key_hint`` starts the wrong-key message."""

    @property
    def kind(self) -> str: ...

    @property
    def wrong_key_hint(self) -> str: ...

    def new_params(self, secrets_dir: Path) -> dict[str, Any]:
        """Prepare a new vault in ``secrets_dir``; the result goes, readable, into its header."""
        ...

    def derive(self, params: Mapping[str, Any]) -> bytes:
        """The 32-byte key for a vault with these header parameters (SecretsError if unusable)."""
        ...


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _int_param(params: Mapping[str, Any], name: str, bounds: tuple[int, int]) -> int:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not bounds[0] <= value <= bounds[1]:
        raise SecretsError(f"scrypt parameter {name!r} is missing or out of range {bounds}")
    return value


class PassphraseKeySource:
    """A key stretched from the user's passphrase with scrypt; the salt lives in the header.

    The passphrase is NFC-normalised so the same words typed on another keyboard or system give
    the same key, and it is registered with the log redactor. Derived keys are cached per salt and
    parameters, so reading many secrets costs one scrypt run.
    """

    kind = "passphrase"
    wrong_key_hint = "wrong passphrase"

    def __init__(self, passphrase: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P):
        if not passphrase:
            raise ValueError("the passphrase must not be empty")
        self._secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
        pt_logging.register_secret(passphrase)
        self._params = {"n": n, "r": r, "p": p}
        self._checked(self._params | {"salt": _b64(bytes(SALT_BYTES))})
        self._cache: dict[tuple[bytes, int, int, int], bytes] = {}

    def __repr__(self) -> str:
        return "PassphraseKeySource(passphrase=<hidden>)"

    def new_params(self, secrets_dir: Path) -> dict[str, Any]:
        return {"kdf": "scrypt", "salt": _b64(os.urandom(SALT_BYTES)), **self._params}

    def derive(self, params: Mapping[str, Any]) -> bytes:
        if params.get("kdf") != "scrypt":
            raise SecretsError(f"unknown key derivation {params.get('kdf')!r}, expected 'scrypt'")
        salt, n, r, p = self._checked(params)
        cache_key = (salt, n, r, p)
        if cache_key not in self._cache:
            try:
                kdf = Scrypt(salt=salt, length=KEY_BYTES, n=n, r=r, p=p)
                self._cache[cache_key] = kdf.derive(self._secret)
            except (MemoryError, ValueError) as exc:
                raise SecretsError(f"cannot derive the key with scrypt: {exc}") from None
        return self._cache[cache_key]

    @staticmethod
    def _checked(params: Mapping[str, Any]) -> tuple[bytes, int, int, int]:
        n = _int_param(params, "n", _N_RANGE)
        if n & (n - 1):
            raise SecretsError(f"scrypt parameter 'n' must be a power of two, got {n}")
        r, p = _int_param(params, "r", _R_RANGE), _int_param(params, "p", _P_RANGE)
        try:
            salt = base64.b64decode(str(params.get("salt", "")), validate=True)
        except (binascii.Error, ValueError):
            salt = b""
        if not SALT_BYTES <= len(salt) <= 64:
            raise SecretsError("the scrypt salt is missing or malformed")
        return salt, n, r, p


class KeyringBackend(Protocol):
    """The two calls of the ``keyring`` package we use (the module itself satisfies this)."""

    def get_password(self, service_name: str, username: str) -> str | None: ...

    def set_password(self, service_name: str, username: str, password: str) -> None: ...


def _import_keyring() -> Any:
    return importlib.import_module("keyring")


def keyring_available() -> bool:
    """True when ``keyring`` is installed and its chosen backend can actually store secrets."""
    try:
        backend = _import_keyring().get_keyring()
        priority = float(getattr(backend, "priority", 0))
    except Exception as exc:  # any failure of an optional package just means "not available"
        log.debug("OS keyring not usable: %s", type(exc).__name__)
        return False
    return priority > 0


class KeyringKeySource:
    """A random key kept in the OS keyring (one entry per data folder), no passphrase needed.

    The entry is named after the resolved secrets folder, so two data folders on one machine get
    two keys. Losing the entry (a new user profile, a wiped keyring) loses the vault: the user
    enters the credentials again, which the error message says.
    """

    kind = "keyring"
    wrong_key_hint = "wrong key in the OS keyring"

    def __init__(self, backend: KeyringBackend | None = None, service: str = KEYRING_SERVICE):
        self._backend: KeyringBackend = _import_keyring() if backend is None else backend
        self._service = service

    def new_params(self, secrets_dir: Path) -> dict[str, Any]:
        params = {"service": self._service, "username": f"vault:{secrets_dir.resolve()}"}
        if self._get(params) is None:
            try:
                self._backend.set_password(
                    params["service"], params["username"], _b64(secrets.token_bytes(KEY_BYTES))
                )
            except Exception as exc:  # keyring backends raise their own types
                raise SecretsError(
                    f"cannot store the key in the OS keyring ({type(exc).__name__})"
                ) from None
        return params

    def derive(self, params: Mapping[str, Any]) -> bytes:
        stored = self._get(params)
        if stored is None:
            raise SecretsError(
                f"the OS keyring has no key {params.get('username')!r} for service "
                f"{params.get('service')!r}; the secrets cannot be opened and must be entered again"
            )
        pt_logging.register_secret(stored)
        try:
            key = base64.b64decode(stored, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise SecretsError("the key in the OS keyring is malformed")
        return key

    def _get(self, params: Mapping[str, Any]) -> str | None:
        service, username = params.get("service"), params.get("username")
        if not isinstance(service, str) or not isinstance(username, str):
            raise SecretsError("the keyring entry name in the secrets header is malformed")
        try:
            return self._backend.get_password(service, username)
        except Exception as exc:  # a locked or broken keyring
            raise SecretsError(f"cannot read the OS keyring ({type(exc).__name__})") from None
