"""The shared-file contract: where state lives in the data folder and how it is written and read.

The hub, thinker, trader and trainers are separate processes that talk only through files in one
data folder (DESIGN.md §4). Three rules keep that safe:

- every shared file has exactly one writing process and is replaced atomically, so a reader sees
  either the old or the new content and never a torn half-write;
- every shared JSON file carries an envelope (``schema``, ``seq``, ``written_at``, ``pid``,
  ``data``), so a reader can tell what it is looking at, who wrote it and whether it is new;
- readers are tolerant: a missing or unreadable file means "no new data", the last good value is
  kept, and the problem is logged once instead of on every poll.

Single-instance locks live in :mod:`pt_locks`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from pt_types import ControlCommand

log = logging.getLogger(__name__)

Clock = Callable[[], float]

ENV_HOME = "POWERTRADER_HOME"
DEFAULT_DIR_NAME = "user_data"
HEARTBEAT_SCHEMA = "heartbeat/1"
CONTROL_SCHEMA = "control/1"
RISK_RESUME_SCHEMA = "risk_resume/1"

# os.replace over a file that another process has open fails on Windows; retry briefly.
_REPLACE_ATTEMPTS = 8
_REPLACE_FIRST_DELAY = 0.01
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
FIX_HINT = f"choose another folder with --data-dir or ${ENV_HOME}"


class StateError(Exception):
    """Base class of the data folder and shared-file errors."""


class DataDirError(StateError):
    """The data folder cannot be used; the message says which folder, why, and how to fix it."""


class AlreadyRunningError(StateError):
    """Another process already holds this single-instance lock for this data folder."""


# ---------------------------------------------------------------------------------------------
# The data folder


def resolve_data_dir(
    cli_value: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path:
    """Pick the data folder: ``--data-dir``, else ``$POWERTRADER_HOME``, else ``./user_data``.

    Empty values count as "not given" so that ``POWERTRADER_HOME=`` in a shell does not silently
    put the data folder in the current directory. The result is absolute so that a later change of
    working directory cannot move the data folder under a running process.
    """
    environ = os.environ if env is None else env
    base = Path.cwd() if cwd is None else cwd
    raw = (cli_value or "").strip() or environ.get(ENV_HOME, "").strip() or DEFAULT_DIR_NAME
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = base / path
    return Path(os.path.normpath(path.absolute()))


def _check_name(kind: str, name: str) -> str:
    """Names become file names; refuse anything that could escape the folder or confuse it."""
    if not _NAME_RE.match(name) or ".." in name:
        raise ValueError(
            f"invalid {kind} name {name!r}: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit"
        )
    return name


class _Sub:
    """A fixed path inside the data folder: one line per entry of DESIGN.md §4."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    @overload
    def __get__(self, layout: None, owner: type[DataLayout]) -> _Sub: ...
    @overload
    def __get__(self, layout: DataLayout, owner: type[DataLayout] | None = None) -> Path: ...
    def __get__(self, layout: DataLayout | None, owner: object = None) -> Path | _Sub:
        return self if layout is None else layout.root.joinpath(*self.parts)


@dataclass(frozen=True)
class DataLayout:
    """Every path of the data folder (DESIGN.md §4), so no module spells a file name itself."""

    root: Path

    settings_file = _Sub("settings.json")
    secrets_dir = _Sub("secrets")
    journal_db = _Sub("journal.sqlite3")
    candles_db = _Sub("candles.sqlite3")
    history_cache_dir = _Sub("cache", "history")  # bundled candles, parsed (pt_ohlcv)
    models_dir = _Sub("models")
    state_dir = _Sub("state")
    control_dir = _Sub("control")
    logs_dir = _Sub("logs")
    locks_dir = _Sub("locks")
    signals_file = _Sub("state", "signals.json")
    trader_status_file = _Sub("state", "trader_status.json")
    clock_file = _Sub("state", "clock.json")
    risk_resume_file = _Sub("control", "risk_resume.json")  # the hub: resume after a risk stop

    def model_dir(self, coin: str) -> Path:
        return self.models_dir / _check_name("coin", coin).upper()

    def heartbeat_file(self, proc: str) -> Path:
        return self.state_dir / f"heartbeat-{_check_name('process', proc)}.json"

    def trainer_file(self, coin: str) -> Path:
        return self.state_dir / f"trainer-{_check_name('coin', coin).upper()}.json"

    def control_file(self, proc: str) -> Path:
        return self.control_dir / f"{_check_name('process', proc)}.json"

    def log_file(self, proc: str) -> Path:
        return self.logs_dir / f"{_check_name('process', proc)}.jsonl"

    def lock_file(self, name: str) -> Path:
        return self.locks_dir / f"{_check_name('lock', name)}.lock"

    @property
    def folders(self) -> tuple[Path, ...]:
        names = ("secrets", "models", "state", "control", "logs", "locks")
        return (self.root, *(self.root / name for name in names))

    def ensure(self) -> DataLayout:
        """Create the folders and prove they are writable, so a bad folder fails at start-up.

        Writing a real probe file is the only check that holds everywhere: permission bits lie
        for root, network shares and read-only mounts.
        """
        for folder in self.folders:
            _make_folder(self.root, folder)
        if os.name == "posix":
            try:
                self.secrets_dir.chmod(0o700)
            except OSError as exc:
                raise _dir_error(self.root, self.secrets_dir, exc) from exc
        for folder in self.folders:
            _probe_write(self.root, folder)
        return self


def _dir_error(root: Path, folder: Path, exc: OSError) -> DataDirError:
    if isinstance(exc, PermissionError):
        what = "no permission to create or write files there"
        fix = "give your user write access to it, or " + FIX_HINT
    elif isinstance(exc, (FileExistsError, NotADirectoryError)):
        what = "it (or a folder above it) is a file, not a folder"
        fix = "move that file away, or " + FIX_HINT
    else:
        what = exc.strerror or str(exc)
        fix = FIX_HINT
    where = "" if folder == root else f" (at {folder})"
    return DataDirError(f"cannot use data folder {root}{where}: {what}. Fix: {fix}.")


def _make_folder(root: Path, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _dir_error(root, folder, exc) from exc
    if not folder.is_dir():
        raise _dir_error(root, folder, NotADirectoryError(str(folder)))


def _probe_write(root: Path, folder: Path) -> None:
    probe = folder / f".write-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"probe")
        probe.unlink()
    except OSError as exc:
        raise _dir_error(root, folder, exc) from exc


# ---------------------------------------------------------------------------------------------
# Atomic writes


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable on POSIX; Windows cannot open folders, so skip there."""
    if os.name != "posix":
        return
    # Some file systems cannot open or fsync a folder; the file data itself is already synced.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _replace_with_retry(src: str, dst: Path) -> None:
    delay = _REPLACE_FIRST_DELAY
    for attempt in range(1, _REPLACE_ATTEMPTS + 1):
        try:
            Path(src).replace(dst)
            return
        except PermissionError:
            if attempt == _REPLACE_ATTEMPTS:
                raise
            log.debug("replace %s busy (attempt %s), retrying", dst, attempt)
            time.sleep(delay)
            delay *= 2


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix.

    The temp file sits in the same folder because ``os.replace`` is only atomic within one file
    system. The folder must exist. New files are owner-only (mode 0600 on POSIX).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _replace_with_retry(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: object) -> None:
    """Write ``obj`` as JSON; NaN and infinities are refused because other readers choke on them."""
    try:
        text = json.dumps(obj, indent=2, allow_nan=False)
    except ValueError as exc:
        raise ValueError(
            f"refusing to write {path}: {exc} (NaN/Infinity is not valid JSON; "
            "replace it with null or a number before saving)"
        ) from exc
    except TypeError as exc:
        raise TypeError(f"cannot write {path} as JSON: {exc}") from exc
    atomic_write_text(path, text + "\n")


# ---------------------------------------------------------------------------------------------
# Envelopes, writer and reader


@dataclass(frozen=True)
class Envelope:
    """The JSON envelope of every shared state file."""

    schema: str
    seq: int
    written_at: float
    pid: int
    data: Any


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_envelope(raw: bytes, path: Path) -> Envelope:
    """Decode an envelope of any schema; raises ValueError naming the file and the bad key."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    checks: dict[str, Callable[[object], bool]] = {
        "schema": lambda v: isinstance(v, str),
        "seq": _is_int,
        "written_at": lambda v: _is_int(v) or isinstance(v, float),
        "pid": _is_int,
        "data": lambda v: True,
    }
    for key, ok in checks.items():
        if key not in obj or not ok(obj[key]):
            raise ValueError(f"{path}: envelope key {key!r} is missing or has the wrong type")
    return Envelope(obj["schema"], obj["seq"], float(obj["written_at"]), obj["pid"], obj["data"])


def _read_seq(path: Path) -> int:
    """The seq already on disk (any schema), so a restarted writer keeps counting upwards."""
    try:
        return parse_envelope(path.read_bytes(), path).seq
    except FileNotFoundError:
        return 0
    except (OSError, ValueError) as exc:
        log.warning("%s is unreadable (%s); its sequence restarts at 1", path, exc)
        return 0


class StateWriter:
    """The single writer of one shared JSON file: wraps data in an envelope, writes atomically."""

    def __init__(self, path: Path, schema: str, *, clock: Clock = time.time) -> None:
        self.path = path
        self.schema = schema
        self._clock = clock
        self._lock = threading.Lock()
        self._seq = _read_seq(path)

    @property
    def seq(self) -> int:
        return self._seq

    def write(self, data: Any, *, now: float | None = None) -> Envelope:
        """Write ``data``; ``now`` overrides the writer's clock for callers that share a writer."""
        with self._lock:
            env = Envelope(
                schema=self.schema,
                seq=self._seq + 1,
                written_at=self._clock() if now is None else now,
                pid=os.getpid(),
                data=data,
            )
            atomic_write_json(self.path, dataclasses.asdict(env))
            self._seq = env.seq
            return env


StatKey = tuple[int, int, int]
# Inode numbers are reused and mtimes are coarse (2 s on FAT), so a file changed this recently
# may look unchanged by its stat; such a file is parsed again rather than trusted.
_RACY_SECONDS = 2.0


def stat_key(path: Path) -> StatKey | None:
    """Inode, mtime and size of ``path``, or None when it cannot be seen."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


_UNSEEN: StatKey = (-1, -1, -1)


class StateReader:
    """A tolerant reader of one shared JSON file: bad or missing content means "no new data".

    ``validate`` may check ``Envelope.data`` and raise ValueError/TypeError/KeyError; invalid data
    is treated like a corrupt file, so the last good value survives. ``clock`` is wall-clock time,
    compared with file mtimes to spot a change the stat alone cannot show.
    """

    def __init__(
        self,
        path: Path,
        schema: str,
        *,
        validate: Callable[[Any], object] | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.path = path
        self.schema = schema
        self._validate = validate
        self._clock = clock
        self._last: Envelope | None = None
        self._seen: StatKey | None = _UNSEEN
        self._failing = False
        self._warned = False

    @property
    def last(self) -> Envelope | None:
        return self._last

    def has_changed(self) -> bool:
        """True when the file differs from what the last ``read`` saw (a stat, no parsing)."""
        return stat_key(self.path) != self._seen

    def read(self) -> Envelope | None:
        """The newest good envelope, or the last good one when the file is missing or bad."""
        # Stat before reading: if the file is replaced in between we re-read it next time,
        # instead of caching the new stat with the old content.
        key = stat_key(self.path)
        if key == self._seen and not self._is_racy(key):
            return self._last
        self._seen = key
        if key is None:
            self._fail("missing", warn=self._last is not None)
            return self._last
        try:
            env = self._parse()
        except (OSError, ValueError, TypeError, KeyError) as exc:
            self._fail(str(exc), warn=True)
            return self._last
        self._recover()
        if env != self._last:
            self._last = env
        return self._last

    def _is_racy(self, key: StatKey | None) -> bool:
        return key is not None and self._clock() - key[1] / 1e9 < _RACY_SECONDS

    def _parse(self) -> Envelope:
        env = parse_envelope(self.path.read_bytes(), self.path)
        if env.schema != self.schema:
            raise ValueError(
                f"{self.path} has schema {env.schema!r}, expected {self.schema!r} "
                "(written by a different version?)"
            )
        if self._validate is not None:
            try:
                self._validate(env.data)
            except (ValueError, TypeError, KeyError) as exc:
                raise ValueError(f"{self.path}: bad data: {exc}") from exc
        return env

    def _fail(self, reason: str, *, warn: bool) -> None:
        if self._failing:
            return
        self._failing = True
        self._warned = warn
        kept = "keeping the last good value" if self._last is not None else "no data yet"
        if warn:
            log.warning("cannot read %s: %s; %s", self.path, reason, kept)
        else:
            log.info("%s is %s; %s", self.path, reason, kept)

    def _recover(self) -> None:
        if self._failing and self._warned:
            log.info("%s is readable again", self.path)
        self._failing = False
        self._warned = False


# Writers and readers are cached per (process, path) so that seq stays monotonic and each
# failure streak is logged once across polls; the pid keeps a forked child from reusing its
# parent's cache.
_writers: dict[tuple[int, Path], StateWriter] = {}
_readers: dict[tuple[int, Path], StateReader] = {}
_cache_lock = threading.Lock()


def _writer(path: Path, schema: str) -> StateWriter:
    key = (os.getpid(), path)
    with _cache_lock:
        if key not in _writers:
            _writers[key] = StateWriter(path, schema)
        return _writers[key]


def _reader(path: Path, schema: str, validate: Callable[[Any], object]) -> StateReader:
    key = (os.getpid(), path)
    with _cache_lock:
        if key not in _readers:
            _readers[key] = StateReader(path, schema, validate=validate)
        return _readers[key]


# ---------------------------------------------------------------------------------------------
# Heartbeats


@dataclass(frozen=True)
class Heartbeat:
    """Proof of life of one process, in wall-clock seconds."""

    proc: str
    pid: int
    written_at: float
    seq: int
    status: str


def _check_heartbeat_data(data: Any) -> None:
    if not isinstance(data, dict):
        raise TypeError("heartbeat data must be an object")
    if not isinstance(data.get("proc"), str) or not isinstance(data.get("status"), str):
        raise ValueError("heartbeat needs string 'proc' and 'status'")


def write_heartbeat(
    layout: DataLayout, proc: str, *, status: str = "", clock: Clock = time.time
) -> Heartbeat:
    env = _writer(layout.heartbeat_file(proc), HEARTBEAT_SCHEMA).write(
        {"proc": proc, "status": status}, now=clock()
    )
    return Heartbeat(proc, env.pid, env.written_at, env.seq, status)


def read_heartbeat(layout: DataLayout, proc: str) -> Heartbeat | None:
    """The newest heartbeat of ``proc`` (or its last good one), None if never seen."""
    env = _reader(layout.heartbeat_file(proc), HEARTBEAT_SCHEMA, _check_heartbeat_data).read()
    if env is None:
        return None
    return Heartbeat(env.data["proc"], env.pid, env.written_at, env.seq, env.data["status"])


def heartbeat_age(hb: Heartbeat, now: float) -> float:
    """Seconds since the beat; never negative, so a small clock step back does not confuse."""
    return max(0.0, now - hb.written_at)


def is_stale(hb: Heartbeat | None, now: float, interval: float, missed: int = 3) -> bool:
    """Stale once ``missed`` beats are overdue; a process that never beat is stale."""
    if interval <= 0 or missed < 1:
        raise ValueError(
            f"heartbeat interval must be > 0 and missed >= 1, got {interval}, {missed}"
        )
    if hb is None:
        return True
    return heartbeat_age(hb, now) > missed * interval


# ---------------------------------------------------------------------------------------------
# Control files


def _check_control_data(data: Any) -> None:
    if not isinstance(data, dict):
        raise TypeError("control data must be an object")
    ControlCommand(data["command"])


def write_control(
    layout: DataLayout,
    proc: str,
    command: ControlCommand,
    *,
    reason: str = "",
    clock: Clock = time.time,
) -> None:
    """Tell ``proc`` what the hub wants it to do (the hub is the only writer)."""
    data = {"command": ControlCommand(command).value, "reason": reason}
    _writer(layout.control_file(proc), CONTROL_SCHEMA).write(data, now=clock())


def read_control(layout: DataLayout, proc: str) -> ControlCommand:
    """The hub's wish for ``proc``; RUN when nothing readable was ever seen.

    A file that turns bad after a good read keeps the last good command (DESIGN.md §4), so a
    stopped worker does not restart because of a damaged file.
    """
    env = _reader(layout.control_file(proc), CONTROL_SCHEMA, _check_control_data).read()
    return ControlCommand.RUN if env is None else ControlCommand(env.data["command"])


# ---------------------------------------------------------------------------------------------
# Resuming after a risk stop


def _check_resume_data(data: Any) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("requested_at"), int | float):
        raise TypeError("a resume request is an object with a number 'requested_at'")


def write_risk_resume(layout: DataLayout, *, clock: Clock = time.time) -> float:
    """The user resumes trading after a risk stop (the hub is the only writer). The trader
    releases a stop that tripped before this moment; returns the moment."""
    now = clock()
    _writer(layout.risk_resume_file, RISK_RESUME_SCHEMA).write({"requested_at": now}, now=now)
    return now


def read_risk_resume(layout: DataLayout) -> float | None:
    """When the user last asked to resume (wall time), or None."""
    env = _reader(layout.risk_resume_file, RISK_RESUME_SCHEMA, _check_resume_data).read()
    return None if env is None else float(env.data["requested_at"])
