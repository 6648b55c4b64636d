"""A rule-based English tokenizer for raw text, in the manner of spaCy's (prefix, suffix, infix,
special cases), that always round-trips: `Tokenizer()(text).text == text` for any string.

Whitespace follows spaCy: a token followed by exactly one space gets `spaces=True`; any other
whitespace (extra spaces, tabs, newlines, a leading space) becomes a whitespace token of its own.
Every token is a slice of the input, so nothing can be lost or altered.

Conventions (close to the Penn / UD English tokenization the EWT treebank uses): punctuation,
quotes and brackets split off; contractions split ("don't" -> "do" "n't", "can't" -> "ca" "n't",
"I'm" -> "I" "'m", "John's" -> "John" "'s"); hyphens between letters split ("al-Ani" -> "al" "-"
"Ani"); URLs, e-mail addresses, numbers ("3.14", "1,000", "10%") and abbreviations ("U.S.",
"e.g.", "Mr.") stay whole; currency symbols split ("$5" -> "$" "5").
"""
from __future__ import annotations

import re

from .doc import Doc

# --- whole-token patterns: never split ------------------------------------------------------
_URL = re.compile(
    r"(?:(?:https?|ftp)://|www\.)[^\s<>\"]*[^\s<>\"'.,;:!?()\[\]{}“”‘’]"
    r"|(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+(?:com|org|net|edu|gov|io|info|biz|co|uk|us|de|fr|ca|au)"
    r"(?:/[^\s<>\"]*[^\s<>\"'.,;:!?()\[\]{}“”‘’])?/?",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
# initialisms "U.S.", "e.g.", "a.m.", single initials "J."
_INITIALS = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]?\.?")
_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof st jr sr rev gen sen rep gov lt col sgt capt inc ltd co corp bros assn dept
    univ est approx vs etc al fig jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed
    thu thur thurs fri sat sun no nos vol vols pp ed eds ft mt ave blvd rd hwy ca cf ibid""".split()
)
# tokens a prefix/suffix rule must not break apart
_SPECIAL = frozenset(
    {"'s", "'m", "'re", "'ve", "'ll", "'d", "n't", "’s", "’m", "’re", "’ve", "’ll", "’d", "n’t",
     "...", "…", "--", "---", "''", "``", ":)", ":(", ":-)", ":-(", ";)", ":D", ":P", "<3", "'n'"}
)

# --- splitting rules ------------------------------------------------------------------------
_QUOTES = "\"'`“”‘’«»„‚‹›"
_PREFIX = re.compile(
    r"(?:(?P<run>[=*_~<>#^+$!?-])(?P=run)+|\.{2,}|…+|``|''|[" + re.escape(_QUOTES) + r"]"
    r"|[(\[{<¿¡§=—–#*&~_%/\\|^]|[$£€¥₹₩₽](?!$)|-(?![0-9.]))"
)
_SUFFIX = re.compile(
    r"(?:(?P<run>[=*_~<>#^+$-])(?P=run)+|\.{2,}|…+|''|[!?]+|[" + re.escape(_QUOTES) + r"]"
    r"|[)\]}>,;:#*&~_/\\|^—–]|(?<=[0-9])[$£€¥₹₩₽]|(?<![0-9])%|\.)$"
)
_INFIX = re.compile(
    r"\.{2,}|…+|-{2,}|[—–]"
    r"|(?<=[^\W\d_])-(?=[^\W_])|(?<=[0-9])-(?=[^\W\d_])"  # al-Ani, 3-year (not 555-1234)
    r"|[()\[\]{}]"  # brackets inside a chunk: "file.pdf)(See"
    r"|(?<=[^\W\d_]),(?=[^\W\d_])"  # "a,b" (not 1,000)
    r"|(?<=[a-z])\.(?=[A-Z][a-z])"  # "end.Start" (not U.S.)
    r"|(?<=[^\W_])[/:=<>+](?=[^\W\d_])|(?<=[^\W\d_])[/=<>+](?=[0-9])"  # and/or, a=b (not 10:30)
)
# contractions: only at the end of a token core, whose letters they follow
_CONTRACTION = re.compile(r"(?<=[^\W\d_])(?:n['’]t|['’](?:s|m|re|ve|ll|d))$", re.IGNORECASE)
_NO_APOSTROPHE = {  # frequent apostrophe-less contractions, split as the treebank does
    "dont": 2, "didnt": 3, "doesnt": 4, "isnt": 2, "arent": 3, "wasnt": 3, "werent": 4, "hasnt": 3,
    "havent": 4, "hadnt": 3, "couldnt": 5, "wouldnt": 5, "shouldnt": 6, "cant": 2, "aint": 2,
    "cannot": 3, "gonna": 3, "gotta": 3, "wanna": 3, "im": 1, "ive": 1, "youre": 3, "theyre": 4,
}

_CACHE_LIMIT = 200_000


class Tokenizer:
    """English tokenizer; `tok(text)` gives a Doc, `tok.tokenize(text)` gives (words, spaces)."""

    def __init__(self) -> None:
        # chunks between whitespace repeat a lot in real text: cache their split
        self._cache: dict[str, tuple[str, ...]] = {}

    def __call__(self, text: str) -> Doc:
        words, spaces = self.tokenize(text)
        return Doc(words=words, spaces=spaces)

    def tokenize(self, text: str) -> tuple[list[str], list[bool]]:
        words: list[str] = []
        spaces: list[bool] = []
        cache = self._cache
        for chunk in _CHUNKS.findall(text):
            if chunk[0].isspace():
                # one space belongs to the word before it (spaces=True); any other whitespace
                # is a token of its own, as in spaCy
                if chunk[0] == " " and words:
                    spaces[-1] = True
                    chunk = chunk[1:]
                    if not chunk:
                        continue
                words.append(chunk)
                spaces.append(False)
                continue
            pieces = cache.get(chunk)
            if pieces is None:
                pieces = self._split(chunk)
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[chunk] = pieces
            words.extend(pieces)
            spaces.extend([False] * len(pieces))
        return words, spaces

    def _split(self, chunk: str) -> tuple[str, ...]:
        """Split a chunk without whitespace into tokens (their concatenation is the chunk)."""
        if chunk.isalnum() and chunk.lower() not in _NO_APOSTROPHE:
            return (chunk,)
        prefixes: list[str] = []
        suffixes: list[str] = []
        start, end = 0, len(chunk)
        while start < end:
            if _is_whole(chunk, start, end):
                break
            m = _PREFIX.match(chunk, start, end)
            if m and m.end() > start:
                prefixes.append(chunk[start : m.end()])
                start = m.end()
                continue
            m = _SUFFIX.search(chunk, max(start, end - 32), end)
            if m and m.start() < end:
                if m.group() == "." and _is_abbreviation(chunk, start, end):
                    break
                suffixes.append(chunk[m.start() : end])
                end = m.start()
                continue
            break
        out = prefixes
        if start < end:
            core = chunk[start:end]
            if _is_whole(chunk, start, end):
                out.append(core)
            else:
                out.extend(_split_core(core))
        out.extend(reversed(suffixes))
        return tuple(out)


_CHUNKS = re.compile(r"\S+|\s+")


def _is_whole(s: str, start: int, end: int) -> bool:
    if s[start:end] in _SPECIAL:
        return True
    return bool(_URL.fullmatch(s, start, end) or _EMAIL.fullmatch(s, start, end))


def _is_abbreviation(s: str, start: int, end: int) -> bool:
    """`s[start:end]` ends in "." that belongs to it: "U.S.", "e.g.", "Mr.", "etc."."""
    if end - start < 2:
        return False
    if s[start : end - 1].lower() in _ABBREVIATIONS:
        return True
    return bool(_INITIALS.fullmatch(s, start, end)) and s[end - 2].isalpha()


def _split_core(core: str) -> list[str]:
    """Infixes, then contractions, inside what prefixes and suffixes left."""
    pieces: list[str] = []
    pos = 0
    for m in _INFIX.finditer(core):
        if m.start() > pos:
            pieces.append(core[pos : m.start()])
        if m.end() > m.start():
            pieces.append(m.group())
        pos = m.end()
    if pos < len(core):
        pieces.append(core[pos:])
    out: list[str] = []
    for p in pieces:
        m = _CONTRACTION.search(p)
        if m and m.start() > 0:
            out += [p[: m.start()], p[m.start() :]]
            continue
        cut = _NO_APOSTROPHE.get(p.lower())
        if cut is not None:
            out += [p[:cut], p[cut:]]
            continue
        out.append(p)
    return out
