"""Strategy comparison: several settings sets on the same coins and span, each a real backtest,
in one table, one JSON and one report; what cannot be compared is refused before any run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pt_config
from pt_backtester import main
from pt_config_schema import Settings

SPAN = ["--coins", "BTC", "--start", "2022-06-01", "--end", "2022-06-05"]


def test_the_compare_command_puts_the_runs_side_by_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    assert main(["run", *data, *SPAN, "--out", str(tmp_path / "alone")]) == 0
    other = tmp_path / "wide.json"
    pt_config.save(other, Settings(trailing_gap_pct=2.0, start_allocation_pct=1.0))
    results = tmp_path / "opt.jsonl"
    trials = [{"key": k, "point": {"trailing_gap_pct": g}, "figures": {"sharpe": s}, "seconds": 1}
              for k, g, s in (("a", 0.3, 0.1), ("b", 0.9, 2.0))]  # fmt: skip
    results.write_text("".join(json.dumps(t) + "\n" for t in trials))
    out = tmp_path / "cmp"
    args = ["compare", *data, *SPAN, "--settings", str(other), "--results", str(results),
            "--top", "1", "--out", str(out)]  # fmt: skip
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "comparison BTC 2022-06-01 .. 2022-06-05:"
    names = [line[:22].strip() for line in printed[2:6]]
    assert names == ["current settings", "wide", "opt #1", "buy & hold"]
    assert "  opt #1: trailing_gap_pct = 0.9" in printed  # the best by Sharpe
    compared = json.loads((out / "compare.json").read_text())
    assert [c["name"] for c in compared] == ["current settings", "wide", "opt #1"]
    alone = json.loads((tmp_path / "alone" / "summary.json").read_text())
    assert compared[0]["final_equity_usd"] == alone["final_equity_usd"]  # the same backtest
    assert compared[1]["final_equity_usd"] != alone["final_equity_usd"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "01-current-settings", "02-wide", "03-opt-1"
    ]  # fmt: skip
    page = (out / "report.html").read_text()
    assert all(f"<th>{name}</th>" in page for name in ("current settings", "wide", "opt #1"))


def test_what_cannot_be_compared_is_refused_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    out = tmp_path / "cmp"
    assert main(["compare", *data, *SPAN, "--out", str(out)]) == 2
    assert "nothing to compare the current settings with" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"trade_start_level": 12}))
    assert main(["compare", *data, *SPAN, "--settings", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"cannot use the settings file {bad}" in err and "trade_start_level" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["compare", *data, *SPAN, "--results", str(empty), "--out", str(out)]) == 2
    assert "holds no trials" in capsys.readouterr().err
    assert not out.exists()
