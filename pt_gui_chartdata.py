"""What the hub's coin and account charts show, read and shaped off the Tk thread.

The original hub fetched candles from KuCoin and re-read its history files on the Tk thread, so
the window froze for as long as a request took (spec §6.33). Here :class:`ChartLoader` does all
of the reading (market candles, ``state/signals.json``, ``state/trader_status.json`` and the
journal) and returns frozen :class:`CoinChartData` / :class:`AccountChartData`; one
:class:`ChartWorker` thread runs it for every chart, so the market object and the file readers
are only ever used from one thread. Each source can fail on its own: the chart then shows what
did load and says what did not.

The small pure helpers (price text, point reduction, label spreading, candle lookup) are here
too, so they can be tested without a display.
"""

from __future__ import annotations

import bisect
import logging
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from pt_errors import PowerTraderError
from pt_format import price_text
from pt_journal import TradeJournal
from pt_journal_schema import FillRecord, JournalMissingError
from pt_signals import SIGNALS_SCHEMA, CoinStatus, SignalsSnapshot, snapshot_from_data
from pt_state import DataLayout, StateReader
from pt_trader import STATUS_SCHEMA
from pt_types import Candles, Mode, OrderTag, Side, Timeframe

log = logging.getLogger(__name__)

CANDLE_COUNT = 120  # candles per coin chart, as the original drew
ACCOUNT_POINTS = 250  # the account curve is reduced to at most this many points
MARKER_LIMIT = 200  # newest fills marked on the account curve
STALE_STATUS_S = 300.0  # wall seconds: an older trader status is flagged as old
READ_TIMEOUT_S = 2.0


class Market(Protocol):
    """The part of :class:`pt_thinker_exchanges.MarketData` the charts use."""

    def get_candle_from_exchanges(
        self, symbol: str, timeframe: Timeframe | str, *, limit: int = 120
    ) -> Candles: ...


class MarkerKind(StrEnum):
    BUY = "BUY"
    DCA = "DCA"
    SELL = "SELL"


@dataclass(frozen=True)
class Bar:
    """One candle (open time in UTC seconds)."""

    time: int
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True)
class Marker:
    """A fill from the journal, as a dot on a chart."""

    time: float
    price: float
    kind: MarkerKind
    coin: str

    @property
    def text(self) -> str:
        return self.kind.value


@dataclass(frozen=True)
class PriceLine:
    """A horizontal trade line from the trader's status: ``label`` is ASK, BID, AVG, DCA, SELL."""

    label: str
    price: float


@dataclass(frozen=True)
class NeuralView:
    """The thinker's view of the coin: levels, every active bound line, and the chosen
    timeframe's own pair (drawn stronger)."""

    text: str
    lows: tuple[float, ...] = ()  # every active low bound, highest first
    highs: tuple[float, ...] = ()  # every active high bound, lowest first
    tf_low: float | None = None
    tf_high: float | None = None
    written_at: float | None = None  # wall time of the signals file


@dataclass(frozen=True)
class CoinChartData:
    coin: str
    timeframe: Timeframe
    bars: tuple[Bar, ...]
    neural: NeuralView
    lines: tuple[PriceLine, ...]
    markers: tuple[Marker, ...]
    problems: tuple[str, ...]  # sources that could not be read, said plainly

    @property
    def key(self) -> tuple[str, Timeframe]:
        return (self.coin, self.timeframe)


@dataclass(frozen=True)
class AccountChartData:
    times: tuple[float, ...]
    values: tuple[float, ...]
    markers: tuple[Marker, ...]
    problem: str = ""

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None


@dataclass(frozen=True)
class CoinRequest:
    coin: str
    timeframe: Timeframe


@dataclass(frozen=True)
class AccountRequest:
    pass


@dataclass(frozen=True)
class LoadFailed:
    """A load that raised: the chart keeps what it shows and says why."""

    request: CoinRequest | AccountRequest
    message: str


Request = CoinRequest | AccountRequest
Result = CoinChartData | AccountChartData | LoadFailed


# ---------------------------------------------------------------------------------------------
# Pure helpers


fmt_price = price_text  # the chart's labels: no dollar sign (pt_format)


def price_tick(value: float, step: float) -> str:
    """An axis label with just enough decimals to tell ``step``-apart ticks apart."""
    places = max(0, min(8, -math.floor(math.log10(step) + 1e-9))) if step > 0 else 2
    return f"{value:,.{places}f}"


def reduce_points(
    times: Sequence[float], values: Sequence[float], limit: int = ACCOUNT_POINTS
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The account curve as the original drew it: bad or ≤ 0 values dropped, sorted, equal
    times kept once (the last), the middle averaged in equal buckets down to ``limit`` points
    with the first and last point exact, values rounded to cents."""
    clean = sorted(
        ((float(t), float(v)) for t, v in zip(times, values, strict=True)
         if math.isfinite(t) and math.isfinite(v) and v > 0),
        key=lambda p: p[0],
    )  # fmt: skip
    last: dict[float, float] = {}
    for t, v in clean:
        last[t] = v
    ts, vs = np.array(list(last), dtype=float), np.array(list(last.values()), dtype=float)
    if len(ts) > max(limit, 2):
        parts = np.array_split(np.arange(1, len(ts) - 1), max(limit, 2) - 2)
        ts = np.concatenate(([ts[0]], [ts[p].mean() for p in parts], [ts[-1]]))
        vs = np.concatenate(([vs[0]], [vs[p].mean() for p in parts], [vs[-1]]))
    return tuple(ts.tolist()), tuple(round(v, 2) for v in vs.tolist())


def spread_labels(ys: Sequence[float], gap: float, top: float, bottom: float) -> list[float]:
    """Label centres as near to ``ys`` as they can be while ``gap`` apart and inside
    ``[top, bottom]`` (when they all fit), in the input order."""
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    placed = [min(max(ys[i], top), bottom) for i in order]
    for k in range(1, len(placed)):
        placed[k] = max(placed[k], placed[k - 1] + gap)
    overflow = placed[-1] - bottom if placed else 0.0
    if overflow > 0:
        placed[-1] -= overflow
        for k in range(len(placed) - 2, -1, -1):
            placed[k] = min(placed[k], placed[k + 1] - gap)
    out = [0.0] * len(ys)
    for k, i in enumerate(order):
        out[i] = placed[k]
    return out


def bar_index(bars: Sequence[Bar], step: int, t: float) -> int | None:
    """The candle containing time ``t`` (None outside the chart)."""
    if not bars or t < bars[0].time or t >= bars[-1].time + step:
        return None
    return bisect.bisect_right([b.time for b in bars], t) - 1


def nearest_index(times: Sequence[float], t: float) -> int:
    i = bisect.bisect_left(times, t)
    if i == 0 or (i < len(times) and times[i] - t < t - times[i - 1]):
        return min(i, len(times) - 1)
    return i - 1


def marker_of(fill: FillRecord) -> Marker:
    if fill.side is Side.SELL:
        kind = MarkerKind.SELL
    else:
        kind = MarkerKind.DCA if fill.tag is OrderTag.DCA else MarkerKind.BUY
    return Marker(fill.time, fill.price, kind, fill.coin)


def bars_of(candles: Candles, count: int = CANDLE_COUNT) -> tuple[Bar, ...]:
    rows = zip(
        candles.time.tolist(), candles.open.tolist(), candles.high.tolist(),
        candles.low.tolist(), candles.close.tolist(), strict=True,
    )  # fmt: skip
    bars = tuple(Bar(int(t), o, h, lo, c) for t, o, h, lo, c in rows)
    return bars[-count:]


def _positive(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if math.isfinite(v) and v > 0 else None


def trade_lines(status: Mapping[str, Any] | None, coin: str) -> tuple[PriceLine, ...]:
    """ASK, BID and, while the bot holds the coin, AVG, DCA and SELL from ``trader_status/1``."""
    rows = (status or {}).get("coins", ())
    row = next((c for c in rows if isinstance(c, dict) and c.get("coin") == coin), None)
    if row is None:
        return ()
    held = (_positive(row.get("quantity")) or 0) > 0
    keys = [("ASK", "ask"), ("BID", "bid")]
    if held:
        keys += [("AVG", "avg_cost"), ("DCA", "next_dca_price"), ("SELL", "trailing_line")]
    found = ((label, _positive(row.get(key))) for label, key in keys)
    return tuple(PriceLine(label, price) for label, price in found if price is not None)


def neural_view(snap: SignalsSnapshot | None, coin: str, tf: Timeframe) -> NeuralView:
    """Levels and bound lines of ``coin``; a coin the thinker cannot score says why."""
    if snap is None:
        return NeuralView("Neural: no signals yet (start the bot)")
    found = snap.coin(coin)
    if found is None:
        return NeuralView(f"Neural: {coin} is not in the thinker's signals", written_at=None)
    lows = sorted({v.signal.low_bound for v in found.timeframes if _positive(v.signal.low_bound)})
    highs = sorted(
        {v.signal.high_bound for v in found.timeframes if _positive(v.signal.high_bound)}
    )
    own = next((v.signal for v in found.timeframes if v.signal.timeframe is tf), None)
    if found.status is CoinStatus.READY:
        text = (f"Neural: LONG {found.long_level} · SHORT {found.short_level}"
                f"  |  lines L={len(lows)} S={len(highs)}")  # fmt: skip
    else:
        text = f"Neural: {found.status.value.replace('_', ' ')} — {found.reason}"
    return NeuralView(
        text,
        tuple(reversed(lows)),
        tuple(highs),
        None if own is None else _positive(own.low_bound),
        None if own is None else _positive(own.high_bound),
        snap.written_at,
    )


# ---------------------------------------------------------------------------------------------
# The loader (worker thread only)


def _status_data(data: Any) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("coins"), list):
        raise ValueError("trader status data must be an object with a 'coins' list")


class ChartLoader:
    """Reads everything a chart shows. Not thread-safe: one :class:`ChartWorker` owns it.

    ``market_factory`` builds the market on first use (on the worker thread); ``mode`` picks the
    journal's rows (None: the mode the journal saw last)."""

    def __init__(
        self,
        layout: DataLayout,
        market_factory: Callable[[], Market],
        *,
        mode: Mode | None = None,
        wall_clock: Callable[[], float] = time.time,
        candle_count: int = CANDLE_COUNT,
    ) -> None:
        self.layout = layout
        self._market_factory = market_factory
        self._market: Market | None = None
        self.mode = mode
        self._wall = wall_clock
        self.candle_count = candle_count
        # Own readers rather than pt_thinker.read_signals' shared ones: the hub's Tk-side
        # refresh may use those from another thread, and a reader is not thread-safe.
        self._signals = StateReader(
            layout.signals_file, SIGNALS_SCHEMA, validate=snapshot_from_data, clock=wall_clock
        )
        self._status = StateReader(
            layout.trader_status_file, STATUS_SCHEMA, validate=_status_data, clock=wall_clock
        )

    def load(self, request: Request) -> CoinChartData | AccountChartData:
        if isinstance(request, CoinRequest):
            return self.load_coin(request.coin, request.timeframe)
        return self.load_account()

    def load_coin(self, coin: str, timeframe: Timeframe) -> CoinChartData:
        coin, problems = coin.upper(), []
        bars: tuple[Bar, ...] = ()
        try:
            if self._market is None:
                self._market = self._market_factory()
            candles = self._market.get_candle_from_exchanges(
                coin, timeframe, limit=self.candle_count
            )
            bars = bars_of(candles, self.candle_count)
            if not bars:
                problems.append(f"no {timeframe.value} candles for {coin}")
        except (PowerTraderError, OSError, ValueError) as exc:
            problems.append(f"candles: {exc}")
        neural = neural_view(self._read_signals(), coin, timeframe)
        status = self._status.read()
        if status is not None and self._wall() - status.written_at > STALE_STATUS_S:
            age = (self._wall() - status.written_at) / 60
            problems.append(f"trader status is {age:.0f} min old (is the trader running?)")
        lines = trade_lines(None if status is None else status.data, coin)
        markers, problem = self._coin_markers(coin, timeframe, bars)
        problems += [problem] if problem else []
        return CoinChartData(coin, timeframe, bars, neural, lines, markers, tuple(problems))

    def _read_signals(self) -> SignalsSnapshot | None:
        env = self._signals.read()
        if env is None:
            return None
        return snapshot_from_data(env.data, written_at=env.written_at, seq=env.seq)

    def _journal(self) -> TradeJournal:
        return TradeJournal.open_readonly(self.layout.journal_db, busy_timeout_s=READ_TIMEOUT_S)

    def _mode(self, journal: TradeJournal) -> Mode | None:
        return self.mode if self.mode is not None else journal.latest_mode()

    def _coin_markers(
        self, coin: str, tf: Timeframe, bars: Sequence[Bar]
    ) -> tuple[tuple[Marker, ...], str]:
        if not bars:
            return (), ""
        try:
            with self._journal() as journal, journal.snapshot():
                fills = journal.fills(
                    coin=coin, since=bars[0].time, until=bars[-1].time + tf.seconds,
                    mode=self._mode(journal),
                )  # fmt: skip
        except JournalMissingError:
            return (), ""
        except (PowerTraderError, sqlite3.Error, OSError) as exc:
            return (), f"journal: {exc}"
        return tuple(marker_of(f) for f in fills), ""

    def load_account(self) -> AccountChartData:
        try:
            with self._journal() as journal, journal.snapshot():
                mode = self._mode(journal)
                series = journal.equity_series(mode=mode)
                fills = journal.fills(limit=MARKER_LIMIT, newest_first=True, mode=mode)
        except JournalMissingError:
            return AccountChartData((), (), (), "No trades yet — start the bot")
        except (PowerTraderError, sqlite3.Error, OSError) as exc:
            return AccountChartData((), (), (), f"journal: {exc}")
        times, values = reduce_points(series.time.tolist(), series.equity.tolist())
        markers = tuple(
            marker_of(f) for f in reversed(fills) if times and times[0] <= f.time <= times[-1]
        )
        return AccountChartData(times, values, markers)


# ---------------------------------------------------------------------------------------------
# The worker thread


class ChartWorker:
    """One thread that runs every chart's loads in turn and answers into each chart's queue.

    It holds no widget: the last reference to a Tk object must never be dropped off the Tk
    thread. The hub creates one for all charts and closes it when the window closes."""

    def __init__(self, loader: ChartLoader) -> None:
        self.loader = loader
        self._jobs: queue.Queue[tuple[Request, queue.Queue[Result]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="chart-worker", daemon=True)
        self._thread.start()

    def submit(self, request: Request, reply: queue.Queue[Result]) -> None:
        self._jobs.put((request, reply))

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            request, reply = job
            try:
                reply.put(self.loader.load(request))
            except Exception as exc:  # shown on the chart rather than killing the thread
                log.exception("chart load %s failed", request)
                reply.put(LoadFailed(request, f"unexpected error: {exc}"))

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = READ_TIMEOUT_S + 1) -> None:
        """Stop after the load in progress (at most a read timeout)."""
        self._jobs.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("chart worker still busy at close; it stops after its load")
