"""The Robinhood API wizard's work off the Tk thread, and what the wizard says.

:mod:`pt_gui_keywizard` is the dialog; everything slow it asks for (scrypt, the vault file,
the signed test request) runs here, on one worker thread that never touches a widget: the
dialog puts a :class:`Job` on a queue and draws the :class:`Done` that comes back. The messages
are pure functions, so what the user reads for a 401, a 403 or an unreachable host is tested
without a window. Every text shown passes through :func:`pt_logging.redact`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol, TypeVar

import requests

import pt_logging
import pt_secrets as ps
from pt_errors import ExchangeAuthError, TemporaryExchangeError
from pt_http import RetryPolicy
from pt_robinhood import RobinhoodClient
from pt_robinhood_wire import AUTH_HINT, BestBidAsk
from pt_secrets import AskPassphrase, KeySource, RobinhoodCredentials, SecretsError
from pt_state import DataLayout

log = logging.getLogger(__name__)

DEFAULT_URL = "https://trading.robinhood.com"
TEST_SYMBOL = "BTC-USD"
MIN_API_KEY = 10

KeySourceFactory = Callable[[DataLayout, AskPassphrase], KeySource]
"""How the key source is chosen; :func:`pt_secrets.choose_key_source` by default (tests pass
``use_keyring=False`` to be sure a passphrase is used)."""

Tone = Literal["info", "ok", "warn", "error"]
VaultMode = Literal["checking", "new", "locked", "open", "broken"]


# ---------------------------------------------------------------------------------------------
# What the wizard says: pure functions, testable without Tk


@dataclass(frozen=True)
class Outcome:
    """One message for the user and how it should look."""

    text: str
    tone: Tone = "info"


def api_key_problem(api_key: str) -> str | None:
    """Why this (stripped) API key cannot be used at all; None when it can."""
    if not api_key:
        return "Paste the API key that Robinhood showed you (step 3) first."
    if any(c.isspace() for c in api_key):
        return "The API key contains spaces or line breaks: paste it again as one piece."
    return None


def api_key_warning(api_key: str) -> str | None:
    """A key the original also warned about: too short to be a real one (likely a cut paste)."""
    if len(api_key) < MIN_API_KEY:
        return (
            f"the API key is only {len(api_key)} characters long; Robinhood's keys are much "
            "longer (rh-api-…), so check that it was pasted completely"
        )
    return None


def describe_quote(quote: BestBidAsk) -> Outcome:
    """Success names the price, so the user sees a real answer, and says nothing was traded."""
    return Outcome(
        f"The credentials work: Robinhood answered a signed read-only request. "
        f"{quote.symbol} ask ${quote.ask:,.2f} (bid ${quote.bid:,.2f}). No order was placed.",
        "ok",
    )


def _status_of(text: str) -> int | None:
    """The HTTP status named in an adapter's message (401 and 403 get different advice)."""
    found = re.search(r"HTTP (\d{3})", text)
    return int(found.group(1)) if found else None


def describe_test_error(exc: Exception, base_url: str) -> Outcome:
    """The test request's failure in the user's terms, with what to check for each kind."""
    detail = pt_logging.redact(str(exc)).replace(f" ({AUTH_HINT})", "")
    if isinstance(exc, ExchangeAuthError):
        status = _status_of(detail)
        head = f"Robinhood refused these credentials (HTTP {status or '401/403'})."
        checks = [
            "• Is the API key pasted completely, and is it the key created for THIS public key? "
            "A newly generated key pair needs a new API key at Robinhood.",
            "• Is the public key in step 2 the one registered at Robinhood (API Trading)?",
            "• Is this computer's clock right? Robinhood refuses requests more than 30 s off.",
        ]
        if status == 403:
            checks.insert(0, "• The key may lack the READ permission, or API trading is not "
                             "enabled for this account.")  # fmt: skip
        return Outcome("\n".join([head, *checks, f"Details: {detail}"]), "error")
    if isinstance(exc, TemporaryExchangeError):
        if "connection failed" in detail or "no answer" in detail:
            return Outcome(
                f"Could not reach Robinhood at {base_url}.\n"
                "• Check the internet connection, a firewall or a proxy, then try again.\n"
                "• Check the Robinhood URL in Settings (exchanges.robinhood_url).\n"
                f"Details: {detail}",
                "error",
            )
        return Outcome(
            f"Robinhood is busy or unavailable now; try again in a minute.\nDetails: {detail}",
            "warn",
        )
    return Outcome(f"The test failed: {detail}", "error")


# ---------------------------------------------------------------------------------------------
# The worker thread: the vault and the test request


class _NeedPassphraseError(Exception):
    def __init__(self, new: bool) -> None:
        super().__init__("passphrase needed")
        self.new = new


def _asker(passphrase: str, confirm: str) -> AskPassphrase:
    """Answers the key source's question with what the user typed, or says what is missing."""

    def ask(new: bool) -> str:
        if not passphrase:
            raise _NeedPassphraseError(new)
        if new:
            ps.check_new_passphrase(passphrase)
            if confirm != passphrase:
                raise SecretsError("the two passphrases differ; type the same one twice")
        return passphrase

    return ask


@dataclass(frozen=True)
class VaultState:
    mode: VaultMode
    path: Path
    configured: bool = False
    kind: str = ""
    message: str = ""


@dataclass(frozen=True, repr=False)
class Job:
    """A request to the worker; ``kind`` is probe, unlock, test, save or import."""

    kind: str
    passphrase: str = ""
    confirm: str = ""
    creds: RobinhoodCredentials | None = None
    folder: Path | None = None
    base_url: str = DEFAULT_URL
    timeout: float = 10.0


@dataclass(frozen=True, repr=False)
class Done:
    kind: str
    ok: bool
    outcome: Outcome | None = None
    vault: VaultState | None = None
    creds: RobinhoodCredentials | None = None


class Vault:
    """The worker's side of the secrets: the key source once known, and every store call."""

    def __init__(self, layout: DataLayout, factory: KeySourceFactory) -> None:
        self._layout, self._factory = layout, factory
        self._source: KeySource | None = None

    def state(self) -> VaultState:
        path = self._layout.secrets_dir / "secrets.enc"
        try:
            header = ps.read_header(self._layout)
            names = set(header.names) if header is not None else set()
            configured = {ps.RH_API_KEY, ps.RH_PRIVATE_KEY} <= names
            kind = header.key_source if header is not None else ""
            if self._source is None:
                self._source = self._factory(self._layout, _asker("", ""))
        except _NeedPassphraseError as need:
            return VaultState("new" if need.new else "locked", path, configured, "passphrase")
        except SecretsError as exc:
            return VaultState("broken", path, message=pt_logging.redact(str(exc)))
        return VaultState("open", path, configured, self._source.kind or kind)

    def store(self, passphrase: str, confirm: str) -> ps.SecretStore:
        if self._source is None:
            self._source = self._factory(self._layout, _asker(passphrase, confirm))
        return ps.SecretStore(self._layout, self._source)

    def forget(self, *, only_if_new: bool = False) -> None:
        """Drop the key source: after a wrong passphrase, or after a failed first save (the
        passphrase of a vault that does not exist yet must not linger unconfirmed)."""
        if not only_if_new or ps.read_header(self._layout) is None:
            self._source = None


def _test(job: Job) -> Done:
    assert job.creds is not None
    session = requests.Session()
    try:
        client = RobinhoodClient(
            job.creds.api_key, job.creds.private_key_seed, base_url=job.base_url,
            session=session, timeout=job.timeout, retry=RetryPolicy(attempts=1),
        )  # fmt: skip
        quote = client.best_bid_ask([TEST_SYMBOL]).get(TEST_SYMBOL)
    except Exception as exc:  # every failure is reported, and the worker lives on
        log.info("credential test failed: %s", pt_logging.redact(str(exc)))
        return Done("test", False, describe_test_error(exc, job.base_url))
    finally:
        session.close()
    if quote is None:
        return Done("test", False, Outcome(f"Robinhood sent no {TEST_SYMBOL} quote.", "warn"))
    log.info("credential test passed")
    return Done("test", True, describe_quote(quote))


def _dispatch(vault: Vault, job: Job) -> Done:
    if job.kind == "test":
        return _test(job)
    if job.kind == "probe":
        state = vault.state()
        creds = None
        if state.mode == "open" and state.configured:
            creds = ps.load_robinhood(vault.store("", ""))
        return Done("probe", True, creds=creds)
    store = vault.store(job.passphrase, job.confirm)
    if job.kind == "unlock":
        store.get_many(())  # decrypts: a wrong passphrase shows here, not at the next save
        creds = ps.load_robinhood(store)
        nothing = Outcome("Unlocked. No Robinhood keys are stored yet.")
        return Done("unlock", True, None if creds else nothing, creds=creds)
    if job.kind == "save":
        assert job.creds is not None
        ps.save_robinhood(store, job.creds)
        warning = api_key_warning(job.creds.api_key)
        text = f"Saved, encrypted, in {store.path}."
        return Done("save", True, Outcome(text + (f" Warning: {warning}." if warning else ""),
                                           "warn" if warning else "ok"))  # fmt: skip
    assert job.folder is not None
    result = ps.import_original_keys(job.folder, store)
    advice = (f"Imported and stored encrypted. {ps.ORIGINAL_KEY_FILE} and "
              f"{ps.ORIGINAL_SECRET_FILE} in {job.folder} still hold the keys in plain text and "
              "are no longer needed: you can now delete them (and any .bak_* copies).")  # fmt: skip
    lines = [advice, *(f"Warning: {w}." for w in result.warnings)]
    tone: Tone = "warn" if result.warnings else "ok"
    return Done("import", True, Outcome(" ".join(lines), tone), creds=ps.load_robinhood(store))


def vault_outcome(state: VaultState, *, stored: str, locked_hint: str) -> Outcome:
    """What a secrets window says about the file: ``stored`` names what goes in it, and
    ``locked_hint`` what the passphrase lets the user do."""
    if state.mode == "new":
        text = (f"{stored} will be stored encrypted in {state.path}. There is no OS keyring "
                "here, so choose a passphrase of at least 8 characters and type it twice. "
                "Keep it safe: it cannot be recovered.")  # fmt: skip
    elif state.mode == "locked":
        text = (f"Your secrets ({state.path}) are encrypted with a passphrase. Enter it to "
                f"{locked_hint}.")  # fmt: skip
    elif state.mode == "open":
        how = "a key in the OS keyring" if state.kind == "keyring" else "your passphrase"
        text = f"Secrets file: {state.path} (encrypted with {how})."
    else:
        return Outcome(f"The secrets file cannot be used: {state.message}", "error")
    return Outcome(text)


class _Kinded(Protocol):
    @property
    def kind(self) -> str: ...


J = TypeVar("J", bound=_Kinded)


def run_vault_job(vault: Vault, job: J, dispatch: Callable[[Vault, J], Done]) -> Done:
    """One job against the vault (the key wizard's, or the notification secrets'); every
    failure becomes a message for the user, and the worker lives on."""
    try:
        done = dispatch(vault, job)
    except _NeedPassphraseError as need:
        what = "Choose a passphrase (twice)" if need.new else "Enter the passphrase"
        done = Done(job.kind, False, Outcome(f"{what} at the top of the window first.", "warn"))
    except ps.WrongKeyError:
        vault.forget()
        text = "Wrong passphrase (or a damaged secrets file): nothing was read or changed."
        done = Done(job.kind, False, Outcome(text, "error"))
    except (SecretsError, ValueError) as exc:
        vault.forget(only_if_new=True)
        done = Done(job.kind, False, Outcome(pt_logging.redact(str(exc)), "error"))
    except Exception as exc:  # a bug must not kill the worker and freeze the window's buttons
        log.error("secrets job %s failed: %s", job.kind, pt_logging.redact(repr(exc)))
        done = Done(job.kind, False, Outcome(f"Unexpected error ({type(exc).__name__}).", "error"))
    return replace(done, vault=vault.state())


def run_wizard_job(vault: Vault, job: Job) -> Done:
    return run_vault_job(vault, job, _dispatch)
