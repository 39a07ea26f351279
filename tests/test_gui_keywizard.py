"""The Robinhood API wizard in a real Tk window (Xvfb): real keys, a real encrypted vault in a
temporary data folder, real signed requests to the loopback Robinhood fake, screenshots."""

from __future__ import annotations

import base64
import contextlib
import gc
import itertools
import logging
import socket
import threading
import time
import tkinter as tk
from collections.abc import Callable, Iterator
from pathlib import Path
from tkinter import ttk

import pytest

from pt_errors import ExchangeAuthError, PermanentExchangeError, TemporaryExchangeError
from pt_gui_keywizard import TITLE, KeyWizard
from pt_gui_keywizard_worker import api_key_problem, api_key_warning, describe_test_error
from pt_gui_theme import apply_theme
from pt_secrets import (
    AskPassphrase,
    KeySource,
    PassphraseKeySource,
    RobinhoodCredentials,
    SecretStore,
    choose_key_source,
    load_robinhood,
    public_key_b64,
    save_robinhood,
)
from pt_state import DataLayout
from tests.fake_http import Fault
from tests.fake_robinhood import TEST_API_KEY, TEST_SEED, FakeRobinhood
from tests.gui_support import pump, screenshot

PASSPHRASE = "correct horse battery"
OTHER_KEY = "rh-api-00000000-0000-4000-8000-000000000000"
SEED_B64 = base64.b64encode(TEST_SEED).decode("ascii")


def no_keyring(layout: DataLayout, ask: AskPassphrase) -> KeySource:
    """A passphrase vault whatever this machine has, so the test is the same everywhere."""
    return choose_key_source(layout, ask, use_keyring=False)


@pytest.fixture
def root(display: str) -> Iterator[tk.Tk]:
    win = tk.Tk()
    apply_theme(win)
    win.geometry("200x100+1200+800")
    yield win
    win.destroy()
    del win
    gc.collect()  # finalise this Tk here: a worker thread's collection must not meet it later


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    return DataLayout(tmp_path / "data")


@pytest.fixture
def fake() -> Iterator[FakeRobinhood]:
    with FakeRobinhood() as venue:
        yield venue


def wait_for(root: tk.Misc, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the wizard did not update in time"
        root.update()
        time.sleep(0.01)


def make(
    root: tk.Tk, layout: DataLayout, url: str, on_saved: Callable[[], None] | None = None
) -> KeyWizard:
    wizard = KeyWizard(
        root, layout, robinhood_url=url, key_source_factory=no_keyring, on_saved=on_saved
    )
    wizard.geometry("980x720+0+0")
    wait_for(root, lambda: not wizard.busy)
    pump(root, 0.1)
    return wizard


def run(root: tk.Tk, wizard: KeyWizard, button: ttk.Button) -> None:
    """Press a button and wait for the worker's answer."""
    button.invoke()
    wait_for(root, lambda: not wizard.busy)
    pump(root, 0.05)


def mode(wizard: KeyWizard) -> str:
    return wizard.vault_mode


def text(label: tk.Misc) -> str:
    return str(label.cget("text"))


def style(label: tk.Misc) -> str:
    return str(label.cget("style"))


def shown_texts(widget: tk.Misc) -> list[str]:
    """Every label and button text in the window (what a screenshot could show)."""
    found = []
    for child in widget.winfo_children():
        with contextlib.suppress(tk.TclError):  # frames and entries have no text
            found.append(str(child.cget("text")))
        found.extend(shown_texts(child))
    return found


def assert_nothing_secret_shown(wizard: KeyWizard, *secrets: str) -> None:
    for shown in shown_texts(wizard):
        for secret in secrets:
            assert secret not in shown


def original_files(folder: Path, api_key: str = TEST_API_KEY, secret: str = SEED_B64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "r_key.txt").write_text(api_key + "\n", encoding="utf-8")
    (folder / "r_secret.txt").write_text(secret + "\n", encoding="utf-8")
    return folder


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------------------------------------


def test_generate_copy_and_save_encrypted(
    root: tk.Tk, layout: DataLayout, fake: FakeRobinhood
) -> None:
    saved: list[int] = []
    w = make(root, layout, fake.base_url, on_saved=lambda: saved.append(1))
    assert w.title() == TITLE
    assert mode(w) == "new" and w.pass2_entry.winfo_ismapped()
    assert w.public_key == "" and "press Generate keys" in text(w.key_note)
    screenshot(w, "keywizard_fresh")

    w.link_buttons[0].invoke()
    assert root.clipboard_get() == "https://robinhood.com/account/crypto"
    w.generate_button.invoke()
    public = w.public_key
    assert len(base64.b64decode(public, validate=True)) == 32
    assert "readonly" in w.public_entry.state()
    w.copy_button.invoke()
    assert root.clipboard_get() == public

    api_key = "rh-api-6f1c2a4e-1b2c-4d3e-8f90-123456789abc"
    w.api_key_var.set(f"  {api_key}\n")  # a paste with spaces around it
    w.save_button.invoke()
    assert "Tick the box" in text(w.save_label) and style(w.save_label) == "KWError.TLabel"
    w.ack_var.set(True)
    w.pass_var.set("short")
    w.save_button.invoke()
    assert "at least 8" in text(w.save_label)
    w.pass_var.set(PASSPHRASE)
    w.pass2_var.set(PASSPHRASE + "!")
    w.save_button.invoke()
    assert "differ" in text(w.save_label)
    vault = layout.secrets_dir / "secrets.enc"
    assert not vault.exists() and not w.busy

    w.pass2_var.set(PASSPHRASE)
    run(root, w, w.save_button)
    assert text(w.save_label).startswith("Saved, encrypted") and saved == [1]
    assert style(w.save_label) == "KWOk.TLabel"
    creds = load_robinhood(SecretStore(layout, PassphraseKeySource(PASSPHRASE)))
    assert creds is not None and creds.api_key == api_key
    assert creds.public_key_b64 == public  # the shown public key belongs to the stored seed
    assert mode(w) == "open" and not w.pass_row.winfo_ismapped()
    assert w.pass_var.get() == "" and w.pass2_var.get() == ""

    seed_b64 = base64.b64encode(creds.private_key_seed)
    files = [p for p in layout.root.rglob("*") if p.is_file()]
    assert vault in files
    for path in files:  # nothing in plain text anywhere in the data folder
        data = path.read_bytes()
        assert api_key.encode() not in data and seed_b64 not in data
        assert creds.private_key_seed not in data
        assert path.name not in ("r_key.txt", "r_secret.txt")
    assert_nothing_secret_shown(w, api_key, seed_b64.decode(), PASSPHRASE)
    w.destroy()


def test_import_original_files_then_test_shows_the_ask(
    root: tk.Tk,
    layout: DataLayout,
    fake: FakeRobinhood,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    w = make(root, layout, fake.base_url)
    w.pass_var.set(PASSPHRASE)
    w.pass2_var.set(PASSPHRASE)
    w.import_original(tmp_path / "empty")  # no files there: said so, nothing stored
    wait_for(root, lambda: not w.busy)
    assert "not found" in text(w.save_label) and style(w.save_label) == "KWError.TLabel"
    assert not (layout.secrets_dir / "secrets.enc").exists()

    folder = original_files(tmp_path / "original")
    w.import_original(folder)
    wait_for(root, lambda: not w.busy)
    assert "can now delete them" in text(w.save_label) and str(folder) in text(w.save_label)
    assert w.public_key == public_key_b64(TEST_SEED)
    assert w.api_key_var.get() == TEST_API_KEY
    assert "configured" in text(w.key_note)
    stored = load_robinhood(SecretStore(layout, PassphraseKeySource(PASSPHRASE)))
    assert stored is not None and stored.api_key == TEST_API_KEY

    w.test_button.invoke()
    assert "Testing against" in text(w.test_label) and w.busy
    wait_for(root, lambda: not w.busy)
    pump(root, 0.1)
    assert "BTC-USD ask $60,060.00" in text(w.test_label), text(w.test_label)
    assert style(w.test_label) == "KWOk.TLabel"
    asked = fake.server.requests
    assert [(r.method, r.path) for r in asked] == [
        ("GET", "/api/v1/crypto/marketdata/best_bid_ask/")
    ]
    assert asked[0].query == {"symbol": ["BTC-USD"]} and fake.orders == []
    screenshot(w, "keywizard_test_ok")

    assert_nothing_secret_shown(w, TEST_API_KEY, SEED_B64, PASSPHRASE)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "credential test passed" in logged
    for secret in (TEST_API_KEY, SEED_B64, PASSPHRASE):
        assert secret not in logged
    w.destroy()


def test_a_wrong_api_key_shows_the_401_hint(
    root: tk.Tk, layout: DataLayout, fake: FakeRobinhood
) -> None:
    w = make(root, layout, fake.base_url)
    assert not w.use_private_key("not base64!")
    assert "not valid base64" in text(w.key_note)
    assert w.use_private_key(SEED_B64)
    assert w.public_key == public_key_b64(TEST_SEED) and w.private_var.get() == ""
    w.api_key_var.set(OTHER_KEY)
    run(root, w, w.test_button)
    shown = text(w.test_label)
    assert "refused these credentials (HTTP 401)" in shown, shown
    assert "public key in step 2" in shown and "API key pasted completely" in shown
    assert style(w.test_label) == "KWError.TLabel"
    assert fake.orders == []
    screenshot(w, "keywizard_test_error")
    assert_nothing_secret_shown(w, OTHER_KEY, SEED_B64)
    w.destroy()


def test_an_unreachable_robinhood_shows_the_network_hint(root: tk.Tk, layout: DataLayout) -> None:
    url = closed_port_url()
    w = make(root, layout, url)
    w.generate_button.invoke()
    w.test_button.invoke()
    assert "Paste the API key" in text(w.test_label) and not w.busy
    w.api_key_var.set(TEST_API_KEY)
    run(root, w, w.test_button)
    shown = text(w.test_label)
    assert f"Could not reach Robinhood at {url}" in shown and "firewall" in shown, shown
    w.destroy()


def test_the_tk_thread_keeps_running_during_a_slow_test(
    root: tk.Tk, layout: DataLayout, fake: FakeRobinhood
) -> None:
    w = make(root, layout, fake.base_url)
    w.use_private_key(SEED_B64)
    w.api_key_var.set(TEST_API_KEY)
    fake.fail(Fault(path_prefix="/api/v1/crypto/marketdata/", delay=1.0))
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(time.monotonic())
        if w.busy:
            root.after(20, tick)

    started = time.monotonic()
    w.test_button.invoke()
    pressed_for = time.monotonic() - started
    assert pressed_for < 0.2 and w.busy  # the click returned at once; the request runs elsewhere
    assert "disabled" in w.save_button.state() and "disabled" in w.test_button.state()
    root.after(20, tick)
    wait_for(root, lambda: not w.busy)
    took = time.monotonic() - started
    assert took >= 1.0  # the fake really was slow
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) >= 20 and max(gaps) < 0.25, (len(ticks), max(gaps))
    assert "60,060.00" in text(w.test_label)
    assert "disabled" not in w.test_button.state()

    fake.fail(Fault(path_prefix="/api/v1/crypto/marketdata/", delay=2.0))
    w.test_button.invoke()
    started = time.monotonic()
    w.destroy()  # closing during a slow test does not wait for Robinhood
    assert time.monotonic() - started < 0.5
    pump(root, 0.1)


def test_an_existing_vault_asks_the_passphrase_once(
    root: tk.Tk, layout: DataLayout, fake: FakeRobinhood
) -> None:
    store = SecretStore(layout, PassphraseKeySource(PASSPHRASE))
    save_robinhood(store, RobinhoodCredentials(TEST_API_KEY, TEST_SEED))
    w = make(root, layout, fake.base_url)
    assert mode(w) == "locked"
    assert w.unlock_button.winfo_ismapped() and not w.pass2_entry.winfo_ismapped()
    assert "Keys are configured" in text(w.key_note) and w.public_key == ""

    w.pass_var.set("not the passphrase")
    run(root, w, w.unlock_button)
    assert "Wrong passphrase" in text(w.vault_label) and w.public_key == ""
    assert mode(w) == "locked"
    w.pass_var.set(PASSPHRASE)
    run(root, w, w.unlock_button)
    assert mode(w) == "open" and w.public_key == public_key_b64(TEST_SEED)
    assert w.api_key_var.get() == TEST_API_KEY and "configured" in text(w.key_note)
    run(root, w, w.test_button)  # the stored keys are tested without typing them again
    assert "60,060.00" in text(w.test_label)
    w.geometry("860x620")  # the minimum size: the steps scroll rather than being cut off
    pump(root, 0.2)
    screenshot(w, "keywizard_small")

    w.api_key_var.set("abc123")  # too short to be real: saved, but the user is warned
    w.ack_var.set(True)
    run(root, w, w.save_button)
    assert "only 6 characters" in text(w.save_label)
    assert style(w.save_label) == "KWWarn.TLabel"
    stored = load_robinhood(store)
    assert stored is not None and stored.api_key == "abc123"
    w.destroy()


def test_messages_without_tk() -> None:
    assert api_key_problem("") is not None and api_key_problem("rh api") is not None
    assert api_key_problem(TEST_API_KEY) is None
    assert api_key_warning("abc") is not None and api_key_warning(TEST_API_KEY) is None
    url = "https://trading.robinhood.com"
    forbidden = describe_test_error(ExchangeAuthError("robinhood GET /x: HTTP 403: no"), url)
    assert "HTTP 403" in forbidden.text and "READ permission" in forbidden.text
    assert forbidden.tone == "error"
    down = describe_test_error(TemporaryExchangeError("robinhood GET /x: HTTP 503: down"), url)
    assert down.tone == "warn" and "busy or unavailable" in down.text
    cut = TemporaryExchangeError("robinhood GET /x: connection failed: ConnectionError")
    assert "Could not reach Robinhood at https://trading.robinhood.com" in (
        describe_test_error(cut, url).text
    )
    leaked = PermanentExchangeError(f"odd answer mentioning {SEED_B64}")
    assert SEED_B64 not in describe_test_error(leaked, url).text  # key material is redacted
    assert threading.active_count() >= 1
