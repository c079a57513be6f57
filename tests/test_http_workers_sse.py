"""SSE with `serve --workers 2`: sessions live on either worker and their POSTs may land on either.

The kernel spreads new connections across the workers (`SO_REUSEPORT`). The clients here open a
fresh connection for every POST (no keep-alive), so POSTs land on both workers; a POST that reached
the worker not holding its session comes back with `X-Worker-Relay` (the receiving worker) beside
the owner's `X-Worker`. Loops stop on a condition (both workers seen), never on a time window.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.sse import sse_client

from shared.auth import tokens
from shared.http import relay as relay_module
from shared.http import workers
from shared.http.relay import RELAYED_FOR, SessionRelay, WorkerPeers
from tests.interop.harness import ServeProcess, base_env
from tests.test_http_app import notes_database

pytestmark = pytest.mark.skipif(not workers.supported(), reason="several workers need Linux (SO_REUSEPORT)")
SSE_NOTES = ["tests.interop.fixture_servers:notes", "--transport", "sse", "--workers", "2"]
LIMIT = 64 * 1024  # small, so a refused body still fits the socket buffers (no reset before the answer)
MESSAGE_PATH = re.compile(r"^/messages/(\d+)/$")


@dataclass
class Site:
    url: str
    secret: str
    other: str
    serve: ServeProcess
    tmp: Path
    conn: object = field(repr=False)


def enterable_folder() -> Path:
    """A TMPDIR others may enter (pytest's own is 0700, which would hide a socket left open)."""
    tmp = Path(tempfile.mkdtemp(prefix="sse-workers-"))
    tmp.chmod(0o755)
    return tmp


@pytest.fixture(scope="module")
async def site(make_database):
    tmp = enterable_folder()
    async with notes_database(make_database, "sse-worker") as (url, conn, secret):
        other, _ = await tokens.create_token(conn, principal="someone-else", scopes="notes:read notes:write",
                                             expires_in=timedelta(hours=1))
        previous = os.umask(0)  # the worst umask: the socket's privacy must not depend on it
        try:
            serve = ServeProcess(SSE_NOTES, base_env(url, TMPDIR=str(tmp), MCP_SUITE_MAX_BODY_BYTES=str(LIMIT))).start()
        finally:
            os.umask(previous)
        try:
            yield Site(url, secret, other, serve, tmp, conn)
        finally:
            serve.stop()
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Seen:
    """The message POSTs one SSE client made: (owner from the path, receiving worker, status)."""

    posts: list[tuple[int, int, int]] = field(default_factory=list)

    async def hook(self, response: httpx2.Response) -> None:
        match = MESSAGE_PATH.match(response.request.url.path)
        if response.request.method == "POST" and match:
            receiver = response.headers.get("x-worker-relay") or response.headers["x-worker"]
            self.posts.append((int(match.group(1)), int(receiver), response.status_code))
            assert response.headers["x-worker"] == match.group(1)  # the owner answered

    @property
    def owner(self) -> int | None:
        return self.posts[0][0] if self.posts else None

    @property
    def relayed(self) -> bool:
        return any(owner != receiver for owner, receiver, _ in self.posts)

    def factory(self, headers=None, timeout=None, auth=None) -> httpx2.AsyncClient:
        # a fresh connection per request, so the kernel picks a worker for every POST
        return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth, event_hooks={"response": [self.hook]},
                                  limits=httpx2.Limits(max_keepalive_connections=0))


@contextlib.asynccontextmanager
async def session(site: Site, seen: Seen) -> AsyncIterator[Client]:
    transport = sse_client(f"{site.serve.url}/sse", headers={"authorization": f"Bearer {site.secret}"},
                           httpx_client_factory=seen.factory)
    async with Client(transport, mode="legacy") as mcp:
        yield mcp


async def test_sse_sessions_on_both_workers_call_tools_whichever_worker_gets_the_post(site):
    async with contextlib.AsyncExitStack() as stack:
        sessions: list[tuple[Client, Seen]] = []
        while len(sessions) < 16 and (len(sessions) < 3 or {s.owner for _, s in sessions} != {0, 1}):
            seen = Seen()
            sessions.append((await stack.enter_async_context(session(site, seen)), seen))
        assert {seen.owner for _, seen in sessions} == {0, 1}, "sessions on both workers"
        for n, (mcp, seen) in enumerate(sessions):
            for attempt in range(40):  # until one of this session's POSTs went to the other worker
                result = await mcp.call_tool("echo", {"text": f"s{n} a{attempt}"})
                assert result.is_error is False and result.content[0].text == f"s{n} a{attempt}"
                if seen.relayed:
                    break
            assert seen.relayed, seen.posts
            assert all(status in (200, 202) for _, _, status in seen.posts), seen.posts
    rows = await site.conn.fetch("SELECT count(*) AS n FROM audit_log WHERE tool = 'echo' AND transport = 'sse' "
                                 "AND outcome = 'ok' AND principal = 'sse-worker'")
    assert rows[0]["n"] >= len(sessions)


@contextlib.asynccontextmanager
async def raw_session(site: Site) -> AsyncIterator[tuple[int, str]]:
    """An SSE stream held open by hand: (owning worker, its message URI)."""
    async with httpx.AsyncClient(timeout=10) as client, client.stream(
            "GET", f"{site.serve.url}/sse", headers={"authorization": f"Bearer {site.secret}"}) as stream:
        assert stream.status_code == 200
        async for line in stream.aiter_lines():
            if line.startswith("data: /messages/"):
                uri = line[len("data: "):]
                yield int(uri.split("/")[2]), uri
                return
        raise AssertionError("no endpoint event")


async def relayed_post(site: Site, uri: str, **kwargs) -> httpx.Response:
    """POST on fresh connections until one reaches the worker that does not own the session."""
    for _ in range(64):
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(f"{site.serve.url}{uri}", **kwargs)
        if "x-worker-relay" in response.headers:
            return response
    raise AssertionError("no POST reached the other worker in 64 fresh connections")


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


async def test_a_relayed_post_gets_every_check_of_the_owner_once(site):
    async with raw_session(site) as (owner, uri):
        path, session_id = uri.split("?session_id=")
        bearer = {"authorization": f"Bearer {site.secret}"}
        cases = [
            ("no token", {"json": INITIALIZE}, 401),
            ("bad host", {"json": INITIALIZE, "headers": {**bearer, "host": "evil.example"}}, 421),
            ("foreign origin", {"json": INITIALIZE, "headers": {**bearer, "origin": "http://evil.example"}}, 403),
            ("too large", {"content": b"x" * (LIMIT + 1), "headers": {**bearer, "content-type": "application/json"}},
             413),
            ("another credential", {"json": INITIALIZE, "headers": {"authorization": f"Bearer {site.other}"}}, 404),
        ]
        for case, kwargs, status in cases:
            response = await relayed_post(site, uri, **kwargs)
            assert response.status_code == status, (case, response.text)
            assert response.headers["x-worker"] == str(owner), case  # the owner answered, not the receiver
        # an unauthenticated relayed POST is audited once, by the owner, under the owner's request id
        response = await relayed_post(site, uri, json=INITIALIZE)
        rows = await site.conn.fetch("SELECT tool, principal FROM audit_log WHERE request_id = $1",
                                     response.headers["x-request-id"])
        assert [(r["tool"], r["principal"]) for r in rows] == [("-", "anonymous")]
        # unknown and missing session ids get the SDK's own answers from the owner
        unknown = await relayed_post(site, f"{path}?session_id={'0' * 32}", json=INITIALIZE, headers=bearer)
        assert unknown.status_code == 404 and unknown.text == "Could not find session"
        missing = await relayed_post(site, path, json=INITIALIZE, headers=bearer)
        assert missing.status_code == 400 and missing.text == "session_id is required"
        accepted = await relayed_post(site, uri, json=INITIALIZE, headers=bearer)
        assert accepted.status_code == 202 and session_id


async def test_a_path_naming_no_worker_is_not_relayed(site):
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{site.serve.url}/messages/7/?session_id={'0' * 32}", json=INITIALIZE,
                               headers={"authorization": f"Bearer {site.secret}"})
    assert response.status_code == 404 and "x-worker-relay" not in response.headers


def test_the_relay_sockets_are_private_to_the_serving_user(site):
    sockets = sorted(site.tmp.glob("mcp-suite-w-*/worker-*.sock"))
    assert [p.name for p in sockets] == ["worker-0.sock", "worker-1.sock"]
    if os.geteuid() == 0:  # the attack: another local user connects to a worker's socket
        attack = "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print('connected')"
        done = subprocess.run(["/usr/bin/python3", "-c", attack, str(sockets[1])], user=65534, group=65534,
                              capture_output=True, text=True, timeout=30, cwd="/")
        assert done.returncode != 0 and "PermissionError" in done.stderr, done.stdout + done.stderr
    assert sockets[0].parent.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in sockets)


async def test_a_gone_worker_is_a_clean_503(tmp_path):
    async def local(scope, receive, send):  # reached only by requests that are not relayed
        raise AssertionError("not relayed")

    relay = SessionRelay(local, WorkerPeers(tmp_path, 2, 0), [""])  # worker 1 has no socket: it is gone
    transport = httpx.ASGITransport(app=relay)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.post(f"/messages/1/?session_id={'0' * 32}", json=INITIALIZE)
    assert response.status_code == 503 and response.json()["error"] == "worker_unavailable"
    assert response.headers["x-worker-relay"] == "0" and str(tmp_path) not in response.text


def test_only_a_sibling_named_in_a_message_path_is_relayed(tmp_path):
    relay = SessionRelay(lambda *_: None, WorkerPeers(tmp_path, 3, 1), ["/notes", "/clock"])

    def owner(path: str) -> int | None:
        return relay.owner({"type": "http", "path": path})

    assert [owner("/notes/messages/0/"), owner("/clock/messages/2/"), owner("/notes/messages/2")] == [0, 2, 2]
    assert owner("/notes/messages/1/") is None  # its own
    assert owner("/notes/messages/3/") is None and owner("/notes/messages/99999/") is None  # nobody's
    assert owner("/messages/0/") is None and owner("/other/messages/0/") is None and owner("/notes/mcp") is None


def test_the_client_address_travels_with_a_relayed_post_and_cannot_be_forged(tmp_path):
    """The owner logs and audits the real client of a relayed POST; a client that sends the header
    itself over TCP is not believed (it is removed), nor is a second copy."""
    owner = SessionRelay(lambda *_: None, WorkerPeers(tmp_path, 2, 1), [""])
    forged = (RELAYED_FOR, b"10.9.8.7:1")
    from_tcp = {"type": "http", "path": "/messages/1/", "client": ("203.0.113.5", 4000),
                "server": ("127.0.0.1", 8765), "headers": [(b"host", b"x"), forged]}
    seen = owner.with_client(from_tcp)
    assert seen["client"] == ("203.0.113.5", 4000) and forged not in seen["headers"]
    private = {"type": "http", "path": "/messages/1/", "client": None,
               "server": (str(WorkerPeers(tmp_path, 2, 1).socket_path(1)), None)}
    relayed = owner.with_client({**private, "headers": [(RELAYED_FOR, b"203.0.113.5:4000")]})
    assert relayed["client"] == ("203.0.113.5", 4000) and relayed["headers"] == []
    twice = owner.with_client({**private, "headers": [forged, (RELAYED_FOR, b"203.0.113.5:4000")]})
    assert twice["client"] is None
    # The receiving worker sends the address it saw, after removing any copy the client sent.
    sent = relay_module._request_headers(seen)
    assert sent.count((RELAYED_FOR, b"203.0.113.5:4000")) == 1 and forged not in sent


def test_a_long_tmpdir_still_gives_socket_paths_a_unix_socket_accepts(tmp_path, monkeypatch):
    long_tmp = tmp_path / ("t" * 90)
    long_tmp.mkdir()
    monkeypatch.setattr(relay_module.tempfile, "tempdir", str(long_tmp))
    with relay_module.private_directory() as directory:
        peers = WorkerPeers(directory, 2, 1)
        listener = peers.listen()
        listener.close()
        assert directory.stat().st_mode & 0o777 == 0o700
    assert not directory.exists()
