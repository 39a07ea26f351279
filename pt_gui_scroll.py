"""A frame whose content scrolls vertically: for lists that grow with the number of coins.

``ScrollFrame.body`` is where the content goes. The scrollbar appears only when the content is
taller than the frame, and the mouse wheel scrolls it while the pointer is over it (Linux
buttons 4/5 and Windows/macOS ``<MouseWheel>``), so twenty coins fit the hub's left column
without pushing anything else off the window.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk

from pt_gui_theme import PANEL


class ScrollFrame(ttk.Frame):
    """Put children in ``self.body``; the frame asks for ``height`` px and scrolls the rest."""

    def __init__(self, parent: tk.Misc, *, height: int = 200, style: str = "Panel.TFrame") -> None:
        super().__init__(parent, style=style)
        self.canvas = tk.Canvas(
            self, background=PANEL, highlightthickness=0, borderwidth=0, height=height
        )
        self.bar = ttk.Scrollbar(self, orient="vertical", command=self.canvas.yview)
        self.canvas.configure(yscrollcommand=self.bar.set)
        self.body = ttk.Frame(self.canvas, style=style)
        self._window = self.canvas.create_window(0, 0, window=self.body, anchor="nw")
        self.canvas.grid(row=0, column=0, sticky="nsew")
        self.columnconfigure(0, weight=1)
        self.rowconfigure(0, weight=1)
        self.body.bind("<Configure>", lambda _e: self._fit(), add="+")
        self.canvas.bind("<Configure>", self._resize, add="+")
        for widget in (self.canvas, self.body):
            widget.bind("<Enter>", lambda _e: self._wheel(True), add="+")
            widget.bind("<Leave>", lambda _e: self._wheel(False), add="+")

    @property
    def scrollable(self) -> bool:
        """The content is taller than what is shown."""
        return self.body.winfo_reqheight() > self.canvas.winfo_height() > 1

    def _resize(self, event: tk.Event[tk.Misc]) -> None:
        self.canvas.itemconfigure(self._window, width=event.width)
        self._fit()

    def _fit(self) -> None:
        self.canvas.configure(scrollregion=(0, 0, 0, self.body.winfo_reqheight()))
        if self.scrollable:
            self.bar.grid(row=0, column=1, sticky="ns")
        else:
            self.bar.grid_remove()
            self.canvas.yview_moveto(0)

    def _wheel(self, inside: bool) -> None:
        """Bind the wheel globally only while the pointer is over this frame."""
        for sequence in ("<MouseWheel>", "<Button-4>", "<Button-5>"):
            if inside:
                self.bind_all(sequence, self._scroll)
            else:
                self.unbind_all(sequence)

    def _scroll(self, event: tk.Event[tk.Misc]) -> None:
        if not self.scrollable:
            return
        down = event.num == 5 or (event.num != 4 and event.delta < 0)
        self.canvas.yview_scroll(1 if down else -1, "units")
