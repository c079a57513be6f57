"""Markdown to plain text with markdown-it-py (CommonMark, plus GitHub tables and strikethrough).

Why a real parser: regular expressions cannot tell emphasis from an identifier, so `hybrid_search`
became `hybridsearch` and code lost its underscores. Walking the token stream drops only markup:
code spans and code blocks keep their text verbatim, link and image markup leave their text (alt
text for images), tables become one line per row with tab-separated cells, raw HTML blocks go
through the HTML extractor and inline tags are dropped. A YAML front-matter block is not body text;
its `title:` is used as the title.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

from servers.search.parse_html import html_to_text

_MD = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FRONT_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.M)


def _inline(token: Token) -> str:
    """The text of an inline token: markup dropped, code spans verbatim, line breaks kept."""
    out: list[str] = []
    for child in token.children or ():
        if child.type in ("text", "code_inline"):
            out.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            out.append("\n")
        elif child.type == "image":
            out.append(_inline(child) or child.content)
    return "".join(out)


def _front_matter(content: str) -> tuple[str | None, str]:
    match = _FRONT_MATTER.match(content)
    if not match:
        return None, content
    title = _FRONT_TITLE.search(match.group(1))
    return (title.group(1).strip("'\"") if title else None), content[match.end():]


def markdown_to_text(content: str) -> tuple[str, str]:
    """Return (title, text): blocks separated by blank lines, so chunking can respect paragraphs.

    The title is the front matter's, else the first level-1 heading, else the first heading, else ''.
    """
    front_title, content = _front_matter(content)
    blocks: list[str] = []
    headings: list[tuple[int, str]] = []
    rows: list[str] | None = None  # the table being read, one tab-separated line per row
    cells: list[str] = []
    level = 0
    for token in _MD.parse(content):
        kind = token.type
        if kind == "inline":
            text = _inline(token).strip()
            if rows is not None:
                cells.append(" ".join(text.split()))
            elif text:
                blocks.append(text)
            if level:
                headings.append((level, " ".join(text.split())))
                level = 0
        elif kind == "heading_open":
            level = int(token.tag[1:])
        elif kind == "table_open":
            rows = []
        elif kind == "tr_close" and rows is not None:
            rows.append("\t".join(cells).rstrip())
            cells = []
        elif kind == "table_close" and rows is not None:
            blocks.append("\n".join(r for r in rows if r))
            rows = None
        elif kind in ("fence", "code_block"):
            blocks.append(token.content.rstrip("\n"))
        elif kind == "html_block":
            blocks.append(html_to_text(token.content)[1])
    text = "\n\n".join(b for b in blocks if b.strip())
    title = front_title or next((t for lv, t in headings if lv == 1), None) or (headings[0][1] if headings else "")
    return title, text
