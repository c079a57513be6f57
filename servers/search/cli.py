"""The search server's commands: `ingest`, `eval search`, `bench search`.

Only the parsers live here; each command imports its code (the embedder, the lab tooling) when it
runs, so `mcp-suite --help` does not load them.
"""

from __future__ import annotations

import argparse

from shared.server_spec import CliHooks


def add_cli(cli: CliHooks) -> None:
    _add_ingest(cli)
    _add_eval(cli)
    _add_bench(cli)


def _add_ingest(cli: CliHooks) -> None:
    ingest = cli.command("ingest", help="index files or directories into the search server",
                         example="mcp-suite ingest docs/ notes.md --root .\n  mcp-suite ingest page.html")
    ingest.add_argument("paths", nargs="+", help="files or folders (text, Markdown, HTML)")
    ingest.add_argument("--root", action="append",
                        help="confine reads to these roots, which also name the documents (default: "
                             "MCP_SUITE_SEARCH_ROOTS when the path is inside one, else the directory itself "
                             "or the file's folder)")
    ingest.add_argument("--format", choices=["auto", "text", "markdown", "html"], default="auto",
                        help="how to parse (auto: by file extension)")
    ingest.set_defaults(handler=_ingest)


def _ingest(args: argparse.Namespace) -> int:
    from servers.search.cli_ingest import main

    return main(args.paths, roots=args.root, fmt=args.format)


def _add_eval(cli: CliHooks) -> None:
    evaluate = cli.target("eval", "search", help="retrieval quality on a BEIR-layout dataset",
                          example="mcp-suite eval search path/to/beir-dataset --json")
    evaluate.add_argument("dataset", help="folder with corpus.jsonl, queries.jsonl, qrels/*.tsv")
    evaluate.add_argument("--limit-queries", type=int, help="evaluate only the first N queries")
    evaluate.add_argument("--k1", type=float, default=1.2, help="BM25 term-frequency saturation")
    evaluate.add_argument("--b", type=float, default=0.75, help="BM25 length normalisation")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(handler=_eval)


def _eval(args: argparse.Namespace) -> int:
    from servers.search.lab.evaluate import main

    return main(args.dataset, as_json=args.json, limit_queries=args.limit_queries, k1=args.k1, b=args.b)


def _add_bench(cli: CliHooks) -> None:
    bench = cli.target("bench", "search", help="search latency on a synthetic corpus",
                       example="mcp-suite bench search --chunks 5000 --json")
    bench.add_argument("--chunks", type=int, default=100_000, help="synthetic corpus size")
    bench.add_argument("--queries", type=int, default=200, help="timed queries")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from servers.search.lab.bench import main

    return main(args.chunks, queries=args.queries, as_json=args.json)
