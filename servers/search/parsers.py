"""Plain text out of text, Markdown and HTML, plus a title. Standard library only.

HTML goes through `html.parser` (script, style and other non-content elements dropped); Markdown keeps
its words and loses its syntax characters. PDF is not supported: no well-kept pure-Python extractor
is among the suite's dependencies.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import PurePath

FORMATS = ("auto", "text", "markdown", "html")
_SKIP = {"script", "style", "noscript", "template", "svg", "head"}
_BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self.h1: list[str] = []
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:  # noqa: ANN001 - HTMLParser's signature
        self._stack.append(tag)
        if tag in _BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._stack:
            while self._stack and self._stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if "title" in self._stack:
            self.title.append(data)
        elif not _SKIP.intersection(self._stack):
            self.parts.append(data)
            if "h1" in self._stack:
                self.h1.append(data)


def detect_format(name: str | None, content: str) -> str:
    suffix = PurePath(name).suffix.lower() if name else ""
    if suffix in (".md", ".markdown"):
        return "markdown"
    if suffix in (".html", ".htm", ".xhtml"):
        return "html"
    if suffix in (".txt", ".text", ".rst"):
        return "text"
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
        extractor = _TextExtractor()
        extractor.feed(content)
        extractor.close()
        text = re.sub(r"[ \t]+", " ", "".join(extractor.parts))
        text = re.sub(r"\n\s*\n+", "\n\n", text).strip()
        title = " ".join("".join(extractor.title).split()) or " ".join("".join(extractor.h1).split())
        return (title or _first_line(text))[:1000], text
    if fmt == "markdown":
        heading = re.search(r"^#{1,6}\s+(.+)$", content, flags=re.M)
        text = re.sub(r"```[^\n]*\n", "", content)
        text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
        text = re.sub(r"^[ \t#>\-*+]+", "", text, flags=re.M)
        text = re.sub(r"[*_`~]+", "", text)
        return ((heading.group(1).strip() if heading else _first_line(text))[:1000], text.strip())
    return _first_line(content)[:1000], content.strip()
