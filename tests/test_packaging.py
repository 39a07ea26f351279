"""Ways to start the hub: the ``powertrader`` command, ``pt_hub.pyw`` and the Linux launcher."""

from __future__ import annotations

import configparser
import os
import shlex
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pt_desktop

ROOT = Path(__file__).resolve().parent.parent


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTRADER_")}
    env.pop("DISPLAY", None)
    return env | extra


def test_every_module_is_in_the_package() -> None:
    """A module missing from py-modules would be missing from an installed ``powertrader``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = project["tool"]["setuptools"]["py-modules"]
    assert listed == sorted(p.stem for p in ROOT.glob("pt_*.py"))
    assert project["project"]["scripts"] == {"powertrader": "pt_hub:main"}


def test_the_powertrader_command_runs_the_hub(tmp_path: Path) -> None:
    command = Path(sys.executable).parent / "powertrader"
    assert command.exists(), "install the project first: make test does (pip install -e .)"
    done = subprocess.run(
        [str(command), "--status", "--data-dir", str(tmp_path)],
        check=False, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "demo" in done.stdout.lower()
    assert (tmp_path / "settings.json").exists()


def test_pyw_runs_without_standard_streams(tmp_path: Path) -> None:
    """pythonw gives no stdout/stderr (sys.stdout is None): the hub must still start."""
    script = f"exec {shlex.quote(sys.executable)} pt_hub.pyw --status --data-dir " + shlex.quote(
        str(tmp_path)
    )
    done = subprocess.run(
        ["sh", "-c", script + " >&- 2>&-"], check=False, cwd=ROOT, env=clean_env(), timeout=60
    )
    assert done.returncode == 0
    assert (tmp_path / "settings.json").exists()


def test_the_desktop_launcher(tmp_path: Path) -> None:
    python = Path("/opt/my pythons/bin/python3")
    text = pt_desktop.desktop_entry(python, ROOT / "pt_hub.py", pt_desktop.ICON)
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    entry.read_string(text)
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application" and section["Terminal"] == "false"
    assert shlex.split(section["Exec"]) == [str(python), str(ROOT / "pt_hub.py")]
    assert section["Path"] == str(ROOT)
    assert Path(section["Icon"]).is_file()

    home = tmp_path / "home"
    (home / "Desktop").mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "pt_desktop.py"],
        cwd=ROOT, env=clean_env(HOME=str(home), XDG_DATA_HOME=str(tmp_path / "share")),
        check=False, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    installed = [tmp_path / "share" / "applications" / pt_desktop.FILE_NAME,
                 home / "Desktop" / pt_desktop.FILE_NAME]  # fmt: skip
    for path in installed:
        assert f"installed {path}" in done.stdout
        assert path.stat().st_mode & stat.S_IXUSR
        assert f"Exec={shlex.quote(sys.executable)} " in path.read_text(encoding="utf-8")
