"""`mcp-suite`: serve, operate the database, read the audit log, load demo data, benchmark.

Every command explains itself (`--help` shows defaults and an example); a user's mistake prints one
line saying what is wrong and what to do, with a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from mcp_suite import audit_cli
from mcp_suite.cli_support import EXAMPLES, SuiteParser, UserError, announce_database, run_with_connection
from shared.config import Settings

Handler = Callable[[argparse.Namespace], int]

def worker_counts(text: str) -> list[int]:
    """`--workers 1,2` for `bench http`: counts of 1 or more (argparse reports a bad one in one line)."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"counts of 1 or more separated by commas, e.g. 1,2 (got {text!r})")
    return counts

def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mcp-suite")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _log_to_stderr(level: int = logging.WARNING) -> None:
    """Under stdio, stdout carries the protocol: logs go to stderr only."""
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")


# --- serve -------------------------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    from mcp_suite.registry import check, load

    _log_to_stderr()
    if args.name != "all" and ":" not in args.name:
        check(args.name)
    if args.workers < 1 or (args.workers > 1 and args.transport == "stdio"):
        raise UserError("--workers must be 1 or more, and more than 1 only with --transport http or sse")
    if args.transport == "stdio":
        if args.name == "all" or ":" in args.name:
            raise UserError("stdio carries one registered server: name one (`mcp-suite servers` lists them), "
                            "or use --transport http for `serve all`")
        announce_database(Settings.from_env())
        from shared.stdio.serve import serve_stdio

        return serve_stdio(load(args.name))
    from mcp_suite.registry import load_servers
    from shared.http.app import serve_http

    announce_database(Settings.from_env())
    try:
        servers = load_servers(args.name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UserError(f"cannot load {args.name!r}: {exc}") from None
    return serve_http(args, servers)


# --- db, migrate (mcp_suite/db_cli.py) ---------------------------------------------------------------

def cmd_db(args: argparse.Namespace) -> int:
    from mcp_suite.db_cli import cmd_db as db

    return db(args)


def cmd_migrate(args: argparse.Namespace) -> int:
    from mcp_suite.db_cli import cmd_migrate as migrate

    return migrate(args)


# --- servers, client config, doctor ---------------------------------------------------------------

def cmd_servers(args: argparse.Namespace) -> int:
    from mcp_suite.servers_cli import cmd_servers as servers

    return servers(args)


def cmd_claude_config(args: argparse.Namespace) -> int:
    from mcp_suite.servers_cli import cmd_claude_config as claude_config

    return claude_config(args)


def cmd_doctor(args: argparse.Namespace) -> int:
    from mcp_suite.doctor import run

    return run(args)


# --- benchmarks, tokens ----------------------------------------------------------------------------

def cmd_bench_overhead(args: argparse.Namespace) -> int:
    from mcp_suite.bench_overhead import main as overhead

    return overhead(calls=args.calls, as_json=args.json, rounds=args.rounds)


def cmd_bench_http(args: argparse.Namespace) -> int:
    from mcp_suite.bench_http import main as http_bench

    return http_bench(args)


def cmd_tokens(args: argparse.Namespace) -> int:
    from mcp_suite.tokens_cli import main as tokens_main

    return tokens_main(args.rest)


# --- parser ------------------------------------------------------------------------------------------

def _add_serve(sub: Any) -> None:
    serve = sub.add_parser("serve", help="serve one MCP server (stdio), or several over HTTP",
                           description="Serve an MCP server. Over stdio (the default) an MCP client such as "
                                       "Claude Desktop runs this command itself; over HTTP or SSE it listens "
                                       "on a port for remote clients with API tokens.")
    serve.add_argument("name", help="a server name (`mcp-suite servers` lists them), or `all` (HTTP only)")
    serve.add_argument("--transport", choices=["stdio", "sse", "http"], default="stdio", help="how clients connect")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP: the interface to listen on")
    serve.add_argument("--port", type=int, default=8765, help="HTTP: the port to listen on")
    serve.add_argument("--workers", type=int, default=1,
                       help="HTTP: processes answering on the one port (Linux; streamable HTTP only, SSE is "
                            "served with 1)")
    serve.add_argument("--allow-anonymous", action="store_true",
                       help="serve HTTP without tokens: callers without one are the principal `anonymous` "
                            "with MCP_SUITE_ANONYMOUS_SCOPES (default *:read)")
    serve.set_defaults(handler=cmd_serve)


def _add_operations(sub: Any) -> None:
    db = sub.add_parser("db", help="the embedded PostgreSQL (or the DATABASE_URL in use)")
    db.add_argument("action", choices=["start", "stop", "status", "url", "psql"], help="what to do")
    db.set_defaults(handler=cmd_db)

    migrate = sub.add_parser("migrate", help="apply pending migrations (creates the embedded database if needed)")
    migrate.set_defaults(handler=cmd_migrate)

    audit_cli.add_parser(sub)

    servers = sub.add_parser("servers", help="the servers, their tools and the scopes each tool needs")
    servers.add_argument("names", nargs="*", help="only these servers (default: all)")
    servers.add_argument("--json", action="store_true", help="print JSON")
    servers.set_defaults(handler=cmd_servers)

    claude = sub.add_parser("claude-config", help="print a Claude Desktop mcpServers snippet")
    claude.add_argument("servers", nargs="*", help="only these servers (default: all)")
    claude.set_defaults(handler=cmd_claude_config)

    doctor = sub.add_parser("doctor", help="check this installation: each line OK or what to fix")
    doctor.add_argument("--deep", action="store_true", help="also load the embedding model (about 10 s)")
    doctor.set_defaults(handler=cmd_doctor)


def _add_benchmarks(targets: Any) -> None:
    overhead = targets.add_parser("overhead", help="in-process: the suite's stack vs. the bare SDK, per call",
                                  description="The suite's per-call cost in-process, against the bare SDK.")
    overhead.add_argument("--calls", type=int, default=2000, help="calls per round")
    overhead.add_argument("--rounds", type=int, default=3, help="rounds")
    overhead.add_argument("--json", action="store_true", help="print JSON")
    overhead.set_defaults(handler=cmd_bench_overhead)

    http = targets.add_parser("http", help="concurrent HTTP clients: the suite vs. the bare SDK",
                              description="Concurrent clients over streamable HTTP: the suite's `serve` "
                                          "(with N worker processes) against the bare SDK.")
    http.add_argument("--clients", type=int, default=32, help="concurrent clients")
    http.add_argument("--seconds", type=float, default=30.0, help="measured duration per server and worker count")
    http.add_argument("--workers", type=worker_counts, default=[1],
                      help="worker counts to measure, comma-separated (e.g. 1,2)")
    http.add_argument("--protocol", choices=["legacy", "sessionless"], default="legacy",
                      help="legacy: initialize once per connection, then 2025-11-25 requests; "
                           "sessionless: 2026-07-28 self-contained requests (no handshake)")
    http.add_argument("--json", action="store_true", help="print JSON")
    http.set_defaults(handler=cmd_bench_http)


class ServerHooks:
    """The `CliHooks` a server's `add_cli` receives: its own commands and targets under the groups."""

    def __init__(self, sub: Any, groups: dict[str, tuple[argparse.ArgumentParser, Any]]) -> None:
        self.sub = sub
        self.groups = groups

    def command(self, name: str, *, help: str, description: str | None = None,
                example: str | None = None) -> argparse.ArgumentParser:
        return self.sub.add_parser(name, help=help, description=description or help, epilog=_epilog(example))

    def target(self, group: str, name: str, *, help: str,
               example: str | None = None) -> argparse.ArgumentParser:
        parent, targets = self.groups[group]
        if example:  # the group's --help shows every target's example
            parent.epilog = _epilog("\n  ".join([*_example_lines(parent.epilog), example]))
        return targets.add_parser(name, help=help, description=help, epilog=_epilog(example))

    @staticmethod
    def run_with_connection(work: Callable[[Any], Any], *, migrate_first: bool = True) -> int:
        return run_with_connection(work, migrate_first=migrate_first)


def _epilog(example: str | None) -> str | None:
    if not example:
        return None
    return ("examples:\n  " if "\n" in example else "example:\n  ") + example


def _example_lines(epilog: str | None) -> list[str]:
    return [line.strip() for line in (epilog or "").splitlines()[1:] if line.strip()]


def _add_groups(sub: Any) -> dict[str, tuple[argparse.ArgumentParser, Any]]:
    """`bench`, `demo` and `eval`: groups whose targets the servers add (the suite's own benchmarks too)."""
    helps = {"demo": "load seeded demo data (idempotent)", "bench": "benchmarks",
             "eval": "evaluations (e.g. retrieval quality)"}
    groups = {}
    for name, text in helps.items():
        parent = sub.add_parser(name, help=text, description=text, epilog=EXAMPLES.get(f"mcp-suite {name}"))
        targets = parent.add_subparsers(dest="target", required=True, metavar="TARGET", parser_class=SuiteParser)
        groups[name] = (parent, targets)
    _add_benchmarks(groups["bench"][1])
    return groups


def _add_tokens(sub: Any) -> None:
    # `tokens` has its own parser (mcp_suite/tokens_cli.py): everything after the word goes to it, --help too.
    tokens = sub.add_parser("tokens", help="API tokens for the HTTP transports (create, list, revoke)",
                            add_help=False)
    tokens.add_argument("rest", nargs=argparse.REMAINDER, help="create | list | revoke | generate, and options")
    tokens.set_defaults(handler=cmd_tokens)


def build_parser() -> argparse.ArgumentParser:
    from mcp_suite.registry import specs

    parser = SuiteParser(prog="mcp-suite", description="MCP servers (profiles, hybrid search) on one resilience "
                                                       "core: serve them, operate their database, read the audit log.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=SuiteParser)
    _add_serve(sub)
    _add_operations(sub)
    hooks = ServerHooks(sub, _add_groups(sub))
    for spec in specs().values():
        if spec.add_cli is not None:
            spec.add_cli(hooks)
    _add_tokens(sub)
    return parser


def _quiet() -> None:
    """No library chatter in a user's terminal or in JSON logs: model-loading progress bars are off."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main(argv: list[str] | None = None) -> int:
    """Parse, check every setting, run the command; a user's mistake is one line and an exit status.

    The settings (the core's sections and every registered server's, `mcp_suite.configuration`) are
    checked before any command runs, so a bad variable stops `serve`, `doctor` or `tokens` alike with
    `mcp-suite: error: VARIABLE=…: what fits` and exit status 2 (a secret's value shown as `(hidden)`).
    """
    from mcp_suite.configuration import check as check_settings
    from mcp_suite.registry import UnknownServer
    from shared.config import SettingsError
    from shared.db.migrate import MigrationError

    _quiet()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["tokens"]:  # its own parser answers everything, `--help` included
        args = argparse.Namespace(handler=cmd_tokens, rest=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    try:
        check_settings()
        return args.handler(args)
    except (UnknownServer, SettingsError) as exc:
        print(f"mcp-suite: error: {exc}", file=sys.stderr)
        return 2
    except (UserError, MigrationError) as exc:
        print(f"mcp-suite: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
