"""HTML to plain text with the standard library's `html.parser`.

Kept: the text of content elements, with entities decoded (`&lt;module&gt;` reads `<module>`);
`<pre>` blocks verbatim (indentation and line breaks intact); `<code>` text as written. Dropped: tags,
comments, and elements that are not content (script, style, noscript, template, svg, iframe, object).
Block elements start a new paragraph, table rows a new line and cells are tab-separated. The title
is `<title>`, else the first `<h1>`.

Lenient like browsers: void elements (`<br>`, `<img>`, `<meta>`) need no end tag, an end tag closes
any elements left open inside it, and a stray end tag is ignored.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIP = {"script", "style", "noscript", "template", "svg", "iframe", "object", "math"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
         "track", "wbr"}
_BLOCK = {"p", "div", "li", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre",
          "blockquote", "table", "ul", "ol", "dl", "header", "footer", "nav", "aside", "main", "figure",
          "figcaption", "hr", "form", "fieldset", "details", "summary", "address", "body"}
# Placeholders that survive whitespace folding: paragraph, line and cell breaks, and the whitespace
# inside <pre> (stored as control characters that never occur in real text, restored at the end).
_PARAGRAPH, _LINE, _CELL = "\x1e", "\x1d", "\x1c"
_PROTECT = str.maketrans({" ": "\x0e", "\t": "\x0f", "\n": "\x10", "\r": None})
_RESTORE = str.maketrans({"\x0e": " ", "\x0f": "\t", "\x10": "\n"})
_PLACEHOLDERS = re.compile(r"[\x0e\x0f\x10\x1c\x1d\x1e]")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self.h1: list[str] = []
        self._stack: list[str] = []
        self._skipping = 0
        self._pre = 0
        self._first_h1_done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            if tag == "br":
                self.parts.append("\x10" if self._pre else _LINE)
            elif tag == "hr":
                self.parts.append(_PARAGRAPH)
            return
        self._stack.append(tag)
        if tag in _SKIP:
            self._skipping += 1
        elif tag == "pre":
            self._pre += 1
        if tag in _BLOCK:
            self.parts.append(_PARAGRAPH)
        elif tag == "tr":
            self.parts.append(_LINE)
        elif tag in ("td", "th"):
            self.parts.append(_CELL)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self._stack:
            return  # a stray end tag
        while self._stack:
            open_tag = self._stack.pop()
            if open_tag in _SKIP:
                self._skipping -= 1
            elif open_tag == "pre":
                self._pre -= 1
                while self.parts and self.parts[-1].endswith("\x10"):  # the line end before </pre>
                    self.parts[-1] = self.parts[-1][:-1]
            elif open_tag == "h1":
                self._first_h1_done = self._first_h1_done or bool(self.h1)
            if open_tag == tag:
                break
        if tag in _BLOCK:
            self.parts.append(_PARAGRAPH)

    def handle_data(self, data: str) -> None:
        if "title" in self._stack:
            self.title.append(data)
        elif not self._skipping:
            data = _PLACEHOLDERS.sub("", data)
            self.parts.append(data.translate(_PROTECT) if self._pre else data)
            if "h1" in self._stack and not self._first_h1_done:
                self.h1.append(data)


def _assemble(parts: list[str]) -> str:
    """Fold whitespace outside <pre>, then turn the placeholders into line and paragraph breaks."""
    text = re.sub(r"[ \t\n\r\f\v]+", " ", "".join(parts))  # not \s, which matches the placeholders
    text = re.sub(f" ?{_CELL} ?", "\t", text)
    text = re.sub(f" ?{_LINE} ?", "\n", text)
    text = re.sub(f" ?{_PARAGRAPH} ?", "\n\n", text)
    text = re.sub(r"(?m)^\t+|\t+$", "", text)  # no empty cell before a row's first cell
    text = re.sub(r"\n[ \t]*\n(?:[ \t]*\n)*", "\n\n", text)
    return text.translate(_RESTORE).strip("\n ")


def html_to_text(content: str) -> tuple[str, str]:
    """Return (title, text) of an HTML document or fragment."""
    extractor = _TextExtractor()
    extractor.feed(content)
    extractor.close()
    title = " ".join("".join(extractor.title).split()) or " ".join("".join(extractor.h1).split())
    return title, _assemble(extractor.parts)
