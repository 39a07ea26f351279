"""Structured logging: JSON lines, rotation, redaction, search, critical hook, timing."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import pt_logging
from pt_logging import LogEntry, LogQuery, StructuredLogger, search_logs, setup_logging
from pt_types import Fill, Side, Signal

LOG = logging.getLogger("pt.test")


@pytest.fixture(autouse=True)
def restore_root_logger():
    """Leave the root logger exactly as this test found it (other test files share it)."""
    root = logging.getLogger()
    level, filters = root.level, list(root.filters)
    handlers_before = list(root.handlers)
    yield
    pt_logging.reset_logging()
    root.setLevel(level)
    for f in list(root.filters):
        if f not in filters:
            root.removeFilter(f)
    for handler in list(root.handlers):
        if handler not in handlers_before and any(
            isinstance(f, pt_logging.RedactingFilter) for f in handler.filters
        ):
            root.removeHandler(handler)
            handler.close()


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def quiet_setup(tmp_path: Path, process: str = "trader", **kwargs: Any) -> Path:
    kwargs.setdefault("console", False)
    return setup_logging(process, tmp_path, kwargs.pop("level", "DEBUG"), **kwargs)


# --- setup ----------------------------------------------------------------------------------


def test_setup_writes_one_json_object_per_line_with_all_fields(tmp_path):
    path = quiet_setup(tmp_path)
    assert path == tmp_path / "logs" / "trader.jsonl"
    before = time.time()
    LOG.info(
        "price %s for %s", 42283.58, "BTC", extra={"fields": {"coin": "BTC", "at": Path("/x")}}
    )
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        LOG.exception("order failed")
    lines = read_json_lines(path)
    assert len(lines) == 2
    first, second = lines
    assert first["msg"] == "price 42283.58 for BTC"
    assert first["level"] == "INFO" and first["process"] == "trader"
    assert first["logger"] == "pt.test" and first["pid"] == os.getpid()
    assert first["coin"] == "BTC" and first["at"] == "/x"
    assert before - 1 <= first["ts"] <= time.time() + 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    parsed = datetime.strptime(first["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(parsed.timestamp() - first["ts"]) < 0.001
    assert "exc" not in first
    assert second["level"] == "ERROR"
    assert "Traceback" in second["exc"] and "ValueError: boom" in second["exc"]


def test_extra_field_named_like_a_reserved_key_does_not_overwrite_it(tmp_path):
    path = quiet_setup(tmp_path)
    LOG.info("real message", extra={"fields": {"msg": "impostor", "level": 3}})
    (line,) = read_json_lines(path)
    assert line["msg"] == "real message" and line["level"] == "INFO"
    assert line["field_msg"] == "impostor" and line["field_level"] == 3


def test_console_output_is_human_readable_and_respects_level(tmp_path):
    out = io.StringIO()
    path = setup_logging("thinker", tmp_path, "info", stream=out)
    LOG.warning("hello %s", "world")
    LOG.debug("too detailed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"\d\d:\d\d:\d\d WARNING thinker pt\.test: hello world", lines[0])
    assert [line["msg"] for line in read_json_lines(path)] == ["hello world"]


def test_setup_again_replaces_handlers_instead_of_duplicating(tmp_path):
    out = io.StringIO()
    first = setup_logging("trader", tmp_path, "INFO", stream=out)
    setup_logging("trader", tmp_path, "DEBUG", stream=out)
    LOG.debug("once")
    assert [line["msg"] for line in read_json_lines(first)] == ["once"]
    assert out.getvalue().count("once") == 1
    second = setup_logging("hub", tmp_path, "INFO", console=False)
    LOG.info("to the hub file")
    assert [line["msg"] for line in read_json_lines(second)] == ["to the hub file"]
    assert len(read_json_lines(first)) == 1
    assert out.getvalue().count("hub file") == 0


def test_bad_level_names_the_level_and_the_allowed_names(tmp_path):
    root = logging.getLogger()
    handlers = list(root.handlers)
    with pytest.raises(ValueError, match=r"'LOUD'.*DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        setup_logging("trader", tmp_path, "LOUD")
    with pytest.raises(ValueError, match="-5"):
        setup_logging("trader", tmp_path, -5)
    assert root.handlers == handlers
    assert not (tmp_path / "logs").exists()


def test_process_name_must_be_a_safe_file_name(tmp_path):
    with pytest.raises(ValueError, match="process name"):
        setup_logging("../evil", tmp_path)


def test_reset_removes_handlers_hook_and_configured_dir(tmp_path):
    root = logging.getLogger()
    before = list(root.handlers)
    received: list[LogEntry] = []
    pt_logging.set_critical_hook(received.append)
    path = quiet_setup(tmp_path)
    assert len(root.handlers) == len(before) + 2  # file + critical hook (no console)
    pt_logging.reset_logging()
    assert root.handlers == before
    LOG.critical("after reset")
    assert path.read_text() == "" and received == []
    with pytest.raises(ValueError, match="setup_logging"):
        search_logs(LogQuery())


def test_other_handlers_on_the_root_logger_only_see_redacted_records(tmp_path):
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    collector = Collect()
    logging.getLogger().addHandler(collector)
    try:
        quiet_setup(tmp_path)
        LOG.info("password=%s", "hunter2hunter2")
    finally:
        logging.getLogger().removeHandler(collector)
    assert seen == ["password=[REDACTED]"]


def test_stack_info_is_written_with_the_traceback_field(tmp_path):
    path = quiet_setup(tmp_path)
    LOG.warning("where am I", stack_info=True)
    (line,) = read_json_lines(path)
    assert line["exc"].startswith("Stack (most recent call last):")
    assert "test_stack_info_is_written_with_the_traceback_field" in line["exc"]


# --- rotation -------------------------------------------------------------------------------


def test_rotation_bounds_files_and_search_spans_rotated_files(tmp_path):
    path = quiet_setup(tmp_path, max_bytes=2000, backup_count=3)
    for i in range(300):
        LOG.info("record %d", i)
    logs = tmp_path / "logs"
    names = sorted(p.name for p in logs.iterdir())
    assert names == ["trader.jsonl", "trader.jsonl.1", "trader.jsonl.2", "trader.jsonl.3"]
    assert all(p.stat().st_size <= 2000 for p in logs.iterdir())
    oldest_kept = read_json_lines(path.with_name("trader.jsonl.3"))[0]["msg"]
    found = search_logs(LogQuery(text=oldest_kept, limit=10))
    assert [entry.msg for entry in found] == [oldest_kept]
    everything = search_logs(LogQuery(limit=1000))
    total_lines = sum(len(p.read_text().splitlines()) for p in logs.iterdir())
    assert len(everything) == total_lines
    assert everything[0].msg == "record 299"
    assert search_logs(LogQuery(text="record 0", limit=10)) == []  # retention dropped it


def test_rotation_settings_are_validated(tmp_path):
    with pytest.raises(ValueError, match="backup_count"):
        quiet_setup(tmp_path, backup_count=0)


# --- redaction ------------------------------------------------------------------------------

ED25519_SEED = base64.b64encode(hashlib.sha256(b"seed").digest()).decode()
ED25519_URLSAFE = base64.urlsafe_b64encode(hashlib.sha256(b"other").digest()).decode()[:43]
ED25519_PAIR = base64.b64encode(hashlib.sha512(b"pair").digest()).decode()
TELEGRAM = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
DISCORD_TOKEN = "AbCdEf-gh_IJklMNopQRstuVWxyz0123456789abcdefGHIJ"
SLACK_PATH = "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
PEM_BODY = "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF"

# (text that contains a secret, the secret part that must never reach a log)
SECRET_CASES = [
    ("registered: hunter2-correct-horse", "hunter2-correct-horse"),
    (f"GET https://api.telegram.org/bot{TELEGRAM}/sendMessage", TELEGRAM),
    (f"post to https://discord.com/api/webhooks/112233445566778899/{DISCORD_TOKEN}", DISCORD_TOKEN),
    (f"post to https://hooks.slack.com/services/{SLACK_PATH}", SLACK_PATH),
    (f"key:\n-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----\n", PEM_BODY),
    ("url ?api_key=rh-api-0f1e2d3c&coin=BTC", "rh-api-0f1e2d3c"),
    ('body {"password": "s3cr3t pass phrase"}', "s3cr3t pass phrase"),
    ("headers {'x-api-key': 'rh-key-77777', 'x-signature': 'sig+/abc=='}", "rh-key-77777"),
    ("headers {'x-api-key': 'rh-key-77777', 'x-signature': 'sig+/abc=='}", "sig+/abc=="),
    ("Authorization: Bearer eyJhbGciOi.payload", "eyJhbGciOi.payload"),
    ("client_secret=topsecretvalue other=1", "topsecretvalue"),
    ("PRIVATE_KEY = 'abcdefabcdef'", "abcdefabcdef"),
    ("passwd=letmein99 token=tok_123456", "letmein99"),
    ("passwd=letmein99 token=tok_123456", "tok_123456"),
    (f"loaded seed {ED25519_SEED} ok", ED25519_SEED),
    (f"seed={ED25519_URLSAFE}", ED25519_URLSAFE),
    (f"keypair {ED25519_PAIR}", ED25519_PAIR),
]


@pytest.mark.parametrize(("text", "secret"), SECRET_CASES)
def test_secret_never_reaches_the_file_or_the_console(tmp_path, text, secret):
    pt_logging.register_secret("hunter2-correct-horse")
    out = io.StringIO()
    path = setup_logging("trader", tmp_path, "DEBUG", stream=out)
    LOG.info("as argument: %s", text)
    LOG.info("as message: " + text)  # noqa: G003 - a message built by hand is the risky case
    LOG.warning("as field", extra={"fields": {"detail": text, "nested": [{"inner": text}]}})
    try:
        raise RuntimeError(f"request failed: {text}")
    except RuntimeError:
        LOG.exception("as exception")
    written = path.read_text(encoding="utf-8")
    assert len(written.splitlines()) == 4
    assert secret not in written
    assert secret not in out.getvalue()
    assert json.dumps(secret)[1:-1] not in written
    assert written.count("[REDACTED]") >= 4


def test_sensitive_field_keys_lose_their_values(tmp_path):
    path = quiet_setup(tmp_path)
    LOG.info(
        "request",
        extra={"fields": {"api_key": "abc-short", "cfg": {"Password": 12345678}, "coin": "BTC"}},
    )
    (line,) = read_json_lines(path)
    assert line["api_key"] == "[REDACTED]"
    assert line["cfg"] == {"Password": "[REDACTED]"}
    assert line["coin"] == "BTC"


def test_ordinary_messages_are_not_redacted(tmp_path):
    path = quiet_setup(tmp_path)
    tx_hash = hashlib.sha256(b"tx").hexdigest()
    message = (
        "BTC-USD price 42283.58 at 2026-11-23T22:04:05.123Z qty 0.00123456 "
        "order 5f3c2a1e-9b8d-4c7e-a6f5-0123456789ab path /work/user_data/models/DOGE/memory.npz "
        f"tx {tx_hash} candle 1732400000 levels LONG=5 SHORT=0 key=value"
    )
    LOG.info(message, extra={"fields": {"coin": "ETH", "price": 3120.5, "nan": float("nan")}})
    (line,) = read_json_lines(path)
    assert line["msg"] == message
    assert line["coin"] == "ETH" and line["price"] == 3120.5 and line["nan"] == "nan"


def test_short_registered_values_are_ignored(tmp_path):
    pt_logging.register_secret("BTC")
    path = quiet_setup(tmp_path)
    LOG.info("BTC bought")
    assert read_json_lines(path)[0]["msg"] == "BTC bought"


def test_redaction_stays_fast_on_long_hyphenated_or_dotted_text():
    text = "a-" * 10_000 + "b.c_" * 10_000 + " api_key=abcdef123"
    start = time.perf_counter()
    redacted = pt_logging.redact(text)
    assert time.perf_counter() - start < 1.0
    assert redacted.endswith(" api_key=[REDACTED]")


def test_a_record_with_bad_format_arguments_is_still_logged(tmp_path, capsys):
    path = quiet_setup(tmp_path)
    LOG.info("%d coins api_key=%s", "many", "abcdef123456")
    LOG.info("%(missing)s and %s", "x")
    first, second = read_json_lines(path)
    assert first["msg"] == "many coins api_key=[REDACTED] (bad arguments)"
    assert second["msg"].startswith("%(missing)s and %s (unformattable arguments:")
    assert "Logging error" not in capsys.readouterr().err


def test_unserialisable_fields_fall_back_to_text(tmp_path):
    path = quiet_setup(tmp_path)
    LOG.info("odd fields", extra={"fields": {"obj": object(), "when": datetime(2026, 1, 2)}})
    (line,) = read_json_lines(path)
    assert line["obj"].startswith("<object object")
    assert line["when"] == "2026-01-02 00:00:00"


# --- search ---------------------------------------------------------------------------------


def write_lines(path: Path, records: list[dict[str, Any]], tail: str = "") -> None:
    text = "".join(json.dumps(r) + "\n" for r in records)
    path.write_text(text + tail, encoding="utf-8")


def rec(ts: float, level: str, process: str, msg: str, **extra: Any) -> dict[str, Any]:
    return {"ts": ts, "level": level, "process": process, "logger": "pt.x", "msg": msg, **extra}


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    write_lines(
        logs / "trader.jsonl.1",
        [rec(100, "INFO", "trader", "bought BTC"), rec(110, "ERROR", "trader", "order rejected")],
    )
    write_lines(
        logs / "trader.jsonl",
        [
            rec(120, "WARNING", "trader", "stale price", coin="DOGE"),
            rec(130, "DEBUG", "trader", "loop", exc="Traceback...\nKeyError: 'Feed'"),
        ],
        tail='{"ts": 140, "level": "INFO", "msg": "torn',
    )
    write_lines(
        logs / "thinker.jsonl",
        [rec(115, "CRITICAL", "thinker", "model missing"), rec(125, "INFO", "thinker", "BTC L5")],
        tail="garbage\n[1, 2]\n{}\n",
    )
    (logs / "notes.txt").write_text('{"ts": 1, "level": "INFO", "msg": "not a log"}\n')
    return logs


def test_search_returns_all_valid_entries_newest_first(logs_dir):
    found = search_logs(LogQuery(), logs_dir)
    assert [e.ts for e in found] == [130, 125, 120, 115, 110, 100]
    assert found[2].fields == {"coin": "DOGE"}
    assert found[0].exc is not None and found[0].pid is None


def test_search_filters(logs_dir):
    def msgs(**criteria: Any) -> list[str]:
        return [e.msg for e in search_logs(LogQuery(**criteria), logs_dir)]

    assert msgs(min_level="warning") == ["stale price", "model missing", "order rejected"]
    assert msgs(process="thinker") == ["BTC L5", "model missing"]
    assert msgs(text="BTC") == ["BTC L5", "bought BTC"]
    assert msgs(text="keyerror: 'feed'") == ["loop"]  # in exc, case-insensitive
    assert msgs(text="PT.X", limit=2) == ["loop", "BTC L5"]  # logger name
    assert msgs(since=110, until=120) == ["stale price", "model missing", "order rejected"]
    assert msgs(limit=1) == ["loop"]
    assert msgs(limit=0) == []
    assert msgs(process="trader", min_level="ERROR", text="order") == ["order rejected"]


def test_search_accepts_a_mapping_and_rejects_unknown_keys(logs_dir):
    found = search_logs({"process": "trader", "limit": 2}, logs_dir)
    assert [e.msg for e in found] == ["loop", "stale price"]
    with pytest.raises(ValueError, match="'levle'"):
        search_logs({"levle": "INFO"}, logs_dir)
    with pytest.raises(ValueError, match="'LOUD'"):
        search_logs({"min_level": "LOUD"}, logs_dir)
    with pytest.raises(ValueError, match="limit"):
        search_logs({"limit": -1}, logs_dir)


def test_messages_with_unicode_line_separators_stay_one_entry(tmp_path):
    quiet_setup(tmp_path)
    LOG.info("first\u2028second\x85third \u00e9")
    (entry,) = search_logs(LogQuery(text="second"))
    assert entry.msg == "first\u2028second\x85third \u00e9"


def test_query_matches_can_filter_a_live_entry():
    entry = LogEntry(ts=50.0, level="ERROR", process="trader", logger="pt.x", msg="Order failed")
    assert LogQuery(
        min_level="WARNING", process="trader", text="order", since=50, until=50
    ).matches(entry)
    assert not LogQuery(min_level="CRITICAL").matches(entry)
    assert not LogQuery(until=49.9).matches(entry)


def test_search_without_setup_or_dir_says_what_is_missing():
    with pytest.raises(ValueError, match="setup_logging"):
        search_logs(LogQuery())


def test_search_uses_the_configured_dir_and_real_records(tmp_path):
    quiet_setup(tmp_path, process="thinker")
    LOG.info("from thinker")
    quiet_setup(tmp_path, process="trader")
    LOG.error("from trader")
    entries = search_logs(LogQuery())
    assert [(e.process, e.msg) for e in entries] == [
        ("trader", "from trader"),
        ("thinker", "from thinker"),
    ]
    assert entries[0].pid == os.getpid()
    assert search_logs(LogQuery(since=time.time() + 3600)) == []


# --- critical hook --------------------------------------------------------------------------


def test_critical_hook_gets_critical_records_only_and_redacted(tmp_path):
    received: list[LogEntry] = []
    pt_logging.set_critical_hook(received.append)
    quiet_setup(tmp_path)
    LOG.error("just an error")
    LOG.critical("trader halted, token=%s", "tok-9876543210")
    assert len(received) == 1
    entry = received[0]
    assert entry.level == "CRITICAL" and entry.process == "trader"
    assert entry.msg == "trader halted, token=[REDACTED]"


def test_a_raising_hook_does_not_break_logging_and_is_reported_once(tmp_path, capsys):
    calls: list[str] = []

    def broken(entry: LogEntry) -> None:
        calls.append(entry.msg)
        raise RuntimeError("notifier down")

    path = quiet_setup(tmp_path)
    pt_logging.set_critical_hook(broken)
    LOG.critical("first")
    LOG.critical("second")
    assert calls == ["first", "second"]
    assert [line["msg"] for line in read_json_lines(path)] == ["first", "second"]
    err = capsys.readouterr().err
    assert err.count("notifier down") == 1


def test_a_hook_that_logs_critical_does_not_recurse(tmp_path):
    calls: list[str] = []

    def noisy(entry: LogEntry) -> None:
        calls.append(entry.msg)
        LOG.critical("hook saw %s", entry.msg)

    path = quiet_setup(tmp_path)
    pt_logging.set_critical_hook(noisy)
    LOG.critical("outer")
    assert calls == ["outer"]
    assert [line["msg"] for line in read_json_lines(path)] == ["outer", "hook saw outer"]


# --- timing ---------------------------------------------------------------------------------


def test_timed_and_log_timing_record_durations(tmp_path):
    path = quiet_setup(tmp_path)
    with pt_logging.timed(LOG, "loop", coin="BTC"):
        time.sleep(0.01)
    pt_logging.log_timing(LOG, "request", 0.25, level=logging.INFO, venue="kucoin")
    with pytest.raises(KeyError), pt_logging.timed(LOG, "lookup"):
        raise KeyError("x")
    loop, request, lookup = read_json_lines(path)
    assert loop["timing"] == "loop" and loop["coin"] == "BTC" and loop["level"] == "DEBUG"
    assert 10 <= loop["duration_ms"] < 5000
    assert re.fullmatch(r"timing loop \d+\.\d ms", loop["msg"])
    assert request["duration_ms"] == 250.0 and request["venue"] == "kucoin"
    assert request["msg"] == "timing request 250.0 ms" and request["level"] == "INFO"
    assert lookup["failed"] is True and "failed" not in loop


def test_timing_below_the_level_writes_nothing(tmp_path):
    path = quiet_setup(tmp_path, level="INFO")
    with pt_logging.timed(LOG, "loop"):
        pass
    assert path.read_text() == ""


# --- StructuredLogger -----------------------------------------------------------------------


def test_structured_logger_methods_and_mapping_query(tmp_path):
    slog = StructuredLogger("trader")
    slog.setup_logging({"data_dir": str(tmp_path), "level": "DEBUG", "console": False})
    slog.log_trade(Fill("cid-1", "BTC", Side.BUY, 0.01, 42283.58, 0.42, 1_700_000_000.0))
    slog.log_prediction(Signal("BTC", 42283.58, long_level=5, short_level=0, time=1.0))
    try:
        raise ValueError("bad candle")
    except ValueError as exc:
        slog.log_error(exc)
    slog.log_error({"message": "feed stale", "coin": "DOGE"})

    trades = slog.search_logs({"text": "trade coin", "process": "trader"})
    assert len(trades) == 1
    trade = trades[0]
    assert trade.level == "INFO" and trade.msg.startswith("trade coin=BTC side=buy")
    assert trade.fields["event"] == "trade" and trade.fields["side"] == "buy"
    assert trade.fields["price"] == 42283.58 and trade.fields["client_order_id"] == "cid-1"
    (prediction,) = slog.search_logs({"text": "prediction"})
    assert prediction.level == "DEBUG" and prediction.fields["long_level"] == 5
    assert prediction.fields["event"] == "prediction" and prediction.fields["timeframes"] == []
    errors = slog.search_logs(LogQuery(min_level="ERROR"))
    assert [e.msg for e in errors] == ["error: feed stale", "ValueError: bad candle"]
    assert errors[0].fields == {"message": "feed stale", "coin": "DOGE", "event": "error"}
    assert errors[1].exc is not None and "ValueError: bad candle" in errors[1].exc


def test_structured_logger_rejects_bad_settings(tmp_path):
    slog = StructuredLogger()
    with pytest.raises(ValueError, match="'colour'"):
        slog.setup_logging({"data_dir": tmp_path, "colour": True})
    with pytest.raises(ValueError, match="data_dir"):
        slog.setup_logging({"level": "INFO"})
