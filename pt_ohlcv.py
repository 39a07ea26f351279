"""Reads the bundled real candle history in ``data/ohlcv`` (adapter: this module does the disk).

Demo mode, the backtester and the trainer all start from these files, often several times in one
process, so parsing is fast and cached. The files are gzip CSV ``time,open,high,low,close,volume``
(see ``data/ohlcv/SOURCES.md``); hourly candles are the base, every coarser timeframe is
resampled from them with ``pt_candles.resample`` so that demo, backtest and live feeds share one
aggregation rule.

Usage: ``python pt_ohlcv.py [COIN ...] [--gaps]`` prints a summary of each bundled coin.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import io
import logging
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pt_candles import candle_problems, find_gaps, resample
from pt_state import atomic_write_bytes
from pt_types import HOUR, Candles, Gap, Timeframe

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent / "data" / "ohlcv"
HEADER = "time,open,high,low,close,volume"
COLUMNS = HEADER.split(",")
_HOURLY_SUFFIX = "-USDT-1h.csv.gz"
_DAILY_SUFFIX = "-USDT-1d.csv.gz"
_BLANK = b" \t\n"
CHUNK_BYTES = 128 * 1024  # parsed per call: ~5 ms, so another thread waits at most that long
_MAX_EXACT = 2**53  # epoch seconds beyond this are not whole numbers in a float


class OhlcvError(Exception):
    """A candle file is missing or malformed; the message names the file, line and problem."""


def bundled_coins(directory: Path = BUNDLED_DIR) -> list[str]:
    """Coins with a bundled hourly file, sorted (``["BNB", "BTC", "DOGE", "ETH", "XRP"]``)."""
    return sorted(p.name.removesuffix(_HOURLY_SUFFIX) for p in directory.glob("*" + _HOURLY_SUFFIX))


def _parse_table(path: Path, body: bytes) -> npt.NDArray[np.float64]:
    """All rows as a (rows, 6) float table; the C parser first, row by row to name a bad line.

    ``np.loadtxt`` rounds decimals exactly as ``float()`` does (checked against every value of
    the bundled files by the tests), but its errors do not say which field was wrong and it
    skips blank lines silently, so anything it rejects or skips is re-read by ``_parse_slow``,
    which either accepts it or names the line.
    """
    rows = body.count(b"\n") + 1
    try:
        table = np.concatenate([_loadtxt(chunk) for chunk in _chunks(body)])
    except ValueError:
        return _parse_slow(path, body)
    times = table[:, 0]
    whole = (times == np.floor(times)) & (times >= 0) & (times < _MAX_EXACT)
    if table.shape != (rows, len(COLUMNS)) or not np.all(whole):
        return _parse_slow(path, body)
    return table


def _loadtxt(chunk: bytes) -> npt.NDArray[np.float64]:
    return np.loadtxt(io.BytesIO(chunk), delimiter=",", dtype=np.float64, ndmin=2)


def _chunks(body: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    """Whole lines in pieces of about ``size`` bytes. ``np.loadtxt`` holds the GIL for as long
    as it parses, so a hub thread loading a coin's eight years in one call froze the window for
    ~115 ms; between pieces the Tk thread gets its turn."""
    pieces, start = [], 0
    while start < len(body):
        end = body.find(b"\n", start + size)
        end = len(body) if end < 0 else end
        pieces.append(body[start:end])
        start = end + 1
    return pieces or [body]


def _parse_slow(path: Path, body: bytes) -> npt.NDArray[np.float64]:
    """Row-by-row parse with ``float()``; names the line of the first bad field."""
    lines = body.split(b"\n")
    values = np.empty((len(lines), len(COLUMNS)), dtype=np.float64)
    for i, line in enumerate(lines):
        lineno = i + 2  # the header is line 1
        fields = line.split(b",")
        if len(fields) != len(COLUMNS):
            what = "an empty line" if not line.strip() else f"{len(fields)} fields"
            raise OhlcvError(f"{path}: line {lineno}: expected {len(COLUMNS)} fields, found {what}")
        for j, field in enumerate(fields):
            try:
                values[i, j] = float(field)
            except ValueError:
                text = field.decode("utf-8", "replace").strip()
                raise OhlcvError(
                    f"{path}: line {lineno}: {COLUMNS[j]} {text!r} is not a number"
                ) from None
        if not (values[i, 0].is_integer() and 0 <= values[i, 0] < _MAX_EXACT):
            text = fields[0].decode("utf-8", "replace").strip()
            raise OhlcvError(
                f"{path}: line {lineno}: time {text!r} is not a whole number of epoch seconds"
            )
    return values


def _read_text(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise OhlcvError(f"{path}: no such candle file") from None
    except OSError as exc:
        raise OhlcvError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise OhlcvError(f"{path}: damaged gzip data: {exc}") from None
    return raw


def _step_from_name(path: Path) -> int | None:
    """``BTC-USDT-1d.csv.gz`` -> one day; ``None`` when the name does not say."""
    stem = path.name.split(".", 1)[0]
    try:
        return Timeframe.parse(stem.rsplit("-", 1)[-1]).seconds
    except ValueError:
        return None


def read_candle_csv(path: Path, *, step: int | None = None) -> Candles:
    """Read a ``time,open,high,low,close,volume`` CSV (gzip or plain) and validate it.

    ``step`` is the candle length used for the alignment check; by default it comes from the
    file name (``...-1h.csv.gz``), else from the smallest spacing in the file. Every row of a
    file is complete, so the table is never marked forming.
    """
    text = _read_text(path)
    # Unusual but harmless forms are normalised by copying; canonical files are never copied.
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    if b"\r" in text:
        text = text.replace(b"\r\n", b"\n")
    if not text.endswith(b"\n"):
        text += b"\n"
    header_end = text.index(b"\n")
    found = text[:header_end].decode("utf-8", "replace").strip()
    if [c.strip() for c in found.split(",")] != COLUMNS:
        raise OhlcvError(f"{path}: line 1: header must be {HEADER!r}, found {found!r}")
    start, end = header_end + 1, len(text)
    while end > start and text[end - 1] in _BLANK:  # only trailing blank characters
        end -= 1
    if end == start:
        return Candles.empty()
    table = _parse_table(path, text[start:end])
    values = np.ascontiguousarray(table[:, 1:].T)
    candles = Candles(table[:, 0].astype(np.int64), *values)
    if step is None:
        step = _step_from_name(path)
    if step is None:
        spacing = np.diff(candles.time)
        spacing = spacing[spacing > 0]
        step = int(spacing.min()) if len(spacing) else HOUR
    problems = candle_problems(candles, step)
    if problems:
        raise OhlcvError(
            "; ".join(
                f"{path}: line {p.row + 2}: {p.what}"
                + (f" (and {p.count - 1} more rows)" if p.count > 1 else "")
                for p in problems
            )
        )
    return candles


def _freeze(candles: Candles) -> Candles:
    """Cached tables are shared by every caller, so their arrays are made read-only."""
    for name in ("time", "open", "high", "low", "close", "volume"):
        getattr(candles, name).flags.writeable = False
    return candles


@functools.lru_cache(maxsize=64)
def _cached(
    path: Path, mtime_ns: int, size: int, tf: Timeframe, cache_dir: Path | None = None
) -> Candles:
    """One parse per file version (path, mtime, size) and timeframe for the whole process."""
    if tf is not Timeframe.H1:
        hourly = _cached(path, mtime_ns, size, Timeframe.H1, cache_dir)
        return _freeze(resample(hourly, tf, base_step=HOUR))
    candles = _load_parsed(cache_dir, path, mtime_ns, size) if cache_dir else None
    if candles is None:
        candles = read_candle_csv(path, step=HOUR)
        if cache_dir is not None:
            _save_parsed(cache_dir, path, mtime_ns, size, candles)
    gaps = find_gaps(candles, HOUR)
    log.debug(
        "%s: %d candles, %d gaps, %d missing hours",
        path.name,
        len(candles),
        len(gaps),
        sum(g.missing for g in gaps),
    )
    return _freeze(candles)


def _parsed_name(path: Path, mtime_ns: int, size: int) -> str:
    return f"{path.name}.{size}.{mtime_ns}.npy"


def _load_parsed(cache_dir: Path, path: Path, mtime_ns: int, size: int) -> Candles | None:
    """The table a previous parse of this very file version saved, or None.

    Parsing eight years of hourly CSV takes ~0.1 s of CPU with the GIL held; reading the saved
    table takes a few ms, which keeps the hub's window responsive when a chart first loads a
    coin, and every process start quicker. A cache entry that does not read back as a
    (rows, 6) float table is ignored (and replaced)."""
    target = cache_dir / _parsed_name(path, mtime_ns, size)
    try:
        table = np.load(target, allow_pickle=False)
    except (OSError, ValueError) as exc:
        if not isinstance(exc, FileNotFoundError):
            log.warning("ignoring the parsed-history cache %s: %s", target, exc)
        return None
    if table.ndim != 2 or table.shape[1] != len(COLUMNS) or table.dtype != np.float64:
        log.warning("ignoring the parsed-history cache %s: unexpected shape", target)
        return None
    values = np.ascontiguousarray(table[:, 1:].T)
    return Candles(table[:, 0].astype(np.int64), *values)


def _save_parsed(cache_dir: Path, path: Path, mtime_ns: int, size: int, candles: Candles) -> None:
    """Save the parsed table (atomically; older versions of the same file are removed). A
    cache that cannot be written is only a slower start, never an error."""
    table = np.column_stack(
        [candles.time.astype(np.float64), candles.open, candles.high, candles.low,
         candles.close, candles.volume]
    )  # fmt: skip
    buffer = io.BytesIO()
    np.save(buffer, table, allow_pickle=False)
    name = _parsed_name(path, mtime_ns, size)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cache_dir / name, buffer.getvalue())
        for old in cache_dir.glob(f"{path.name}.*.npy"):
            if old.name != name:
                old.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not save the parsed-history cache in %s: %s", cache_dir, exc)


def clear_cache() -> None:
    """Forget parsed files (benchmarks measure cold loads; tests swap directories)."""
    _cached.cache_clear()


def _coin_file(coin: str, suffix: str, directory: Path) -> Path:
    name = coin.strip().upper()
    path = directory / f"{name}{suffix}"
    if not name.isalnum() or not path.is_file():
        available = ", ".join(bundled_coins(directory)) or "none"
        raise OhlcvError(f"no bundled candles for {coin!r} in {directory}; available: {available}")
    return path


def load_bundled(
    coin: str,
    timeframe: Timeframe = Timeframe.H1,
    *,
    directory: Path = BUNDLED_DIR,
    cache_dir: Path | None = None,
) -> Candles:
    """A coin's bundled history in ``timeframe``, cached; arrays are read-only (copy to edit).

    Hourly candles are all closed. Coarser timeframes are resampled from them, and the last
    bucket is marked forming when the file ends before that bucket's period does (every bundled
    file ends inside a day, so its last day, week, 12h... candle is forming). A replay on a
    simulated clock should resample ``hourly.until(...)`` itself with ``now`` instead.
    ``cache_dir`` (the data folder's ``cache/history``) keeps the parsed table between runs.
    """
    path = _coin_file(coin, _HOURLY_SUFFIX, directory)
    stat = path.stat()
    return _cached(path, stat.st_mtime_ns, stat.st_size, Timeframe(timeframe), cache_dir)


def load_bundled_daily_file(coin: str, *, directory: Path = BUNDLED_DIR) -> Candles:
    """The bundled ``<COIN>-USDT-1d.csv.gz`` as stored (closed days only), for cross-checks."""
    return read_candle_csv(_coin_file(coin, _DAILY_SUFFIX, directory), step=Timeframe.D1.seconds)


def _utc(t: int) -> str:
    return str(np.datetime64(t, "s")).replace("T", " ")[:16]


def _describe(coin: str, hourly: Candles, gaps: tuple[Gap, ...], show_gaps: bool) -> list[str]:
    lines = [
        f"{coin}: {len(hourly)} hourly candles, {_utc(int(hourly.time[0]))} .. "
        f"{_utc(int(hourly.time[-1]))} UTC, {len(gaps)} gaps, "
        f"{sum(g.missing for g in gaps)} missing hours"
    ]
    if show_gaps:
        lines += [f"  {_utc(g.start)} +{g.missing}h" for g in gaps]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Print rows, first/last candle and gaps of the bundled coins."""
    parser = argparse.ArgumentParser(description="Summarise the bundled candle history.")
    parser.add_argument("coins", nargs="*", metavar="COIN", help="coins (default: all bundled)")
    parser.add_argument("--gaps", action="store_true", help="list every gap")
    parser.add_argument("--dir", type=Path, default=BUNDLED_DIR, help="folder of the CSV files")
    args = parser.parse_args(argv)
    coins = args.coins or bundled_coins(args.dir)
    try:
        for coin in coins:
            hourly = load_bundled(coin, directory=args.dir)
            if not len(hourly):
                print(f"{coin.upper()}: no candles")  # noqa: T201
                continue
            gaps = find_gaps(hourly, HOUR)
            print("\n".join(_describe(coin.upper(), hourly, gaps, args.gaps)))  # noqa: T201
    except OhlcvError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
