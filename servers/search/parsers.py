"""Plain text and a title out of text, Markdown and HTML; the format comes from the name or content.

Markdown goes through markdown-it-py (`parse_markdown`), HTML through the standard library's parser
(`parse_html`); both drop only markup, so identifiers and code survive verbatim. PDF is not
supported: no well-kept pure-Python extractor is among the suite's dependencies.
"""

from __future__ import annotations

from pathlib import PurePath

from servers.search.parse_html import html_to_text
from servers.search.parse_markdown import markdown_to_text

FORMATS = ("auto", "text", "markdown", "html")
SUFFIX_FORMATS = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html",
                  ".xhtml": "html", ".txt": "text", ".text": "text", ".rst": "text"}


def detect_format(name: str | None, content: str) -> str:
    suffix = PurePath(name).suffix.lower() if name else ""
    if suffix in SUFFIX_FORMATS:
        return SUFFIX_FORMATS[suffix]
    head = content.lstrip()[:200].lower()
    if head.startswith(("<!doctype html", "<html")):
        return "html"
    return "text"


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def parse(content: str, fmt: str = "auto", *, name: str | None = None) -> tuple[str, str]:
    """Return (title, plain text) for the content in the given (or detected) format."""
    fmt = detect_format(name, content) if fmt == "auto" else fmt
    if fmt == "html":
        title, text = html_to_text(content)
    elif fmt == "markdown":
        title, text = markdown_to_text(content)
    else:
        title, text = "", content.strip()
    return (" ".join(title.split()) or _first_line(text))[:1000], text
