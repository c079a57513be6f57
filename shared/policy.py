"""Tool policies as data: named, composable, checked when a tool is registered (the tenacity lesson).

```python
READ = Policy(scopes={"profiles:read"}, read_only=True, rate="30/s", retry=RETRY)

@app.tool(READ | redact("email") | timeout(5), title="Search profiles")
async def search_profiles(query: str, email: str | None = None) -> Page: ...
```

A `Policy` is a partial declaration; `a | b` merges two: scopes and redacted names are united,
the flags (`read_only`, `destructive`, `idempotent`) are or-ed, and a value `b` sets (timeout, rate,
retry) replaces `a`'s. Nothing is implied: a tool is retried only if its policy says `retry=RETRY`
(or another `RetryPolicy`); `NO_RETRY` says "never" explicitly and overrides an earlier retry. The
merged policy becomes a `shared.tool.ToolPolicy` when the tool is registered, which is where the
rules are enforced: a read-only tool cannot be destructive, only read-only or idempotent tools may
be retried, and every `redact` name must be a parameter of the function (a typo would otherwise
silently store the personal data it meant to hide), all raised at import time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.resilience.limits import Rate
from shared.resilience.retry import RetryPolicy

DEFAULT_TIMEOUT_S = 30.0  # the one default: a policy that names no timeout gets this at registration
RETRY = RetryPolicy(attempts=3, initial_wait=0.05, max_wait=1.0)  # transient database errors, full jitter
NO_RETRY = RetryPolicy(attempts=1)  # one try: explicit, and it overrides an earlier `retry=` when merged


@dataclass(frozen=True)
class Policy:
    """A partial tool policy; combine with `|`. Fields left at None are "not said here"."""

    scopes: frozenset[str] = frozenset()
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    timeout: float | None = None
    rate: Rate | None = None
    retry: RetryPolicy | None = None
    redact: frozenset[str] = frozenset()

    def __init__(self, *, scopes: Iterable[str] = (), read_only: bool = False, destructive: bool = False,
                 idempotent: bool = False, timeout: float | None = None, rate: Rate | str | None = None,
                 retry: RetryPolicy | None = None, redact: Iterable[str] = ()) -> None:
        if isinstance(scopes, str) or isinstance(redact, str):
            raise TypeError("scopes and redact take a collection of names, not one string")
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be positive")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError("retry takes a RetryPolicy (RETRY, NO_RETRY or your own)")
        set_ = object.__setattr__
        set_(self, "scopes", frozenset(scopes))
        set_(self, "read_only", read_only)
        set_(self, "destructive", destructive)
        set_(self, "idempotent", idempotent)
        set_(self, "timeout", timeout)
        set_(self, "rate", Rate.parse(rate) if isinstance(rate, str) else rate)
        set_(self, "retry", retry)
        set_(self, "redact", frozenset(redact))

    def __or__(self, other: Policy) -> Policy:
        if not isinstance(other, Policy):
            return NotImplemented
        return Policy(
            scopes=self.scopes | other.scopes,
            read_only=self.read_only or other.read_only,
            destructive=self.destructive or other.destructive,
            idempotent=self.idempotent or other.idempotent,
            timeout=other.timeout if other.timeout is not None else self.timeout,
            rate=other.rate if other.rate is not None else self.rate,
            retry=other.retry if other.retry is not None else self.retry,
            redact=self.redact | other.redact,
        )


def redact(*names: str) -> Policy:
    """Keep these arguments out of the audit record (a keyed hash of all arguments is still kept)."""
    return Policy(redact=names)


def timeout(seconds: float) -> Policy:
    """The deadline for the whole call, retries and backoff included."""
    return Policy(timeout=seconds)


def rate(limit: Rate | str) -> Policy:
    """Calls admitted per principal and tool, e.g. `rate("20/s")`; over it, `rate_limited` at once."""
    return Policy(rate=limit)
