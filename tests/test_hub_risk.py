"""The hub shows why a risk limit stopped the trader until the user resumes (real Tk window,
real status files; the trader here is the dummy worker, the status is written as the trader
writes it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pt_config import parse, save
from pt_hub_engine import status_table
from pt_models import save_model
from pt_risk import DrawdownState
from pt_state import DataLayout, StateWriter, read_risk_resume
from pt_supervisor import Supervisor
from pt_trader import STATUS_SCHEMA, risk_data
from tests.gui_support import screenshot
from tests.test_hub_live import open_hub, wait
from tests.test_supervisor import dummy_supervisor
from tests.test_thinker import tiny_model

WHY = (
    "drawdown stop: the account is 20.4% below its peak ($7,960.00 vs $10,000.00, limit 20%); "
    "no new entries or DCAs until you resume"
)


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    layout = DataLayout(tmp_path / "data").ensure()
    save_model(layout, tiny_model("BTC", time.time()))
    save(layout.settings_file, parse({"coins": ["BTC"], "mode": "paper"}))
    return layout


@pytest.fixture
def sup(layout: DataLayout, tmp_path: Path) -> Iterator[Supervisor]:
    supervisor = dummy_supervisor(layout, tmp_path)
    yield supervisor
    supervisor.shutdown()


def write_status(writer: StateWriter, risk: DrawdownState | None, value: float) -> None:
    writer.write({"mode": "paper", "time": time.time(), "problem": risk.reason if risk else "",
                  "account": {"cash": value, "total_value": value, "percent_in_trade": 0.0},
                  "coins": [], "risk": risk_data(risk, value)})  # fmt: skip


def test_the_drawdown_stop_is_shown_until_the_user_resumes(
    display: str, sup: Supervisor, layout: DataLayout
) -> None:
    writer = StateWriter(layout.trader_status_file, STATUS_SCHEMA)
    window = open_hub(sup, layout, answers=[])
    try:
        banner = window.controls.risk
        assert not banner.winfo_ismapped()
        write_status(writer, DrawdownState(10_000.0, 5.0, 6.0, WHY), 7_960.0)
        wait(window, banner.winfo_ismapped, "the risk banner")
        assert window.controls.risk_text.cget("text") == "D" + WHY[1:]
        screenshot(window.controls, "hub-risk-stop")
        assert window.status is not None
        assert f"RISK STOP: {WHY} (python pt_hub.py --resume-trading)" in status_table(
            window.status
        )  # what the headless hub prints
        assert read_risk_resume(layout) is None
        before = time.time()
        window.controls.resume.invoke()
        wait(window, lambda: read_risk_resume(layout) is not None, "the resume request")
        asked = read_risk_resume(layout)
        assert asked is not None and asked >= before
        write_status(writer, DrawdownState(7_960.0), 7_960.0)  # the trader released it
        wait(window, lambda: not banner.winfo_ismapped(), "the banner to go")
    finally:
        window.close()
