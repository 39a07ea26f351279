"""How a worker process (thinker, trader) starts and stops: one place for the start-up steps.

Data folder, settings (watched for hot reload), logging as the settings say, the single-instance
lock, the process's notifications (:class:`pt_notify_runtime.ProcessNotifier`, also the
CRITICAL-log hook), and SIGTERM as a clean exit, with the exit codes the hub's supervisor relies
on: 0 stopped, 1 another instance already runs for this data folder, 2 cannot start. A crash
(an exception out of the body) is logged CRITICAL, so it is also notified, before it propagates.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from types import FrameType

from pt_config import SettingsError, SettingsWatcher
from pt_config_schema import LoggingSettings
from pt_locks import SingleInstanceLock
from pt_logging import setup_logging
from pt_notify_runtime import ProcessNotifier
from pt_state import AlreadyRunningError, DataDirError, DataLayout, resolve_data_dir

log = logging.getLogger(__name__)

EXIT_STOPPED, EXIT_ALREADY_RUNNING, EXIT_CANNOT_START = 0, 1, 2

Body = Callable[[DataLayout, SettingsWatcher, ProcessNotifier], int]


def worker_parser(
    prog: str, description: str, *, once: str, passphrase_for: str
) -> argparse.ArgumentParser:
    """The command line every worker shares: ``--data-dir``, ``--once`` and
    ``--passphrase-stdin`` (the hub hands the passphrase over on standard input, never on the
    command line, where other users could read it)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--data-dir", help="data folder (default: $POWERTRADER_HOME or ./user_data)"
    )
    parser.add_argument("--once", action="store_true", help=once)
    parser.add_argument(
        "--passphrase-stdin",
        action="store_true",
        help=f"read the passphrase of the stored secrets ({passphrase_for}) from the first line "
        "of stdin",
    )
    return parser


def read_passphrase(args: argparse.Namespace) -> str | None:
    """The passphrase from standard input when ``--passphrase-stdin`` was given."""
    return sys.stdin.readline().rstrip("\r\n") if args.passphrase_stdin else None


def setup_process_logging(proc: str, layout: DataLayout, cfg: LoggingSettings) -> None:
    """Logging as the settings' ``logging`` section says (every worker, the trainer too)."""
    setup_logging(proc, layout.root, cfg.level, console=cfg.console, max_bytes=cfg.max_bytes,
                  backup_count=cfg.backup_count)  # fmt: skip


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(EXIT_STOPPED)  # unwinds through the body's finally blocks


def run_process(
    proc: str, data_dir: str | None, body: Body, *, passphrase: str | None = None
) -> int:
    """Set the process up, run ``body(layout, watcher, notifier)``, and always release the
    lock and send what is queued. ``passphrase``: of the secrets file, when the hub gave it."""
    try:
        layout = DataLayout(resolve_data_dir(data_dir)).ensure()
        watcher = SettingsWatcher(layout.settings_file)
    except (DataDirError, SettingsError) as exc:
        sys.stderr.write(f"{proc} cannot start: {exc}\n")
        return EXIT_CANNOT_START
    setup_process_logging(proc, layout, watcher.current.logging)
    lock = SingleInstanceLock(layout.lock_file(proc))
    try:
        lock.acquire()
    except AlreadyRunningError as exc:
        sys.stderr.write(f"{proc} not started: {exc}\n")
        return EXIT_ALREADY_RUNNING
    signal.signal(signal.SIGTERM, _terminate)
    log.info("%s started for %s in %s mode", proc, layout.root, watcher.current.mode.value)
    notifier = ProcessNotifier(layout, proc, passphrase=passphrase).install()
    try:
        notifier.update(watcher.current)
        return body(layout, watcher, notifier)
    except KeyboardInterrupt:
        return EXIT_STOPPED
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:
        log.critical("%s crashed: %s: %s", proc, type(exc).__name__, exc, exc_info=True)
        raise
    finally:
        notifier.close()
        lock.release()
