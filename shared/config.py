"""Settings: every environment variable the suite reads, declared once, typed, validated, documented.

Policy lives in code as data (see `tool.ToolPolicy`); only deployment facts come from the environment.
Each concern declares a frozen dataclass *section* whose fields name their variable with `setting(...)`;
`load(Section)` reads and checks them all at once and fails with one clear sentence per bad value:

```python
@dataclass(frozen=True)
class PoolSettings:
    max_size: int = setting("MCP_SUITE_POOL_MAX", 10, "largest pool", parse=integer(minimum=1))

load(PoolSettings)          # PoolSettings(max_size=10), or SettingsError("MCP_SUITE_POOL_MAX: ...")
```

The core's sections are below; a server declares its own next to its code (e.g.
`servers/search/settings.py`) and lists them in its `ServerSpec.settings`. `mcp-suite` generates
`docs/configuration.md` from the sections and checks them all when a command starts (a bad value is
one line naming the variable, exit status 2). Code reads a setting only through `load` (or `given`,
which hands a user's text on unchanged, for `claude-config`); writing variables for a child process
is fine. `tests/test_configuration.py` fails when the page is stale, when the code names a variable
no section declares, or when it reads one from the environment itself.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
DEFAULT_STDIO_SCOPES = "*:read *:write"
SCOPE_RE = re.compile(r"^(\*|[a-z0-9_*?-]+:[a-z0-9_*?-]+)$")  # `server:verb`, wildcards allowed
MIN_KEY_CHARS = 32


class SettingsError(ValueError):
    """A variable holds a value the suite cannot use; the message names it and says what fits."""


@dataclass(frozen=True)
class Setting:
    """How one field is read: its variable, what it means, how its text becomes a value."""

    env: str
    help: str
    parse: Callable[[str], Any]
    secret: bool = False
    shown_default: str | None = None  # for the docs when the default is computed


def setting(env: str, default: Any, help: str, *, parse: Callable[[str], Any] = str, secret: bool = False,
            default_factory: Callable[[], Any] | None = None, shown_default: str | None = None) -> Any:
    """A dataclass field read from `env` by `load`."""
    meta = {"setting": Setting(env, help, parse, secret, shown_default)}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


# --- parsers: each turns the variable's text into a value or raises ValueError saying what fits -----------

def integer(*, minimum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if minimum is not None and value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value
    return parse


def number(*, minimum: float = 0.0) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("must be a number") from None
        if not value > minimum:
            raise ValueError(f"must be a number above {minimum:g}")
        return value
    return parse


def flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be one of 1/0, true/false, yes/no, on/off")


def words(text: str) -> tuple[str, ...]:
    """A list separated by spaces or commas."""
    return tuple(item for item in text.replace(",", " ").split() if item)


def paths(text: str) -> tuple[str, ...]:
    """A list separated by the OS path separator (`:` on Unix), like PATH."""
    return tuple(item for item in text.split(os.pathsep) if item)


def at_least_chars(min_length: int) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if len(value) < min_length:
            raise ValueError(f"must be at least {min_length} characters")
        return value
    return parse


def postgres_url(value: str) -> str:
    if not value.startswith(("postgresql://", "postgres://")):
        raise ValueError("must be a URL starting with postgresql:// (or postgres://)")
    return value


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value
    return parse


def load(section: type[T], environ: Mapping[str, str] | None = None) -> T:
    """The section's values from the environment (empty means unset); SettingsError on a bad one."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(section):  # type: ignore[arg-type]
        meta: Setting | None = spec.metadata.get("setting")
        if meta is None:
            continue
        raw = environ.get(meta.env)
        if raw is None or raw == "":
            continue
        try:
            values[spec.name] = meta.parse(raw)
        except (ValueError, TypeError) as exc:
            shown = "(hidden)" if meta.secret else repr(raw[:80])
            raise SettingsError(f"{meta.env}={shown}: {exc or 'not a valid value'} ({meta.help})") from None
    try:
        return section(**values)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def given(section: type, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The section's variables the user set, as written, once `load` accepts them all.

    For handing a configuration on unchanged (`claude-config` copies a server's needs into the
    client's config); decisions use `load`'s typed values.
    """
    environ = os.environ if environ is None else environ
    load(section, environ)
    return as_written([meta.env for _name, meta, _default in variables(section)], environ)


def as_written(names: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The named variables the user set, as written, unchecked: for a server's declared needs that no
    typed section of its own describes (a plugin server may declare needs without sections)."""
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in names if environ.get(name)}


def default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")  # the XDG convention's own variable, not a suite setting
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "mcp-suite"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"


def _scopes(value: str) -> frozenset[str]:
    scopes = words(value)
    bad = [scope for scope in scopes if not SCOPE_RE.match(scope)]
    if bad:
        raise ValueError(f"{bad[0][:40]!r} is not a scope; scopes look like 'profiles:read' or '*:read'")
    return frozenset(scopes)


# --- the core's sections ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """Where the database is, who the stdio caller is, and the pool's bounds.

    `database_url=None` means: run the embedded PostgreSQL under `home`.
    """

    database_url: str | None = setting(
        "DATABASE_URL", None, "PostgreSQL URL of an administrator (runs migrations); unset: the embedded database",
        parse=postgres_url, secret=True)
    home: Path = setting("MCP_SUITE_HOME", None, "folder for the embedded database and the audit key",
                         parse=lambda text: Path(text).expanduser(), default_factory=default_home,
                         shown_default="~/.local/share/mcp-suite")
    principal: str = setting("MCP_SUITE_PRINCIPAL", None, "the stdio caller's principal", default_factory=_os_user,
                             shown_default="the OS user")
    scopes: frozenset[str] = setting("MCP_SUITE_SCOPES", frozenset(words(DEFAULT_STDIO_SCOPES)),
                                     "the stdio caller's scopes", parse=_scopes, shown_default=DEFAULT_STDIO_SCOPES)
    pool_min_size: int = setting("MCP_SUITE_POOL_MIN", 1, "connections the pool keeps open",
                                 parse=integer(minimum=0))
    pool_max_size: int = setting("MCP_SUITE_POOL_MAX", 10, "most connections in the pool", parse=integer(minimum=1))
    command_timeout_s: float = setting("MCP_SUITE_DB_COMMAND_TIMEOUT", 10.0, "seconds a statement may run",
                                       parse=number())
    acquire_timeout_s: float = setting("MCP_SUITE_DB_ACQUIRE_TIMEOUT", 5.0,
                                       "seconds to wait for a pooled connection", parse=number())

    def __post_init__(self) -> None:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError(f"MCP_SUITE_POOL_MIN ({self.pool_min_size}) is above MCP_SUITE_POOL_MAX "
                             f"({self.pool_max_size})")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        return load(cls, environ)


@dataclass(frozen=True)
class DatabaseRoleSettings:
    """How servers log in (the app role) and where migrations come from."""

    app_database_url: str | None = setting(
        "MCP_SUITE_APP_DATABASE_URL", None, "URL servers connect with; unset: DATABASE_URL as mcp_suite_app",
        parse=postgres_url, secret=True)
    app_password: str | None = setting(
        "MCP_SUITE_APP_DB_PASSWORD", None, "the mcp_suite_app role's password (set by `migrate`)", secret=True)
    migrations: str | None = setting(
        "MCP_SUITE_MIGRATIONS", None, "a folder of migrations to use instead of the installed ones (the core's and "
        "every server's)")


@dataclass(frozen=True)
class KeySettings:
    """The suite's key, held outside the database (see `shared/keys.py`)."""

    key: str | None = setting("MCP_SUITE_AUDIT_KEY", None, f"the key itself, at least {MIN_KEY_CHARS} characters",
                              parse=at_least_chars(MIN_KEY_CHARS), secret=True)
    key_file: str | None = setting("MCP_SUITE_AUDIT_KEY_FILE", None, "file holding the key",
                                   shown_default="$MCP_SUITE_HOME/audit.key")


@dataclass(frozen=True)
class HttpSettings:
    """The HTTP transports (`serve … --transport http|sse`, `serve all`)."""

    public_url: str | None = setting("MCP_SUITE_PUBLIC_URL", None, "URL clients use to reach the server",
                                     shown_default="http://HOST:PORT")
    allowed_hosts: tuple[str, ...] = setting("MCP_SUITE_ALLOWED_HOSTS", (), "Host headers accepted",
                                             parse=words, shown_default="loopback names when bound to loopback")
    allowed_origins: tuple[str, ...] = setting("MCP_SUITE_ALLOWED_ORIGINS", (), "Origin headers accepted",
                                               parse=words, shown_default="loopback origins when bound to loopback")
    max_body_bytes: int = setting("MCP_SUITE_MAX_BODY_BYTES", 1 << 20, "largest request body",
                                  parse=integer(minimum=1024))
    json_response: bool = setting("MCP_SUITE_JSON_RESPONSE", False, "answer streamable HTTP with JSON, not SSE",
                                  parse=flag)
    metrics_token: str | None = setting("MCP_SUITE_METRICS_TOKEN", None,
                                        "bearer token for /metrics and /readyz details", secret=True)
    rate_store: str = setting("MCP_SUITE_RATE_LIMIT_STORE", "local", "where rate limits are counted",
                              parse=choice("local", "postgres"))
    issuer_url: str | None = setting("MCP_SUITE_AUTH_ISSUER", None,
                                     "authorization server named in the RFC 9728 metadata")
    anonymous_scopes: frozenset[str] = setting("MCP_SUITE_ANONYMOUS_SCOPES", frozenset({"*:read"}),
                                               "scopes of callers without a token under --allow-anonymous",
                                               parse=_scopes, shown_default="*:read")
    header_timeout_s: float = setting("MCP_SUITE_HEADER_TIMEOUT_S", 10.0, "seconds to send the request headers",
                                      parse=number())
    body_timeout_s: float = setting("MCP_SUITE_BODY_TIMEOUT_S", 30.0, "seconds to send the request body",
                                    parse=number())
    max_connections: int = setting("MCP_SUITE_MAX_CONNECTIONS", 1000, "open connections at once",
                                   parse=integer(minimum=1))
    log_level: str = setting("MCP_SUITE_LOG_LEVEL", "INFO", "level of the JSON logs",
                             parse=lambda text: choice("debug", "info", "warning", "error")(text).upper())
    servers: tuple[str, ...] = setting("MCP_SUITE_SERVERS", (), "servers `serve all` hosts (names or module:attr)",
                                       parse=words, shown_default="every registered server")


@dataclass(frozen=True)
class AuthSettings:
    """Who may call over HTTP: static tokens and an identity provider's JWTs."""

    api_tokens: str | None = setting("MCP_SUITE_API_TOKENS", None,
                                     "tokens to register at start: `principal|scopes|secret;…`", secret=True)
    token_cache_s: float = setting("MCP_SUITE_TOKEN_CACHE_S", 1.0, "seconds a verified token is cached",
                                   parse=number(minimum=-1e-9))
    jwt_issuer: str | None = setting("MCP_SUITE_JWT_ISSUER", None, "accepted JWT issuer (enables JWTs)")
    jwt_audience: str | None = setting("MCP_SUITE_JWT_AUDIENCE", None, "required JWT audience")
    jwt_keys: str | None = setting("MCP_SUITE_JWT_KEYS", None, "verification keys: PEM or JWKS JSON")
    jwt_keys_file: str | None = setting("MCP_SUITE_JWT_KEYS_FILE", None, "file holding the verification keys")
    jwt_algorithms: tuple[str, ...] = setting("MCP_SUITE_JWT_ALGORITHMS", ("RS256", "ES256"),
                                              "accepted JWT algorithms", parse=words)
    jwt_principal_claim: str = setting("MCP_SUITE_JWT_PRINCIPAL_CLAIM", "sub", "claim naming the caller")


@dataclass(frozen=True)
class BenchSettings:
    """Benchmarks only."""

    debug: bool = setting("MCP_SUITE_BENCH_DEBUG", False, "show benchmark servers' stderr", parse=flag)


CORE_SECTIONS: tuple[type, ...] = (Settings, DatabaseRoleSettings, KeySettings, HttpSettings, AuthSettings,
                                   BenchSettings)


def variables(section: type) -> list[tuple[str, Setting, Any]]:
    """(field name, its Setting, its default) for each field of a section that reads a variable."""
    out = []
    for spec in dataclasses.fields(section):  # type: ignore[arg-type]
        meta = spec.metadata.get("setting")
        if meta is not None:
            default = spec.default if spec.default is not dataclasses.MISSING else None
            out.append((spec.name, meta, default))
    return out
