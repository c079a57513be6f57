"""Ingest roots: where the server may read files, what each root is called, and what clients see.

A file's identity is `<root name>/<path below the root>`, computed from where the file really is,
not from how the caller spelled it: relative (`notes/a.md`, taken against the first root), absolute,
with `./` or a `..` that stays inside the root, or through the root's configured symlinked spelling
— all give one identity, hence one document. The root's name is its directory's name as configured
(`/srv/docs` → `docs`; a second root with the same name becomes `docs-2`), and a path inside nested
roots belongs to the innermost one.

Clients never see a server path: a document's `source` is its identity, and its `url` is the same
unless a public base URL is configured for its root.

Environment:
* `MCP_SUITE_SEARCH_ROOTS` — the directories `ingest` may read, separated by `os.pathsep` (`:`).
* `MCP_SUITE_SEARCH_PUBLIC_URLS` — optional, comma-separated `name=base-url` pairs, e.g.
  `docs=https://example.org/docs/,wiki=https://wiki.example.org/`; a document under root `docs` at
  `guide/intro.md` then has the url `https://example.org/docs/guide/intro.md` (path segments are
  percent-encoded). Roots without an entry keep `url` equal to `source`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from servers.search.settings import SearchSettings
from shared.config import load
from shared.errors import InvalidInput, ToolFailure, Unavailable
from shared.paths import PathJail

log = logging.getLogger(__name__)

ROOTS_ENV = "MCP_SUITE_SEARCH_ROOTS"
PUBLIC_URLS_ENV = "MCP_SUITE_SEARCH_PUBLIC_URLS"


@dataclass(frozen=True)
class FileRef:
    """A file or directory inside a root, named three ways for three audiences."""

    root: str  # the root's name
    rel: str  # '/'-joined path below the root; '' for the root itself
    jail_path: str  # a spelling the jail accepts back (absolute, below the resolved root)
    host_paths: tuple[str, ...]  # server-side absolute spellings: never shown, only matched

    @property
    def source(self) -> str:
        """The identity clients see: `<root>/<rel>`."""
        return f"{self.root}/{self.rel}" if self.rel else self.root


def root_names(directories: Sequence[str]) -> tuple[str, ...]:
    """Each root's public name: its directory name, made unique in configuration order."""
    names: list[str] = []
    for directory in directories:
        base = os.path.basename(os.path.normpath(directory)) or "root"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return tuple(names)


class IngestRoots:
    """The configured roots, their jail and their names; thread-safe (immutable)."""

    def __init__(self, directories: Sequence[str]) -> None:
        self.given = tuple(os.path.abspath(d) for d in directories)
        self.jail = PathJail(self.given)
        self.names = root_names(self.given)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestRoots:
        """The configured roots, built once per configuration: the jail keeps the identity each root had
        when first opened, so a root swapped for another directory later is refused, not followed."""
        directories = load(SearchSettings, env).roots
        if not directories:
            raise InvalidInput("ingest from paths is disabled: no ingest roots are configured on the server")
        try:
            return _configured_roots(tuple(directories))
        except ValueError:
            log.error("%s names a directory that does not exist", ROOTS_ENV)
            raise Unavailable("ingest from paths is unavailable: an ingest root configured on the server "
                              "does not exist") from None

    def locate(self, user_path: str) -> FileRef:
        """The identity of `user_path` (no disk access; the jail still checks every step on use)."""
        index, comps = self.jail.locate(user_path)
        rel = "/".join(comps)
        spellings = {os.path.join(self.given[index], *comps), os.path.join(str(self.jail.roots[index]), *comps)}
        return FileRef(root=self.names[index], rel=rel, jail_path=os.path.join(str(self.jail.roots[index]), *comps),
                       host_paths=tuple(sorted(spellings)))

    def below(self, directory: FileRef, rel: str) -> FileRef:
        """A file found under `directory` (re-located, so nested roots pick the innermost one)."""
        return self.locate(f"{directory.jail_path.rstrip('/')}/{rel}")

    def contains(self, absolute: str) -> bool:
        """Whether an absolute host path lies inside one of the roots (lexically)."""
        try:
            self.jail.locate(absolute)
        except ToolFailure:
            return False
        return True


@functools.lru_cache(maxsize=8)
def _configured_roots(directories: tuple[str, ...]) -> IngestRoots:
    return IngestRoots(directories)  # a failure (a missing root) is not cached: the next call tries again


def public_bases(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`MCP_SUITE_SEARCH_PUBLIC_URLS` as {root name: base URL ending in '/'}; bad entries are logged
    once per distinct setting (parsed once, not per call or per result)."""
    return dict(_parse_public_urls(load(SearchSettings, env).public_urls))


@functools.lru_cache(maxsize=8)
def _parse_public_urls(text: str) -> tuple[tuple[str, str], ...]:
    bases: dict[str, str] = {}
    for entry in text.split(","):
        name, sep, url = entry.strip().partition("=")
        if not entry.strip():
            continue
        if not sep or not name.strip() or not url.strip().startswith(("https://", "http://")):
            log.warning("%s: ignoring %r (expected name=https://base/url)", PUBLIC_URLS_ENV, entry.strip()[:80])
            continue
        bases[name.strip()] = url.strip().rstrip("/") + "/"
    return tuple(bases.items())


def client_url(root: str | None, source: str, bases: Mapping[str, str]) -> str:
    """What a client gets as a document's url: the public URL of a file under a mapped root, else its source."""
    if root is None or root not in bases or not source.startswith(f"{root}/"):
        return source
    return bases[root] + quote(source[len(root) + 1:], safe="/")
