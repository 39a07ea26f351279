"""Settings: schema, every validation path, environment overrides, hot reload, import, CLI."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

import pt_config
import pt_config_legacy
from pt_config import ConfigManager, SettingsError, SettingsWatcher
from pt_config_schema import Settings
from pt_secrets_keysource import PassphraseKeySource
from pt_secrets_vault import SecretStore
from pt_state import DataLayout
from pt_types import Mode

# The original hub's gui_settings.json as it wrote it (spec §4.2 defaults, one value changed).
ORIGINAL_GUI_SETTINGS: dict[str, Any] = {
    "main_neural_dir": "C:\\PowerTrader_AI",
    "coins": ["BTC", "ETH", "XRP", "BNB", "DOGE"],
    "trade_start_level": 4,
    "start_allocation_pct": 0.005,
    "dca_multiplier": 2.0,
    "dca_levels": [-2.5, -5.0, -10.0, -20.0, -30.0, -40.0, -50.0],
    "max_dca_buys_per_24h": 0,
    "pm_start_pct_no_dca": 5.0,
    "pm_start_pct_with_dca": 2.5,
    "trailing_gap_pct": 0.5,
    "default_timeframe": "1hour",
    "timeframes": [
        "1min",
        "5min",
        "15min",
        "30min",
        "1hour",
        "2hour",
        "4hour",
        "8hour",
        "12hour",
        "1day",
        "1week",
    ],
    "candles_limit": 120,
    "ui_refresh_seconds": 1.0,
    "chart_refresh_seconds": 10.0,
    "hub_data_dir": "",
    "script_neural_runner2": "pt_thinker.py",
    "script_neural_trainer": "pt_trainer.py",
    "script_trader": "pt_trader.py",
    "auto_start_scripts": False,
}


def problems_by_key(data: dict[str, Any]) -> dict[str, pt_config.SettingsProblem]:
    return {p.key: p for p in pt_config.validate(data)}


# --------------------------------------------------------------------------- defaults


def test_defaults_are_the_originals_and_demo_mode() -> None:
    s = Settings()
    assert s.mode is Mode.DEMO
    assert s.coins == ("BTC", "ETH", "XRP", "BNB", "DOGE")
    assert (s.trade_start_level, s.start_allocation_pct, s.dca_multiplier) == (3, 0.005, 2.0)
    assert s.dca_levels == (-2.5, -5.0, -10.0, -20.0, -30.0, -40.0, -50.0)
    assert (s.max_dca_buys_per_24h, s.pm_start_pct_no_dca, s.pm_start_pct_with_dca) == (2, 5.0, 2.5)
    assert s.trailing_gap_pct == 0.5
    assert (s.candles_limit, s.ui_refresh_seconds, s.chart_refresh_seconds) == (120, 1.0, 10.0)
    assert s.paper.starting_cash_usd == 10_000
    assert s.exchanges.order == ("kucoin", "binance", "coinbase")


def test_empty_file_data_is_valid_and_equals_defaults() -> None:
    assert pt_config.validate({}) == []
    assert pt_config.parse({}) == Settings()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_dca_buys_per_24h", 0),
        ("start_allocation_pct", 0),
        ("dca_multiplier", 0),
        ("trailing_gap_pct", 0),
        ("pm_start_pct_with_dca", 0),
    ],
)
def test_zero_is_kept_where_it_has_a_meaning(key: str, value: int) -> None:
    settings = pt_config.parse({key: value})
    assert getattr(settings, key) == 0


def test_settings_are_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        setattr(Settings(), "trade_start_level", 5)  # noqa: B010  (bypass the type checker on purpose)


# --------------------------------------------------------------------------- validation paths


def test_unknown_key_suggests_the_close_one() -> None:
    p = problems_by_key({"trade_start_levle": 3})["trade_start_levle"]
    assert "unknown setting" in p.message
    assert "did you mean 'trade_start_level'" in p.message


def test_unknown_key_inside_a_section_suggests_within_the_section() -> None:
    p = problems_by_key({"demo": {"sped": 10}})["demo.sped"]
    assert "did you mean 'speed'" in p.message


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("trade_start_level", True, "valid integer"),
        ("trade_start_level", "3", "valid integer"),
        ("trade_start_level", 3.5, "valid integer"),
        ("dca_multiplier", "2x", "valid number"),
        ("auto_start_scripts", 1, "valid boolean"),
        ("coins", 5, "valid"),
        ("mode", "livee", "demo"),
        ("demo", 5, "an object of demo settings"),
    ],
)
def test_wrong_types_are_named(key: str, value: Any, words: str) -> None:
    p = problems_by_key({key: value})[key]
    assert p.value == value
    assert words in (p.message + p.allowed)


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("trade_start_level", 0, "a whole number from 1 to 7"),
        ("trade_start_level", 8, "a whole number from 1 to 7"),
        ("start_allocation_pct", -1, "a number from 0 to 100"),
        ("max_dca_buys_per_24h", -1, "a whole number from 0 to 100"),
        ("trailing_gap_pct", 100, "a number at least 0 and below 100"),
        ("candles_limit", 5, "a whole number from 10 to 1500"),
        ("ui_refresh_seconds", 0, "a number from 0.1 to 60"),
    ],
)
def test_out_of_range_numbers_say_what_is_allowed(key: str, value: float, allowed: str) -> None:
    p = problems_by_key({key: value})[key]
    assert p.allowed == allowed
    assert str(value) in str(p)


def test_nested_out_of_range_is_named_by_dotted_key() -> None:
    p = problems_by_key({"demo": {"speed": 0}})["demo.speed"]
    assert p.allowed == "a number above 0 and at most 100000"


@pytest.mark.parametrize(
    ("coins", "words"),
    [
        ([], "empty"),
        (["BTC", "ETH", "btc"], "coin listed twice: BTC"),
        (["BTC", "ET H"], "not a coin symbol"),
        (["BTC", "DOGE-USD"], "not a coin symbol: 'DOGE-USD'"),
    ],
)
def test_bad_coin_lists(coins: list[str], words: str) -> None:
    assert words in problems_by_key({"coins": coins})["coins"].message


def test_coins_are_normalised_and_may_be_typed_as_text() -> None:
    assert pt_config.parse({"coins": " btc, eth ,sol"}).coins == ("BTC", "ETH", "SOL")


@pytest.mark.parametrize(
    ("levels", "words"),
    [
        ([-2.5, 5.0], "between -100 and 0"),
        ([-5.0, -2.5], "go deeper"),
        ([], "at least 1"),
        ([-2.5, "x"], "valid number"),
    ],
)
def test_bad_dca_levels(levels: list[Any], words: str) -> None:
    found = [p for p in pt_config.validate({"dca_levels": levels}) if p.key.startswith("dca")]
    assert found and words in " ".join(p.message for p in found)


def test_dca_levels_accept_the_original_text_form() -> None:
    assert pt_config.parse({"dca_levels": "-1, -2 -4"}).dca_levels == (-1.0, -2.0, -4.0)


def test_timeframe_rules() -> None:
    assert (
        "unknown timeframe '3h'"
        in problems_by_key({"timeframes": ["1h", "3h"]})["timeframes"].message
    )
    p = problems_by_key({"timeframes": ["1h", "4h"], "default_timeframe": "1d"})
    assert "'1d' is not one of the chart timeframes 1h, 4h" in p["default_timeframe"].message


def test_nan_and_repeated_venue_are_rejected() -> None:
    assert "finite" in problems_by_key({"dca_multiplier": float("nan")})["dca_multiplier"].message
    order = problems_by_key({"exchanges": {"order": ["kucoin", "kucoin"]}})["exchanges.order"]
    assert "venue listed twice: kucoin" in order.message
    url = problems_by_key({"exchanges": {"kucoin_url": "ftp:/x"}})["exchanges.kucoin_url"]
    assert "pattern" in url.message


def test_every_problem_is_reported_at_once() -> None:
    problems = pt_config.validate(
        {"trade_start_level": 9, "coins": [], "bogus": 1, "demo": {"speed": -1}}
    )
    assert {p.key for p in problems} == {"trade_start_level", "coins", "bogus", "demo.speed"}
    err = SettingsError(problems, Path("/d/settings.json"))
    assert "invalid settings in /d/settings.json (4 problem(s))" in str(err)


# --------------------------------------------------------------------------- files


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    original = pt_config.parse({"coins": ["BTC"], "max_dca_buys_per_24h": 0, "mode": "paper"})
    pt_config.save(path, original)
    assert pt_config.load(path, env={}) == original
    assert json.loads(path.read_text())["max_dca_buys_per_24h"] == 0
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]  # no temp file left


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert pt_config.load(tmp_path / "settings.json", env={}) == Settings()


def test_invalid_file_raises_names_the_file_and_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    text = json.dumps({"trade_start_level": 0, "coins": ["BTC"]})
    path.write_text(text)
    with pytest.raises(SettingsError) as info:
        pt_config.load(path, env={})
    assert str(path) in str(info.value)
    assert info.value.problems[0].source == str(path)
    assert path.read_text() == text


def test_save_refuses_invalid_data_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    with pytest.raises(SettingsError):
        pt_config.save(path, {"coins": []})
    assert not path.exists()


def test_corrupt_file_is_kept_aside_and_defaults_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"coins": ["BTC"], ')
    with caplog.at_level(logging.WARNING):
        settings = pt_config.load(path, env={})
    assert settings == Settings()
    kept = list(tmp_path.glob("settings.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == '{"coins": ["BTC"], '
    assert "not valid JSON" in caplog.text and kept[0].name in caplog.text


def test_non_object_json_counts_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("[1, 2]")
    assert pt_config.load(path, env={}) == Settings()
    assert list(tmp_path.glob("settings.json.corrupt-*"))


# --------------------------------------------------------------------------- environment


def test_env_overrides_top_level_and_sections(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    pt_config.save(path, Settings())
    env = {
        "POWERTRADER_TRADE_START_LEVEL": "5",
        "POWERTRADER_DEMO__SPEED": "3600",
        "POWERTRADER_COINS": "btc,eth",
        "POWERTRADER_MODE": "paper",
        "POWERTRADER_HOME": "/somewhere",  # the data folder, not a setting
        "PATH": "/bin",
    }
    s = pt_config.load(path, env=env)
    assert (s.trade_start_level, s.demo.speed, s.coins, s.mode) == (
        5,
        3600.0,
        ("BTC", "ETH"),
        Mode.PAPER,
    )


def test_bad_env_override_is_an_error_naming_the_variable(tmp_path: Path) -> None:
    env = {"POWERTRADER_TRADE_START_LEVEL": "9", "POWERTRADER_TRADE_STRAT_LEVEL": "2"}
    with pytest.raises(SettingsError) as info:
        pt_config.load(tmp_path / "settings.json", env=env)
    text = str(info.value)
    assert "environment: trade_start_level = 9" in text
    assert "POWERTRADER_TRADE_STRAT_LEVEL" in text
    assert "did you mean POWERTRADER_TRADE_START_LEVEL" in text


# --------------------------------------------------------------------------- hot reload


def bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_watcher_sees_real_changes_only(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    pt_config.save(path, Settings())
    watcher = SettingsWatcher(path, env={})
    assert not watcher.changed()
    bump_mtime(path)  # same bytes, new mtime: not a change
    assert not watcher.changed()
    assert watcher.reload() is watcher.current
    pt_config.save(path, pt_config.parse({"trade_start_level": 6}))
    bump_mtime(path)
    assert watcher.changed()
    assert watcher.reload().trade_start_level == 6
    assert not watcher.changed()


def test_watcher_keeps_last_good_settings_on_an_invalid_edit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "settings.json"
    pt_config.save(path, pt_config.parse({"trade_start_level": 4}))
    watcher = SettingsWatcher(path, env={})
    path.write_text(json.dumps({"trade_start_level": 99, "coins": []}))
    bump_mtime(path)
    with caplog.at_level(logging.ERROR):
        assert watcher.reload().trade_start_level == 4
    assert {p.key for p in watcher.problems} == {"trade_start_level", "coins"}
    assert "keeping the previous settings" in caplog.text
    caplog.clear()
    assert watcher.reload().trade_start_level == 4  # logged once per edit, not per poll
    assert caplog.text == ""
    pt_config.save(path, pt_config.parse({"trade_start_level": 2}))
    bump_mtime(path)
    assert watcher.reload().trade_start_level == 2
    assert watcher.problems == ()


# --------------------------------------------------------------------------- import


def test_import_of_original_gui_settings(tmp_path: Path) -> None:
    original = tmp_path / "gui_settings.json"
    original.write_text(json.dumps(ORIGINAL_GUI_SETTINGS, indent=2))
    target = tmp_path / "data" / "settings.json"
    pt_config.save(target, pt_config.parse({"mode": "paper"}))
    report = pt_config_legacy.import_gui_settings(original, target, clock=lambda: 0.0)
    s = pt_config.load(target, env={})
    assert s.mode is Mode.PAPER  # settings the original did not have are kept
    assert s.trade_start_level == 4
    assert s.max_dca_buys_per_24h == 0  # the original could not apply this 0; we do
    assert s.default_timeframe == "1h"
    assert s.timeframes[0] == "1m" and s.timeframes[-1] == "1w"
    dropped = dict(report.dropped)
    assert set(dropped) == {
        "main_neural_dir",
        "hub_data_dir",
        "script_neural_runner2",
        "script_neural_trainer",
        "script_trader",
    }
    assert "models now live in the data folder" in dropped["main_neural_dir"]
    assert report.backup == target.with_name("settings.json.bak-19700101-000000")
    assert json.loads(report.backup.read_text())["mode"] == "paper"


def test_import_with_invalid_values_writes_nothing(tmp_path: Path) -> None:
    original = tmp_path / "gui_settings.json"
    original.write_text(json.dumps({**ORIGINAL_GUI_SETTINGS, "trade_start_level": 12}))
    target = tmp_path / "settings.json"
    with pytest.raises(SettingsError, match="trade_start_level"):
        pt_config_legacy.import_gui_settings(original, target)
    assert not target.exists()


def test_import_of_unreadable_original(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read it"):
        pt_config_legacy.import_gui_settings(tmp_path / "nope.json", tmp_path / "s.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(SettingsError, match="expected a JSON object"):
        pt_config_legacy.import_gui_settings(tmp_path / "list.json", tmp_path / "s.json")


def test_import_translates_a_percent_string() -> None:
    data, _ = pt_config_legacy.convert({"start_allocation_pct": "0.5%"}, {})
    assert data["start_allocation_pct"] == 0.5


# --------------------------------------------------------------------------- roadmap API


def test_config_manager_roadmap_api(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    manager = ConfigManager(path, env={"POWERTRADER_DEMO__SPEED": "7"})
    assert manager.get_value("demo.speed") == 7.0  # override visible...
    assert manager.set_value("trade_start_level", 5)
    assert not manager.set_value("trade_start_level", 0)
    assert not manager.set_value("coins.x", 1)
    assert manager.get_value("trade_start_level") == 5
    assert manager.get_value("no.such.key", "fallback") == "fallback"
    assert manager.save_config()
    saved = json.loads(path.read_text())
    assert saved["demo"]["speed"] == 60.0  # ...but never written back
    assert saved["trade_start_level"] == 5
    assert manager.load_config(path)["trade_start_level"] == 5
    ok, errors = manager.validate_config({"trade_start_level": 0, "coins": ["A", "A"]})
    assert not ok and len(errors) == 2 and "trade_start_level" in errors[0] + errors[1]
    assert manager.validate_config({}) == (True, [])


def test_config_manager_load_refuses_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"coins": []}')
    manager = ConfigManager(env={})
    with pytest.raises(SettingsError):
        manager.load_config(path)
    assert manager.get_value("coins") == list(Settings().coins)


# --------------------------------------------------------------------------- CLI


def run_cli(tmp_path: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = pt_config.main(["--data-dir", str(tmp_path), *args])
    return code, capsys.readouterr().out


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(tmp_path, "validate", capsys=capsys)
    assert code == 0 and "OK (mode demo, coins BTC, ETH, XRP, BNB, DOGE)" in out
    code, out = run_cli(tmp_path, "set", "demo.speed", "120", capsys=capsys)
    assert code == 0 and "demo.speed = 120 saved" in out
    code, out = run_cli(tmp_path, "get", "demo.speed", capsys=capsys)
    assert (code, out.strip()) == (0, "120.0")
    code, out = run_cli(tmp_path, "set", "trade_start_level", "0", capsys=capsys)
    assert code == 1 and "trade_start_level = 0" in out and "from 1 to 7" in out
    code, out = run_cli(tmp_path, "get", "nope", capsys=capsys)
    assert code == 1 and "no such setting: nope" in out
    code, out = run_cli(tmp_path, "show", capsys=capsys)
    assert json.loads(out)["demo"]["speed"] == 120.0


def test_cli_validate_names_an_enabled_channel_whose_secret_is_not_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cli(tmp_path, "set", "notifications.telegram_chat_id", "12345", capsys=capsys)
    run_cli(tmp_path, "set", "notifications.telegram_enabled", "true", capsys=capsys)
    code, out = run_cli(tmp_path, "validate", capsys=capsys)
    assert code == 1
    assert "notifications.telegram_enabled: telegram is on but its bot token is not stored" in out
    assert "python pt_secrets.py set-notify telegram" in out
    layout = DataLayout(tmp_path)
    store = SecretStore(layout, PassphraseKeySource("correct horse battery", n=2**14))
    store.set("notify.telegram.token", "123456:" + "A" * 30)
    code, out = run_cli(tmp_path, "validate", capsys=capsys)
    assert code == 0 and ": OK (mode demo" in out
    original = tmp_path / "gui_settings.json"
    original.write_text(json.dumps(ORIGINAL_GUI_SETTINGS))
    code, out = run_cli(tmp_path, "import-gui-settings", str(original), capsys=capsys)
    assert code == 0 and "imported 15 setting(s)" in out and "not imported: main_neural_dir" in out
