"""DESIGN.md §3, enforced: layer direction, tkinter only in the GUI, no I/O in pure modules.

Every ``pt_*.py`` module must be placed in a layer below; a new module that is not fails this
test until someone decides where it belongs.
"""

from __future__ import annotations

import ast
import fnmatch
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. A module may import project modules of its own layer or a lower one.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("types", ("pt_types", "pt_errors")),
    (
        "pure",
        ("pt_candles", "pt_price_path", "pt_patterns", "pt_strategy", "pt_strategy_display",
         "pt_volume", "pt_correlation", "pt_position_sizing", "pt_risk", "pt_market_state",
         "pt_metrics", "pt_fills", "pt_backtest_engine", "pt_backtest_predictor",
         "pt_backtest_summary", "pt_backtest_montecarlo",
         "pt_config_schema", "pt_accuracy", "pt_training", "pt_signals", "pt_notify_format",
         "pt_format"),
    ),
    (
        "adapters",
        ("pt_config", "pt_config_legacy", "pt_state", "pt_locks", "pt_logging", "pt_ohlcv",
         "pt_http", "pt_exchanges", "pt_venue_*", "pt_thinker_exchanges", "pt_replay",
         "pt_candle_cache", "pt_models", "pt_process", "pt_broker", "pt_broker_paper",
         "pt_broker_robinhood", "pt_robinhood", "pt_robinhood_wire",
         "pt_journal_schema", "pt_journal_reader", "pt_journal", "pt_analytics",
         "pt_notifications", "pt_notify_channels", "pt_notify_runtime", "pt_notify_watch",
         "pt_market_watch",
         "pt_secrets",
         "pt_secrets_vault",
         "pt_secrets_keysource",
         "pt_trader_risk",
         "pt_trader_core", "pt_backtest_journal", "pt_backtest_report", "pt_backtest_optimize",
         "pt_backtest_cli", "pt_backtest_walkforward", "pt_backtest_wfreport",
         "pt_backtest_tables", "pt_backtest_optreport"),
    ),
    (
        "processes",
        ("pt_trainer", "pt_thinker", "pt_trader", "pt_backtester", "pt_supervisor",
         "pt_indicators_cli",
         "pt_hub_engine", "pt_desktop"),
    ),
    ("gui", ("pt_hub", "pt_analytics_dashboard", "pt_gui_*")),
)  # fmt: skip

# Modules a pure module may not import: they reach the network, disk, processes or clock.
IO_MODULES = frozenset(
    {"os", "sys", "io", "pathlib", "shutil", "tempfile", "glob", "gzip", "socket", "ssl",
     "requests", "urllib", "http", "subprocess", "multiprocessing", "threading", "asyncio",
     "sqlite3", "time", "logging", "signal", "select", "tkinter", "random"}
)  # fmt: skip
MAX_LINES = 800


@dataclass(frozen=True)
class Module:
    name: str
    source: str

    @property
    def tree(self) -> ast.Module:
        return ast.parse(self.source)


def layer_of(name: str) -> int | None:
    for index, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatch(name, p) for p in patterns):
            return index
    return None


def _is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` — a script's entry point, a composition root by
    definition: a pure module's command line may wire I/O there and only there."""
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def imported_names(tree: ast.Module) -> set[str]:
    """Top-level names of every import anywhere in the module (function-level ones too), except
    in its ``if __name__ == "__main__":`` block."""
    names: set[str] = set()
    body = ast.Module([n for n in tree.body if not _is_main_guard(n)], type_ignores=[])
    for node in ast.walk(body):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def calls_open(tree: ast.Module) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "open"
        for n in ast.walk(tree)
    )


def violations(module: Module) -> list[str]:
    """Every rule of DESIGN.md §3 that ``module`` breaks."""
    problems: list[str] = []
    layer = layer_of(module.name)
    if layer is None:
        return [f"{module.name}: not placed in a layer (add it to LAYERS in {Path(__file__).name})"]
    layer_name = LAYERS[layer][0]
    tree = module.tree
    for imported in sorted(imported_names(tree)):
        if imported == "pt_hub":
            problems.append(f"{module.name}: imports pt_hub (nothing may)")
        target = layer_of(imported) if imported.startswith("pt_") else None
        if target is not None and target > layer:
            problems.append(
                f"{module.name} ({layer_name}) imports {imported} ({LAYERS[target][0]}): "
                "arrows only point down"
            )
        if imported == "tkinter" and layer_name != "gui":
            problems.append(f"{module.name} ({layer_name}): tkinter outside the GUI")
        if layer_name in ("types", "pure") and imported in IO_MODULES:
            problems.append(f"{module.name} ({layer_name}): imports {imported}, which does I/O")
    if layer_name in ("types", "pure") and calls_open(tree):
        problems.append(f"{module.name} ({layer_name}): calls open()")
    lines = module.source.count("\n")
    if lines > MAX_LINES:
        problems.append(f"{module.name}: {lines} lines, over {MAX_LINES}: split it")
    return problems


def project_modules() -> list[Module]:
    return [
        Module(path.stem, path.read_text(encoding="utf-8")) for path in sorted(ROOT.glob("pt_*.py"))
    ]


def test_the_project_has_its_named_modules() -> None:
    names = {m.name for m in project_modules()}
    assert {"pt_types", "pt_config", "pt_state", "pt_logging"} <= names


def test_every_module_follows_the_layer_rules() -> None:
    problems = [p for module in project_modules() for p in violations(module)]
    assert problems == []


@pytest.mark.parametrize(
    ("name", "source", "expected"),
    [
        ("pt_strategy", "import pt_config\n", "arrows only point down"),
        ("pt_strategy", "from pt_state import x\n", "arrows only point down"),
        ("pt_trader", "import tkinter as tk\n", "tkinter outside the GUI"),
        ("pt_trader", "from tkinter import ttk\n", "tkinter outside the GUI"),
        ("pt_supervisor", "import pt_hub\n", "imports pt_hub"),
        ("pt_patterns", "import time\n", "imports time, which does I/O"),
        ("pt_patterns", "def f():\n    import requests\n", "imports requests"),
        ("pt_patterns", "data = open('x').read()\n", "calls open()"),
        ("pt_types", "import os.path\n", "imports os"),
        ("pt_mystery", "x = 1\n", "not placed in a layer"),
        ("pt_config", "x = 1\n" * 801, "801 lines, over 800"),
        ("pt_volume", "def f():\n    from pt_indicators_cli import main\n", "arrows only"),
    ],
)
def test_the_checker_catches_each_kind_of_violation(name: str, source: str, expected: str) -> None:
    found = violations(Module(name, source))
    assert any(expected in p for p in found), found


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("pt_hub", "import tkinter\nimport pt_supervisor\nimport pt_types\n"),
        ("pt_gui_charts", "import tkinter\nimport pt_analytics\n"),
        ("pt_trader", "import pt_strategy\nimport pt_broker\nimport pt_state\n"),
        ("pt_patterns", "import numpy as np\nimport pt_types\nfrom dataclasses import dataclass\n"),
        ("pt_volume", "if __name__ == '__main__':\n    from pt_indicators_cli import main\n"),
    ],
)
def test_the_checker_allows_what_the_design_allows(name: str, source: str) -> None:
    assert violations(Module(name, source)) == []
