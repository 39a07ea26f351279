"""The shared-file contract, exercised with real files, real processes and real OS locks."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pt_locks import SingleInstanceLock
from pt_state import (
    CONTROL_SCHEMA,
    HEARTBEAT_SCHEMA,
    AlreadyRunningError,
    DataDirError,
    DataLayout,
    Heartbeat,
    StateReader,
    StateWriter,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    heartbeat_age,
    is_stale,
    read_control,
    read_heartbeat,
    resolve_data_dir,
    write_control,
    write_heartbeat,
)
from pt_types import ControlCommand

PROJECT = Path(__file__).resolve().parents[1]
SCHEMA = "test/1"


def start_python(code: str, *args: str) -> subprocess.Popen[str]:
    """Run ``code`` in a fresh interpreter that can import the project's modules."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    proc = start_python(code, *args)
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def state_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "pt_state" and r.levelno == logging.WARNING
    ]


# --- data folder -------------------------------------------------------------------------------


def test_resolve_data_dir_precedence(tmp_path: Path) -> None:
    env = {"POWERTRADER_HOME": str(tmp_path / "from-env")}
    cli = str(tmp_path / "from-cli")
    assert resolve_data_dir(cli, env, tmp_path) == tmp_path / "from-cli"
    assert resolve_data_dir(None, env, tmp_path) == tmp_path / "from-env"
    assert resolve_data_dir(None, {}, tmp_path) == tmp_path / "user_data"
    # an empty value counts as not given
    assert resolve_data_dir("", {"POWERTRADER_HOME": ""}, tmp_path) == tmp_path / "user_data"


def test_resolve_data_dir_relative_and_home(tmp_path: Path) -> None:
    assert resolve_data_dir("rel/../data", {}, tmp_path) == tmp_path / "data"
    assert resolve_data_dir(None, {"POWERTRADER_HOME": "env-rel"}, tmp_path) == tmp_path / "env-rel"
    home = resolve_data_dir("~/pt-data", {}, tmp_path)
    assert home == Path("~/pt-data").expanduser()
    assert home.is_absolute()


def test_layout_paths_follow_the_design(tmp_path: Path) -> None:
    lay = DataLayout(tmp_path)
    assert lay.settings_file == tmp_path / "settings.json"
    assert lay.journal_db == tmp_path / "journal.sqlite3"
    assert lay.candles_db == tmp_path / "candles.sqlite3"
    assert lay.signals_file == tmp_path / "state" / "signals.json"
    assert lay.trader_status_file == tmp_path / "state" / "trader_status.json"
    assert lay.clock_file == tmp_path / "state" / "clock.json"
    assert lay.model_dir("btc") == tmp_path / "models" / "BTC"
    assert lay.trainer_file("eth") == tmp_path / "state" / "trainer-ETH.json"
    assert lay.heartbeat_file("trader") == tmp_path / "state" / "heartbeat-trader.json"
    assert lay.control_file("thinker") == tmp_path / "control" / "thinker.json"
    assert lay.log_file("hub") == tmp_path / "logs" / "hub.jsonl"
    assert lay.lock_file("hub") == tmp_path / "locks" / "hub.lock"
    for bad in ("../etc", "a/b", "", ".hidden", "x\\y"):
        with pytest.raises(ValueError, match="invalid process name"):
            lay.heartbeat_file(bad)


def test_ensure_creates_every_folder(tmp_path: Path) -> None:
    lay = DataLayout(tmp_path / "data")
    assert lay.ensure() is lay
    for folder in (lay.secrets_dir, lay.models_dir, lay.state_dir, lay.control_dir):
        assert folder.is_dir()
    assert lay.logs_dir.is_dir()
    assert lay.locks_dir.is_dir()
    if os.name == "posix":
        assert lay.secrets_dir.stat().st_mode & 0o777 == 0o700
    lay.ensure()  # a second start finds everything in place
    leftovers = [p for p in lay.root.rglob("*") if p.is_file()]
    assert leftovers == []


def test_ensure_under_a_file_names_the_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    root = blocker / "data"
    with pytest.raises(DataDirError) as err:
        DataLayout(root).ensure()
    msg = str(err.value)
    assert str(root) in msg
    assert "is a file" in msg
    assert "--data-dir" in msg
    assert "POWERTRADER_HOME" in msg


def test_ensure_when_the_folder_itself_is_a_file(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.write_text("x")
    with pytest.raises(DataDirError, match="is a file"):
        DataLayout(root).ensure()


def test_ensure_read_only_folder(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    permission_bits_bind = sys.platform != "win32" and os.geteuid() != 0
    if permission_bits_bind:
        root.chmod(0o500)
        try:
            with pytest.raises(DataDirError) as err:
                DataLayout(root).ensure()
        finally:
            root.chmod(0o700)
        assert str(root) in str(err.value)
        assert "permission" in str(err.value)
    else:
        # root (and Windows) ignore these bits; a file where a subfolder belongs fails for anyone
        (root / "state").write_text("x")
        with pytest.raises(DataDirError) as err:
            DataLayout(root).ensure()
        assert str(root / "state") in str(err.value)


# --- atomic writes -----------------------------------------------------------------------------

WRITER_SCRIPT = """
import hashlib, random, sys, time
from pathlib import Path
from pt_state import StateWriter

path, seconds = Path(sys.argv[1]), float(sys.argv[2])
writer = StateWriter(path, "test/1")
rng = random.Random(7)
sizes = [10, 100, 1_000, 10_000, 60_000, 200_000]
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    size = rng.choice(sizes) + rng.randint(0, 9)
    body = rng.randbytes(size // 2 + 1).hex()[:size]
    sha = hashlib.sha256(body.encode()).hexdigest()
    writer.write({"len": len(body), "sha": sha, "body": body})
print(writer.seq)
"""


def check_payload(data: dict[str, object]) -> None:
    import hashlib

    body = data["body"]
    assert isinstance(body, str)
    assert len(body) == data["len"]
    assert hashlib.sha256(body.encode()).hexdigest() == data["sha"]


def test_atomic_writes_are_never_torn_for_a_concurrent_reader(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pt_state")
    path = tmp_path / "shared.json"
    writer = start_python(WRITER_SCRIPT, str(path), "1.5")
    deadline = time.monotonic() + 10
    while not path.exists():
        assert writer.poll() is None, writer.stderr.read() if writer.stderr else ""
        assert time.monotonic() < deadline, "writer never wrote"
        time.sleep(0.005)

    reader = StateReader(path, SCHEMA)
    raw_reads, seqs, last_seq = 0, set(), 0
    while writer.poll() is None:
        raw = json.loads(path.read_bytes())  # a torn file would fail here or in the checksum
        check_payload(raw["data"])
        raw_reads += 1
        env = reader.read()
        assert env is not None
        check_payload(env.data)
        assert env.seq >= last_seq
        last_seq = env.seq
        seqs.add(env.seq)

    out, err = writer.communicate(timeout=10)
    assert writer.returncode == 0, err
    assert raw_reads > 100
    assert len(seqs) > 10, "the writer should have replaced the file many times while we read"
    assert int(out) >= max(seqs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.json"]  # no temp files left
    assert state_warnings(caplog) == []


def test_atomic_write_text_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    atomic_write_text(path, "héllo")
    assert path.read_text(encoding="utf-8") == "héllo"
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_atomic_write_json_refuses_nan(tmp_path: Path, bad: float) -> None:
    path = tmp_path / "signals.json"
    atomic_write_json(path, {"price": 1.5})
    with pytest.raises(ValueError, match="NaN") as err:
        atomic_write_json(path, {"price": bad})
    assert str(path) in str(err.value)
    assert json.loads(path.read_text()) == {"price": 1.5}
    assert [p.name for p in tmp_path.iterdir()] == ["signals.json"]


def test_failed_replace_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "occupied"
    target.mkdir()  # a folder cannot be replaced by a file
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["occupied"]
    assert list(target.iterdir()) == []


# --- writer and reader -------------------------------------------------------------------------


def test_writer_seq_continues_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    w = StateWriter(path, SCHEMA, clock=lambda: 1234.5)
    first = w.write({"a": 1})
    assert (first.seq, first.written_at, first.pid) == (1, 1234.5, os.getpid())
    assert first.schema == SCHEMA
    assert w.write({"a": 2}).seq == 2
    on_disk = json.loads(path.read_text())
    assert on_disk == {
        "schema": SCHEMA,
        "seq": 2,
        "written_at": 1234.5,
        "pid": os.getpid(),
        "data": {"a": 2},
    }
    assert StateWriter(path, SCHEMA).write({"a": 3}).seq == 3
    # a restart in another process continues too
    done = run_python(
        "import sys; from pathlib import Path; from pt_state import StateWriter;"
        "print(StateWriter(Path(sys.argv[1]), 'test/1').write({'a': 4}).seq)",
        str(path),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "4"


def test_writer_with_nan_keeps_seq_and_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    w = StateWriter(path, SCHEMA)
    w.write({"x": 1.0})
    with pytest.raises(ValueError, match=r"s\.json"):
        w.write({"x": float("nan")})
    assert w.write({"x": 2.0}).seq == 2


def test_reader_missing_file_gives_none(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reader = StateReader(tmp_path / "nothing.json", SCHEMA)
    assert reader.read() is None
    assert reader.last is None
    assert not reader.has_changed()
    assert state_warnings(caplog) == []  # not written yet is normal at start-up


def test_reader_keeps_last_good_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pt_state")
    path = tmp_path / "s.json"
    writer = StateWriter(path, SCHEMA)
    reader = StateReader(path, SCHEMA)
    good = writer.write({"v": 1})
    assert reader.has_changed()
    assert reader.read() == good
    assert not reader.has_changed()

    for garbage in (b"{not json", b'{"schema": "test/1"}', b"[1, 2]", b"\xff\xfe", b""):
        atomic_write_bytes(path, garbage)
        assert reader.has_changed()
        for _ in range(3):
            assert reader.read() == good
    warnings = state_warnings(caplog)
    assert len(warnings) == 1
    assert str(path) in warnings[0]

    newer = writer.write({"v": 2})
    assert reader.read() == newer
    assert any("readable again" in r.getMessage() for r in caplog.records)

    path.unlink()  # vanishing after a good read is a new failure streak
    assert reader.read() == newer
    assert reader.read() == newer
    assert len(state_warnings(caplog)) == 2
    assert reader.last == newer


def test_reader_treats_wrong_schema_as_unreadable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.json"
    StateWriter(path, "other/9").write({"v": 1})
    reader = StateReader(path, SCHEMA)
    assert reader.read() is None
    (msg,) = state_warnings(caplog)
    assert "other/9" in msg
    assert SCHEMA in msg


def test_reader_validate_rejects_bad_data(tmp_path: Path) -> None:
    def must_have_price(data: dict[str, float]) -> None:
        if data["price"] <= 0:
            raise ValueError("price must be positive")

    path = tmp_path / "s.json"
    writer = StateWriter(path, SCHEMA)
    reader = StateReader(path, SCHEMA, validate=must_have_price)
    good = writer.write({"price": 10.0})
    assert reader.read() == good
    writer.write({"price": -1.0})
    assert reader.read() == good
    writer.write({"volume": 1.0})
    assert reader.read() == good


def test_reader_trusts_an_old_stat_but_rechecks_a_fresh_one(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    writer = StateWriter(path, SCHEMA)
    writer.write({"v": "a"})
    mtime = path.stat().st_mtime
    now = [mtime + 60.0]
    reader = StateReader(path, SCHEMA, clock=lambda: now[0])
    first = reader.read()
    assert first is not None
    # Change the content in place, keeping inode, size and mtime: the stat cannot tell.
    st = path.stat()
    raw = path.read_bytes().replace(b'"v": "a"', b'"v": "b"')
    with path.open("r+b") as fh:
        fh.write(raw)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not reader.has_changed()
    assert reader.read() is first  # an old stat is trusted: no parsing
    now[0] = mtime + 0.5  # a stat this fresh might hide a change, so it is parsed again
    again = reader.read()
    assert again is not None
    assert again.data == {"v": "b"}


# --- heartbeats --------------------------------------------------------------------------------


def test_heartbeat_write_read_and_age(tmp_path: Path) -> None:
    lay = DataLayout(tmp_path).ensure()
    assert read_heartbeat(lay, "trader") is None
    hb = write_heartbeat(lay, "trader", status="trading", clock=lambda: 1000.0)
    assert hb == Heartbeat("trader", os.getpid(), 1000.0, 1, "trading")
    assert read_heartbeat(lay, "trader") == hb
    hb2 = write_heartbeat(lay, "trader", clock=lambda: 1005.0)
    assert hb2.seq == 2
    assert read_heartbeat(lay, "trader") == hb2
    assert json.loads(lay.heartbeat_file("trader").read_text())["schema"] == HEARTBEAT_SCHEMA
    assert heartbeat_age(hb2, 1017.5) == 12.5
    assert heartbeat_age(hb2, 1000.0) == 0.0  # a clock stepping back does not go negative

    # a restarted trader (another process) keeps the sequence increasing
    done = run_python(
        "import sys; from pathlib import Path; from pt_state import DataLayout, write_heartbeat;"
        "print(write_heartbeat(DataLayout(Path(sys.argv[1])), 'trader').seq)",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    seen = read_heartbeat(lay, "trader")
    assert seen is not None
    assert seen.seq == 3
    assert seen.pid != os.getpid()


def test_staleness_after_three_missed_beats(tmp_path: Path) -> None:
    lay = DataLayout(tmp_path).ensure()
    t0 = 5000.0
    hb = write_heartbeat(lay, "thinker", clock=lambda: t0)
    interval = 10.0
    assert not is_stale(hb, t0, interval)
    assert not is_stale(hb, t0 + 1.5 * interval, interval)
    assert not is_stale(hb, t0 + 2.9 * interval, interval)  # two missed beats
    assert is_stale(hb, t0 + 3.1 * interval, interval)  # three missed
    assert is_stale(hb, t0 + 100 * interval, interval)
    assert not is_stale(hb, t0 + 4.5 * interval, interval, missed=5)
    assert is_stale(None, t0, interval)
    with pytest.raises(ValueError, match="interval"):
        is_stale(hb, t0, 0.0)


# --- control files -----------------------------------------------------------------------------


def test_control_defaults_to_run_and_round_trips(tmp_path: Path) -> None:
    lay = DataLayout(tmp_path).ensure()
    assert read_control(lay, "trader") is ControlCommand.RUN
    write_control(lay, "trader", ControlCommand.PAUSE, reason="user pressed pause")
    assert read_control(lay, "trader") is ControlCommand.PAUSE
    write_control(lay, "trader", ControlCommand.STOP)
    assert read_control(lay, "trader") is ControlCommand.STOP
    on_disk = json.loads(lay.control_file("trader").read_text())
    assert on_disk["schema"] == CONTROL_SCHEMA
    assert on_disk["data"] == {"command": "stop", "reason": ""}
    assert on_disk["seq"] == 2


def test_control_corrupt_means_run_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lay = DataLayout(tmp_path).ensure()
    lay.control_file("thinker").write_text("{garbage")
    for _ in range(3):
        assert read_control(lay, "thinker") is ControlCommand.RUN
    assert len(state_warnings(caplog)) == 1
    # an unknown command is as bad as garbage
    atomic_write_json(
        lay.control_file("hub"),
        {"schema": CONTROL_SCHEMA, "seq": 1, "written_at": 1.0, "pid": 1, "data": {"command": "x"}},
    )
    assert read_control(lay, "hub") is ControlCommand.RUN


def test_control_damaged_after_stop_keeps_stop(tmp_path: Path) -> None:
    lay = DataLayout(tmp_path).ensure()
    write_control(lay, "trader", ControlCommand.STOP)
    assert read_control(lay, "trader") is ControlCommand.STOP
    atomic_write_text(lay.control_file("trader"), "{")
    assert read_control(lay, "trader") is ControlCommand.STOP


# --- single-instance lock ----------------------------------------------------------------------

HOLDER_SCRIPT = """
import sys, time
from pathlib import Path
from pt_locks import SingleInstanceLock

lock = SingleInstanceLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""

TRY_SCRIPT = """
import sys
from pathlib import Path
from pt_locks import SingleInstanceLock
from pt_state import AlreadyRunningError

try:
    SingleInstanceLock(Path(sys.argv[1])).acquire()
except AlreadyRunningError as exc:
    print(exc)
    sys.exit(3)
print("acquired")
"""


def test_lock_held_by_another_process_until_it_is_killed(tmp_path: Path) -> None:
    path = DataLayout(tmp_path).lock_file("trader")
    holder = start_python(HOLDER_SCRIPT, str(path))
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        lock = SingleInstanceLock(path)
        with pytest.raises(AlreadyRunningError) as err:
            lock.acquire()
        msg = str(err.value)
        assert f"pid {holder.pid}" in msg
        assert str(path) in msg
        assert "another trader is already running" in msg
        assert not lock.held
    finally:
        holder.kill()  # SIGKILL: no chance to release anything itself
        holder.communicate(timeout=10)
    assert holder.returncode != 0
    with SingleInstanceLock(path) as lock:  # the OS dropped the dead holder's lock
        assert lock.held
        assert path.read_text().split()[0] == str(os.getpid())


def test_lock_context_manager_releases(tmp_path: Path) -> None:
    path = DataLayout(tmp_path).lock_file("hub")
    with SingleInstanceLock(path) as lock:
        blocked = run_python(TRY_SCRIPT, str(path))
        assert blocked.returncode == 3, blocked.stderr
        assert f"pid {os.getpid()}" in blocked.stdout
        with pytest.raises(AlreadyRunningError):  # a second holder in this process fails too
            SingleInstanceLock(path).acquire()
    assert not lock.held
    free = run_python(TRY_SCRIPT, str(path))
    assert free.returncode == 0, free.stderr
    assert free.stdout.strip() == "acquired"
