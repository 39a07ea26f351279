"""The hub's chart notebook: ACCOUNT plus one page per coin, over one shared chart worker.

All pages load through one :class:`pt_gui_chartdata.ChartWorker` (one thread reads candles,
signals and the journal for every chart). The pages follow the settings: a change of coins adds
and removes pages; a change of mode, venues, candle count or timeframes rebuilds the worker and
every page, because the market behind them is a different one.
"""

from __future__ import annotations

import logging
import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from pt_config_schema import Settings
from pt_gui_chartdata import ChartLoader, ChartWorker, Market
from pt_gui_coinchart import AccountChart, CoinChart
from pt_gui_theme import Theme
from pt_state import DataLayout
from pt_thinker_exchanges import build_market

log = logging.getLogger(__name__)

ACCOUNT = "ACCOUNT"
MarketFactory = Callable[[Settings, DataLayout], Market]


def _market_key(s: Settings) -> tuple[object, ...]:
    """What the chart worker is built from: any change means a new worker."""
    return (s.mode, s.exchanges, s.candles_limit, s.timeframes, s.default_timeframe)


class ChartsNotebook(ttk.Notebook):
    """ACCOUNT + a page per coin; :meth:`open` shows a coin, :meth:`apply_settings` follows
    the settings. ``market_factory`` is :func:`pt_thinker_exchanges.build_market` by default."""

    def __init__(
        self,
        parent: tk.Misc,
        *,
        layout: DataLayout,
        settings: Settings,
        theme: Theme,
        market_factory: MarketFactory | None = None,
    ) -> None:
        super().__init__(parent)
        self.layout, self.theme = layout, theme
        self._market_factory = market_factory or build_market
        self.settings = settings
        self.pages: dict[str, AccountChart | CoinChart] = {}
        self.worker = self._new_worker(settings)
        self._add_pages(settings)

    def _new_worker(self, settings: Settings) -> ChartWorker:
        layout, factory = self.layout, self._market_factory
        loader = ChartLoader(
            layout,
            lambda: factory(settings, layout),
            mode=settings.mode,
            candle_count=settings.candles_limit,
        )
        return ChartWorker(loader)

    def _refresh_ms(self, settings: Settings) -> int:
        return round(settings.chart_refresh_seconds * 1000)

    def _add_pages(self, settings: Settings) -> None:
        if ACCOUNT not in self.pages:
            page = AccountChart(
                self, self.worker, refresh_ms=self._refresh_ms(settings), theme=self.theme
            )
            self.pages[ACCOUNT] = page
            self.add(page, text=ACCOUNT)
            self.insert(0, page)  # first, also when coin pages exist already
        for coin in settings.coins:
            if coin not in self.pages:
                self.pages[coin] = CoinChart(
                    self,
                    coin,
                    self.worker,
                    timeframe=settings.default_timeframe,
                    refresh_ms=self._refresh_ms(settings),
                    theme=self.theme,
                )
                self.add(self.pages[coin], text=coin)

    def _remove(self, name: str) -> None:
        page = self.pages.pop(name)
        self.forget(page)
        page.destroy()

    def apply_settings(self, settings: Settings) -> None:
        """Add or drop coin pages, or rebuild everything when the market changed."""
        old, self.settings = self.settings, settings
        if _market_key(old) != _market_key(settings) or (
            old.chart_refresh_seconds != settings.chart_refresh_seconds
        ):
            log.info("chart settings changed: rebuilding the chart pages")
            shown = self.shown()
            for name in list(self.pages):
                self._remove(name)
            self.worker.close()
            self.worker = self._new_worker(settings)
            self._add_pages(settings)
            self.open(shown if shown in self.pages else ACCOUNT)
            return
        for coin in [c for c in self.pages if c != ACCOUNT and c not in settings.coins]:
            self._remove(coin)
        self._add_pages(settings)
        order = [ACCOUNT, *settings.coins]
        for index, name in enumerate(order):  # the tabs in the settings' order
            self.insert(index, self.pages[name])

    def open(self, name: str) -> None:
        """Show ``name``'s page (a coin, or ACCOUNT); unknown names are ignored."""
        page = self.pages.get(name)
        if page is not None:
            self.tk.call(str(self), "select", str(page))  # Notebook.select is untyped

    def shown(self) -> str | None:
        current = str(self.tk.call(str(self), "select"))
        return next((name for name, page in self.pages.items() if str(page) == current), None)

    def destroy(self) -> None:
        for name in list(self.pages):
            self.pages.pop(name).destroy()
        self.worker.close()
        super().destroy()
