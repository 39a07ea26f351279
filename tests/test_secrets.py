"""pt_secrets: encrypted vault, key sources, Robinhood credentials, import of the original's files.

Real files in a temporary data folder, real scrypt and AES-GCM, real Ed25519 keys made with
``cryptography``. The only fake is a dictionary standing in for the optional ``keyring`` package.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import pt_logging
from pt_locks import SingleInstanceLock
from pt_secrets import (
    KeyringKeySource,
    PassphraseKeySource,
    RobinhoodCredentials,
    SecretsError,
    SecretStore,
    WrongKeyError,
    choose_key_source,
    generate_keypair,
    import_original_keys,
    load_robinhood,
    main,
    parse_private_key,
    public_key_b64,
    read_header,
    save_robinhood,
)
from pt_state import DataLayout

PASSPHRASE = "correct horse battery staple"
API_KEY = "rh-api-6148effc-c0b1-486c-8940-a1d099456be6"
# Robinhood's documented example key pair (spec exchange-apis.md §4.2).
DOC_SEED_B64 = "xQnTJVeQLmw1/Mg2YimEViSpw/SdJcgNXZ5kQkAXNPU="
DOC_PUBLIC_B64 = "jPItx4TLjcnSUnmnXQQyAKL4eJj3+oWNNMmmm2vATqk="
POSIX = os.name == "posix"


@pytest.fixture(autouse=True)
def fresh_logging() -> Iterator[None]:
    """Registered secrets and handlers are process-global; start and leave each test clean."""
    pt_logging.reset_logging()
    yield
    pt_logging.reset_logging()


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    return DataLayout(tmp_path / "data")


def new_seed() -> tuple[bytes, bytes]:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes_raw(), key.public_key().public_bytes_raw()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def write_original(folder: Path, api_key: str, secret_text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "r_key.txt").write_text(api_key + "\n", encoding="utf-8")
    (folder / "r_secret.txt").write_text(secret_text + "\n", encoding="utf-8")
    return folder


def all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


class DictKeyring:
    """Stands in for the ``keyring`` package (its get_password/set_password calls)."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service_name: str, username: str) -> str | None:
        return self.entries.get((service_name, username))

    def set_password(self, service_name: str, username: str, password: str) -> None:
        self.entries[(service_name, username)] = password


# ---------------------------------------------------------------------------------------------
# The vault


def test_round_trip_across_store_instances(layout: DataLayout) -> None:
    store = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
    assert store.get("telegram.token") is None and store.names() == ()
    assert not store.path.exists()  # reading an empty store writes nothing
    store.set("telegram.token", "123456:telegram-token-value")
    store.update({"smtp.password": "pässwörd ✓", "robinhood.api_key": API_KEY})
    assert store.names() == ("robinhood.api_key", "smtp.password", "telegram.token")

    again = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
    assert again.get("smtp.password") == "pässwörd ✓"
    assert again.get("telegram.token") == "123456:telegram-token-value"
    assert again.get("missing") is None
    assert again.delete("telegram.token") is True
    assert again.delete("telegram.token") is False
    assert store.get("telegram.token") is None and store.names() == (
        "robinhood.api_key",
        "smtp.password",
    )
    header = read_header(layout)
    assert header is not None and header.key_source == "passphrase"
    assert header.params["n"] == 2**15 and header.params["r"] == 8 and header.params["p"] == 1


def test_invalid_names_and_values_are_refused(layout: DataLayout) -> None:
    store = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
    for bad in ("", "../x", ".hidden", "a b", "x" * 65):
        with pytest.raises(ValueError, match="invalid secret name"):
            store.set(bad, "value-123")
    with pytest.raises(TypeError, match="must be a str"):
        store.set("token", b"bytes-value")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not be empty"):
        PassphraseKeySource("")
    with pytest.raises(SecretsError, match="power of two"):
        PassphraseKeySource(PASSPHRASE, n=3 * 2**14)


def test_wrong_passphrase_is_a_clear_error(layout: DataLayout) -> None:
    store = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
    store.set("smtp.password", "the-real-password")
    wrong = SecretStore(layout, PassphraseKeySource("not the passphrase"))
    with pytest.raises(WrongKeyError) as info:
        wrong.get("smtp.password")
    assert str(info.value) == f"wrong passphrase or damaged secrets file {store.path}"
    assert info.value.__cause__ is None and info.value.__suppress_context__
    # A wrong passphrase must not overwrite the vault either.
    with pytest.raises(WrongKeyError):
        wrong.set("other", "value-456")
    assert store.get("smtp.password") == "the-real-password"
    assert store.names() == ("smtp.password",)


def _tamper(path: Path, edit: dict[str, object]) -> None:
    obj = json.loads(path.read_text())
    obj.update(edit)
    path.write_text(json.dumps(obj))


def test_tampered_ciphertext_header_or_file_is_detected(layout: DataLayout) -> None:
    store = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
    store.set("smtp.password", "the-real-password")
    path, original = store.path, store.path.read_bytes()
    expected = f"wrong passphrase or damaged secrets file {path}"

    cipher = bytearray(base64.b64decode(json.loads(original)["ciphertext"]))
    cipher[0] ^= 0x01
    _tamper(path, {"ciphertext": b64(bytes(cipher))})
    with pytest.raises(WrongKeyError) as info:
        store.get("smtp.password")
    assert str(info.value) == expected and info.value.__cause__ is None

    path.write_bytes(original)  # the header is authenticated too: a renamed secret is caught
    _tamper(path, {"names": ["smtp.password", "injected"]})
    with pytest.raises(WrongKeyError, match="wrong passphrase or damaged"):
        store.get("smtp.password")

    path.write_bytes(original)  # a huge scrypt cost is refused before any memory is spent
    _tamper(path, {"params": {**json.loads(original)["params"], "n": 2**30}})
    with pytest.raises(SecretsError, match=r"scrypt parameter 'n' is missing or out of range"):
        store.get("smtp.password")

    path.write_bytes(b"\x00garbage")
    with pytest.raises(SecretsError, match=r"damaged secrets file .*not valid JSON"):
        store.get("smtp.password")

    path.write_bytes(original)
    assert store.get("smtp.password") == "the-real-password"


def test_permissions_are_owner_only_and_repaired(
    layout: DataLayout, caplog: pytest.LogCaptureFixture
) -> None:
    store = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
    store.set("smtp.password", "the-real-password")
    if not POSIX:  # Windows: the user profile's ACLs protect the file; there are no mode bits
        assert store.get("smtp.password") == "the-real-password"
        return
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(store.path) == 0o600 and mode(layout.secrets_dir) == 0o700

    store.path.chmod(0o644)
    layout.secrets_dir.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="pt_secrets_vault"):
        assert store.get("smtp.password") == "the-real-password"
    assert mode(store.path) == 0o600 and mode(layout.secrets_dir) == 0o700
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"{store.path} had permissions 644" in w for w in warnings)
    assert any(f"{layout.secrets_dir} had permissions 755" in w for w in warnings)

    caplog.clear()
    store.path.chmod(0o640)
    store.set("other", "value-456")  # a write replaces the file owner-only, quietly or not
    assert mode(store.path) == 0o600


def test_a_second_writer_is_refused_while_one_is_saving(layout: DataLayout) -> None:
    store = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
    store.set("a", "value-123")
    with (
        SingleInstanceLock(layout.lock_file("secrets")),
        pytest.raises(SecretsError, match="saving secrets right now"),
    ):
        store.set("b", "value-456")
    assert store.names() == ("a",)


def test_files_on_disk_never_hold_the_secrets(layout: DataLayout) -> None:
    seed, _ = new_seed()
    store = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
    save_robinhood(store, RobinhoodCredentials(API_KEY, seed))
    store.set("smtp.password", "the-real-password")
    disk = all_bytes(layout.root)
    assert store.path.read_bytes() in disk
    for plain in (API_KEY.encode(), b64(seed).encode(), seed, seed.hex().encode()):
        assert plain not in disk
    assert b"the-real-password" not in disk and PASSPHRASE.encode() not in disk
    assert b"robinhood.api_key" in disk  # names are readable on purpose (status without a key)


# ---------------------------------------------------------------------------------------------
# Key sources


def test_keyring_source_round_trip_with_a_fake_keyring(layout: DataLayout) -> None:
    ring = DictKeyring()
    store = SecretStore(layout, KeyringKeySource(ring))
    store.set("smtp.password", "the-real-password")
    ((service, username), key_b64), *_ = ring.entries.items()
    assert service == "PowerTrader AI" and username == f"vault:{layout.secrets_dir.resolve()}"
    assert len(base64.b64decode(key_b64)) == 32
    assert SecretStore(layout, KeyringKeySource(ring)).get("smtp.password") == "the-real-password"

    # A passphrase cannot open a keyring vault, and says which source it needs.
    with pytest.raises(SecretsError, match="locked with a keyring key, not a passphrase"):
        SecretStore(layout, PassphraseKeySource(PASSPHRASE)).get("smtp.password")
    with pytest.raises(SecretsError, match=r"no key .* must be entered again"):
        SecretStore(layout, KeyringKeySource(DictKeyring())).get("smtp.password")
    ring.entries[(service, username)] = b64(os.urandom(32))
    with pytest.raises(WrongKeyError, match="wrong key in the OS keyring or damaged"):
        SecretStore(layout, KeyringKeySource(ring)).get("smtp.password")


def test_choose_key_source_follows_the_existing_vault(layout: DataLayout) -> None:
    asked: list[bool] = []

    def ask(new: bool) -> str:
        asked.append(new)
        return "short" if len(asked) == 1 else PASSPHRASE

    with pytest.raises(ValueError, match="at least 8 characters"):
        choose_key_source(layout, ask, use_keyring=False)
    source = choose_key_source(layout, ask, use_keyring=False)
    assert asked == [True, True] and source.kind == "passphrase"
    SecretStore(layout, source).set("a", "value-123")
    reopened = choose_key_source(layout, ask, use_keyring=True)  # the vault decides, not keyring
    assert asked[-1] is False and reopened.kind == "passphrase"
    assert SecretStore(layout, reopened).get("a") == "value-123"


# ---------------------------------------------------------------------------------------------
# Robinhood keys


def test_public_key_matches_robinhood_example_and_cryptography() -> None:
    assert public_key_b64(base64.b64decode(DOC_SEED_B64)) == DOC_PUBLIC_B64
    seed, public = new_seed()
    assert public_key_b64(seed) == b64(public)
    made_seed, made_public = generate_keypair()
    assert len(made_seed) == 32 and made_seed != seed
    derived = Ed25519PrivateKey.from_private_bytes(made_seed).public_key().public_bytes_raw()
    assert base64.b64decode(made_public) == derived and len(made_public) == 44
    with pytest.raises(ValueError, match="32 bytes, got 31"):
        public_key_b64(seed[:31])


def test_credentials_validate_and_hide_themselves() -> None:
    seed, _ = new_seed()
    creds = RobinhoodCredentials(API_KEY, seed)
    for shown in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert API_KEY not in shown and b64(seed) not in shown and seed.hex() not in shown
        assert "<hidden>" in shown
    assert creds.private_key().private_bytes_raw() == seed
    assert creds.public_key_b64 == public_key_b64(seed)
    with pytest.raises(ValueError, match="API key is empty"):
        RobinhoodCredentials("  ", seed)
    with pytest.raises(ValueError, match="spaces or line breaks"):
        RobinhoodCredentials(API_KEY + "\n", seed)
    with pytest.raises(ValueError, match="32 bytes, got 64") as info:
        RobinhoodCredentials(API_KEY, seed * 2)
    assert API_KEY not in str(info.value)


def test_save_and_load_robinhood(layout: DataLayout) -> None:
    store = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
    assert load_robinhood(store) is None
    seed, _ = new_seed()
    save_robinhood(store, RobinhoodCredentials(API_KEY, seed))
    loaded = load_robinhood(SecretStore(layout, PassphraseKeySource(PASSPHRASE)))
    assert loaded == RobinhoodCredentials(API_KEY, seed)
    store.delete("robinhood.private_key")
    with pytest.raises(SecretsError, match=r"incomplete Robinhood .*private_key is missing"):
        load_robinhood(store)


@pytest.mark.parametrize("pair", [False, True], ids=["32-byte seed", "64-byte seed+public"])
def test_import_original_keys(layout: DataLayout, tmp_path: Path, pair: bool) -> None:
    seed, public = new_seed()
    text = b64(seed + public if pair else seed)
    folder = write_original(tmp_path / "original", API_KEY, text)
    store = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
    result = import_original_keys(folder, store)
    assert result.secret_bytes == (64 if pair else 32)
    assert result.public_key_b64 == b64(public) and result.replaced is False
    assert result.warnings == ()
    assert "delete them yourself" in result.advice and str(folder / "r_secret.txt") in result.advice
    assert (folder / "r_key.txt").exists() and (folder / "r_secret.txt").exists()  # left alone
    assert load_robinhood(store) == RobinhoodCredentials(API_KEY, seed)
    assert import_original_keys(folder, store).replaced is True


def test_import_tolerates_notepad_bom_and_line_breaks(layout: DataLayout, tmp_path: Path) -> None:
    seed, _ = new_seed()
    folder = tmp_path / "original"
    folder.mkdir()
    (folder / "r_key.txt").write_bytes(b"\xef\xbb\xbfshortkey\r\n")
    text = b64(seed)
    (folder / "r_secret.txt").write_text(f"{text[:20]}\r\n{text[20:]}\r\n")
    result = import_original_keys(folder, SecretStore(layout, PassphraseKeySource(PASSPHRASE)))
    assert result.warnings and "shorter than 10 characters" in result.warnings[0]
    creds = load_robinhood(SecretStore(layout, PassphraseKeySource(PASSPHRASE)))
    assert creds is not None and creds.api_key == "shortkey" and creds.private_key_seed == seed


def _bad_secrets() -> list[tuple[str, str]]:
    seed, public = new_seed()
    _, other_public = new_seed()
    return [
        ("not base64 at all!", "is not valid base64"),
        (b64(seed)[:-2], "is not valid base64"),  # padding cut off
        (b64(seed[:31]), "decodes to 31 bytes"),
        (b64(seed + b"\x00"), "decodes to 33 bytes"),
        (b64(seed + public[:16]), "decodes to 48 bytes"),
        (b64(seed + public + b"\x00"), "decodes to 65 bytes"),
        (b64(seed + other_public), "second half is not the public key"),
    ]


@pytest.mark.parametrize(("text", "message"), _bad_secrets())
def test_import_rejects_bad_private_keys_naming_the_file(
    layout: DataLayout, tmp_path: Path, text: str, message: str
) -> None:
    folder = write_original(tmp_path / "original", API_KEY, text)
    store = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
    with pytest.raises(SecretsError, match=message) as info:
        import_original_keys(folder, store)
    assert str(folder / "r_secret.txt") in str(info.value)
    assert text not in str(info.value) and API_KEY not in str(info.value)
    assert store.names() == () and not store.path.exists()


def test_import_reports_missing_and_empty_files(layout: DataLayout, tmp_path: Path) -> None:
    store = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
    folder = tmp_path / "original"
    folder.mkdir()
    with pytest.raises(SecretsError, match=r"r_key\.txt not found; it should hold your Robinhood"):
        import_original_keys(folder, store)
    (folder / "r_key.txt").write_text(API_KEY)
    (folder / "r_secret.txt").write_text("  \n")
    with pytest.raises(SecretsError, match=r"r_secret\.txt is empty"):
        import_original_keys(folder, store)


def test_parse_private_key_keeps_the_seed() -> None:
    seed, public = new_seed()
    assert parse_private_key(b64(seed), "pasted") == seed
    assert parse_private_key(" " + b64(seed + public) + "\n", "pasted") == seed


# ---------------------------------------------------------------------------------------------
# Logs and the command line


def test_secrets_never_reach_a_log_line(
    layout: DataLayout, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seed, public = new_seed()
    folder = write_original(tmp_path / "original", API_KEY, b64(seed + public))
    store = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
    import_original_keys(folder, store)
    store.set("smtp.password", "hunter2-smtp")
    pt_logging.reset_logging()  # as a fresh trader process: nothing registered yet

    log_path = pt_logging.setup_logging("trader", layout.root, "DEBUG", console=False)
    caplog.handler.addFilter(pt_logging.RedactingFilter())
    with caplog.at_level(logging.DEBUG):
        loaded = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
        creds = load_robinhood(loaded)
        assert creds is not None and loaded.get("smtp.password") == "hunter2-smtp"
        import_original_keys(folder, loaded)
        careless = logging.getLogger("careless.caller")
        careless.info("creds %s %r key=%s", creds, creds, creds.api_key)
        careless.info("the api key is %s", creds.api_key)
        careless.warning("seed %s pair %s", b64(seed), b64(seed + public))
        careless.error("passphrase was %s; smtp %s", PASSPHRASE, "hunter2-smtp")
    assert sum("careless" in r.name for r in caplog.records) == 4
    written = log_path.read_text(encoding="utf-8")
    assert written.count("[REDACTED]") >= 6 and "imported Robinhood credentials" in written
    for secret in (API_KEY, b64(seed), b64(seed + public), PASSPHRASE, "hunter2-smtp"):
        assert secret not in caplog.text
        assert secret not in written


def test_cli_status_and_import(
    layout: DataLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(layout.root)]
    assert main([*data, "status"]) == 0
    assert "Robinhood credentials: not configured" in capsys.readouterr().out

    seed, public = new_seed()
    folder = write_original(tmp_path / "original", API_KEY, b64(seed + public))
    argv = [*data, "--no-keyring", "import-original", str(folder)]
    assert main(argv, ask_passphrase=lambda new: PASSPHRASE) == 0
    out = capsys.readouterr().out
    assert "stored the Robinhood credentials (64-byte key pair: kept its 32-byte seed)" in out
    assert f"public key: {b64(public)}" in out and "delete them yourself" in out

    SecretStore(layout, PassphraseKeySource(PASSPHRASE)).set("telegram.token", "123456:tok-abc")
    assert main([*data, "status"]) == 0
    out = capsys.readouterr().out
    assert "locked with: passphrase" in out
    assert "Robinhood credentials: configured (API key and private key)" in out
    assert "other secrets: telegram.token" in out
    assert API_KEY not in out and b64(seed) not in out and "123456:tok-abc" not in out

    assert main(argv, ask_passphrase=lambda new: "wrong passphrase!") == 1
    err = capsys.readouterr().err
    assert f"pt_secrets: wrong passphrase or damaged secrets file {layout.secrets_dir}" in err
    assert main([*data, "import-original", str(tmp_path / "nowhere")]) == 1
    assert "is not a folder" in capsys.readouterr().err


def test_cli_runs_as_a_script(layout: DataLayout) -> None:
    """The module's own ``__main__`` path, as a user types it."""
    script = Path(__file__).resolve().parent.parent / "pt_secrets.py"
    done = subprocess.run(
        [sys.executable, str(script), "--data-dir", str(layout.root), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert str(layout.secrets_dir / "secrets.enc") in done.stdout
    bad = subprocess.run(
        [sys.executable, str(script), "launch"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_cli_stores_notification_secrets_checked_and_encrypted(
    layout: DataLayout, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = ["--data-dir", str(layout.root), "--no-keyring"]
    ask = {"ask_passphrase": lambda new: PASSPHRASE}
    token = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
    monkeypatch.setattr("sys.stdin", io.StringIO("not a token\n"))
    assert main([*data, "set-notify", "telegram", "--stdin"], **ask) == 1
    err = capsys.readouterr().err
    assert "not stored: a bot token looks like" in err and "not a token" not in err
    assert read_header(layout) is None  # nothing written, no vault created

    monkeypatch.setattr("sys.stdin", io.StringIO(token + "\n"))
    assert main([*data, "set-notify", "telegram", "--stdin"], **ask) == 0
    assert capsys.readouterr().out == "stored the telegram bot token (encrypted)\n"
    store = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
    assert store.get("notify.telegram.token") == token
    assert token.encode() not in (layout.secrets_dir / "secrets.enc").read_bytes()

    url = "https://discord.com/api/webhooks/123456789012345678/abcDEF-ghiJKL_mno"
    monkeypatch.setattr("getpass.getpass", lambda prompt: url)  # typed, hidden
    assert main([*data, "set-notify", "discord"], **ask) == 0
    assert store.get("notify.discord.url") == url
    assert main([*data, "set-notify", "discord", "--clear"], **ask) == 0
    assert "removed the discord webhook URL" in capsys.readouterr().out
    assert store.get("notify.discord.url") is None
