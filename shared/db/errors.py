"""The database's refusals of a value, as failures a client may see (no SQL, no constraint internals).

Servers name what their unique constraints mean; everything else maps to one generic sentence:

```python
with translate_errors({"profiles_live_email": "that email address is already used"},
                      conflict="a profile with these details already exists",
                      invalid="a value breaks a profile rule"):
    await conn.execute("INSERT ...")
```

Connection failures and timeouts are not touched here: they belong to the retry and breaker layers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import asyncpg

from shared.errors import Conflict, InvalidInput

log = logging.getLogger(__name__)

UNSTORABLE = "a value contains text that cannot be stored"


@contextmanager
def translate_errors(unique: Mapping[str, str], *, conflict: str, invalid: str) -> Iterator[None]:
    """Unique violation → `Conflict` (the constraint's own message, else `conflict`); check or not-null
    violation → `InvalidInput(invalid)`; text the database cannot store → `InvalidInput`."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(unique.get(exc.constraint_name or "", conflict)) from None
    except (asyncpg.CheckViolationError, asyncpg.NotNullViolationError) as exc:
        log.warning("a value passed validation but not a table constraint (%s)", exc.constraint_name)
        raise InvalidInput(invalid) from None
    except (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError,
            asyncpg.StringDataRightTruncationError):
        raise InvalidInput(UNSTORABLE) from None
