"""A tiny stand-in worker for the supervisor tests (copied as pt_thinker.py, pt_trader.py, ...).

``python -u <copy> --data-dir DIR [args]``: beats ``state/heartbeat-<name>.json`` every 0.05 s
through the real :mod:`pt_state` writer, obeys the real control file (STOP exits 0), and does
whatever ``DIR/dummy-<name>.txt`` says, re-read every beat:

- ``beat`` (or no file): keep beating
- ``hang``: stop beating but keep running (and ignore SIGTERM: only SIGKILL ends it)
- ``exit N``: exit with code N now
- ``ready``: (thinker) also write ``state/signals.json`` with stage READY
The project's modules come from ``PYTHONPATH``. The first line of standard input, when there
is one, is saved to ``DIR/dummy-<name>.stdin``.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from pt_signals import SIGNALS_SCHEMA, SignalsSnapshot, Stage, snapshot_to_data
from pt_state import DataLayout, StateWriter, read_control, write_heartbeat
from pt_types import ControlCommand


def main() -> int:
    name = Path(sys.argv[0]).stem.removeprefix("pt_")
    layout = DataLayout(Path(sys.argv[sys.argv.index("--data-dir") + 1]))
    if name == "trainer":
        name = f"trainer-{sys.argv[-1]}"
    if "--passphrase-stdin" in sys.argv:
        (layout.root / f"dummy-{name}.stdin").write_text(sys.stdin.readline())
    command_file = layout.root / f"dummy-{name}.txt"
    signals = StateWriter(layout.signals_file, SIGNALS_SCHEMA)
    while True:
        command = command_file.read_text().strip() if command_file.exists() else "beat"
        if read_control(layout, name) is ControlCommand.STOP:
            return 0
        if command.startswith("exit"):
            return int(command.split()[1])
        if command == "hang":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(0.05)
            continue
        write_heartbeat(layout, name, status=command)
        if command == "ready":
            snap = SignalsSnapshot(Stage.READY, "all ready", time.time(), ())
            signals.write(snapshot_to_data(snap))
        time.sleep(0.05)


if __name__ == "__main__":
    raise SystemExit(main())
