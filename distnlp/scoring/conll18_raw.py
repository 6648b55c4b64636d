"""The CoNLL 2018 shared task metrics (conll18_ud_eval.py) for raw-text predictions.

`conll18.py` scores a pipeline run on gold tokens. A pipeline that tokenizes and splits the raw
text itself produces other tokens and sentences, so the official scorer aligns the two sides
through the text instead:

- the text is the concatenation of the token forms with whitespace removed; gold and system must
  have the same text, and a token or sentence is a span over it (right when its start and end
  both match a gold one);
- words are aligned by span where no multiword token is involved; around multiword tokens (gold
  `3-4 don't`, on either side) the words of the smallest region that no multiword token sticks
  out of are aligned by the longest common subsequence of their lowercased forms;
- the tagging metrics compare the aligned words; UAS/LAS/CLAS/MLAS/BLEX map the system word's
  head through the alignment, so a head is right only when it is aligned to the gold head (a
  head that is not aligned to any gold word is wrong, a root is right only against a root).

Precision is over the system's words (or content words), recall over the gold ones, as in the
official script. Usage::

    gold = read_ud("dev.conllu")
    docs = [nlp(text) for _, text in raw_texts("dev.conllu")]
    scores = evaluate_ud(gold, ud_from_docs(docs))   # {"Tokens": Score(...), "LAS": ...}

Plain Python: no torch here.
"""
from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.convert.lines import iter_lines, where
from ..data.trees import find_cycle
from ..errors import CorpusError, DistnlpError
from .conll18 import CONTENT_DEPRELS, FUNCTIONAL_DEPRELS, NEEDS, UNIVERSAL_FEATURES

__all__ = ["METRICS", "Score", "UDDocument", "UDWord", "evaluate_ud", "raw_texts", "read_ud", "ud_from_docs"]

METRICS = ("Tokens", "Sentences", "Words", "UPOS", "XPOS", "UFeats", "AllTags", "Lemmas", "UAS", "LAS", "CLAS", "MLAS", "BLEX")
_ALL_COLUMNS = frozenset({"pos", "tags", "morphs", "lemmas", "deps", "heads"})
_NOT_ALIGNED = -1  # a system head with no gold counterpart: equal to no gold head, nor to a root (None)


@dataclass(slots=True)
class UDWord:
    """One syntactic word; `start`/`end` are its token's span (the whole range of a multiword token)."""

    start: int
    end: int
    form: str  # lowercased: what the LCS compares
    upos: str
    xpos: str
    feats: str  # universal features only, sorted ("" for none)
    lemma: str
    deprel: str  # without subtype
    multiword: bool
    parent: int | None = None  # index in UDDocument.words; None for a root
    children: list[int] = field(default_factory=list)  # functional children, in word order

    @property
    def content(self) -> bool:
        return self.deprel in CONTENT_DEPRELS


@dataclass
class UDDocument:
    """A whole file (or all predicted docs) as one text: the official scorer's representation."""

    text: str  # every token form, whitespace removed, concatenated
    tokens: list[tuple[int, int]]
    words: list[UDWord]
    sentences: list[tuple[int, int]]
    sentence_names: list[str]  # where each sentence comes from, for error messages
    columns: frozenset[str]  # the Doc columns this side carries (a metric needs them on both sides)

    def where(self, char: int) -> str:
        """The sentence holding character `char` of `text`, for error messages."""
        if not self.sentences or char >= self.sentences[-1][1]:
            return "end of the text"
        i = max(0, bisect.bisect_right([s for s, _ in self.sentences], char) - 1)
        return self.sentence_names[i]


@dataclass(frozen=True)
class Score:
    """Counts of one metric; precision/recall/F1 as in the official script (0.0 on empty totals)."""

    gold: int
    system: int
    correct: int
    aligned: int | None = None  # aligned (content) words; None for the span metrics and Words

    @property
    def precision(self) -> float:
        return self.correct / self.system if self.system else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        total = self.gold + self.system
        return 2 * self.correct / total if total else 0.0

    @property
    def aligned_accuracy(self) -> float | None:
        if self.aligned is None:
            return None
        return self.correct / self.aligned if self.aligned else 0.0


def _squeeze(form: str) -> str:
    """A form without whitespace: the official script drops spaces from forms so that a tokenizer
    keeping "New York" as one token still matches the gold text."""
    return "".join(c for c in form if not c.isspace())


def _ufeats(feats: str) -> str:
    return "|".join(sorted(f for f in feats.split("|") if f.split("=", 1)[0] in UNIVERSAL_FEATURES))


class _Builder:
    """Accumulates tokens, words and sentences into one UDDocument."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.length = 0
        self.tokens: list[tuple[int, int]] = []
        self.words: list[UDWord] = []
        self.sentences: list[tuple[int, int]] = []
        self.names: list[str] = []

    def token(self, form: str) -> tuple[int, int]:
        span = (self.length, self.length + len(form))
        self.chunks.append(form)
        self.tokens.append(span)
        self.length = span[1]
        return span

    def word(self, span: tuple[int, int], form: str, cols: Sequence[str], multiword: bool) -> None:
        upos, xpos, feats, lemma, deprel = cols
        self.words.append(UDWord(
            start=span[0], end=span[1], form=form.lower(), upos=upos, xpos=xpos, feats=_ufeats(feats),
            lemma=lemma, deprel=deprel.split(":")[0], multiword=multiword,
        ))

    def close_sentence(self, first_word: int, start_char: int, name: str, parents: Sequence[int | None]) -> None:
        """Links the sentence's words (parents are indices in `words`) and records its span."""
        for i, p in enumerate(parents):
            self.words[first_word + i].parent = p
        for i in range(first_word, len(self.words)):
            w = self.words[i]
            if w.parent is not None and w.deprel in FUNCTIONAL_DEPRELS:
                self.words[w.parent].children.append(i)
        self.sentences.append((start_char, self.length))
        self.names.append(name)

    def build(self, columns: frozenset[str]) -> UDDocument:
        return UDDocument("".join(self.chunks), self.tokens, self.words, self.sentences, self.names, columns)


# --- gold: a CoNLL-U file ------------------------------------------------------------------------

def read_ud(path: str | Path) -> UDDocument:
    """A gold CoNLL-U file as the official scorer loads it: a range line `3-4` is one token over its
    words, empty nodes `5.1` are skipped, every sentence must be a tree (HEAD "_" throughout a
    sentence = no tree: the parse metrics are then left out)."""
    b = _Builder()
    trees = True
    block: list[tuple[int, str]] = []
    for lineno, line in iter_lines(path):
        if line.strip():
            block.append((lineno, line))
            continue
        if block:
            trees &= _read_sentence(path, block, b)
            block = []
    if block:
        trees &= _read_sentence(path, block, b)
    return b.build(_ALL_COLUMNS if trees else _ALL_COLUMNS - {"heads"})


def _read_sentence(path: str | Path, block: list[tuple[int, str]], b: _Builder) -> bool:
    """Adds one sentence block; False when it has no tree (every HEAD "_")."""
    first_word, start_char = len(b.words), b.length
    sent_id: str | None = None
    heads: list[tuple[int | None, int]] = []  # (HEAD, line)
    mwt_last, mwt_span, mwt_line = 0, (0, 0), 0
    for lineno, line in block:
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            if key.strip() == "sent_id":
                sent_id = value.strip()
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise CorpusError(where(path, lineno), f"expected 10 tab-separated columns, found {len(cols)}",
                              "CoNLL-U token lines are ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC")
        tid, n = cols[0], len(b.words) - first_word
        if "." in tid:
            continue  # empty node of the enhanced graph: no token, no word
        if "-" in tid:
            lo, _, hi = tid.partition("-")
            if not (lo.isdigit() and hi.isdigit()) or int(lo) != n + 1 or int(hi) < int(lo) or mwt_last > n:
                raise CorpusError(where(path, lineno), f"bad multiword token range {tid!r} (the next word is {n + 1})",
                                  "a range is FIRST-LAST of the words that follow it")
            mwt_last, mwt_span, mwt_line = int(hi), b.token(_checked_form(path, lineno, cols[1])), lineno
            continue
        if not tid.isdigit() or int(tid) != n + 1:
            raise CorpusError(where(path, lineno), f"word ID {tid!r} out of sequence (expected {n + 1})",
                              "word IDs count 1, 2, 3... within each sentence; is a blank line missing?")
        if n + 1 <= mwt_last:  # a word of a multiword token: the official scorer keeps its form as written
            b.word(mwt_span, cols[1], (cols[3], cols[4], cols[5], cols[2], cols[7]), multiword=True)
        else:
            form = _checked_form(path, lineno, cols[1])
            b.word(b.token(form), form, (cols[3], cols[4], cols[5], cols[2], cols[7]), multiword=False)
        if cols[6] == "_":
            heads.append((None, lineno))
        elif cols[6].isdigit():
            heads.append((int(cols[6]), lineno))
        else:
            raise CorpusError(where(path, lineno), f"HEAD {cols[6]!r} is not an integer",
                              "HEAD is the ID of the head word, or 0 for the root")
    n = len(b.words) - first_word
    if mwt_last > n:
        raise CorpusError(where(path, mwt_line), f"multiword token ends at word {mwt_last} but the sentence has {n} words",
                          "fix the range line")
    if not n:
        return True  # a comment-only block (e.g. a lone `# newdoc`)
    name = f"{where(path, block[0][0])} (sentence {sent_id!r})" if sent_id else where(path, block[0][0])
    tree = any(h is not None for h, _ in heads)
    b.close_sentence(first_word, start_char, name, _gold_parents(path, heads, first_word) if tree else [None] * n)
    return tree


def _checked_form(path: str | Path, lineno: int, form: str) -> str:
    squeezed = _squeeze(form)
    if not squeezed:
        raise CorpusError(where(path, lineno), "empty FORM (only whitespace)", "every token needs a form")
    return squeezed


def _gold_parents(path: str | Path, heads: list[tuple[int | None, int]], offset: int) -> list[int | None]:
    """Parents as word indices, checked to be one tree as the official scorer requires."""
    n = len(heads)
    for h, lineno in heads:
        if h is None:
            raise CorpusError(where(path, lineno), "HEAD '_' in a sentence that has a tree", "give every word a HEAD, or none")
        if h > n:
            raise CorpusError(where(path, lineno), f"HEAD {h} is out of range (the sentence has {n} words)",
                              "HEAD must be 0 or the ID of a word in the same sentence")
    local = [None if h == 0 else h - 1 for h, _ in heads]
    roots = sum(p is None for p in local)
    if roots != 1:
        raise CorpusError(where(path, heads[0][1]), f"{roots} roots (HEAD 0) in one sentence", "a sentence is one tree with one root")
    cycle = find_cycle(local)
    if cycle is not None:
        raise CorpusError(where(path, heads[cycle[0]][1]), "the HEADs form a cycle", "every word must lead to the root")
    return [None if p is None else offset + p for p in local]


# --- system: predicted Docs ----------------------------------------------------------------------

def ud_from_docs(docs: Iterable[Any]) -> UDDocument:
    """Predicted Docs, in the gold file's order, as one UDDocument: every word is a token, pure
    whitespace tokens are dropped (a tokenizer may keep them; the text ignores whitespace), a head
    on a dropped token or outside its sentence is a root. Trees are not checked (a parser may
    predict several roots)."""
    b = _Builder()
    columns: set[str] = set()
    for d, doc in enumerate(docs):
        words = list(doc.words)
        n = len(words)
        label = f"doc {doc.doc_id!r}" if getattr(doc, "doc_id", None) else f"doc #{d}"
        cols: dict[str, Sequence[Any] | None] = {}
        for name in _ALL_COLUMNS:
            col = getattr(doc, name, None)
            if col is not None and len(col) != n:
                raise DistnlpError(f"{label}: {name} has {len(col)} values for {n} words (each column needs one value per word)")
            cols[name] = col
            if col is not None:
                columns.add(name)
        starts = doc.sent_starts
        if starts is not None and len(starts) != n:
            raise DistnlpError(f"{label}: sent_starts has {len(starts)} values for {n} words (each column needs one value per word)")
        bounds = [0] + [i for i in range(1, n) if starts is not None and starts[i]] + [n]
        for k, (a, z) in enumerate(zip(bounds, bounds[1:]), 1):
            kept = [i for i in range(a, z) if words[i] and not words[i].isspace()]
            if not kept:
                continue
            first_word, start_char = len(b.words), b.length
            index = {i: first_word + j for j, i in enumerate(kept)}
            heads = cols["heads"]
            parents: list[int | None] = []
            for i in kept:
                form = _squeeze(words[i])
                b.word(b.token(form), form, [_value(cols[c], i) for c in ("pos", "tags", "morphs", "lemmas", "deps")], multiword=False)
                h = None if heads is None or heads[i] is None else int(heads[i])
                parents.append(None if h is None or h == i else index.get(h))  # index: only kept words of this sentence
            b.close_sentence(first_word, start_char, f"{label} sentence {k}", parents)
    return b.build(frozenset(columns))


def _value(col: Sequence[Any] | None, i: int) -> str:
    v = None if col is None else col[i]
    return "_" if v is None or v == "" else str(v)


# --- evaluation ----------------------------------------------------------------------------------

def evaluate_ud(gold: UDDocument, system: UDDocument) -> dict[str, Score]:
    """Every CoNLL 2018 metric the system predicts (and the gold has) -> its Score."""
    _check_same_text(gold, system)
    pairs = _align(gold.words, system.words)
    to_gold = [_NOT_ALIGNED] * len(system.words)
    for g, s in pairs:
        to_gold[s] = g
    out = {
        "Tokens": _span_score(gold.tokens, system.tokens),
        "Sentences": _span_score(gold.sentences, system.sentences),
        "Words": Score(len(gold.words), len(system.words), len(pairs)),
    }
    for metric in METRICS[3:]:
        needs = NEEDS[metric]
        if all(c in system.columns and c in gold.columns for c in needs):
            out[metric] = _word_score(metric, gold, system, pairs, to_gold)
    return out


def _check_same_text(gold: UDDocument, system: UDDocument) -> None:
    g, s = gold.text, system.text
    if g == s:
        return
    i = next((k for k, (a, b) in enumerate(zip(g, s)) if a != b), min(len(g), len(s)))
    lo = max(0, i - 15)
    raise DistnlpError(
        f"gold and system text differ at character {i} (whitespace removed): gold ({gold.where(i)}) "
        f"{g[lo:i]!r} + {g[i:i + 15]!r}, system ({system.where(i)}) {s[lo:i]!r} + {s[i:i + 15]!r} "
        "(raw-text evaluation needs the same text, only whitespace may differ: run the pipeline on raw_texts() "
        "of the gold file and pass the docs in the same order)"
    )


def _span_score(gold: list[tuple[int, int]], system: list[tuple[int, int]]) -> Score:
    """Spans are right when a gold span starts and ends at the same characters."""
    gold_ends = dict(gold)
    correct = sum(1 for start, end in system if gold_ends.get(start, -1) == end)
    return Score(len(gold), len(system), correct)


def _align(gold: list[UDWord], system: list[UDWord]) -> list[tuple[int, int]]:
    """(gold word, system word) pairs, in text order, following the official alignment."""
    pairs: list[tuple[int, int]] = []
    gi = si = 0
    while gi < len(gold) and si < len(system):
        g, s = gold[gi], system[si]
        if g.multiword or s.multiword:
            g0, s0, gi, si = _multiword_region(gold, system, gi, si)
            pairs += _lcs_pairs(gold, system, range(g0, gi), range(s0, si))
        elif (g.start, g.end) == (s.start, s.end):
            pairs.append((gi, si))
            gi, si = gi + 1, si + 1
        elif g.start <= s.start:
            gi += 1
        else:
            si += 1
    return pairs


def _multiword_region(gold: list[UDWord], system: list[UDWord], gi: int, si: int) -> tuple[int, int, int, int]:
    """The words [g0, g1) and [s0, s1) of the smallest region around a multiword token (on either
    side) that no multiword token sticks out of; a word that starts before the multiword token
    on the other side is left out of it, as the official scorer does."""
    if gold[gi].multiword:
        end = gold[gi].end
        if not system[si].multiword and system[si].start < gold[gi].start:
            si += 1
    else:
        end = system[si].end
        if not gold[gi].multiword and gold[gi].start < system[si].start:
            gi += 1
    g0, s0 = gi, si

    def inside(words: list[UDWord], i: int) -> bool:
        if i >= len(words):
            return False
        w = words[i]
        return w.start < end if w.multiword else w.end <= end

    while inside(gold, gi) or inside(system, si):
        take_gold = gi < len(gold) and (si >= len(system) or gold[gi].start <= system[si].start)
        w = gold[gi] if take_gold else system[si]
        if w.multiword:
            end = max(end, w.end)
        if take_gold:
            gi += 1
        else:
            si += 1
    return g0, s0, gi, si


def _lcs_pairs(gold: list[UDWord], system: list[UDWord], gr: range, sr: range) -> list[tuple[int, int]]:
    """Aligned words of a multiword region: an LCS of the lowercased forms, taking a match as early
    as possible and otherwise skipping a gold word when that keeps the LCS length."""
    gf = [gold[i].form for i in gr]
    sf = [system[j].form for j in sr]
    m, n = len(gf), len(sf)
    if not m or not n:
        return []
    # best[a][b]: LCS length of gf[a:] and sf[b:]
    best = [[0] * (n + 1) for _ in range(m + 1)]
    for a in range(m - 1, -1, -1):
        row, below = best[a], best[a + 1]
        for b_ in range(n - 1, -1, -1):
            row[b_] = below[b_ + 1] + 1 if gf[a] == sf[b_] else max(below[b_], row[b_ + 1])
    out: list[tuple[int, int]] = []
    a = b_ = 0
    while a < m and b_ < n:
        if gf[a] == sf[b_]:
            out.append((gr[a], sr[b_]))
            a, b_ = a + 1, b_ + 1
        elif best[a][b_] == best[a + 1][b_]:
            a += 1
        else:
            b_ += 1
    return out


def _word_score(metric: str, gold: UDDocument, system: UDDocument, pairs: list[tuple[int, int]], to_gold: list[int]) -> Score:
    """Aligned words whose `metric` key agrees; CLAS/MLAS/BLEX count content words only (gold and
    system each by their own relation, aligned pairs by the gold one)."""
    content = metric in ("CLAS", "MLAS", "BLEX")
    key = _KEYS[metric]

    def same(j: int | None) -> int | None:
        return j

    def mapped(j: int | None) -> int | None:
        return None if j is None else to_gold[j]

    n_gold = sum(1 for w in gold.words if w.content) if content else len(gold.words)
    n_sys = sum(1 for w in system.words if w.content) if content else len(system.words)
    aligned = correct = 0
    for g, s in pairs:
        gw = gold.words[g]
        if content and not gw.content:
            continue
        aligned += 1
        correct += key(gold.words, gw, same, gw.lemma) == key(system.words, system.words[s], mapped, gw.lemma)
    return Score(n_gold, n_sys, correct, aligned)


_Map = Callable[[int | None], int | None]
_Key = Callable[[list[UDWord], UDWord, _Map, str], Hashable]


def _lemma(w: UDWord, gold_lemma: str) -> str:
    return "_" if gold_lemma == "_" else w.lemma  # a gold "_" accepts any lemma


def _mlas(words: list[UDWord], w: UDWord, m: _Map, gl: str) -> Hashable:
    kids = tuple((m(c), words[c].deprel, words[c].upos, words[c].feats) for c in w.children)
    return (m(w.parent), w.deprel, w.upos, w.feats, kids)


_KEYS: dict[str, _Key] = {
    "UPOS": lambda ws, w, m, gl: w.upos,
    "XPOS": lambda ws, w, m, gl: w.xpos,
    "UFeats": lambda ws, w, m, gl: w.feats,
    "AllTags": lambda ws, w, m, gl: (w.upos, w.xpos, w.feats),
    "Lemmas": lambda ws, w, m, gl: _lemma(w, gl),
    "UAS": lambda ws, w, m, gl: m(w.parent),
    "LAS": lambda ws, w, m, gl: (m(w.parent), w.deprel),
    "CLAS": lambda ws, w, m, gl: (m(w.parent), w.deprel),
    "MLAS": _mlas,
    "BLEX": lambda ws, w, m, gl: (m(w.parent), w.deprel, _lemma(w, gl)),
}


# --- raw text ------------------------------------------------------------------------------------

def raw_texts(path: str | Path) -> list[tuple[str, str]]:
    """(doc_id, text) per document of a CoNLL-U file: the input a raw-text pipeline gets.

    Documents split as `read_conllu` splits them (at `# newdoc`; before the first one, or in a file
    without any, every sentence is a document) and get the same ids. Sentences are joined by a
    space, paragraphs (`# newpar`) by a blank line; a sentence without `# text` is rebuilt from its
    token forms and SpaceAfter=No."""
    stem = Path(path).stem
    docs: list[tuple[str, list[list[str]]]] = []  # (doc id, paragraphs of sentence texts)
    seen_newdoc = False
    # a comment-only block (a lone `# newdoc` or `# newpar`) applies to the next sentence
    pending_doc: str | None = None
    pending_par = False
    block: list[tuple[int, str]] = []
    for lineno, line in itertools.chain(iter_lines(path), [(0, "")]):  # a final blank line ends the last block
        if line.strip():
            block.append((lineno, line))
            continue
        if not block:
            continue
        newdoc, newpar, sent_id, text = _raw_sentence(path, block)
        block = []
        newdoc = newdoc if newdoc is not None else pending_doc
        newpar = newpar or pending_par
        if text is None:
            pending_doc, pending_par = newdoc, newpar
            continue
        pending_doc, pending_par = None, False
        seen_newdoc = seen_newdoc or newdoc is not None
        if newdoc is not None or not seen_newdoc or not docs:
            docs.append((newdoc or sent_id or f"{stem}-{len(docs):06d}", [[text]]))
        elif newpar:
            docs[-1][1].append([text])
        else:
            docs[-1][1][-1].append(text)
    return [(doc_id, "\n\n".join(" ".join(p) for p in paras)) for doc_id, paras in docs]


def _meta(line: str) -> tuple[str, str]:
    """(name, value) of a comment line: "newdoc" / "newpar" (with or without an id), "sent_id", "text"..."""
    key, _, value = line[1:].partition("=")
    words = key.split()
    name = words[0] if words and words[0] in ("newdoc", "newpar") else " ".join(words)
    return name, value.strip()


def _raw_sentence(path: str | Path, block: list[tuple[int, str]]) -> tuple[str | None, bool, str | None, str | None]:
    """(newdoc id or None, starts a paragraph, sent_id, text or None without words) of one block."""
    newdoc: str | None = None
    newpar, sent_id, text = False, None, None
    pieces: list[str] = []
    mwt_last, n = 0, 0
    for lineno, line in block:
        if line.startswith("#"):
            name, value = _meta(line)
            if name == "newdoc":
                newdoc = value
            elif name == "newpar":
                newpar = True
            elif name == "sent_id":
                sent_id = value
            elif name == "text":
                text = value
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise CorpusError(where(path, lineno), f"expected 10 tab-separated columns, found {len(cols)}",
                              "CoNLL-U token lines are ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC")
        tid = cols[0]
        if "." in tid:
            continue
        space = "" if "SpaceAfter=No" in cols[9].split("|") else " "
        if "-" in tid:
            hi = tid.partition("-")[2]
            if not hi.isdigit():
                raise CorpusError(where(path, lineno), f"bad multiword token range {tid!r}", "a range is FIRST-LAST of the words that follow it")
            mwt_last = int(hi)
            pieces.append(cols[1] + space)
            continue
        n += 1
        if n > mwt_last:  # the words of a multiword token are not in the text, its range line is
            pieces.append(cols[1] + space)
    if not n:
        return newdoc, newpar, sent_id, None
    if text is None:
        text = "".join(pieces).rstrip(" ")
    return newdoc, newpar, sent_id, text
