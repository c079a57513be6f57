"""One analyzer for indexing and querying: Unicode words, case-folded, stopwords out, Snowball stems.

BM25 is only exact if the query is cut into terms exactly as the documents were, so this module is
the single definition of a "term" for both sides.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import lru_cache

import snowballstemmer

ANALYZER_VERSION = 1
MAX_TERM_CHARS = 64
_WORD = re.compile(r"\w+", re.UNICODE)
_STEMMER = snowballstemmer.stemmer("english")

# A compact English stopword list (function words that carry no topical signal).
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most my
myself no nor not now of off on once only or other our ours ourselves out over own same she should so
some such than that the their theirs them themselves then there these they this those through to too
under until up very was we were what when where which while who whom why will with would you your
yours yourself yourselves
""".split())


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _STEMMER.stemWord(word)


def tokens(text: str) -> list[str]:
    """The terms of a text, in order (repeats kept: they are term frequencies)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    out = []
    for word in _WORD.findall(folded):
        if word in STOPWORDS or len(word) > MAX_TERM_CHARS or word == "_" * len(word):
            continue
        out.append(_stem(word))
    return out


def term_counts(text: str) -> Counter[str]:
    return Counter(tokens(text))
