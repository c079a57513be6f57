"""One fake clock for the tests: time moves only when a test says so (never a wall-clock window)."""

from __future__ import annotations


class FakeClock:
    """A callable clock (`clock()` → seconds) for code that takes `clock=`; `advance` moves it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
