"""Take the README's pictures of the hub from a real demo run (needs Xvfb).

``python docs/make_screenshots.py [--seconds 90]``: a fresh demo data folder with the five bundled
coins, trained by the real trainer; the hub window on a virtual display presses Start All, runs
the demo clock at 40,000x (about 11 simulated hours per second) from 2024-01-01, and after
``--seconds`` saves the TRADING tab (the chart of a coin in a trade when there is one), the
ACCOUNT chart and the ANALYTICS tab into docs/images/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import tkinter as tk
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pt_config  # noqa: E402
from pt_gui_hub import HubWindow  # noqa: E402
from pt_hub_engine import HubEngine  # noqa: E402
from pt_replay import start_clock  # noqa: E402
from pt_state import DataLayout  # noqa: E402
from pt_supervisor import Supervisor  # noqa: E402
from tests.gui_support import pump, screenshot, virtual_display  # noqa: E402

COINS = ("BTC", "ETH", "XRP", "BNB", "DOGE")
SIM_START = 1_704_067_200.0  # 2024-01-01 UTC: the default demo start
SETTINGS = {"coins": list(COINS), "trade_start_level": 2, "start_allocation_pct": 2.0,
            "predictor": {"signal_seconds": 0.5}, "trader": {"tick_seconds": 0.5}}  # fmt: skip
IMAGES = ROOT / "docs" / "images"


def train(layout: DataLayout) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTRADER_")}
    for coin in COINS:
        subprocess.run(
            [sys.executable, "pt_trainer.py", "--data-dir", str(layout.root), coin],
            cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip


def run(layout: DataLayout, seconds: float) -> None:
    root = tk.Tk(className="PowerTrader")
    engine = HubEngine(layout, Supervisor(layout)).start()
    window = HubWindow(root, layout, engine, first_run=False)
    try:
        while window.status is None or not window.status.all_trained:
            pump(root, 0.2)
        window.start_all()
        while window.status is None or window.status.supervisor.start_all != "running":
            pump(root, 0.2)
        window.set_speed(40_000.0)
        pump(root, seconds)
        held = [c for c, pos in _positions(window).items() if pos]
        window.open_chart(held[0] if held else "BTC")
        pump(root, 3.0)
        _save(root, "hub-trading")
        window.charts.open("ACCOUNT")
        pump(root, 3.0)
        _save(root, "hub-account")
        window.show_tab(window.analytics)
        window.analytics.refresh_now()
        pump(root, 3.0)
        _save(root, "analytics-tab")
    finally:
        window.close()


def _positions(window: HubWindow) -> dict[str, bool]:
    """Which coins the trader holds (from its status file, as the hub read it)."""
    trader = window.status.trader if window.status else None
    rows = (trader or {}).get("coins") or []
    return {str(r.get("coin")): bool(r.get("quantity")) for r in rows if isinstance(r, dict)}


def _save(root: tk.Tk, name: str) -> None:
    shot = screenshot(root, name)
    target = IMAGES / f"{name}.png"
    target.write_bytes(shot.read_bytes())
    print(f"saved {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0, help="demo time before the pictures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pt-shots-") as tmp, virtual_display():
        layout = DataLayout(Path(tmp)).ensure()
        pt_config.save(layout.settings_file, pt_config.parse(SETTINGS))
        start_clock(layout, sim_start=SIM_START, speed=0)
        began = time.monotonic()
        train(layout)
        print(f"trained {len(COINS)} coins in {time.monotonic() - began:.0f} s")
        run(layout, args.seconds)


if __name__ == "__main__":
    main()
