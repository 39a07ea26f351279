"""``python pt_analytics.py summary|export`` on a real journal: output, CSV content, bad input."""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pt_analytics import FILL_CSV, TRADE_CSV, main
from pt_journal import TradeJournal
from pt_types import DAY, HOUR, Mode

PROJECT = Path(__file__).resolve().parents[1]
T0 = 1_704_067_200.0  # 2024-01-01 00:00 UTC


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A paper journal: BTC won (with a DCA), ETH lost, XRP still open."""
    with TradeJournal(tmp_path / "journal.sqlite3", mode=Mode.PAPER, clock=lambda: T0) as j:
        j.record_equity(T0, 1000.0, 1000.0, 0.0)
        j.log_entry("BTC", 0.01, 40_000, 0.40, T0 + HOUR, reason="LONG 4")
        j.record_equity(T0 + DAY, 979.6, 599.6, 380.0)
        j.log_dca("BTC", 0.01, 38_000, 0.38, T0 + DAY + 1, reason="tier -5%")
        j.log_exit("BTC", 41_000, 0.82, T0 + 3 * DAY, reason="trail")
        j.record_equity(T0 + 3 * DAY, 1038.4, 1038.4, 0.0)
        j.log_entry("ETH", 1.0, 900, 1.0, T0 + 4 * DAY)
        j.log_exit("ETH", 850, 0.85, T0 + 4 * DAY + 6 * HOUR)
        j.log_entry("XRP", 100.0, 0.5, 0.05, T0 + 4 * DAY + 7 * HOUR)
        j.record_equity(T0 + 4 * DAY + 8 * HOUR, 986.0, 936.5, 49.5)
    return tmp_path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "TZ": "UTC"}
    return subprocess.run(
        [sys.executable, str(PROJECT / "pt_analytics.py"), *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_summary_prints_the_kpis_the_periods_and_the_coins(data_dir: Path) -> None:
    done = run("--data-dir", str(data_dir), "summary", "--now", "2024-01-05T09:00")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "PowerTrader AI performance (paper) as of 2024-01-05T09:00:00Z" in out
    assert "Total trades         2 closed, 1 open (open cost $50.05)" in out
    assert "Win rate             50.00% (1 won, 1 lost, 0 even)" in out
    assert "Realized PnL         -$13.45" in out  # +38.40 − 51.85
    assert "Today's PnL          -$51.85 realized, -$52.40 equity" in out
    assert "Profit factor        0.74" in out  # 38.40 / 51.85
    assert "Max drawdown         5.05% (peak 2024-01-04, trough 2024-01-05, not recovered)" in out
    assert "Best / worst trade   BTC +$38.40 (+4.92%) / ETH -$51.85 (-5.75%)" in out
    words = [line.split() for line in out.splitlines() if line.strip()]
    table = {w[0]: w for w in words if w[0] in ("today", "7d", "30d", "all")}
    assert table["today"][1:4] == ["1", "0.00%", "-$51.85"]
    assert table["all"][1:5] == ["2", "50.00%", "-$13.45", "0.74"]
    coins = [w[:5] for w in words if w[0] in ("BTC", "ETH", "XRP")]
    assert coins == [
        ["BTC", "1", "100.00%", "+$38.40", "∞"],
        ["XRP", "0", "—", "$0.00", "—"],
        ["ETH", "1", "0.00%", "-$51.85", "0.00"],
    ]


def test_export_trades_to_a_csv_file(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = data_dir / "trades.csv"
    assert main(["--data-dir", str(data_dir), "export", "trades", "--out", str(out)]) == 0
    assert "wrote 3 trades" in capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(TRADE_CSV)
    got = rows(text)
    assert [(r["coin"], r["status"], r["result"]) for r in got] == [
        ("BTC", "closed", "win"),
        ("ETH", "closed", "loss"),
        ("XRP", "open", "open"),
    ]
    btc = got[0]
    assert btc["opened_at"] == "2024-01-01T01:00:00Z" and btc["closed_at"] == "2024-01-04T00:00:00Z"
    assert float(btc["cost_usd"]) == pytest.approx(780.78)
    assert float(btc["realized_pnl_usd"]) == pytest.approx(38.40)
    assert (btc["dca_count"], btc["exit_reason"], btc["mode"]) == (
        "1",
        "TRAIL_SELL: trail",
        "paper",
    )
    assert float(got[1]["realized_pnl_usd"]) == pytest.approx(-51.85)
    assert got[2]["closed_at"] == ""


def test_export_fills_to_stdout_by_coin_and_days(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--data-dir", str(data_dir), "export", "fills", "--coin", "btc"]
    assert main(args) == 0
    got = rows(capsys.readouterr().out)
    assert [(r["side"], r["tag"], r["time"]) for r in got] == [
        ("buy", "ENTRY", "2024-01-01T01:00:00Z"),
        ("buy", "DCA", "2024-01-02T00:00:01Z"),
        ("sell", "TRAIL_SELL", "2024-01-04T00:00:00Z"),
    ]
    assert float(got[1]["value_usd"]) == pytest.approx(380.0)
    assert got[0]["trade_group_id"] == got[2]["trade_group_id"]
    args = ["--data-dir", str(data_dir), "export", "fills", "--since", "2024-01-02"]
    assert main([*args, "--until", "2024-01-04"]) == 0
    got = rows(capsys.readouterr().out)
    assert [(r["coin"], r["tag"]) for r in got] == [("BTC", "DCA"), ("BTC", "TRAIL_SELL")]
    assert main([*args, "--until", "2024-01-02", "--coin", "ETH"]) == 0
    assert capsys.readouterr().out == ",".join(FILL_CSV) + "\n"  # the header alone


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["export", "trades", "--since", "2024-13-01"],
            "'2024-13-01' is not a date; use YYYY-MM-DD",
        ),
        (
            ["export", "trades", "--since", "2024-02-01", "--until", "2024-01-01"],
            "is after --until",
        ),
        (["export", "fills", "--coin", "BTC/USD"], "invalid coin 'BTC/USD'"),
        (["export", "orders"], "invalid choice: 'orders'"),
        (["summary", "--now", "yesterday"], "'yesterday' is not a time"),
        (["--mode", "moon", "summary"], "'moon' is not a mode; use demo, paper or live"),
        ([], "the following arguments are required"),
    ],
)
def test_bad_input_is_named_and_exits_2(
    data_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--data-dir", str(data_dir), *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_missing_output_folder_exits_2(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = data_dir / "no" / "such" / "trades.csv"
    assert main(["--data-dir", str(data_dir), "export", "trades", "--out", str(out)]) == 2
    assert f"there is no folder {out.parent}" in capsys.readouterr().err


def test_no_journal_yet(tmp_path: Path) -> None:
    done = run("--data-dir", str(tmp_path), "summary")
    assert done.returncode == 1
    assert "no journal yet (nothing traded in this data folder" in done.stderr
    assert not (tmp_path / "journal.sqlite3").exists()


def test_a_damaged_or_newer_journal_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(b"\x00garbage" * 512)
    assert main(["--data-dir", str(tmp_path), "export", "trades"]) == 1
    assert f"journal {path} is damaged" in capsys.readouterr().err
    path.unlink()
    TradeJournal(path).close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 7")
    con.close()
    assert main(["--data-dir", str(tmp_path), "summary"]) == 1
    assert "Update PowerTrader AI" in capsys.readouterr().err


def test_csv_money_has_no_binary_leftovers(tmp_path: Path) -> None:
    import io

    from pt_analytics import TradeJournal, export_csv
    from pt_types import Mode

    journal = TradeJournal(tmp_path / "journal.sqlite3", mode=Mode.DEMO, clock=lambda: 1e9)
    journal.log_entry("BTC", 0.01, 42000.0, 0.42, 1e9, reason="test entry")
    journal.log_dca("BTC", 0.02, 40950.0, 0.82, 1e9 + 100, reason="test dca")
    journal.log_exit("BTC", 42500.0, 1.27, 1e9 + 200, reason="test exit")
    out = io.StringIO()
    assert export_csv(journal, "trades", out) == 1
    row = out.getvalue().splitlines()[1].split(",")
    # cost 0.01*42000+0.42 + 0.02*40950+0.82 = 1240.24; 1275 - 1.27 - 1240.24 = 33.49
    assert row[8:12] == ["1240.24", "1275", "2.51", "33.49"]
