"""The hub with 20 coins in demo mode at high speed: first paint, Tk callback latency, memory.

Run from anywhere (needs Xvfb): ``python benchmarks/bench_hub.py [--runs N] [--seconds S]``.

The targets (issue "The hub"): hub start to first paint under 3 s; no Tk callback longer than
100 ms; hub memory under 250 MB.

Set-up, once: a copy of the program in a temporary folder whose bundled history holds 20
coins (the 5 real ones, and 15 more names replaying copies of them, so every coin has candles,
a model, signals and trades), and a demo data folder with all 20 coins trained by the real
``pt_trainer.py``. Each run then starts a fresh copy of that data folder and, in a new process
(so imports count), builds the real hub window on a virtual display, presses Start All, runs the
demo clock at 40,000x and, while the thinker and trader work, switches tabs every 1.5 s (each
visit to TRADING opens another coin's chart). Measured in that process:

- *first paint*: from the process's first line to the first status drawn in the window;
- *callback latency*: an ``after(20 ms)`` probe records how late it runs; a Tk callback that
  takes X ms makes the probe up to X ms late, so the maximum lateness bounds the longest one;
- *memory*: the hub process's peak resident set (``ru_maxrss``; the workers are separate
  processes and not counted).
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # first line: "hub start" for the first-paint figure

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REAL = ("BTC", "ETH", "XRP", "BNB", "DOGE")
EXTRA = ("ADA", "SOL", "DOT", "LTC", "LINK", "AVAX", "ATOM", "TRX", "ETC", "XLM",
         "NEAR", "ALGO", "FIL", "UNI", "AAVE")  # fmt: skip
COINS = REAL + EXTRA
SIM_START = 1_651_363_200.0  # 2022-05-01 UTC: the LUNA crash week, plenty of trades
SETTINGS = {
    "coins": list(COINS),
    "trade_start_level": 2,
    "start_allocation_pct": 2.0,
    "dca_multiplier": 1.0,
    "dca_levels": [-1.0, -2.0, -3.0],
    "pm_start_pct_no_dca": 1.0,
    "pm_start_pct_with_dca": 0.5,
    "trailing_gap_pct": 0.3,
    "predictor": {"signal_seconds": 0.5},
    "trader": {"tick_seconds": 0.5},
}
SPEED = 40_000.0
PROBE_MS = 20
TAB_EVERY_MS = 1500


def build_world(base: Path) -> tuple[Path, Path]:
    """A copy of the program with 20 coins of history, and a data folder trained for them."""
    program = base / "program"
    program.mkdir()
    for path in ROOT.glob("pt_*.py"):
        shutil.copy2(path, program / path.name)
    (program / "benchmarks").mkdir()
    shutil.copy2(Path(__file__), program / "benchmarks" / Path(__file__).name)
    history = program / "data" / "ohlcv"
    history.mkdir(parents=True)
    source = ROOT / "data" / "ohlcv"
    for i, coin in enumerate(COINS):
        real = REAL[i % len(REAL)]
        for span in ("1h", "1d"):
            name = f"{real}-USDT-{span}.csv.gz"
            (history / f"{coin}-USDT-{span}.csv.gz").symlink_to(source / name)
    data = base / "data"
    sys.path.insert(0, str(program))
    import pt_config  # noqa: PLC0415
    from pt_replay import start_clock  # noqa: PLC0415
    from pt_state import DataLayout  # noqa: PLC0415

    layout = DataLayout(data).ensure()
    pt_config.save(layout.settings_file, pt_config.parse(SETTINGS))
    start_clock(layout, sim_start=SIM_START, speed=0)
    began = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTRADER_")}
    for batch in range(0, len(COINS), 2):  # two at a time: one per core
        procs = [
            subprocess.Popen(
                [sys.executable, str(program / "pt_trainer.py"), "--data-dir", str(data), coin],
                cwd=program,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for coin in COINS[batch : batch + 2]
        ]
        if any(p.wait() != 0 for p in procs):
            raise SystemExit(f"training failed for {COINS[batch : batch + 2]}")
    print(f"set-up: trained {len(COINS)} coins in {time.perf_counter() - began:.0f} s")
    return program, data


def inside(data: Path, seconds: float) -> None:
    """One measured hub session (runs in the program copy, on the display in $DISPLAY)."""
    import tkinter as tk  # noqa: PLC0415

    from pt_gui_hub import HubWindow  # noqa: PLC0415
    from pt_hub_engine import HubEngine  # noqa: PLC0415
    from pt_state import DataLayout  # noqa: PLC0415
    from pt_supervisor import Supervisor  # noqa: PLC0415

    layout = DataLayout(data)
    slow = time_callbacks(tk)
    root = tk.Tk(className="PowerTrader")
    engine = HubEngine(layout, Supervisor(layout)).start()
    session = Session(root, HubWindow(root, layout, engine, first_run=False), seconds)
    root.after(1, session.first_paint)
    root.mainloop()
    figures = session.figures | summarise(session.lateness)
    figures |= {"late_by_tab": session.by_tab, "fills": fill_count(layout)}
    print("RESULT " + json.dumps(figures | {"slowest": sorted(slow, reverse=True)[:5]}))


class Session:
    """What happens in the window: Start All, full speed, a tab switch every 1.5 s, and the
    ``after()`` probe that measures how late the Tk loop runs (and in which tab)."""

    def __init__(self, root: Any, window: Any, seconds: float) -> None:
        self.root, self.window, self.seconds = root, window, seconds
        self.figures: dict[str, Any] = {}
        self.lateness: list[float] = []
        self.by_tab: dict[str, float] = {}
        self.visits = 0
        self.fast = False

    def first_paint(self) -> None:
        if self.window.applied == 0:
            self.root.after(5, self.first_paint)
            return
        self.root.update_idletasks()
        self.figures["first_paint_s"] = time.perf_counter() - STARTED
        self.window.start_all()
        self.root.after(PROBE_MS, self.probe, time.perf_counter() + PROBE_MS / 1000)
        self.root.after(TAB_EVERY_MS, self.switch)
        self.root.after(int(self.seconds * 1000), self.window.close)

    def probe(self, expected: float) -> None:
        late = max(0.0, time.perf_counter() - expected) * 1000
        self.lateness.append(late)
        tabs = self.window.tabs
        shown = str(tabs.tab(tabs.select(), "text"))
        self.by_tab[shown] = max(self.by_tab.get(shown, 0.0), round(late))
        self.root.after(PROBE_MS, self.probe, time.perf_counter() + PROBE_MS / 1000)

    def switch(self) -> None:
        window, status = self.window, self.window.status
        if not self.fast and status is not None and status.supervisor.start_all == "running":
            self.fast = True
            window.set_speed(SPEED)
        self.visits += 1
        tabs = window.tabs.tabs()
        tab = tabs[self.visits % len(tabs)]
        window.tabs.select(tab)
        if tab == str(window.trading):
            window.charts.open(["ACCOUNT", *COINS][self.visits % (len(COINS) + 1)])
        self.root.after(TAB_EVERY_MS, self.switch)


def time_callbacks(tk: Any) -> list[tuple[float, str]]:
    """Time every Python callback Tk makes (after, events, commands); keep those over 40 ms
    with their function's name, to say which one is slow when the probe is late. The window's
    close (which waits for the workers to stop, with the window already hidden) is left out."""
    slow: list[tuple[float, str]] = []
    original = tk.CallWrapper.__call__

    def timed(self: Any, *args: Any) -> Any:
        began = time.perf_counter()
        try:
            return original(self, *args)
        finally:
            ms = (time.perf_counter() - began) * 1000
            name = _name(self.func)
            if ms > 40 and not name.endswith("close"):
                slow.append((round(ms, 1), name))

    tk.CallWrapper.__call__ = timed
    return slow


def _name(func: Any, depth: int = 0) -> str:
    """The function that wrappers (``after()``'s, the panels' timers) finally call."""
    name = str(getattr(func, "__qualname__", repr(func)))
    owner = getattr(getattr(func, "__self__", None), "name", None)
    if isinstance(owner, str):  # a panel's Background: say which panel
        name += f"[{owner}]"
    if "<locals>" not in name or depth > 4:
        return name
    for cell in getattr(func, "__closure__", None) or ():
        inner = cell.cell_contents
        if callable(inner) and not isinstance(inner, type) and inner is not func:
            return _name(inner, depth + 1)
    return name


def summarise(lateness: list[float]) -> dict[str, float]:
    lateness = sorted(lateness)
    return {
        "probes": len(lateness),
        "late_max_ms": lateness[-1],
        "late_p99_ms": lateness[int(len(lateness) * 0.99)],
        "late_over_100": sum(1 for x in lateness if x > 100),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def fill_count(layout: object) -> int:
    from pt_journal_reader import JournalReader  # noqa: PLC0415
    from pt_types import Mode  # noqa: PLC0415

    db = layout.journal_db  # type: ignore[attr-defined]
    if not db.exists():
        return 0
    with JournalReader.open_readonly(db, mode=Mode.DEMO) as reader:
        return len(reader.fills())


def measure(program: Path, trained: Path, base: Path, run: int, seconds: float) -> dict[str, Any]:
    data = base / f"run-{run}"
    shutil.copytree(trained, data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTRADER_")}
    done = subprocess.run(
        [sys.executable, str(program / "benchmarks" / Path(__file__).name),
         "--inside", str(data), "--seconds", str(seconds)],
        cwd=program, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False,
    )  # fmt: skip
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"run {run} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return dict(json.loads(lines[-1][len("RESULT ") :]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=45.0, help="length of each session")
    parser.add_argument("--inside", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside is not None:
        inside(args.inside, args.seconds)
        return
    from tests.gui_support import virtual_display  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="pt-bench-hub-") as tmp, virtual_display():
        base = Path(tmp)
        program, trained = build_world(base)
        results = []
        for run in range(1, args.runs + 1):
            r = measure(program, trained, base, run, args.seconds)
            results.append(r)
            print(
                f"run {run}: first paint {r['first_paint_s']:.2f} s | callback lateness max "
                f"{r['late_max_ms']:.0f} ms, p99 {r['late_p99_ms']:.0f} ms, over 100 ms "
                f"{r['late_over_100']:.0f} of {r['probes']:.0f} | peak RSS {r['rss_mb']:.0f} MB "
                f"| fills {r['fills']:.0f}"
            )
            print(f"  slowest Python callbacks (ms): {r['slowest']}")
            print(f"  latest probe per tab shown (ms): {r['late_by_tab']}")
    med = {
        k: statistics.median(r[k] for r in results)
        for k in results[0]
        if k not in ("slowest", "late_by_tab")
    }
    print(
        f"median of {len(results)} ({len(COINS)} coins, demo at {SPEED:,.0f}x, "
        f"{args.seconds:.0f} s each): first paint {med['first_paint_s']:.2f} s (target < 3), "
        f"longest callback <= {med['late_max_ms']:.0f} ms (target < 100), "
        f"peak RSS {med['rss_mb']:.0f} MB (target < 250)"
    )


if __name__ == "__main__":
    main()
