"""API tokens (create, list, revoke, verify) and JWT verification, against the real database."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mcp_suite import tokens_cli
from shared.auth import jwt as tokens_jwt
from shared.auth import tokens
from tests.support.clock import FakeClock


@pytest.fixture
async def conn(db_connection):
    async with db_connection() as connection:
        yield connection


async def test_tokens_are_stored_hashed_and_verify_to_their_principal_and_scopes(conn, database_url):
    secret, info = await tokens.create_token(conn, principal="alice", scopes="profiles:read profiles:write",
                                             expires_in=timedelta(days=30), label="laptop")
    assert secret.startswith("mcps_") and len(secret) == 48
    stored = await conn.fetchrow("SELECT * FROM api_tokens WHERE id = $1", info.id)
    assert bytes(stored["token_hash"]) == tokens.hash_token(secret)
    assert secret.encode() not in json.dumps(dict(stored), default=str).encode()
    verifier = tokens.OpaqueTokenVerifier(database_url, cache_seconds=0)
    try:
        access = await verifier.verify_token(secret)
        assert access is not None and access.client_id == "alice"
        assert sorted(access.scopes) == ["profiles:read", "profiles:write"]
        assert access.token == info.id and secret not in access.model_dump_json()
        assert access.expires_at is not None and access.expires_at > time.time() + 29 * 86400
        assert await verifier.verify_token(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
        assert await verifier.verify_token("mcps_short") is None
        assert await tokens.revoke_token(conn, info.id)
        assert await verifier.verify_token(secret) is None
    finally:
        await verifier.close()
    assert not await tokens.revoke_token(conn, "tok_missing")


async def test_expiry_is_enforced_and_the_cache_is_bounded_in_time(conn, database_url):
    secret, info = await tokens.create_token(conn, principal="bob", scopes=["notes:read"], expires_in=None)
    clock = FakeClock()
    verifier = tokens.OpaqueTokenVerifier(database_url, cache_seconds=0.3, clock=clock)
    try:
        assert (await verifier.verify_token(secret)).expires_at is None
        await conn.execute("UPDATE api_tokens SET expires_at = now() - interval '1 s' WHERE id = $1", info.id)
        assert await verifier.verify_token(secret) is not None  # cached for up to cache_seconds
        clock.now += 0.35
        assert await verifier.verify_token(secret) is None
        assert (await verifier.check(secret)).reason == "expired"
    finally:
        await verifier.close()


async def test_a_cached_token_is_refused_once_its_own_expiry_passes(conn, database_url):
    """The cache window never outlives the token: expiry is checked on every request."""
    secret, _ = await tokens.create_token(conn, principal="bob", scopes=["notes:read"], expires_in=timedelta(days=1))
    verifier = tokens.OpaqueTokenVerifier(database_url, cache_seconds=3600, clock=FakeClock())
    try:
        verdict = await verifier.check(secret)
        assert verdict.access is not None and verdict.at(time.time()).access is not None
        assert verdict.at(time.time() + 2 * 86400) == tokens.Verdict(None, "expired")
    finally:
        await verifier.close()


async def test_a_refusal_says_why(conn, database_url):
    revoked, info = await tokens.create_token(conn, principal="rita", scopes=["notes:read"], expires_in=None)
    await tokens.revoke_token(conn, info.id)
    expired, info = await tokens.create_token(conn, principal="rita", scopes=["notes:read"], expires_in=None)
    await conn.execute("UPDATE api_tokens SET expires_at = now() - interval '1 s' WHERE id = $1", info.id)
    verifier = tokens.SuiteTokenVerifier(tokens.OpaqueTokenVerifier(database_url, cache_seconds=0))
    try:
        assert (await verifier.check(revoked)).reason == "revoked"
        assert (await verifier.check(expired)).reason == "expired"
        assert (await verifier.check(tokens.new_secret())).reason == "unknown"
        assert (await verifier.check("not-a-token")).reason == "unknown"
        assert (await verifier.check("a.b.c")).reason == "invalid"  # a JWT, and no identity provider configured
    finally:
        await verifier.close()


async def test_an_unreachable_store_is_503_material_not_a_silent_401():
    verifier = tokens.OpaqueTokenVerifier("postgresql://nobody@127.0.0.1:1/none", cache_seconds=0)
    with pytest.raises(tokens.TokenStoreUnavailable):
        await verifier.verify_token("mcps_" + "a" * 43)


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * 86400), ("12h", 43200), ("45m", 2700), ("2w", 1209600)])
def test_durations(text, seconds):
    assert tokens.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["0d", "-1d", "soon", "1y", ""])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        tokens.parse_duration(bad)


@pytest.mark.parametrize("bad", ["", "profiles", "Profiles:Read", "a b:c d", "x:y;drop"])
def test_bad_scopes(bad):
    with pytest.raises(ValueError):
        tokens.parse_scopes(bad)


def test_cli_create_list_revoke(database_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MCP_SUITE_SERVERS", "tests.interop.fixture_servers:notes")  # `notes:*` scopes exist
    assert tokens_cli.main(["create", "--principal", "carol", "--scopes", "notes:read", "--expires", "1d",
                            "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["token"].startswith("mcps_") and created["status"] == "active"
    assert tokens_cli.main(["list", "--json", "--principal", "carol"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["id"] for row in listed] == [created["id"]] and "token" not in listed[0]
    assert tokens_cli.main(["revoke", created["id"]]) == 0
    capsys.readouterr()
    assert tokens_cli.main(["list", "--principal", "carol"]) == 0
    table = capsys.readouterr().out
    assert "revoked" in table and created["token"] not in table
    assert tokens_cli.main(["revoke", "tok_nope"]) == 1
    assert tokens_cli.main(["create", "--principal", "carol", "--scopes", "bad scope!", "--expires", "1d"]) == 2
    assert tokens_cli.main(["create", "--principal", "carol", "--scopes", "a:b", "--expires", "1y"]) == 2


def test_cli_create_prints_only_the_secret_on_stdout(database_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert tokens_cli.main(["create", "--principal", "dave", "--scopes", "*:read", "--expires", "never"]) == 0
    out, err = capsys.readouterr()
    assert out.strip().startswith("mcps_") and len(out.strip().splitlines()) == 1
    assert "shown only now" in err and "expires never" in err


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def _verifier(ec_key, jwks: bool = False) -> tokens_jwt.JwtVerifier:
    public = ec_key.public_key()
    if jwks:
        keys = json.dumps({"keys": [{**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public)), "kid": "k1"}]})
    else:
        keys = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return tokens_jwt.JwtVerifier(tokens_jwt.JwtSettings(issuer="https://idp", audience="suite", keys=keys,
                                                         algorithms=("ES256",)))


def _token(ec_key, **overrides) -> str:
    now = int(time.time())
    claims = {"iss": "https://idp", "aud": "suite", "sub": "erin", "scp": ["notes:read"], "exp": now + 60}
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, ec_key, algorithm="ES256",
                      headers={"kid": "k1"})


@pytest.mark.parametrize("jwks", [False, True])
async def test_jwt_checks_signature_issuer_audience_and_expiry(ec_key, jwks):
    verifier = _verifier(ec_key, jwks)
    access = await verifier.verify_token(_token(ec_key))
    assert access is not None and access.client_id == "https://idp#erin" and access.scopes == ["notes:read"]
    assert access.resource == "suite"
    assert await verifier.verify_token(_token(ec_key, aud="other")) is None
    assert await verifier.verify_token(_token(ec_key, aud=None)) is None
    assert await verifier.verify_token(_token(ec_key, iss="https://evil")) is None
    assert await verifier.verify_token(_token(ec_key, exp=int(time.time()) - 120)) is None
    assert await verifier.verify_token(_token(ec.generate_private_key(ec.SECP256R1()))) is None
    unsigned = jwt.encode({"iss": "https://idp", "aud": "suite", "sub": "erin", "exp": int(time.time()) + 60},
                          None, algorithm="none")
    assert await verifier.verify_token(unsigned) is None


def test_jwt_settings_demand_an_audience(monkeypatch):
    monkeypatch.setenv("MCP_SUITE_JWT_ISSUER", "https://idp")
    monkeypatch.delenv("MCP_SUITE_JWT_AUDIENCE", raising=False)
    with pytest.raises(ValueError, match="AUDIENCE"):
        tokens_jwt.JwtSettings.from_env()


async def test_environment_tokens_are_synchronised(conn, database_url):
    first, second = tokens.new_secret(), tokens.new_secret()
    assert await tokens.sync_env_tokens(conn, f"ann|notes:read|{first}\nben|notes:read notes:write|{second}") == 2
    verifier = tokens.OpaqueTokenVerifier(database_url, cache_seconds=0)
    try:
        assert (await verifier.verify_token(first)).client_id == "ann"
        assert sorted((await verifier.verify_token(second)).scopes) == ["notes:read", "notes:write"]
        assert await tokens.sync_env_tokens(conn, f"ann|notes:read notes:write|{first}") == 1  # ben removed
        assert sorted((await verifier.verify_token(first)).scopes) == ["notes:read", "notes:write"]
        assert await verifier.verify_token(second) is None
    finally:
        await verifier.close()
    with pytest.raises(ValueError):
        tokens.parse_env_tokens("ann|notes:read|not-a-secret")


def test_cli_generate_prints_a_fresh_secret(capsys):
    assert tokens_cli.main(["generate"]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("mcps_") and len(secret) == 48


async def test_a_jwt_subject_cannot_impersonate_an_opaque_token_principal(ec_key):
    """An opaque token's principal never contains `#`; every JWT principal does (issuer#subject)."""
    access = await _verifier(ec_key).verify_token(_token(ec_key, sub="alice"))
    assert access is not None and access.client_id == tokens_jwt.jwt_principal("https://idp", "alice") != "alice"
    with pytest.raises(ValueError):
        tokens.check_principal(access.client_id)  # no opaque token can be made for a JWT principal
    assert (await _verifier(ec_key).check(_token(ec_key, exp=int(time.time()) - 120))).reason == "expired"
    assert (await _verifier(ec_key).check(_token(ec_key, aud="other"))).reason == "invalid"


def test_no_token_may_claim_the_anonymous_principal():
    with pytest.raises(ValueError, match="anonymous"):
        tokens.check_principal("anonymous")


async def test_a_revoked_environment_token_stays_revoked_at_the_next_start(conn, database_url):
    secret = tokens.new_secret()
    line = f"envrev|notes:read|{secret}"
    await tokens.sync_env_tokens(conn, line)
    token_id = await conn.fetchval("SELECT id FROM api_tokens WHERE token_hash = $1", tokens.hash_token(secret))
    assert await tokens.revoke_token(conn, token_id)
    await tokens.sync_env_tokens(conn, line)  # the next start, the same environment
    verifier = tokens.OpaqueTokenVerifier(database_url, cache_seconds=0)
    try:
        assert (await verifier.check(secret)).reason == "revoked"
        fresh = tokens.new_secret()  # re-issue: a deliberate new secret for the same principal
        await tokens.sync_env_tokens(conn, f"envrev|notes:read|{fresh}")
        assert (await verifier.verify_token(fresh)).client_id == "envrev"
        assert (await verifier.check(secret)).reason == "revoked"
    finally:
        await verifier.close()


@pytest.mark.parametrize("scopes", ["profile:raed", "profiles:raed", "*:raed", "nosuch:*"])
def test_cli_refuses_scopes_that_grant_nothing(scopes, capsys):
    assert tokens_cli.main(["create", "--principal", "typo", "--scopes", f"profiles:read {scopes}"]) == 2
    err = capsys.readouterr().err
    assert f"unknown scope(s) {scopes}" in err and "profiles:read" in err and "search:read" in err


@pytest.mark.parametrize("scopes", ["*:read", "profiles:*", "*", "profiles:admin search:write"])
def test_wildcards_and_real_scopes_are_allowed(scopes):
    tokens.check_known_scopes(tokens.parse_scopes(scopes), tokens_cli.known_scopes())


def test_cli_list_never_truncates_scopes(database_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url)
    many = "profiles:admin profiles:read profiles:write search:read search:write"
    assert tokens_cli.main(["create", "--principal", "wide", "--scopes", many, "--expires", "1d"]) == 0
    capsys.readouterr()
    assert tokens_cli.main(["list", "--principal", "wide"]) == 0
    assert many in capsys.readouterr().out
