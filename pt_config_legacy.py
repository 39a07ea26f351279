"""Import of the original program's ``gui_settings.json`` into ``settings.json``.

The trading keys have the same names and meaning, so they carry over as they are; timeframe
names are translated (``1hour`` → ``1h``); the original's folder and script paths are dropped
because the data folder replaced them. Nothing is written unless the result validates, and an
existing ``settings.json`` is backed up first.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pt_config
from pt_config_schema import Settings
from pt_types import ORIGINAL_TIMEFRAME_NAMES

log = logging.getLogger(__name__)

CARRIED_KEYS = frozenset(
    {
        "coins",
        "trade_start_level",
        "start_allocation_pct",
        "dca_multiplier",
        "dca_levels",
        "max_dca_buys_per_24h",
        "pm_start_pct_no_dca",
        "pm_start_pct_with_dca",
        "trailing_gap_pct",
        "default_timeframe",
        "timeframes",
        "candles_limit",
        "ui_refresh_seconds",
        "chart_refresh_seconds",
        "auto_start_scripts",
    }
)
DROPPED_KEYS = {
    "main_neural_dir": "models now live in the data folder (models/<COIN>/)",
    "hub_data_dir": "shared files now live in the data folder (state/)",
    "script_neural_runner2": "the processes are started from the program's own folder",
    "script_neural_trainer": "the processes are started from the program's own folder",
    "script_trader": "the processes are started from the program's own folder",
}


@dataclass(frozen=True)
class ImportReport:
    """What an import did: the settings written, and every key it did not carry over (why)."""

    settings: Settings
    carried: tuple[str, ...]
    dropped: tuple[tuple[str, str], ...]
    backup: Path | None


def _translate(key: str, value: Any) -> Any:
    if key == "default_timeframe" and isinstance(value, str):
        return ORIGINAL_TIMEFRAME_NAMES.get(value, value)
    if key == "timeframes" and isinstance(value, list):
        return [ORIGINAL_TIMEFRAME_NAMES.get(v, v) if isinstance(v, str) else v for v in value]
    if key == "start_allocation_pct" and isinstance(value, str):
        # The original's dialog accepted "0.5%"; keep that meaning.
        try:
            return float(value.replace("%", "").strip())
        except ValueError:
            return value
    return value


def convert(original: dict[str, Any], base: dict[str, Any]) -> tuple[dict[str, Any], ImportReport]:
    """Merge the original's values onto ``base`` (the current settings data). Pure."""
    merged = json.loads(json.dumps(base))
    carried: list[str] = []
    dropped: list[tuple[str, str]] = []
    for key, value in original.items():
        if key in CARRIED_KEYS:
            merged[key] = _translate(key, value)
            carried.append(key)
        else:
            dropped.append((key, DROPPED_KEYS.get(key, "not a setting of this version")))
    settings = pt_config.parse(merged, source="gui_settings.json")
    report = ImportReport(settings, tuple(carried), tuple(dropped), None)
    return pt_config.to_data(settings), report


def import_gui_settings(
    original_path: Path, settings_path: Path, *, clock: Callable[[], float] = time.time
) -> ImportReport:
    """Import ``original_path`` into ``settings_path``; raises SettingsError and writes nothing
    if the original's values are invalid here."""
    try:
        original = json.loads(original_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise pt_config.SettingsError(
            [pt_config.SettingsProblem("", str(original_path), f"cannot read it: {exc}")],
            original_path,
        ) from exc
    if not isinstance(original, dict):
        raise pt_config.SettingsError(
            [pt_config.SettingsProblem("", type(original).__name__, "expected a JSON object")],
            original_path,
        )
    base = pt_config.to_data(pt_config.parse(pt_config.read_file(settings_path)))
    data, report = convert(original, base)
    backup = None
    if settings_path.exists():
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(clock()))
        backup = settings_path.with_name(f"{settings_path.name}.bak-{stamp}")
        shutil.copy2(settings_path, backup)
    pt_config.save(settings_path, data)
    for key, why in report.dropped:
        log.info("gui_settings.json: %s not imported: %s", key, why)
    return ImportReport(report.settings, report.carried, report.dropped, backup)
