"""Something to double-click on Linux: a ``.desktop`` launcher for the hub (``make desktop``).

The launcher runs this checkout's ``pt_hub.py`` with the Python that runs this script (the
project's ``.venv`` under ``make desktop``), from the checkout's folder, so the hub finds its
bundled history and the data folder it always uses. It is written to the user's applications
menu (``$XDG_DATA_HOME/applications``, default ``~/.local/share/applications``) and, when the
user has a desktop folder, there too, marked trusted where the desktop supports it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILE_NAME = "powertrader-ai.desktop"
ICON = HERE / "docs" / "images" / "icon.png"


def desktop_entry(python: Path, hub: Path, icon: Path) -> str:
    """The launcher's text (freedesktop Desktop Entry 1.5); paths are quoted for Exec."""
    exec_line = " ".join(shlex.quote(str(p)) for p in (python, hub))
    return "\n".join(
        (
            "[Desktop Entry]",
            "Type=Application",
            "Version=1.5",
            "Name=PowerTrader AI",
            "GenericName=Crypto trading bot",
            "Comment=Train, start and watch the PowerTrader AI trading bot (demo mode by default)",
            f"Exec={exec_line}",
            f"Path={hub.parent}",
            f"Icon={icon}",
            "Terminal=false",
            "Categories=Office;Finance;",
            "StartupWMClass=PowerTrader",
            "",
        )
    )


def targets(env: Mapping[str, str], home: Path) -> list[Path]:
    """Where the launcher goes: the applications menu, and the desktop folder if there is one."""
    data_home = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
    found = [data_home / "applications" / FILE_NAME]
    desktop = Path(env.get("XDG_DESKTOP_DIR") or home / "Desktop")
    if desktop.is_dir():
        found.append(desktop / FILE_NAME)
    return found


def install(paths: Sequence[Path], text: str) -> list[Path]:
    """Write ``text`` to every path (executable, as desktops require to launch it)."""
    written = []
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IRUSR | stat.S_IWUSR)
        written.append(path)
        _trust(path)
    return written


def _trust(path: Path) -> None:
    """GNOME asks before running an untrusted launcher on the desktop; mark ours trusted."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):  # no gio: not GNOME
        subprocess.run(
            ["gio", "set", str(path), "metadata::trusted", "true"],
            check=False,
            capture_output=True,
            timeout=5,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pt_desktop.py", description="Install the PowerTrader AI launcher (Linux)"
    )
    parser.add_argument("--python", default=sys.executable, help="Python that runs the hub")
    parser.add_argument("--print", action="store_true", help="print the launcher, write nothing")
    args = parser.parse_args(argv)
    text = desktop_entry(Path(args.python), HERE / "pt_hub.py", ICON)
    if args.print:
        print(text, end="")  # noqa: T201  (CLI)
        return 0
    if sys.platform == "win32":
        print("On Windows, double-click pt_hub.pyw instead.")  # noqa: T201  (CLI)
        return 2
    for path in install(targets(os.environ, Path.home()), text):
        print(f"installed {path}")  # noqa: T201  (CLI)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
