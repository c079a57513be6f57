"""Helpers the servers share from the core: signed cursors and database-error translation."""

from __future__ import annotations

import pytest

from shared.cursors import open_cursor, sign_cursor
from shared.db.errors import UNSTORABLE, translate_errors
from shared.errors import Conflict, InvalidInput
from shared.keys import KeyRing

KEY = KeyRing(b"m" * 64, "test").derive("tests/cursor")
BAD = "cursor is not valid"


def test_a_cursor_round_trips_only_for_its_binding_and_key():
    token = sign_cursor(KEY, "alice|q", [1, "x", 2])
    assert open_cursor(KEY, "alice|q", token, BAD) == [1, "x", 2]
    for key, binding in [(KEY, "bob|q"), (KEY, "alice|r"), (KeyRing(b"n" * 64, "t").derive("tests/cursor"), "alice|q")]:
        with pytest.raises(InvalidInput, match=BAD):
            open_cursor(key, binding, token, BAD)


@pytest.mark.parametrize("forged", ["", ".", "abc", "abc.def", "!!.!!", "e30.AAAA", "\x00.\ud800"])
def test_forged_cursors_are_refused_with_the_callers_message(forged):
    with pytest.raises(InvalidInput, match=BAD):
        open_cursor(KEY, "alice|q", forged, BAD)


def test_a_cursor_has_one_spelling():
    body, tag = sign_cursor(KEY, "b", [1]).split(".")
    last = tag[-1]
    respelled = tag[:-1] + ("B" if last == "A" else "A")  # other spare bits, same bytes or not: refused
    with pytest.raises(InvalidInput):
        open_cursor(KEY, "b", f"{body}.{respelled}", BAD)


async def test_database_refusals_become_client_failures(db_connection):
    async with db_connection() as conn:
        await conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY, v text CHECK (v <> 'bad'), w text NOT NULL)")
        await conn.execute("INSERT INTO t VALUES (1, 'ok', 'x')")
        with pytest.raises(Conflict, match="id taken"), translate_errors({"t_pkey": "id taken"}, conflict="c",
                                                                         invalid="i"):
            await conn.execute("INSERT INTO t VALUES (1, 'ok', 'x')")
        with pytest.raises(InvalidInput, match="^i$"), translate_errors({}, conflict="c", invalid="i"):
            await conn.execute("INSERT INTO t VALUES (2, 'bad', 'x')")
        with pytest.raises(InvalidInput, match=UNSTORABLE), translate_errors({}, conflict="c", invalid="i"):
            await conn.execute("INSERT INTO t VALUES (3, $1, 'x')", "a\x00b")
