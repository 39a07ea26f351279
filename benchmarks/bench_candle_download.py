"""Cold download of all bundled 1h BTC history (2017-08 .. 2026-05, ~8.8 years) from each fake
venue through paging, and the warm load of the same span from the candle cache.

Run from the repository root: ``python benchmarks/bench_candle_download.py [--runs N]``. The fake
venues run on 127.0.0.1 and answer in each venue's wire format, so the figures measure our
adapters, paging, parsing, repair and cache, not the internet. The issue's target: a warm load
under 0.5 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pt_candle_cache import CandleCache  # noqa: E402
from pt_exchanges import MarketSource  # noqa: E402
from pt_http import HttpClient, RateLimiter  # noqa: E402
from pt_ohlcv import load_bundled  # noqa: E402
from pt_types import Timeframe  # noqa: E402
from pt_venue_binance import BinanceVenue  # noqa: E402
from pt_venue_coinbase import CoinbaseVenue  # noqa: E402
from pt_venue_kucoin import KucoinVenue  # noqa: E402
from tests.fake_binance import FakeBinance  # noqa: E402
from tests.fake_coinbase import FakeCoinbase  # noqa: E402
from tests.fake_kucoin import FakeKucoin  # noqa: E402

HOURLY = load_bundled("BTC")
START = int(HOURLY.time[0])
NOW = int(HOURLY.time[-1]) + 1800  # half way through the last bundled hour
END = NOW + 1


def unlimited(venue: str, url: str) -> HttpClient:
    """The venue's client without our own pacing: the fake has no rate limit to respect."""
    return HttpClient(venue, url, timeout=30, limiter=RateLimiter(1e9, 1e9))


def cold_download(make: Callable[[str], MarketSource], fake_cls: type) -> tuple[float, int, int]:
    with fake_cls({"BTC": HOURLY}, now=NOW) as fake:
        venue = make(fake.base_url)
        started = time.perf_counter()
        candles = venue.candles("BTC", Timeframe.H1, START, END)
        seconds = time.perf_counter() - started
        return seconds, len(candles), len(fake.server.requests)


def warm_load(runs: int) -> tuple[list[float], int]:
    with tempfile.TemporaryDirectory() as folder, FakeKucoin({"BTC": HOURLY}, now=NOW) as fake:
        path = Path(folder) / "candles.sqlite3"
        venue = KucoinVenue(http=unlimited("kucoin", fake.base_url), clock=lambda: NOW)
        with CandleCache(path, clock=lambda: NOW) as cache:
            cache.get("BTC", Timeframe.H1, START, END, venue)  # fill it once
        times = []
        for _ in range(runs):
            with CandleCache.open_readonly(path, clock=lambda: NOW) as reader:
                started = time.perf_counter()
                candles = reader.read("BTC", Timeframe.H1, START, END)
                times.append(time.perf_counter() - started)
        return times, len(candles)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    venues: list[tuple[str, Callable[..., MarketSource], type]] = [
        ("kucoin", KucoinVenue, FakeKucoin),
        ("binance", BinanceVenue, FakeBinance),
        ("coinbase", CoinbaseVenue, FakeCoinbase),
    ]
    print(f"BTC 1h, {len(HOURLY):,} bundled candles; {args.runs} runs, median (min)")
    for name, venue_cls, fake_cls in venues:

        def make(
            url: str, name: str = name, venue_cls: Callable[..., MarketSource] = venue_cls
        ) -> MarketSource:
            return venue_cls(http=unlimited(name, url), clock=lambda: NOW)

        results = [cold_download(make, fake_cls) for _ in range(args.runs)]
        secs = [r[0] for r in results]
        _, rows, requests = results[0]
        print(
            f"cold download from fake {name:<9} {statistics.median(secs):6.2f} s "
            f"({min(secs):.2f})  {rows:,} candles in {requests} requests"
        )
    warm, rows = warm_load(args.runs)
    print(
        f"warm load from the candle cache       {statistics.median(warm):6.3f} s "
        f"({min(warm):.3f})  {rows:,} closed candles   target < 0.5 s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
