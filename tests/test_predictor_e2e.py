"""End to end in demo mode: train two coins with the real trainer, run the real thinker until
its signals are ready, then stop it through its control file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pt_config
from pt_models import load_meta
from pt_replay import start_clock
from pt_state import DataLayout, write_control
from pt_thinker import read_signals
from pt_types import ControlCommand

ROOT = Path(__file__).resolve().parent.parent
SIM_START = 1_577_836_800.0  # 2020-01-01 00:00 UTC


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("POWERTRADER_")}


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def test_train_two_coins_then_the_thinker_gets_ready(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path).ensure()
    settings = {"coins": ["BTC", "ETH"], "predictor": {"signal_seconds": 0.2}}
    pt_config.save(layout.settings_file, pt_config.parse(settings))
    start_clock(layout, sim_start=SIM_START, speed=600)

    for coin in ("BTC", "ETH"):
        result = subprocess.run(
            [sys.executable, str(ROOT / "pt_trainer.py"), coin, "--data-dir", str(tmp_path)],
            capture_output=True, text=True, env=env(), timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        meta = load_meta(layout, coin)
        assert meta.data_to < SIM_START  # nothing from the replay's future was learned
        assert set(meta.accuracy) == {"1h", "2h", "4h", "8h", "12h", "1d", "1w"}
        progress = json.loads(layout.trainer_file(coin).read_text())["data"]
        assert (progress["state"], progress["percent"]) == ("finished", 100)

    thinker = subprocess.Popen(
        [sys.executable, str(ROOT / "pt_thinker.py"), "--data-dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env(),
    )  # fmt: skip
    try:
        wait_for(lambda: (s := read_signals(layout)) is not None and s.stage.value == "ready")
        snapshot = read_signals(layout)
        assert snapshot is not None and snapshot.ready_coins == ("BTC", "ETH")
        for coin in ("BTC", "ETH"):
            signal = snapshot.signal(coin)
            assert signal is not None and 0 <= signal.long_level <= 7
            assert 0 <= signal.short_level <= 7 and signal.price > 0
            assert signal.model_version == load_meta(layout, coin).model_id
            assert signal.time >= SIM_START
        write_control(layout, "thinker", ControlCommand.STOP)
        assert thinker.wait(timeout=30) == 0
    finally:
        if thinker.poll() is None:
            thinker.kill()
            thinker.wait()
    assert "Traceback" not in (thinker.stderr.read() if thinker.stderr else "")
