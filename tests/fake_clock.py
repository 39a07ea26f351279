"""A simulated clock for tests: callable like ``time.time``; ``sleep`` advances it."""

from __future__ import annotations


class FakeClock:
    """Simulated time shared by the code under test and the fakes; sleeping advances it."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
