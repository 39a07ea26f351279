"""PowerTrader AI hub: the program a person starts.

``python pt_hub.py`` opens the window; ``--headless`` runs the same supervisor without one
(trains the coins that need it, then Start All, and prints a status table until Ctrl-C);
``--status`` prints what the data folder holds and exits. Without a display the hub says so and
runs headless rather than failing with a Tk traceback. In live mode the headless hub trades only
with ``--confirm-live``.
"""

from __future__ import annotations

import argparse
import calendar
import getpass
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pt_config
import pt_ohlcv
from pt_candles import find_gaps
from pt_config_schema import Settings
from pt_hub_engine import HubEngine, HubStatus, hub_engine, passphrase_reason, status_table
from pt_logging import setup_logging
from pt_models import model_status
from pt_replay import read_clock, sim_time, start_clock
from pt_secrets_vault import read_header
from pt_state import DataDirError, DataLayout, resolve_data_dir, write_risk_resume
from pt_thinker import read_signals
from pt_types import HOUR, Mode

log = logging.getLogger(__name__)

HEADLESS_EVERY = 5.0  # seconds between status tables

VERSION = (Path(__file__).resolve().parent / "VERSION.md").read_text(encoding="utf-8").strip()
MODE_LINES = {
    Mode.DEMO: "DEMO: bundled real history on a simulated clock, paper wallet; no network, no keys",
    Mode.PAPER: "PAPER: live public prices, paper wallet; no real orders",
    Mode.LIVE: "LIVE: real orders on Robinhood with real money",
}


@dataclass(frozen=True)
class CoinHistory:
    """What the bundled data holds for one coin."""

    coin: str
    rows: int
    first: int
    last: int
    gap_count: int
    missing_hours: int


def display_problem() -> str | None:
    """Why a window cannot be opened here, or None when it can."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display found (DISPLAY is not set)"
    try:
        import tkinter  # noqa: PLC0415  (only when a window is wanted)

        root = tkinter.Tk()
        root.destroy()
    except Exception as exc:  # any Tcl/Tk start-up failure means no usable display
        return f"the display cannot be opened ({exc})"
    return None


def bundled_history(coins: Sequence[str]) -> list[CoinHistory]:
    available = set(pt_ohlcv.bundled_coins())
    found = []
    for coin in coins:
        if coin not in available:
            continue
        candles = pt_ohlcv.load_bundled(coin)
        gaps = find_gaps(candles, HOUR)
        found.append(
            CoinHistory(
                coin,
                len(candles),
                int(candles.time[0]),
                int(candles.time[-1]),
                len(gaps),
                sum(g.missing for g in gaps),
            )
        )
    return found


def _utc(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


def status_report(layout: DataLayout, settings: Settings, history: list[CoinHistory]) -> str:
    """The plain-text status the headless hub prints."""
    lines = [
        f"PowerTrader AI {VERSION}",
        f"mode         {MODE_LINES[settings.mode]}",
        f"data folder  {layout.root}",
        f"settings     {layout.settings_file}",
        f"coins        {', '.join(settings.coins)}",
        "",
        f"{'coin':<6}{'1h candles':>11}  {'first (UTC)':<17} {'last (UTC)':<17} gaps",
    ]
    lines += [
        f"{h.coin:<6}{h.rows:>11,}  {_utc(h.first):<17} {_utc(h.last):<17} "
        f"{h.gap_count} ({h.missing_hours} h missing)"
        for h in history
    ]
    missing = [c for c in settings.coins if c not in {h.coin for h in history}]
    if missing:
        lines.append(f"no bundled history for {', '.join(missing)} (demo mode cannot trade them)")
    lines += predictor_lines(layout, settings, time.time())
    return "\n".join(lines)


def mode_now(layout: DataLayout, settings: Settings, wall_now: float) -> float:
    """The mode's clock: simulated in demo (the demo start until the clock is started)."""
    if settings.mode is not Mode.DEMO:
        return wall_now
    state = read_clock(layout)
    if state is not None:
        return sim_time(state, wall_now)
    return calendar.timegm(time.strptime(settings.demo.start, "%Y-%m-%d"))


def predictor_lines(layout: DataLayout, settings: Settings, wall_now: float) -> list[str]:
    """Each coin's model, and its latest levels when the thinker wrote them recently."""
    now = mode_now(layout, settings, wall_now)
    snapshot = read_signals(layout)
    fresh = snapshot is not None and snapshot.age(wall_now) < 60
    lines = ["", f"{'coin':<6}{'model':<10}{'signal'}"]
    for coin in settings.coins:
        status = model_status(layout, coin, now)
        trained = f"{status.state:<10}"
        signal = snapshot.coin(coin) if fresh and snapshot is not None else None
        if signal is None:
            levels = "no thinker running" if not fresh else "not in the thinker's signals"
        elif signal.long_level is None or signal.short_level is None:
            levels = f"{signal.status.value}: {signal.reason}"
        else:
            levels = f"LONG {signal.long_level}  SHORT {signal.short_level}  at {signal.price:g}"
        lines.append(f"{coin:<6}{trained}{levels}")
    return lines


def ensure_demo_clock(layout: DataLayout, settings: Settings, wall_now: float) -> str | None:
    """Start the demo clock at ``demo.start`` if demo mode has none yet (the hub is its only
    writer); returns a line saying so, or None when nothing was done."""
    if settings.mode is not Mode.DEMO or read_clock(layout) is not None:
        return None
    start = mode_now(layout, settings, wall_now)
    start_clock(layout, sim_start=start, speed=settings.demo.speed, wall_clock=lambda: wall_now)
    return (
        f"demo clock started at {_utc(int(start))} UTC, running {settings.demo.speed:g}x "
        "(simulated seconds per real second)"
    )


def prepare(data_dir: str | None) -> tuple[DataLayout, Settings]:
    """Data folder, logging and settings; writes settings.json with defaults on first run."""
    layout = DataLayout(resolve_data_dir(data_dir)).ensure()
    setup_logging("hub", layout.root)
    settings = pt_config.load(layout.settings_file)
    if not layout.settings_file.exists():
        pt_config.save(layout.settings_file, settings)
        log.info("wrote default settings to %s", layout.settings_file)
    return layout, settings


def run_headless(
    layout: DataLayout,
    settings: Settings,
    *,
    confirm_live: bool,
    every: float = HEADLESS_EVERY,
) -> int:
    """Train what needs it, Start All, print the status table every few seconds; Ctrl-C (or
    SIGTERM) stops every child before returning."""
    engine = hub_engine(layout).start()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        status = _wait_status(engine)
        untrained = [c.coin for c in status.coins if c.state != "trained"]
        if untrained:
            print(f"training {', '.join(untrained)} first", flush=True)  # noqa: T201
            engine.train(untrained)
        started = False
        while True:
            status = _wait_status(engine)
            if not started and status.all_trained and not any_training(status):
                started = True
                if settings.mode is Mode.LIVE and not confirm_live:
                    print(LIVE_REFUSAL, flush=True)  # noqa: T201
                else:
                    engine.start_all(start_passphrase(layout, settings))
            print(status_table(status), "\n", sep="", flush=True)  # noqa: T201
            time.sleep(every)
    except KeyboardInterrupt:
        print("stopping every worker...", flush=True)  # noqa: T201
    finally:
        engine.close()
    return 0


LIVE_REFUSAL = (
    "LIVE mode: not trading from a headless start without --confirm-live "
    "(real orders, real money). Status only."
)


def any_training(status: HubStatus) -> bool:
    return any(c.state == "training" for c in status.coins)


def start_passphrase(layout: DataLayout, settings: Settings) -> str | None:
    """The passphrase of a passphrase-locked secrets file, asked on the terminal when live
    trading or a notification channel needs it."""
    header = read_header(layout)
    why = passphrase_reason(
        settings, *((header.key_source, header.names) if header else (None, ()))
    )
    if not why:
        return None
    return getpass.getpass(f"Passphrase of the PowerTrader secrets (for {why}): ") or None


def _wait_status(engine: HubEngine) -> HubStatus:
    return engine.statuses.get(timeout=60)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="PowerTrader AI hub")
    parser.add_argument(
        "--data-dir", help="data folder (default: $POWERTRADER_HOME or ./user_data)"
    )
    parser.add_argument("--headless", action="store_true", help="run without a window until Ctrl-C")
    parser.add_argument("--status", action="store_true", help="print the status and exit")
    parser.add_argument(
        "--confirm-live", action="store_true", help="headless: allow trading in live mode"
    )
    parser.add_argument(
        "--resume-trading", action="store_true",
        help="release the drawdown stop (the Resume trading button of the window) and exit",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        layout, settings = prepare(args.data_dir)
    except (DataDirError, pt_config.SettingsError) as exc:
        print(f"PowerTrader AI cannot start:\n{exc}", file=sys.stderr)  # noqa: T201  (CLI)
        return 2
    if args.resume_trading:
        write_risk_resume(layout)
        print("Resume requested: the trader releases the drawdown stop at its next tick and "  # noqa: T201
              "measures the drawdown from there.")  # fmt: skip
        return 0
    started = ensure_demo_clock(layout, settings, time.time())
    if args.status:
        out = [started] if started else []
        out.append(status_report(layout, settings, bundled_history(settings.coins)))
        print("\n".join(out))  # noqa: T201  (CLI output)
        return 0
    headless = args.headless
    if not headless:
        problem = display_problem()
        if problem:
            print(f"{problem}: running headless (python pt_hub.py --headless).")  # noqa: T201
            headless = True
    if started:
        print(started, flush=True)  # noqa: T201
    if headless:
        return run_headless(layout, settings, confirm_live=args.confirm_live)
    from pt_gui_hub import run_window  # noqa: PLC0415  (Tk only when a window is wanted)

    return run_window(layout, settings, first_run=started is not None)


if __name__ == "__main__":
    raise SystemExit(main())
