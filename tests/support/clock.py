"""One fake clock for the tests: time moves only when a test says so (never a wall-clock window).

```python
clock = FakeClock()
breaker = CircuitBreaker("db", policy, clock=clock)      # code that takes `clock=`
await run_with_retry(fn, policy, clock=clock, sleep=clock.sleep)  # ... and `sleep=`
monkeypatch.setattr(asyncio.get_running_loop(), "time", clock)  # code that reads the loop's time
```

`sleep` advances the clock by the time asked, at once, and records it in `waits`, so a test can say
exactly how long the code under test chose to wait.
"""

from __future__ import annotations


class FakeClock:
    """A callable clock (`clock()` → seconds); `advance` moves it, `sleep` is an async sleep on it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.waits: list[float] = []  # every `sleep` asked for, in order

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Return at once with the clock moved on by `seconds` (for code that takes `sleep=`)."""
        self.waits.append(seconds)
        self.advance(seconds)
