"""pt_ohlcv against the real bundled files and against small broken files written per test."""

from __future__ import annotations

import gzip
import io
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import pt_ohlcv
from pt_candles import drop_forming, find_gaps, resample
from pt_ohlcv import (
    BUNDLED_DIR,
    OhlcvError,
    bundled_coins,
    load_bundled,
    load_bundled_daily_file,
    read_candle_csv,
)
from pt_types import DAY, HOUR, Candles, Gap, Timeframe

COINS = ["BNB", "BTC", "DOGE", "ETH", "XRP"]
HEADER = "time,open,high,low,close,volume\n"
JAN_2024 = 1_704_067_200
COLUMNS = ("time", "open", "high", "low", "close", "volume")


def utc(text: str) -> int:
    return int(np.datetime64(text, "s").astype(np.int64))


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def same(a: Candles, b: Candles) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in COLUMNS)


# ------------------------------------------------------------ bundled files


def test_bundled_coins() -> None:
    assert bundled_coins() == COINS


@pytest.mark.parametrize(
    ("coin", "expected"),
    [
        ("BTC", (76_543, "2017-08-17T04:00", "2026-05-16T18:00", 28, 128)),
        ("ETH", (76_543, "2017-08-17T04:00", "2026-05-16T18:00", 28, 128)),
        ("XRP", (70_339, "2018-05-04T08:00", "2026-05-16T18:00", 25, 88)),
        ("BNB", (72_789, "2017-11-06T03:00", "2026-03-02T01:00", 27, 122)),
        ("DOGE", (60_131, "2019-07-05T12:00", "2026-05-16T18:00", 18, 44)),
    ],
)
def test_hourly_files_match_sources_md(coin: str, expected: tuple[int, str, str, int, int]) -> None:
    """Rows, first/last candle and the gap totals are the ones SOURCES.md documents."""
    rows, first, last, gaps, missing = expected
    hourly = load_bundled(coin)
    assert len(hourly) == rows
    assert int(hourly.time[0]) == utc(first)
    assert int(hourly.time[-1]) == utc(last)
    assert not hourly.forming
    found = find_gaps(hourly, HOUR)
    assert (len(found), sum(g.missing for g in found)) == (gaps, missing)


def test_btc_gaps_are_the_documented_outages() -> None:
    gaps = find_gaps(load_bundled("BTC"), HOUR)
    assert gaps[0] == Gap(utc("2017-09-06T17:00"), 6)
    assert Gap(utc("2018-02-08T01:00"), 33) in gaps
    assert gaps[-1] == Gap(utc("2023-03-24T13:00"), 1)


def test_btc_first_hour_of_2024_is_the_known_binance_row() -> None:
    btc = load_bundled("btc")
    i = int(np.searchsorted(btc.time, JAN_2024))
    assert int(btc.time[i]) == JAN_2024
    row = (btc.open[i], btc.high[i], btc.low[i], btc.close[i], btc.volume[i])
    assert row == (42283.58, 42554.57, 42261.02, 42475.23, 1271.68108)


@pytest.mark.parametrize("coin", COINS)
def test_daily_resample_equals_the_bundled_daily_file_exactly(coin: str) -> None:
    resampled = resample(load_bundled(coin), Timeframe.D1)
    assert resampled.forming  # every file ends during a day
    daily = load_bundled_daily_file(coin)
    closed = drop_forming(resampled)
    assert len(closed) == len(daily)
    for name in COLUMNS:
        assert np.array_equal(getattr(closed, name), getattr(daily, name)), name


@pytest.mark.parametrize("tf", [tf for tf in Timeframe if tf is not Timeframe.H1])
def test_load_bundled_resamples_with_a_forming_last_bucket(tf: Timeframe) -> None:
    hourly = load_bundled("ETH")
    out = load_bundled("ETH", tf)
    assert same(out, resample(hourly, tf))
    assert out.forming  # the file ends at 18:00, inside every coarser bucket
    assert np.all((out.time - tf.anchor) % tf.seconds == 0)
    assert out.time[0] == tf.candle_open(int(hourly.time[0]))
    assert float(out.volume.sum()) == pytest.approx(float(hourly.volume.sum()), rel=1e-9)


def test_load_bundled_is_cached_and_read_only() -> None:
    a = load_bundled("XRP", Timeframe.H4)
    assert load_bundled("xrp", Timeframe("4h")) is a
    with pytest.raises(ValueError, match="read-only"):
        a.close[0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        load_bundled("XRP").volume[-1] = 0.0


def test_unknown_coin_lists_the_available_ones() -> None:
    with pytest.raises(OhlcvError, match=r"'SOL'.*available: BNB, BTC, DOGE, ETH, XRP"):
        load_bundled("SOL")
    with pytest.raises(OhlcvError, match="available"):
        load_bundled_daily_file("../BTC")


def test_cache_notices_a_changed_file(tmp_path: Path) -> None:
    path = write(tmp_path / "ABC-USDT-1h.csv.gz", HEADER + f"{JAN_2024},1,2,0.5,1.5,10\n")
    first = load_bundled("ABC", directory=tmp_path)
    assert bundled_coins(tmp_path) == ["ABC"]
    write(path, HEADER + f"{JAN_2024},1,2,0.5,1.5,10\n{JAN_2024 + HOUR},1.5,3,1,2,5\n")
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse-clock file system
    second = load_bundled("ABC", directory=tmp_path)
    assert (len(first), len(second)) == (1, 2)
    assert load_bundled("ABC", Timeframe.D1, directory=tmp_path).volume.tolist() == [15.0]


def test_a_cold_load_logs_the_gaps_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shutil.copy(BUNDLED_DIR / "DOGE-USDT-1h.csv.gz", tmp_path)
    with caplog.at_level(logging.DEBUG, logger="pt_ohlcv"):
        load_bundled("DOGE", directory=tmp_path)
        load_bundled("DOGE", Timeframe.D1, directory=tmp_path)
    messages = [r.getMessage() for r in caplog.records if "missing hours" in r.getMessage()]
    assert messages == ["DOGE-USDT-1h.csv.gz: 60131 candles, 18 gaps, 44 missing hours"]


def test_fast_parser_agrees_with_float_on_a_whole_real_file(tmp_path: Path) -> None:
    """The canonical file takes the vectorised path; spaces after commas force ``float()``."""
    text = gzip.decompress((BUNDLED_DIR / "BTC-USDT-1h.csv.gz").read_bytes()).decode()
    spaced = write(tmp_path / "spaced.csv", text.replace(",", ", ").replace("time, ", "time,"))
    assert same(read_candle_csv(BUNDLED_DIR / "BTC-USDT-1h.csv.gz"), read_candle_csv(spaced))


@pytest.mark.parametrize(
    "number",
    [
        "0.1",
        ".5",
        "5.",
        "007.250",
        "93576",
        "0.00000001",
        "1234567890123456",  # 16 digits, below 2**53: fast path
        "9007199254740993",  # above 2**53: must round like float()
        "986.5452293525111",  # 16 digits above 2**53: mantissa / 10**13 would round twice
        "123456789.12345678",  # 17 digits: slow path
        "1e-05",  # exponent: slow path
        "4261.48",
        "0.30000000000000004",
    ],
)
def test_numbers_read_exactly_as_float_does(tmp_path: Path, number: str) -> None:
    rows = f"{JAN_2024},{number},{number},{number},{number},{number}\n{JAN_2024 + HOUR},1,1,1,1,0\n"
    c = read_candle_csv(write(tmp_path / "n.csv", HEADER + rows))
    expected = float(number)
    assert (c.open[0], c.high[0], c.low[0], c.close[0], c.volume[0]) == (expected,) * 5
    assert c.time.tolist() == [JAN_2024, JAN_2024 + HOUR]
    assert c.time.dtype == np.int64


def test_plain_gzip_crlf_and_trailing_blank_lines_read_the_same(tmp_path: Path) -> None:
    rows = f"{JAN_2024},1,2,0.5,1.5,10\n{JAN_2024 + 2 * HOUR},1.5,3,1,2,5\n"
    plain = read_candle_csv(write(tmp_path / "a.csv", HEADER + rows))
    gz = read_candle_csv(write(tmp_path / "a.csv.gz", HEADER + rows))
    crlf = read_candle_csv(write(tmp_path / "b.csv", (HEADER + rows).replace("\n", "\r\n")))
    blank = read_candle_csv(write(tmp_path / "c.csv", HEADER + rows.rstrip("\n") + "\n\n\n"))
    assert same(plain, gz) and same(plain, crlf) and same(plain, blank)
    assert plain.close.tolist() == [1.5, 2.0]
    assert find_gaps(plain, HOUR) == (Gap(JAN_2024 + HOUR, 1),)


def test_a_header_only_file_is_an_empty_table(tmp_path: Path) -> None:
    assert len(read_candle_csv(write(tmp_path / "e.csv", HEADER))) == 0


def test_the_step_for_the_alignment_check_comes_from_the_name(tmp_path: Path) -> None:
    rows = HEADER + f"{JAN_2024},1,1,1,1,1\n{JAN_2024 + DAY},1,1,1,1,1\n"
    assert len(read_candle_csv(write(tmp_path / "X-USDT-1d.csv", rows))) == 2
    with pytest.raises(OhlcvError, match="line 3: time not aligned to 604800 s"):
        read_candle_csv(write(tmp_path / "X-USDT-1w.csv", rows))


# ------------------------------------------------------------------ errors


def check_error(tmp_path: Path, text: str, *patterns: str, name: str = "bad.csv.gz") -> None:
    path = write(tmp_path / name, text)
    with pytest.raises(OhlcvError) as info:
        read_candle_csv(path)
    message = str(info.value)
    assert str(path) in message
    for pattern in patterns:
        assert pattern in message, message


GOOD = f"{JAN_2024},1,2,0.5,1.5,10\n{JAN_2024 + HOUR},1.5,3,1,2,5\n"


def test_bad_header(tmp_path: Path) -> None:
    check_error(tmp_path, "date,o,h,l,c,v\n" + GOOD, "line 1: header must be", "'date,o,h,l,c,v'")


def test_non_numeric_field_names_line_and_column(tmp_path: Path) -> None:
    text = HEADER + GOOD + f"{JAN_2024 + 2 * HOUR},1.5,abc,1,2,5\n"
    check_error(tmp_path, text, "line 4: high 'abc' is not a number")


def test_two_decimal_points(tmp_path: Path) -> None:
    text = HEADER + GOOD + f"{JAN_2024 + 2 * HOUR},1.5,3,1,1.2.3,5\n"
    check_error(tmp_path, text, "line 4: close '1.2.3' is not a number")


def test_empty_field(tmp_path: Path) -> None:
    check_error(tmp_path, HEADER + f"{JAN_2024},1,2,,1.5,10\n", "line 2: low '' is not a number")


def test_wrong_field_count_and_blank_line(tmp_path: Path) -> None:
    check_error(tmp_path, HEADER + f"{JAN_2024},1,2,0.5,1.5\n", "line 2: expected 6 fields")
    check_error(tmp_path, HEADER + GOOD + "\n" + GOOD, "line 4: expected 6 fields, found an empty")


def test_fractional_time(tmp_path: Path) -> None:
    check_error(tmp_path, HEADER + f"{JAN_2024}.5,1,2,0.5,1.5,10\n", "line 2: time", "whole")


def test_high_below_low(tmp_path: Path) -> None:
    text = HEADER + GOOD + f"{JAN_2024 + 2 * HOUR},1.5,1,2,1.5,5\n"
    check_error(tmp_path, text, "line 4: high below max(open, close, low)")


def test_unsorted_rows(tmp_path: Path) -> None:
    text = HEADER + f"{JAN_2024 + HOUR},1,2,0.5,1.5,10\n{JAN_2024},1,2,0.5,1.5,10\n"
    check_error(tmp_path, text, "line 3: time goes backwards")


def test_negative_volume_is_reported_by_the_candle_check(tmp_path: Path) -> None:
    check_error(tmp_path, HEADER + GOOD + f"{JAN_2024 + 9 * HOUR},1,1,1,1,-2\n", "line 4: volume")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OhlcvError, match=r"nope\.csv\.gz: no such candle file"):
        read_candle_csv(tmp_path / "nope.csv.gz")


def test_damaged_gzip(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(gzip.compress((HEADER + GOOD).encode())[:-12])
    with pytest.raises(OhlcvError, match="damaged gzip"):
        read_candle_csv(path)


# --------------------------------------------------------------------- CLI


def test_cli_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert pt_ohlcv.main(["btc"]) == 0
    out = capsys.readouterr().out
    assert out == (
        "BTC: 76543 hourly candles, 2017-08-17 04:00 .. 2026-05-16 18:00 UTC, "
        "28 gaps, 128 missing hours\n"
    )


def test_cli_gap_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert pt_ohlcv.main(["--gaps", "DOGE"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 18
    assert lines[-1] == "  2023-03-24 13:00 +1h"


def test_cli_unknown_coin(capsys: pytest.CaptureFixture[str]) -> None:
    assert pt_ohlcv.main(["NOPE"]) == 2
    assert "available: BNB, BTC, DOGE, ETH, XRP" in capsys.readouterr().err


def test_a_table_is_parsed_in_whole_line_pieces_with_the_same_result() -> None:
    """Parsing in pieces (so another thread is not held up for a whole file) changes nothing."""
    body = b"\n".join(
        b"%d,1.5,2.25,1.0,2.0,%d.125" % (1_600_000_000 + 3600 * i, i) for i in range(500)
    )
    pieces = pt_ohlcv._chunks(body, size=1000)
    assert len(pieces) > 10 and b"\n".join(pieces) == body
    assert all(p.count(b",") % 5 == 0 for p in pieces)  # whole lines only
    whole = np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2)
    assert np.array_equal(pt_ohlcv._parse_table(Path("x.csv"), body), whole)
    assert pt_ohlcv._chunks(b"") == [b""]


def test_the_parsed_history_is_kept_in_the_cache_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A later process reads the saved table instead of parsing the CSV again; a changed source
    file or a damaged cache entry is parsed afresh (and the entry replaced)."""
    source = tmp_path / "data"
    source.mkdir()
    path = Path(shutil.copy(BUNDLED_DIR / "DOGE-USDT-1h.csv.gz", source))
    cache = tmp_path / "cache" / "history"
    pt_ohlcv.clear_cache()
    parsed = load_bundled("DOGE", directory=source, cache_dir=cache)
    (entry,) = cache.glob("DOGE-USDT-1h.csv.gz.*.npy")
    table = np.load(entry)
    assert table.shape == (len(parsed), 6) and np.array_equal(table[:, 4], parsed.close)

    np.save(entry, table * [1, 1, 1, 1, 2, 1])  # prove the next load reads the cache
    pt_ohlcv.clear_cache()
    cached = load_bundled("DOGE", directory=source, cache_dir=cache)
    assert np.array_equal(cached.close, parsed.close * 2)
    assert np.array_equal(cached.time, parsed.time) and cached.time.dtype == parsed.time.dtype

    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    pt_ohlcv.clear_cache()
    fresh = load_bundled("DOGE", directory=source, cache_dir=cache)
    assert np.array_equal(fresh.close, parsed.close)  # a new file version: parsed again
    assert [p.name for p in cache.glob("*.npy")] != [entry.name]  # the old entry is gone
    (entry,) = cache.glob("*.npy")

    entry.write_bytes(b"not a numpy file")
    pt_ohlcv.clear_cache()
    with caplog.at_level(logging.WARNING, logger="pt_ohlcv"):
        again = load_bundled("DOGE", directory=source, cache_dir=cache)
    assert np.array_equal(again.close, parsed.close)
    assert "ignoring the parsed-history cache" in caplog.text
    assert np.load(entry).shape == (len(parsed), 6)  # replaced by a good one

    blocked = tmp_path / "a file"
    blocked.write_text("x")
    pt_ohlcv.clear_cache()
    with caplog.at_level(logging.WARNING, logger="pt_ohlcv"):
        fine = load_bundled("DOGE", directory=source, cache_dir=blocked / "history")
    assert np.array_equal(fine.close, parsed.close)  # no cache, still the candles
    assert "could not save the parsed-history cache" in caplog.text
    pt_ohlcv.clear_cache()
