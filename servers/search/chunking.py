"""Cut text into overlapping word windows that fit all-MiniLM-L6-v2's 256 word-piece limit.

English prose averages ~1.3 word pieces per word, so 160 words stay under the limit with room for
technical vocabulary; a 32-word overlap keeps a sentence that straddles a cut findable from both sides.
"""

from __future__ import annotations

import re

MAX_WORDS = 160
OVERLAP_WORDS = 32
_PARAGRAPH = re.compile(r"\n\s*\n")


def chunk_text(text: str, *, max_words: int = MAX_WORDS, overlap: int = OVERLAP_WORDS) -> list[str]:
    """Paragraph-aware windows: short paragraphs are packed together, long ones are split."""
    if overlap >= max_words:
        raise ValueError("overlap must be smaller than the window")
    words: list[str] = []
    breaks: set[int] = set()
    for paragraph in _PARAGRAPH.split(text):
        para_words = paragraph.split()
        if para_words:
            breaks.add(len(words))
            words.extend(para_words)
    if not words:
        return []
    chunks: list[str] = []
    start = 0
    while start < len(words):
        end = min(start + max_words, len(words))
        if end < len(words):
            # Prefer to end at a paragraph break in the window's last third.
            candidates = [b for b in breaks if start + (2 * max_words) // 3 <= b < end]
            if candidates:
                end = max(candidates)
        chunks.append(" ".join(words[start:end]))
        if end >= len(words):
            break
        start = max(end - overlap, start + 1)
    return chunks
