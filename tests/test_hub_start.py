"""`python pt_hub.py` as a person starts it: no display, bad settings, bad data folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pt_state import DataLayout, read_risk_resume

ROOT = Path(__file__).resolve().parent.parent


def run_hub(
    *args: str, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env = {k: v for k, v in env.items() if not k.startswith("POWERTRADER_")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, str(ROOT / "pt_hub.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_status_shows_the_data_and_starts_the_demo_clock_once(tmp_path: Path) -> None:
    result = run_hub("--status", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "DEMO: bundled real history" in result.stdout
    btc = next(line for line in result.stdout.splitlines() if line.startswith("BTC "))
    assert "76,543" in btc and "2017-08-17 04:00" in btc and "28 (128 h missing)" in btc
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["mode"] == "demo"
    assert "BTC   missing   no thinker running" in result.stdout
    assert "demo clock started at 2024-01-01 00:00 UTC, running 60x" in result.stdout
    assert (tmp_path / "state" / "clock.json").exists()
    again = run_hub("--status", "--data-dir", str(tmp_path))
    assert "demo clock started" not in again.stdout  # started once; the clock keeps running
    assert (tmp_path / "logs" / "hub.jsonl").exists()


def test_without_a_display_it_runs_headless_trains_starts_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    """No DISPLAY: the hub says so, trains the untrained coin, starts the thinker, prints its
    table; SIGINT (Ctrl-C) stops every child and exits 0.

    The hub starts as a terminal's foreground program does, with SIGINT not ignored: a suite
    started in the background by a shell (``make test &``) ignores it, a child would inherit
    the ignore (Python keeps one it starts with) and Ctrl-C would do nothing. A handler set
    here is reset to the default in the child."""
    (tmp_path / "settings.json").write_text(json.dumps({"coins": ["DOGE"]}))
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env = {k: v for k, v in env.items() if not k.startswith("POWERTRADER_")}
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # see below
    try:
        proc = subprocess.Popen(
            [sys.executable, "-u", str(ROOT / "pt_hub.py"), "--data-dir", str(tmp_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, before)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 90
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if "thinker" in line and "running" in line:
                break
            assert time.monotonic() < deadline, "".join(seen)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(seen) + out
    assert proc.returncode == 0, err
    assert "no display found (DISPLAY is not set): running headless" in text
    assert "training DOGE first" in text
    assert "DOGE  trained" in text and "stopping every worker" in text
    assert "Traceback" not in err
    for name in ("thinker", "trainer-DOGE"):
        assert (tmp_path / "logs" / f"{name}.out").exists()
    assert not _running(tmp_path / "state" / "heartbeat-thinker.json")


def _running(heartbeat: Path) -> bool:
    """Whether the process that wrote this heartbeat is still alive."""
    pid = json.loads(heartbeat.read_text())["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_resume_trading_writes_the_request_the_trader_reads(tmp_path: Path) -> None:
    before = time.time()
    result = run_hub("--resume-trading", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Resume requested: the trader releases the drawdown stop")
    asked = read_risk_resume(DataLayout(tmp_path))
    assert asked is not None and asked >= before
    assert not (tmp_path / "state" / "clock.json").exists()  # nothing else was started


def test_headless_flag_skips_the_display_check(tmp_path: Path) -> None:
    result = run_hub("--status", env_extra={"POWERTRADER_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "running headless" not in result.stdout
    assert f"data folder  {tmp_path}" in result.stdout


def test_invalid_settings_stop_the_start_with_every_problem(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"trade_start_level": 0, "coins": ["BTC", "BTC"]}))
    result = run_hub("--headless", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "PowerTrader AI cannot start" in result.stderr
    assert "trade_start_level = 0" in result.stderr and "coin listed twice: BTC" in result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(settings.read_text())["trade_start_level"] == 0  # the file is untouched


def test_a_data_folder_that_is_a_file_is_explained(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_hub("--headless", "--data-dir", str(blocker / "data"))
    assert result.returncode == 2
    assert str(blocker) in result.stderr and "--data-dir" in result.stderr
    assert "Traceback" not in result.stderr


def test_coins_without_bundled_history_are_named(tmp_path: Path) -> None:
    result = run_hub("--status", "--data-dir", str(tmp_path),
                     env_extra={"POWERTRADER_COINS": "BTC,SOL"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "no bundled history for SOL" in result.stdout


def test_model_status_per_coin_is_shown(tmp_path: Path) -> None:
    from dataclasses import replace

    from pt_models import save_model
    from pt_state import DataLayout
    from tests.test_models import model

    trained = model("BTC")
    demo_start = 1_704_067_200.0  # 2024-01-01, the default demo start
    save_model(
        DataLayout(tmp_path), replace(trained, meta=replace(trained.meta, trained_at=demo_start))
    )
    result = run_hub("--status", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "BTC   trained   no thinker running" in result.stdout
    assert "ETH   missing" in result.stdout
