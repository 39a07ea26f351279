"""Structured logging: one JSON-lines file per process, redacted, rotated and searchable.

Each process writes ``<data_dir>/logs/<process>.jsonl`` so the hub's log viewer can search them
all by level, process, text and time; files rotate by size so a bot left running for months cannot
fill the disk; every record is redacted first, because a key that reaches a log file is as good as
published (DESIGN.md §6). Nothing happens at import. Times are wall-clock even in demo mode.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import heapq
import json
import logging
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any, TextIO

LEVEL_NAMES: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REDACTED = "[REDACTED]"
CONSOLE_FORMAT = "%(asctime)s %(levelname)s {process} %(name)s: %(message)s"

_LEVELS: dict[str, int] = {name: getattr(logging, name) for name in LEVEL_NAMES}
_LEVEL_HINT = "use one of " + ", ".join(LEVEL_NAMES)
_MIN_SECRET_LEN = 6
_MAX_DEPTH = 6
# Keys every JSON line owns; extra fields with these names are written as ``field_<name>``.
_RESERVED = frozenset({"ts", "time", "level", "process", "pid", "logger", "msg", "exc"})
_PROCESS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LOG_FILE = re.compile(r"(?P<process>.+)\.jsonl(?:\.(?P<n>\d+))?")
_CONVERSION = re.compile(r"%(\([^)]*\))?[#0 +-]*(?:\d+|\*)?(?:\.(?:\d+|\*))?[a-zA-Z]")
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')
_CONFIG_KEYS = ("data_dir", "level", "console", "max_bytes", "backup_count")
_TRADE_KEYS = ("coin", "side", "tag", "quantity", "usd_amount", "price", "client_order_id")
_PREDICTION_KEYS = ("coin", "price", "long_level", "short_level", "timeframe")
_MTIME_SLACK = 2.0  # some file systems keep modification times in whole (or two) seconds

_KEY_WORDS = r"(?:api[_-]?key|secret|private[_-]?key|passw(?:or)?d|token|x-signature|authorization)"
_SENSITIVE_KEY = re.compile(_KEY_WORDS, re.IGNORECASE)
_KEY_NAME = rf"[A-Za-z0-9_.-]{{0,32}}{_KEY_WORDS}[A-Za-z0-9_.-]{{0,32}}"  # bounded: linear time
_PAIR = re.compile(  # key=value, key: value, "key": "value" (also escaped), Authorization: Bearer x
    rf"""(?P<key>\\?["']?\b{_KEY_NAME}\\?["']?\s*[:=]\s*)
    (?:\[REDACTED\] | (?P<q>\\?["']).*?(?P=q)
      | (?:(?:bearer|basic|token|signature)\s+)?[^\s"',;&)}}\]]+)""",
    re.IGNORECASE | re.VERBOSE,
)
_PEM = re.compile(r"(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)")
_TELEGRAM = re.compile(r"(?<!\d)\d{6,}:[A-Za-z0-9_-]{30,}")
_WEBHOOK = re.compile(r"(?P<keep>/api/webhooks/\d+/|hooks\.slack\.com/\w+/)[\w./-]+")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{43,88}={0,2}(?![A-Za-z0-9+/=_-])")


@dataclass
class _State:
    """What setup_logging installed, so that a second call replaces it rather than adding."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    handlers: list[logging.Handler] = field(default_factory=list)
    logs_dir: Path | None = None
    hook: Callable[[LogEntry], None] | None = None
    hook_failure_reported: bool = False
    secrets: tuple[str, ...] = ()


_STATE = _State()
_IN_HOOK = threading.local()


@dataclass(frozen=True)
class LogEntry:
    """One parsed log line, as the hub's log viewer and the critical hook see it."""

    ts: float
    level: str
    process: str
    logger: str
    msg: str
    pid: int | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    exc: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogEntry | None:
        """The entry a JSON log line describes, or None when it is not one of ours."""
        ts, level, msg, pid, exc = (data.get(k) for k in ("ts", "level", "msg", "pid", "exc"))
        if isinstance(ts, bool) or not isinstance(ts, int | float):
            return None
        if not isinstance(level, str) or not isinstance(msg, str):
            return None
        process, logger = str(data.get("process", "")), str(data.get("logger", ""))
        pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
        fields = {k: v for k, v in data.items() if k not in _RESERVED}
        return cls(float(ts), level, process, logger, msg, pid, fields, exc and str(exc))


@dataclass(frozen=True)
class LogQuery:
    """What to look for; every criterion that is not None must hold (times are inclusive)."""

    min_level: str | None = None
    process: str | None = None
    text: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 500

    def __post_init__(self) -> None:
        if self.min_level is not None and str(self.min_level).upper() not in _LEVELS:
            raise ValueError(f"unknown log level {self.min_level!r}; {_LEVEL_HINT}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0:
            raise ValueError(f"log query 'limit' must be a whole number >= 0, got {self.limit!r}")

    @classmethod
    def from_mapping(cls, query: Mapping[str, Any]) -> LogQuery:
        """Build from a dict (the roadmap's API); an unknown key is a mistake worth reporting."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        if unknown := [k for k in query if k not in allowed]:
            raise ValueError(f"unknown log query key {unknown[0]!r}; use {', '.join(allowed)}")
        return cls(**query)

    def matches(self, entry: LogEntry) -> bool:
        """Whether ``entry`` meets every criterion (so a live view can filter new lines too)."""
        if self.min_level and _LEVELS.get(entry.level, 0) < _LEVELS[self.min_level.upper()]:
            return False
        if self.process is not None and entry.process != self.process:
            return False
        since = -math.inf if self.since is None else self.since
        until = math.inf if self.until is None else self.until
        if not since <= entry.ts <= until:
            return False
        needle = (self.text or "").lower()
        return any(needle in part.lower() for part in (entry.msg, entry.logger, entry.exc or ""))


def register_secret(value: str) -> None:
    """Redact this string (and its escaped forms) from now on; shorter ones would mask too much."""
    variants = {value, value.strip(), json.dumps(value)[1:-1], repr(value)[1:-1]}
    with _STATE.lock:
        merged = set(_STATE.secrets) | {v for v in variants if len(v) >= _MIN_SECRET_LEN}
        _STATE.secrets = tuple(sorted(merged, key=len, reverse=True))  # nested ones go whole


def redact(text: str) -> str:
    """Replace every secret this module recognises in ``text`` with ``[REDACTED]``."""
    for secret in _STATE.secrets:
        text = text.replace(secret, REDACTED)
    text = _PEM.sub(REDACTED, text)
    text = _WEBHOOK.sub(lambda m: m["keep"] + REDACTED, text)
    text = _TELEGRAM.sub(REDACTED, text)
    text = _PAIR.sub(lambda m: f"{m['key']}{m['q'] or ''}{REDACTED}{m['q'] or ''}", text)
    return _BASE64.sub(lambda m: REDACTED if _is_key_material(m[0]) else m[0], text)


def _is_key_material(candidate: str) -> bool:
    """Base64 of 32 or 64 bytes (an Ed25519 seed or key pair); mixed case spares plain words."""
    body = candidate.rstrip("=")
    if not (any(c.isupper() for c in body) and any(c.islower() for c in body)):
        return False
    urlsafe = "-" in body or "_" in body
    if urlsafe and ("+" in body or "/" in body):
        return False
    padded = body + "=" * (-len(body) % 4)
    try:
        raw = base64.b64decode(padded, altchars=b"-_" if urlsafe else None, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) in (32, 64)


def _clean(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, redacted copy of an extra-field value; sensitive keys lose their values."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) or depth >= _MAX_DEPTH:
        return redact(str(value))
    if isinstance(value, Mapping):
        hide, deeper = _SENSITIVE_KEY.search, depth + 1
        return {str(k): REDACTED if hide(str(k)) else _clean(v, deeper) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in value]
    return redact(str(value))


def _message(record: logging.LogRecord) -> str:
    """The final message; with bad arguments, each one in its place as text (then redacted)."""
    try:
        return record.getMessage()
    except Exception:
        try:
            return _CONVERSION.sub(r"%\1s", str(record.msg)) % record.args + " (bad arguments)"
        except Exception:
            return f"{record.msg!s} (unformattable arguments: {record.args!r})"


class RedactingFilter(logging.Filter):
    """Redacts message, args, traceback and fields in place; if that fails, withholds them."""

    _tracebacks = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.__dict__.get("_pt_redacted"):
            try:
                self._redact(record)
            except Exception:
                record.msg, record.args = "[record withheld: redaction failed]", None
                record.exc_info = record.exc_text = record.stack_info = None
                record.__dict__["fields"] = {}
            record.__dict__["_pt_redacted"] = True
        return True

    def _redact(self, record: logging.LogRecord) -> None:
        record.msg, record.args = redact(_message(record)), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._tracebacks.formatException(record.exc_info)
        record.exc_text = redact(record.exc_text) if record.exc_text else None
        record.stack_info = redact(record.stack_info) if record.stack_info else None
        if (fields := record.__dict__.get("fields")) is not None:
            clean = _clean(fields)
            record.__dict__["fields"] = clean if isinstance(clean, dict) else {"fields": clean}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a value JSON cannot hold is written as its text."""

    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.to_dict(record), ensure_ascii=False, default=str)

    def to_dict(self, record: logging.LogRecord) -> dict[str, Any]:
        """The reserved keys, then the record's extra fields (``extra={"fields": {...}}``)."""
        ts = record.created
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
        data: dict[str, Any] = {"ts": round(ts, 6), "time": iso, "level": record.levelname}
        data |= {"process": self.process_name, "pid": record.process, "logger": record.name}
        data["msg"] = _message(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text or record.stack_info:  # a stack_info=True call stack goes here too
            data["exc"] = "\n".join(filter(None, (record.exc_text, record.stack_info)))
        fields = record.__dict__.get("fields")
        for key, value in fields.items() if isinstance(fields, Mapping) else ():
            data[f"field_{key}" if key in _RESERVED else str(key)] = value
        return data


class _CriticalHookHandler(logging.Handler):
    """Hands CRITICAL records to the hook; a failing hook must never break logging."""

    def __init__(self, process_name: str) -> None:
        super().__init__(level=logging.CRITICAL)
        self.json = JsonFormatter(process_name)

    def emit(self, record: logging.LogRecord) -> None:
        hook = _STATE.hook
        if hook is None or getattr(_IN_HOOK, "active", False):
            return  # a hook that itself logs CRITICAL must not recurse
        _IN_HOOK.active = True
        try:
            entry = LogEntry.from_dict(self.json.to_dict(record))
            if entry is not None:
                hook(entry)
        except Exception as exc:
            self._report_once(exc)
        finally:
            _IN_HOOK.active = False

    @staticmethod
    def _report_once(exc: Exception) -> None:
        """Straight to stderr: going through the root logger again could loop."""
        with _STATE.lock:
            if _STATE.hook_failure_reported:
                return
            _STATE.hook_failure_reported = True
        text = "critical-log hook failed (further failures are not reported): %s"
        args = (redact(f"{type(exc).__name__}: {exc}"),)
        record = logging.LogRecord(__name__, logging.ERROR, "", 0, text, args, None)
        if logging.lastResort is not None:
            logging.lastResort.handle(record)


def set_critical_hook(hook: Callable[[LogEntry], None] | None) -> None:
    """Hand every CRITICAL record (redacted) to ``hook``, which should only enqueue: it runs
    in the logging thread. Works once :func:`setup_logging` ran, before or after this call."""
    with _STATE.lock:
        _STATE.hook, _STATE.hook_failure_reported = hook, False


def parse_level(level: str | int) -> int:
    """A level name (any case) or a number >= 0; anything else is a ValueError naming both."""
    if isinstance(level, str) and level.strip().upper() in _LEVELS:
        return _LEVELS[level.strip().upper()]
    if isinstance(level, int) and not isinstance(level, bool) and level >= 0:
        return level
    raise ValueError(f"unknown log level {level!r}; {_LEVEL_HINT}")


def setup_logging(
    process_name: str,
    data_dir: Path,
    level: str | int = "INFO",
    *,
    console: bool = True,
    max_bytes: int = 5_000_000,
    backup_count: int = 5,
    stream: TextIO | None = None,
) -> Path:
    """Send the root logger to ``<data_dir>/logs/<process>.jsonl`` and stderr; return the path.

    A second call replaces what the first installed. Our handlers go first on the root logger,
    so any handler added by others only ever sees redacted records."""
    level_no = parse_level(level)
    if not isinstance(process_name, str) or not _PROCESS_NAME.fullmatch(process_name):
        raise ValueError(f"process name {process_name!r} must be letters, digits, '.', '_', '-'")
    if max_bytes < 1 or backup_count < 1:
        raise ValueError("log rotation needs max_bytes >= 1 and backup_count >= 1")
    logs_dir = Path(data_dir) / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = logs_dir / f"{process_name}.jsonl"
    file_handler = RotatingFileHandler(
        log_path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8", errors="replace"
    )
    file_handler.setFormatter(JsonFormatter(process_name))
    handlers: list[logging.Handler] = [file_handler]
    out = (stream if stream is not None else sys.stderr) if console else None
    if out is not None:  # there is no stderr at all under pythonw
        handlers.append(logging.StreamHandler(out))
        fmt = CONSOLE_FORMAT.format(process=process_name)
        handlers[-1].setFormatter(logging.Formatter(fmt, "%H:%M:%S"))
    handlers.append(_CriticalHookHandler(process_name))
    for handler in handlers:
        handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    with _STATE.lock:
        for old in _STATE.handlers:
            root.removeHandler(old)
            old.close()
        root.handlers[0:0] = handlers
        root.setLevel(level_no)
        _STATE.handlers, _STATE.logs_dir = handlers, logs_dir
    return log_path


def reset_logging() -> None:
    """Undo setup_logging and forget the hook and the secrets (the state right after import)."""
    with _STATE.lock:
        for handler in _STATE.handlers:
            logging.getLogger().removeHandler(handler)
            handler.close()
        _STATE.handlers, _STATE.logs_dir, _STATE.hook = [], None, None
        _STATE.hook_failure_reported = False
        _STATE.secrets = ()


def log_timing(
    logger: logging.Logger, name: str, seconds: float, *, level: int = logging.DEBUG, **fields: Any
) -> None:
    """Record how long ``name`` took as ``duration_ms``, which performance views aggregate."""
    if logger.isEnabledFor(level):
        ms = seconds * 1000.0
        extra = {"fields": {**fields, "timing": name, "duration_ms": round(ms, 3)}}
        logger.log(level, "timing %s %.1f ms", name, ms, extra=extra, stacklevel=2)


@contextmanager
def timed(
    logger: logging.Logger, name: str, *, level: int = logging.DEBUG, **fields: Any
) -> Iterator[None]:
    """Time the block with perf_counter and log it; a block that raises is marked failed."""
    start, failed = time.perf_counter(), True
    try:
        yield
        failed = False
    finally:
        extra = {**fields, "failed": True} if failed else fields
        log_timing(logger, name, time.perf_counter() - start, level=level, **extra)


def search_logs(
    query: LogQuery | Mapping[str, Any], logs_dir: Path | None = None
) -> list[LogEntry]:
    """Matches from all current and rotated files, newest first; torn or garbage lines skipped."""
    q = query if isinstance(query, LogQuery) else LogQuery.from_mapping(query)
    directory = logs_dir if logs_dir is not None else _STATE.logs_dir
    if directory is None:
        raise ValueError("search_logs needs logs_dir: setup_logging has not run in this process")
    best = heapq.nlargest(q.limit, _matching(q, Path(directory)), key=lambda pair: pair[0])
    return [entry for _, entry in best]


def _matching(q: LogQuery, directory: Path) -> Iterator[tuple[tuple[float, int], LogEntry]]:
    needle = q.text.lower() if q.text else ""
    # JSON escapes only ", \ and control characters: other text is verbatim in a matching line.
    quick = needle if needle and not _JSON_ESCAPED.search(needle) else ""
    seq = 0
    for path in _log_files(directory, q):
        try:
            # split on "\n" only: str.splitlines also breaks at characters JSON leaves as they are
            lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
        except OSError:  # rotated away between listing and opening
            continue
        for line in lines:
            seq += 1
            if quick not in line.lower():
                continue
            try:
                data = json.loads(line)
            except ValueError:
                continue
            entry = LogEntry.from_dict(data) if isinstance(data, dict) else None
            if entry is not None and q.matches(entry):
                yield (entry.ts, seq), entry


def _log_files(directory: Path, q: LogQuery) -> list[Path]:
    """Files that may hold matches, oldest first per process (… .2, .1, then the current)."""
    found: list[tuple[str, int, Path]] = []
    for path in directory.glob("*.jsonl*"):
        m = _LOG_FILE.fullmatch(path.name)
        if m is None or (q.process is not None and m["process"] != q.process):
            continue
        try:
            if q.since is not None and path.stat().st_mtime + _MTIME_SLACK < q.since:
                continue  # a file last written before ``since`` holds nothing newer
        except OSError:
            continue
        found.append((m["process"], -int(m["n"] or 0), path))
    return [path for _, _, path in sorted(found)]


def _as_fields(value: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    return {"value": value}


class StructuredLogger:
    """Object-style facade over this module, for code written against the roadmap's API."""

    def __init__(self, process_name: str = "powertrader") -> None:
        self.process_name = process_name
        self.logger = logging.getLogger(process_name)
        self.log_path: Path | None = None

    def setup_logging(self, config: Mapping[str, Any]) -> None:
        """Configure from a dict: data_dir (required), level, console, max_bytes, backup_count."""
        if unknown := [k for k in config if k not in _CONFIG_KEYS]:
            raise ValueError(
                f"unknown logging setting {unknown[0]!r}; use {', '.join(_CONFIG_KEYS)}"
            )
        if "data_dir" not in config:
            raise ValueError("logging settings need 'data_dir'")
        options = {k: v for k, v in config.items() if k not in ("data_dir", "level")}
        level = config.get("level", "INFO")
        self.log_path = setup_logging(self.process_name, Path(config["data_dir"]), level, **options)

    def log_trade(self, trade: Any) -> None:
        """A trade (a Fill, a journal row as a dict) as INFO with ``event: trade``."""
        self._event(logging.INFO, "trade", trade, _TRADE_KEYS)

    def log_prediction(self, prediction: Any, *, level: int = logging.DEBUG) -> None:
        """Predictions come every loop for every coin, hence DEBUG unless asked otherwise."""
        self._event(level, "prediction", prediction, _PREDICTION_KEYS)

    def _event(self, level: int, event: str, value: Any, keys: tuple[str, ...]) -> None:
        data = _as_fields(value)
        summary = " ".join(f"{k}={data[k]}" for k in keys if k in data) or "recorded"
        self.logger.log(level, "%s %s", event, summary, extra={"fields": {**data, "event": event}})

    def log_error(self, error: BaseException | Any) -> None:
        """An exception with its traceback, or an error description (a dict or a text)."""
        if isinstance(error, BaseException):
            name = type(error).__name__
            fields = {"event": "error", "error_type": name}
            self.logger.error("%s: %s", name, error, exc_info=error, extra={"fields": fields})
            return
        data = _as_fields(error)
        message = data.get("message") or data.get("msg") or data.get("value") or "unknown error"
        self.logger.error("error: %s", message, extra={"fields": {**data, "event": "error"}})

    def search_logs(self, query: Mapping[str, Any] | LogQuery) -> list[LogEntry]:
        return search_logs(query, self.log_path.parent if self.log_path is not None else None)
