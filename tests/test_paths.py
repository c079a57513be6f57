"""Path confinement: every payload family from the reference server's past bugs, built in tmp_path.

Layout per test: tmp_path/project is the allowed root; tmp_path/outside and siblings whose names share
the root's prefix hold SECRET content that must never come back.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import sys
import threading
import time
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from shared.errors import Conflict, InvalidInput, NotFound, PermissionDenied, ToolFailure
from shared.paths import FileTooLarge, PathDenied, PathExists, PathInvalid, PathJail, PathMissing
from shared.tool import client_message

SECRET = b"SECRET outside the jail"
INSIDE = b"inside content"
CAP = 1 << 20


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "file.txt").write_bytes(INSIDE)
    (root / "sub" / "file.txt").write_bytes(b"sub " + INSIDE)
    (root / "sub" / "deeper" / "file.txt").write_bytes(b"deep " + INSIDE)
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "file.txt").write_bytes(SECRET)
    (outside / "sub" / "file.txt").write_bytes(SECRET)
    for sibling in ("project2", "project_backup", "project.bak", "project_evil"):
        (tmp_path / sibling).mkdir()
        (tmp_path / sibling / "file.txt").write_bytes(SECRET)
    return root


@pytest.fixture
def jail(root: Path) -> PathJail:
    return PathJail([root])


def assert_refused(jail: PathJail, user_path: str, kind: type[Exception] = PathDenied) -> ToolFailure:
    with pytest.raises(kind) as info:
        jail.read_bytes(user_path, max_bytes=CAP)
    return info.value


# -- construction and the error hierarchy --------------------------------------------------------------


def test_error_classes_fit_the_shared_hierarchy() -> None:
    assert issubclass(PathDenied, PermissionDenied)
    assert issubclass(PathInvalid, InvalidInput)
    assert issubclass(PathMissing, NotFound)
    assert issubclass(PathExists, Conflict)
    assert issubclass(FileTooLarge, InvalidInput)


def test_roots_are_resolved_and_checked(tmp_path: Path, root: Path) -> None:
    (tmp_path / "alias").symlink_to(root)
    jail = PathJail([tmp_path / "alias"])
    assert jail.roots == (root.resolve(),)
    # The root may be spelled as configured (through the operator's link) or as resolved.
    assert jail.read_bytes(f"{tmp_path}/alias/file.txt", max_bytes=CAP) == INSIDE
    assert jail.read_bytes(f"{root}/file.txt", max_bytes=CAP) == INSIDE
    with pytest.raises(ValueError, match="does not exist"):
        PathJail([tmp_path / "nope"])
    with pytest.raises(ValueError, match="not a directory"):
        PathJail([root / "file.txt"])
    with pytest.raises(ValueError):
        PathJail([])
    with pytest.raises(ValueError):
        PathJail(str(root))  # type: ignore[arg-type]


def test_root_replaced_after_startup_is_refused(tmp_path: Path, root: Path, jail: PathJail) -> None:
    root.rename(tmp_path / "moved")
    root.mkdir()
    (root / "file.txt").write_bytes(b"impostor")
    with pytest.raises(PathMissing, match="no longer available"):
        jail.read_bytes("file.txt", max_bytes=CAP)


# -- lexical families ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sibling", ["project2", "project_backup", "project.bak", "project_evil"])
def test_prefix_siblings_are_outside(tmp_path: Path, jail: PathJail, sibling: str) -> None:
    assert_refused(jail, f"{tmp_path}/{sibling}/file.txt")
    assert_refused(jail, f"{tmp_path}/{sibling}")
    assert_refused(jail, f"../{sibling}/file.txt")
    with pytest.raises(PathDenied):
        jail.locate(f"{tmp_path}/{sibling}")


@pytest.mark.parametrize(
    "user_path",
    [
        "a/../../etc/passwd",
        "../outside/secret.txt",
        "sub/../../outside/secret.txt",
        "sub/deeper/../../../outside/secret.txt",
        "..",
        "/etc/passwd",
        "/",
        "{root}/../outside/secret.txt",
        "{root}/sub/../../outside/secret.txt",
        "{root}/../project/file.txt",  # climbs out before coming back: refused, not re-admitted
    ],
)
def test_traversal_is_denied(root: Path, jail: PathJail, user_path: str) -> None:
    assert_refused(jail, user_path.format(root=root))


def test_deep_traversal(root: Path, jail: PathJail) -> None:
    with pytest.raises((PathDenied, PathInvalid)):  # 5003 bytes: also over the length limit
        jail.read_bytes("a/" * 1000 + "../" * 1001 + "outside/secret.txt", max_bytes=CAP)
    assert_refused(jail, "a/" * 500 + "../" * 501 + "outside/secret.txt")
    assert_refused(jail, f"{root}/" + "a/" * 500 + "../" * 501 + "outside/secret.txt")
    assert jail.read_bytes("a/" * 600 + "../" * 600 + "file.txt", max_bytes=CAP) == INSIDE


@pytest.mark.parametrize("name", ["..test", "te..st", "...", "%2e%2e", "report_50%.pdf", ".hidden", "~", "a\\b"])
def test_legal_odd_names_work(root: Path, jail: PathJail, name: str) -> None:
    (root / name).write_bytes(name.encode())
    assert jail.read_bytes(name, max_bytes=CAP) == name.encode()
    assert jail.read_bytes(f"{root}/{name}", max_bytes=CAP) == name.encode()
    assert jail.locate(f"./{name}") == (0, (name,))


def test_odd_names_as_directories(root: Path, jail: PathJail) -> None:
    (root / "..test" / "%2e%2e" / "...").mkdir(parents=True)
    (root / "..test" / "%2e%2e" / "..." / "f").write_bytes(b"ok")
    assert jail.read_bytes("..test/%2e%2e/.../f", max_bytes=CAP) == b"ok"
    assert list(jail.walk_files("..test")) == ["%2e%2e/.../f"]


@pytest.mark.parametrize(
    "user_path, message",
    [
        ("", "empty"),
        ("file.txt\x00.png", "NUL"),
        ("\x00", "NUL"),
        ("sub/\x00/file.txt", "NUL"),
        ("x" * 256, "255 bytes"),
        ("é" * 128, "255 bytes"),  # 256 bytes in UTF-8
        ("a/" * 2049, "4096 bytes"),
        ("\ud800", "not valid text"),
    ],
)
def test_malformed_paths(jail: PathJail, user_path: str, message: str) -> None:
    with pytest.raises(PathInvalid, match=message) as info:
        jail.read_bytes(user_path, max_bytes=CAP)
    assert "\x00" not in info.value.message


def test_non_string_path_is_invalid(jail: PathJail) -> None:
    with pytest.raises(PathInvalid):
        jail.locate(b"file.txt")  # type: ignore[arg-type]


def test_longest_legal_name(root: Path, jail: PathJail) -> None:
    name = "n" * 255
    (root / name).write_bytes(b"max")
    assert jail.read_bytes(name, max_bytes=CAP) == b"max"


def test_nfc_and_nfd_are_distinct_and_confined(tmp_path: Path) -> None:
    nfc, nfd = unicodedata.normalize("NFC", "donnée"), unicodedata.normalize("NFD", "donnée")
    assert nfc != nfd
    root = tmp_path / nfc
    root.mkdir()
    (root / f"{nfc}.txt").write_bytes(INSIDE)
    (tmp_path / nfd).mkdir()
    (tmp_path / nfd / "file.txt").write_bytes(SECRET)
    jail = PathJail([root])
    assert jail.read_bytes(f"{nfc}.txt", max_bytes=CAP) == INSIDE
    assert_refused(jail, f"{nfd}.txt", PathMissing)  # a different name on Linux, and simply absent
    assert_refused(jail, f"{tmp_path}/{nfd}/file.txt")
    assert_refused(jail, f"../{nfd}/file.txt")
    assert_refused(jail, f"{tmp_path}/{nfd}")


def test_undecodable_names_round_trip(root: Path, jail: PathJail) -> None:
    with open(os.fsencode(root) + b"/bad\xff.txt", "wb") as handle:
        handle.write(b"raw")
    (name,) = [n for n in jail.walk_files(".") if n.startswith("bad")]
    assert name == "bad\udcff.txt"
    assert jail.read_bytes(name, max_bytes=CAP) == b"raw"
    with pytest.raises(PathMissing) as info:
        jail.read_bytes("bad\udcfe.txt", max_bytes=CAP)
    info.value.message.encode("utf-8")  # the message stays valid text


def test_setuid_bits_are_not_carried_over(root: Path, jail: PathJail) -> None:
    os.chmod(root / "file.txt", 0o4755)
    jail.write_bytes("file.txt", b"new")
    assert stat.S_IMODE((root / "file.txt").stat().st_mode) == 0o755


def test_duplicate_slashes_and_dots(root: Path, jail: PathJail) -> None:
    spellings = ["sub//file.txt", "./sub/./file.txt", "sub/deeper/../file.txt", "sub///", f"/{root}//sub/file.txt"]
    for user_path in spellings:
        if user_path.endswith("/"):
            assert jail.stat(user_path).st_mode & stat.S_IFDIR
        else:
            assert jail.read_bytes(user_path, max_bytes=CAP) == b"sub " + INSIDE
    assert jail.locate(".") == (0, ())
    assert jail.locate(f"{root}/") == (0, ())


def test_relative_paths_use_the_first_root_and_absolute_pick_theirs(tmp_path: Path, root: Path) -> None:
    second = tmp_path / "second"
    (second / "inner").mkdir(parents=True)
    (second / "file.txt").write_bytes(b"second")
    (second / "inner" / "file.txt").write_bytes(b"inner")
    jail = PathJail([root, second, second / "inner"])
    assert jail.read_bytes("file.txt", max_bytes=CAP) == INSIDE
    assert jail.read_bytes(f"{second}/file.txt", max_bytes=CAP) == b"second"
    assert jail.locate(f"{second}/inner/file.txt") == (2, ("file.txt",))  # innermost root wins
    assert jail.locate(f"{second}/inner/../file.txt") == (1, ("file.txt",))  # still inside the outer root
    assert_refused(jail, f"{second}/../outside/secret.txt")


# -- links and special files -----------------------------------------------------------------------------


def test_symlinks_to_outside_are_refused_at_any_depth(tmp_path: Path, root: Path, jail: PathJail) -> None:
    outside = tmp_path / "outside"
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "sub" / "deeper" / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "rel.txt").symlink_to("../outside/secret.txt")
    (root / "dirlink").symlink_to(outside)
    (root / "sub" / "deeper" / "dirlink").symlink_to(outside)
    for user_path in [
        "leak.txt",
        "sub/deeper/leak.txt",
        "rel.txt",
        "dirlink/secret.txt",
        "dirlink/sub/file.txt",
        "sub/deeper/dirlink/secret.txt",
        f"{root}/sub/deeper/dirlink/sub/file.txt",
    ]:
        assert "symbolic link" in assert_refused(jail, user_path).message
        with pytest.raises(PathDenied):
            jail.stat(user_path)
    with pytest.raises(PathDenied):
        jail.stat("dirlink")
    with pytest.raises(PathDenied), jail.open_dir("sub/deeper/dirlink"):
        pass
    with pytest.raises(PathDenied):
        list(jail.walk_files("dirlink"))


def test_symlink_chains_and_links_inside_are_refused(tmp_path: Path, root: Path, jail: PathJail) -> None:
    (root / "hop2").symlink_to(tmp_path / "outside" / "secret.txt")
    (root / "hop1").symlink_to(root / "hop2")
    (root / "inner_link").symlink_to(root / "file.txt")  # points inside: refused too (documented policy)
    (root / "inner_dir").symlink_to(root / "sub")
    (root / "dangling").symlink_to(root / "nowhere")
    (root / "loop").symlink_to(root / "loop")
    for user_path in ["hop1", "hop2", "inner_link", "inner_dir/file.txt", "dangling", "loop", "loop/x"]:
        assert_refused(jail, user_path)


def test_device_via_symlink_is_refused(root: Path, jail: PathJail) -> None:
    (root / "null").symlink_to("/dev/null")
    (root / "zero").symlink_to("/dev/zero")
    assert_refused(jail, "null")
    assert_refused(jail, "zero")


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_device_node_inside_is_refused(root: Path, jail: PathJail) -> None:
    try:
        os.mknod(root / "zero", 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    except PermissionError:
        pytest.skip("no CAP_MKNOD here")
    assert "devices" in assert_refused(jail, "zero").message


def _run_with_timeout(fn, timeout: float = 5.0):
    """Run fn in a daemon thread; fail (instead of hanging the suite) if it blocks."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # handed back to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    return thread.is_alive(), outcome


def test_fifo_is_refused_without_blocking(root: Path, jail: PathJail) -> None:
    fifo = root / "pipe"
    os.mkfifo(fifo)
    os.mkfifo(root / "sub" / "pipe_dir")
    for user_path, kind in [("pipe", PathDenied), ("sub/pipe_dir/file.txt", PathInvalid)]:
        blocked, outcome = _run_with_timeout(lambda p=user_path: jail.read_bytes(p, max_bytes=CAP))
        if blocked:  # unblock the stuck open before failing
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            pytest.fail("reading a FIFO blocked")
        assert isinstance(outcome.get("error"), kind), outcome
    blocked, outcome = _run_with_timeout(lambda: jail.write_bytes("pipe", b"x"))
    assert not blocked and isinstance(outcome.get("error"), PathDenied)
    assert stat.S_ISFIFO(jail.stat("pipe").st_mode)  # describing it is harmless
    assert list(jail.walk_files(".")) == ["file.txt", "sub/file.txt", "sub/deeper/file.txt"]


def test_socket_is_refused(root: Path, jail: PathJail, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root)  # AF_UNIX paths are short; bind relative to the root
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind("sock")
        assert_refused(jail, "sock")


def test_directory_is_not_a_file(jail: PathJail) -> None:
    assert_refused(jail, "sub", PathInvalid)
    assert_refused(jail, ".", PathInvalid)
    assert_refused(jail, "file.txt/x", PathInvalid)
    assert_refused(jail, "nope/file.txt", PathMissing)
    assert_refused(jail, "nope.txt", PathMissing)


# -- races ----------------------------------------------------------------------------------------------


def _race(swap_in, swap_out, read, rounds: int = 2000, max_rounds: int = 100_000) -> Counter[str]:
    """Swap a path component for a link to outside while reading through it.

    Reads at least `rounds` times and keeps going (up to `max_rounds`) until the race has really been
    run both ways: some reads got through and some were refused because of the symlink. Returns how
    often each outcome happened ("ok" or the refusal's class name).
    """
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            swap_in()
            swap_out()
            swaps += 1

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # interleave the two threads as finely as the GIL allows
    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    outcomes: Counter[str] = Counter()
    try:
        for done in range(max_rounds):
            if done >= rounds and outcomes["ok"] and outcomes["PathDenied"]:
                break
            try:
                data = read()
            except (PathDenied, PathMissing, PathInvalid) as refusal:
                outcomes[type(refusal).__name__] += 1
                continue
            assert SECRET not in data, "read escaped through a swapped-in symlink"
            outcomes["ok"] += 1
    finally:
        stop.set()
        thread.join(5)
        sys.setswitchinterval(old_interval)
    assert swaps > 0
    # Both sides of the race happened: reads through the real directory, and reads that met the link.
    assert outcomes["ok"] > 0 and outcomes["PathDenied"] > 0, outcomes
    return outcomes


def test_race_directory_component_swapped_for_symlink(tmp_path: Path, root: Path, jail: PathJail) -> None:
    victim, parked = root / "sub", root / "sub_parked"
    outside = tmp_path / "outside"

    def swap_in() -> None:
        victim.rename(parked)
        victim.symlink_to(outside)

    def swap_out() -> None:
        victim.unlink()
        parked.rename(victim)

    _race(swap_in, swap_out, lambda: jail.read_bytes("sub/file.txt", max_bytes=CAP))


def test_race_final_component_swapped_for_symlink(tmp_path: Path, root: Path, jail: PathJail) -> None:
    link = root / "sub" / "link.tmp"
    link.symlink_to(tmp_path / "outside" / "file.txt")
    real = root / "sub" / "real.tmp"
    real.write_bytes(b"sub " + INSIDE)
    target = root / "sub" / "file.txt"

    def swap_in() -> None:
        os.link(link, root / "sub" / "l2", follow_symlinks=False)
        os.rename(root / "sub" / "l2", target)  # atomic: file.txt becomes the link

    def swap_out() -> None:
        os.link(real, root / "sub" / "r2")
        os.rename(root / "sub" / "r2", target)

    outcomes = _race(swap_in, swap_out, lambda: jail.read_bytes(f"{root}/sub/file.txt", max_bytes=CAP))
    assert set(outcomes) == {"ok", "PathDenied"}, outcomes  # the name always exists: never missing


# -- sizes and messages ---------------------------------------------------------------------------------


def test_read_cap(root: Path, jail: PathJail) -> None:
    (root / "big.bin").write_bytes(b"x" * 1001)
    (root / "empty").write_bytes(b"")
    with pytest.raises(FileTooLarge, match="larger than 1000 bytes"):
        jail.read_bytes("big.bin", max_bytes=1000)
    assert jail.read_bytes("big.bin", max_bytes=1001) == b"x" * 1001
    assert jail.read_bytes("empty", max_bytes=0) == b""
    with pytest.raises(ValueError):
        jail.read_bytes("empty", max_bytes=-1)


def test_messages_never_reveal_roots_or_host_paths(tmp_path: Path, root: Path, jail: PathJail) -> None:
    (root / "leak").symlink_to(tmp_path / "outside")
    (root / "big").write_bytes(b"x" * 10)
    attempts = [
        lambda: jail.read_bytes(f"{tmp_path}/project2/file.txt", max_bytes=CAP),
        lambda: jail.read_bytes(f"{root}/../outside/secret.txt", max_bytes=CAP),
        lambda: jail.read_bytes(f"{root}/missing/file", max_bytes=CAP),
        lambda: jail.read_bytes(f"{root}/leak/secret.txt", max_bytes=CAP),
        lambda: jail.read_bytes(f"{root}/big", max_bytes=1),
        lambda: jail.read_bytes(f"{root}/sub", max_bytes=CAP),
        lambda: jail.read_bytes(f"{root}/file.txt/x", max_bytes=CAP),
        lambda: jail.read_bytes("../../../etc/passwd", max_bytes=CAP),
        lambda: jail.read_bytes("leak/secret.txt", max_bytes=CAP),
        lambda: jail.stat(f"{root}/nope"),
        lambda: jail.write_bytes(f"{root}/nope/x", b""),
        lambda: jail.write_bytes(f"{root}/file.txt", b"", exclusive=True),
        lambda: jail.mkdirs(f"{root}/file.txt/x"),
        lambda: list(jail.walk_files(f"{root}/nope")),
    ]
    secrets = {str(tmp_path), str(root), os.path.realpath(tmp_path), "/tmp"}
    for attempt in attempts:
        with pytest.raises(ToolFailure) as info:
            attempt()
        message = client_message(info.value)  # what a client would read
        assert not any(s in message for s in secrets), message


# -- writes, directories, listing -----------------------------------------------------------------------


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".partial")]


def test_write_creates_replaces_and_keeps_mode(root: Path, jail: PathJail) -> None:
    jail.write_bytes("sub/new.txt", b"one")
    assert (root / "sub" / "new.txt").read_bytes() == b"one"
    os.chmod(root / "sub" / "new.txt", 0o640)
    jail.write_bytes(f"{root}/sub/new.txt", bytearray(b"two"))
    assert (root / "sub" / "new.txt").read_bytes() == b"two"
    assert stat.S_IMODE((root / "sub" / "new.txt").stat().st_mode) == 0o640
    assert _leftovers(root / "sub") == []
    with pytest.raises(PathMissing):
        jail.write_bytes("no/such/dir.txt", b"x")
    with pytest.raises(PathInvalid):
        jail.write_bytes("sub", b"x")
    with pytest.raises(PathInvalid):
        jail.write_bytes(".", b"x")


def test_write_exclusive(root: Path, jail: PathJail) -> None:
    jail.write_bytes("fresh.txt", b"first", exclusive=True)
    with pytest.raises(PathExists):
        jail.write_bytes("fresh.txt", b"second", exclusive=True)
    assert (root / "fresh.txt").read_bytes() == b"first"
    assert _leftovers(root) == []


def test_write_exclusive_loses_a_race_cleanly(root: Path, jail: PathJail, monkeypatch: pytest.MonkeyPatch) -> None:
    real_link = os.link

    def link_after_rival(src, dst, **kwargs):  # a rival creates the name between our check and publish
        (root / "contested.txt").write_bytes(b"rival")
        return real_link(src, dst, **kwargs)

    monkeypatch.setattr(os, "link", link_after_rival)
    with pytest.raises(PathExists):
        jail.write_bytes("contested.txt", b"mine", exclusive=True)
    assert (root / "contested.txt").read_bytes() == b"rival"
    assert _leftovers(root) == []


def test_write_exclusive_without_hard_links(root: Path, jail: PathJail, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    jail.write_bytes("fallback.txt", b"data", exclusive=True)
    assert (root / "fallback.txt").read_bytes() == b"data"
    with pytest.raises(PathExists):
        jail.write_bytes("fallback.txt", b"again", exclusive=True)
    assert _leftovers(root) == []


@pytest.mark.parametrize("failing", ["write", "fsync", "rename"])
def test_write_failure_leaves_no_partial_file(
    root: Path, jail: PathJail, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    real_write = os.write

    def half_write(fd, data):
        real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "no space left")

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "disk on fire")

    monkeypatch.setattr(os, failing, half_write if failing == "write" else broken)
    with pytest.raises(OSError):
        jail.write_bytes("file.txt", b"N" * 10_000)
    with pytest.raises(OSError):
        jail.write_bytes("brand_new.txt", b"N" * 10_000)
    monkeypatch.undo()
    assert (root / "file.txt").read_bytes() == INSIDE
    assert not (root / "brand_new.txt").exists()
    assert _leftovers(root) == []


def test_readers_see_whole_versions_only(root: Path, jail: PathJail) -> None:
    versions = {b"A" * 300_000, b"B" * 300_000}
    jail.write_bytes("doc.bin", b"A" * 300_000)
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            for version in versions:
                jail.write_bytes("doc.bin", version)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            assert jail.read_bytes("doc.bin", max_bytes=CAP) in versions
    finally:
        stop.set()
        thread.join(5)


def test_writes_through_links_are_refused(tmp_path: Path, root: Path, jail: PathJail) -> None:
    (root / "out_file").symlink_to(tmp_path / "outside" / "secret.txt")
    (root / "out_dir").symlink_to(tmp_path / "outside")
    with pytest.raises(PathDenied):
        jail.write_bytes("out_file", b"pwned")
    with pytest.raises(PathDenied):
        jail.write_bytes("out_dir/secret.txt", b"pwned")
    with pytest.raises(PathDenied):
        jail.write_bytes("out_dir/new.txt", b"pwned")
    with pytest.raises(PathDenied):
        jail.mkdirs("out_dir/new/dirs")
    assert (tmp_path / "outside" / "secret.txt").read_bytes() == SECRET
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == ["file.txt", "secret.txt", "sub"]
    assert (root / "out_file").is_symlink()


def test_mkdirs(root: Path, jail: PathJail) -> None:
    jail.mkdirs("a/b/c")
    jail.mkdirs("a/b/c")  # idempotent
    jail.mkdirs(f"{root}/a/./b//d")
    jail.mkdirs(".")
    assert (root / "a" / "b" / "c").is_dir() and (root / "a" / "b" / "d").is_dir()
    with pytest.raises(PathInvalid):
        jail.mkdirs("file.txt/x")
    with pytest.raises(PathDenied):
        jail.mkdirs("../escape")
    assert not (root.parent / "escape").exists()


def test_open_dir_and_stat(root: Path, jail: PathJail) -> None:
    with jail.open_dir("sub") as fd:
        assert sorted(os.listdir(fd)) == ["deeper", "file.txt"]
    with jail.open_dir(str(root)) as fd:
        assert "file.txt" in os.listdir(fd)
    with pytest.raises(PathInvalid), jail.open_dir("file.txt"):
        pass
    assert jail.stat("file.txt").st_size == len(INSIDE)
    assert stat.S_ISDIR(jail.stat("sub").st_mode)
    assert stat.S_ISDIR(jail.stat(".").st_mode)
    with pytest.raises(PathMissing):
        jail.stat("nope")


def test_walk_files(tmp_path: Path, root: Path, jail: PathJail) -> None:
    (root / "sub" / "notes.md").write_bytes(b"# notes")
    (root / "sub" / "deeper" / "more.md").write_bytes(b"# more")
    (root / "sub" / "link.md").symlink_to(tmp_path / "outside" / "secret.txt")
    (root / "sub" / "dirlink").symlink_to(tmp_path / "outside")
    assert list(jail.walk_files("sub")) == ["file.txt", "notes.md", "deeper/file.txt", "deeper/more.md"]
    assert list(jail.walk_files(".", patterns="*.md")) == ["sub/notes.md", "sub/deeper/more.md"]
    assert list(jail.walk_files(str(root), patterns=["sub/deeper/*"])) == ["sub/deeper/file.txt", "sub/deeper/more.md"]
    for rel in jail.walk_files("sub"):
        assert SECRET not in jail.read_bytes(f"sub/{rel}", max_bytes=CAP)
    walker = jail.walk_files(".", max_files=2)
    assert [next(walker), next(walker)] == ["file.txt", "sub/file.txt"]
    with pytest.raises(PathInvalid, match="more than 2"):
        next(walker)
    with pytest.raises(PathInvalid):
        list(jail.walk_files("file.txt"))


def test_deep_tree_and_no_descriptor_leaks(root: Path, jail: PathJail) -> None:
    deep = "/".join(["d"] * 300)
    jail.mkdirs(deep)
    jail.write_bytes(f"{deep}/leaf.txt", b"leaf")
    fds = Path("/proc/self/fd")
    if not fds.exists():
        pytest.skip("needs /proc")
    before = len(list(fds.iterdir()))
    for _ in range(20):
        assert jail.read_bytes(f"{deep}/leaf.txt", max_bytes=CAP) == b"leaf"
        for bad in ["nope/x", "../x", "file.txt/x", "sub", f"{deep}/nope"]:
            with pytest.raises(ToolFailure):
                jail.read_bytes(bad, max_bytes=CAP)
        assert f"{deep}/leaf.txt" in list(jail.walk_files("."))
        abandoned = jail.walk_files(".")
        next(abandoned)
        del abandoned
    assert len(list(fds.iterdir())) == before


@pytest.mark.slow
def test_operations_are_fast_enough(root: Path, jail: PathJail) -> None:
    """A benchmark, not a default test: a wall-clock bound flakes on a busy machine."""
    started = time.perf_counter()
    for _ in range(1000):
        jail.read_bytes("sub/deeper/file.txt", max_bytes=CAP)
    elapsed = time.perf_counter() - started
    print(f"1000 confined reads three levels deep: {elapsed:.3f} s")
    assert elapsed < 2.0
