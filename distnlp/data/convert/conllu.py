"""CoNLL-U reader: UD treebanks to Docs (syntactic words, tags, morphs, lemmas, trees, sentences).

Each Doc keeps, in `user_data`, the `sent_id` of every sentence, the token offset where it starts
and the line where it starts, so NER labels from another file can be joined by sent_id
(`iob.join_ner`) and mismatches can name both files.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import CorpusError
from ..doc import Doc
from ..trees import find_cycle
from .lines import iter_lines, where
from .report import ConvertReport

_N_COLUMNS = 10


@dataclass
class _Sentence:
    line: int  # first line of the sentence block (comments included)
    sent_id: str | None = None
    newdoc: str | None = None  # set when `# newdoc` precedes the sentence ("" for no id)
    words: list[str] = field(default_factory=list)
    spaces: list[bool] = field(default_factory=list)
    # None where the file has "_" (not annotated for that token)
    tags: list[str | None] = field(default_factory=list)
    pos: list[str | None] = field(default_factory=list)
    morphs: list[str] = field(default_factory=list)  # "_" is the empty analysis: "" (a real value)
    lemmas: list[str | None] = field(default_factory=list)
    deps: list[str | None] = field(default_factory=list)
    heads: list[int | None] = field(default_factory=list)  # 1-based within the sentence, 0 = root
    lines: list[int] = field(default_factory=list)  # the line of every word, for errors


def read_conllu(
    path: str | Path,
    *,
    n_sents: int | None = None,
    skip_invalid: bool = False,
    report: ConvertReport | None = None,
) -> Iterator[Doc]:
    """Docs from a CoNLL-U file: one per `# newdoc`, or one per `n_sents` sentences when given.

    Without `# newdoc` comments (and no n_sents), every sentence is its own doc, as spaCy's
    converter does. With skip_invalid, a malformed sentence is skipped and counted in `report`
    (`skipped_sentences`) instead of raising CorpusError; a sentence whose heads do not form a tree
    (see `_check_tree`) is kept with its heads and relations missing and counted (`invalid_trees`).
    """
    if n_sents is not None and n_sents < 1:
        raise CorpusError("--n-sents", f"must be at least 1, not {n_sents}", "pass a positive number")
    report = report if report is not None else ConvertReport()
    group: list[_Sentence] = []
    doc_id: str | None = None
    seen_newdoc = False
    n_docs = 0
    for sent in _iter_sentences(path, skip_invalid, report):
        if n_sents is not None:
            starts_doc = len(group) >= n_sents
        else:
            seen_newdoc = seen_newdoc or sent.newdoc is not None
            # before the first `# newdoc`, every sentence is a doc of its own
            starts_doc = sent.newdoc is not None or not seen_newdoc
        if starts_doc and group:
            yield _make_doc(group, doc_id, path, n_docs)
            n_docs += 1
            group = []
        if not group:
            doc_id = sent.newdoc if n_sents is None and sent.newdoc else sent.sent_id
        group.append(sent)
    if group:
        yield _make_doc(group, doc_id, path, n_docs)


def _make_doc(sents: list[_Sentence], doc_id: str | None, path: str | Path, index: int) -> Doc:
    words: list[str] = []
    spaces: list[bool] = []
    sent_starts: list[bool] = []
    heads: list[int | None] = []
    tags: list[str | None] = []
    pos: list[str | None] = []
    morphs: list[str] = []
    lemmas: list[str | None] = []
    deps: list[str | None] = []
    offsets: list[int] = []
    for s in sents:
        base = len(words)
        offsets.append(base)
        words += s.words
        spaces += s.spaces
        sent_starts += [True] + [False] * (len(s.words) - 1)
        tags += s.tags
        pos += s.pos
        morphs += s.morphs
        lemmas += s.lemmas
        deps += s.deps
        # absolute index within the doc; the root points to itself, as in spaCy
        heads += [None if h is None else base + i if h == 0 else base + h - 1 for i, h in enumerate(s.heads)]
    if spaces:
        spaces[-1] = False  # nothing follows the last token of a document
    doc = Doc(
        words=words,
        spaces=spaces,
        doc_id=doc_id if doc_id else f"{Path(path).stem}-{index:06d}",
        sent_starts=sent_starts,
        # "_" is "not annotated": a missing token (None), or a missing column when no token has it
        tags=_column(tags),
        pos=_column(pos),
        morphs=morphs,
        lemmas=_column(lemmas),
        deps=_column(deps),
        heads=_column(heads),
    )
    doc.user_data["sent_ids"] = [s.sent_id for s in sents]
    doc.user_data["sent_offsets"] = offsets
    doc.user_data["sent_lines"] = [s.line for s in sents]
    doc.user_data["source"] = str(path)
    return doc


def _column(values: list[Any]) -> list[Any] | None:
    return None if all(v is None for v in values) else values


def _value(field: str) -> str | None:
    return None if field == "_" else field


def _iter_sentences(path: str | Path, skip_invalid: bool, report: ConvertReport) -> Iterator[_Sentence]:
    """Sentences, validated; a bad one raises CorpusError or, with skip_invalid, is counted and skipped."""
    block: list[tuple[int, str]] = []
    pending_newdoc: str | None = None  # a `# newdoc` whose sentence was skipped still opens a doc
    for lineno, line in iter_lines(path):
        if line.strip():
            block.append((lineno, line))
            continue
        if block:
            sent = _parse_block(path, block, skip_invalid, report)
            block = []
            if sent is None:
                continue
            if sent.newdoc is None and pending_newdoc is not None:
                sent.newdoc = pending_newdoc
            pending_newdoc = None
            if sent.words:
                yield sent
            elif sent.newdoc is not None:
                pending_newdoc = sent.newdoc  # comment-only block, e.g. a lone `# newdoc` line
    if block:
        sent = _parse_block(path, block, skip_invalid, report)
        if sent is not None and sent.words:
            if sent.newdoc is None and pending_newdoc is not None:
                sent.newdoc = pending_newdoc
            yield sent


def _parse_block(
    path: str | Path, block: list[tuple[int, str]], skip_invalid: bool, report: ConvertReport
) -> _Sentence | None:
    try:
        sent = _parse_sentence(path, block)
    except CorpusError as e:
        if not skip_invalid:
            raise
        report.skip("skipped_sentences", str(e))
        # keep the document boundary even when its first sentence is bad
        newdoc = _newdoc_of(block)
        return _Sentence(line=block[0][0], newdoc=newdoc) if newdoc is not None else None
    try:
        _check_tree(path, sent)
    except CorpusError as e:
        if not skip_invalid:
            raise
        report.skip("invalid_trees", str(e))
        # the words, tags and the rest are fine: only this sentence's tree is missing, never a wrong one
        sent.heads = [None] * len(sent.words)
        sent.deps = [None] * len(sent.words)
    return sent


def _newdoc_of(block: list[tuple[int, str]]) -> str | None:
    for _, line in block:
        if line.startswith("# newdoc"):
            return _comment_value(line)
    return None


def _comment_value(line: str) -> str:
    _, _, value = line.partition("=")
    return value.strip()


def _parse_sentence(path: str | Path, block: list[tuple[int, str]]) -> _Sentence:
    sent = _Sentence(line=block[0][0])
    # a multiword token `3-4` carries the SpaceAfter of its last word
    ranges: list[tuple[int, int, bool]] = []
    for lineno, line in block:
        if line.startswith("#"):
            if line.startswith("# newdoc"):
                sent.newdoc = _comment_value(line)
            elif line.startswith("# sent_id"):
                sent.sent_id = _comment_value(line)
            continue
        cols = line.split("\t")
        if len(cols) != _N_COLUMNS:
            raise CorpusError(
                where(path, lineno),
                f"expected 10 tab-separated columns, found {len(cols)}",
                "CoNLL-U token lines are ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC; "
                "check for spaces used instead of tabs",
            )
        tid = cols[0]
        if "-" in tid:
            lo, _, hi = tid.partition("-")
            if not (lo.isdigit() and hi.isdigit()) or int(lo) != len(sent.words) + 1 or int(hi) <= int(lo):
                raise CorpusError(where(path, lineno), f"bad multiword token range {tid!r}", "a range is FIRST-LAST of the words that follow")
            ranges.append((int(lo), int(hi), "SpaceAfter=No" not in cols[9].split("|")))
            continue
        if "." in tid:
            continue  # empty node of the enhanced graph: not a surface token
        if not tid.isdigit() or int(tid) != len(sent.words) + 1:
            raise CorpusError(
                where(path, lineno),
                f"word ID {tid!r} out of sequence (expected {len(sent.words) + 1})",
                "word IDs count 1, 2, 3... within each sentence; is a blank line missing between sentences?",
            )
        sent.words.append(cols[1])
        # the lemma of the word "_" is "_"; elsewhere "_" is an unannotated lemma
        sent.lemmas.append(cols[2] if cols[1] == "_" else _value(cols[2]))
        sent.pos.append(_value(cols[3]))
        sent.tags.append(_value(cols[4]))
        sent.morphs.append("" if cols[5] == "_" else cols[5])
        head = cols[6]
        if head != "_" and not head.isdigit():
            raise CorpusError(where(path, lineno), f"HEAD {head!r} is not an integer", "HEAD is the ID of the head word, or 0 for the root")
        # a relation without a head (or a head without a relation) is no arc: both missing
        arc = head != "_" and cols[7] != "_"
        sent.heads.append(int(head) if arc else None)
        sent.deps.append(cols[7] if arc else None)
        sent.lines.append(lineno)
        sent.spaces.append("SpaceAfter=No" not in cols[9].split("|"))
    n = len(sent.words)
    for first, last, space in ranges:
        if last > n:
            raise CorpusError(where(path, sent.line), f"multiword token range {first}-{last} ends after the last word ({n})", "fix the range line")
        # the words of a multiword token are written together ("do" "n't" for "don't")
        for i in range(first - 1, last - 1):
            sent.spaces[i] = False
        sent.spaces[last - 1] = space
    return sent


_TREE_FIX = "fix the HEAD column, or pass --skip-invalid to keep the sentence with its heads and relations missing"


def _check_tree(path: str | Path, sent: _Sentence) -> None:
    """Raise CorpusError unless the sentence's heads form one tree over its words.

    Heads are word IDs (multiword-token ranges and empty nodes are not words; their HEAD columns
    are not read). Every head is 0..n and no word heads itself; at most one word has HEAD 0, and
    following heads never loops. A word without a head (`_`) is a missing arc, not an error: a
    partly annotated sentence needs no root, but when every word has a head there is exactly one
    root. The error names the line of the offending word (the sentence's first line for "no root").
    """
    heads, n = sent.heads, len(sent.words)
    root: int | None = None  # 0-based index of the first word with HEAD 0
    for i, h in enumerate(heads):
        if h is None:
            continue
        if h > n:
            raise CorpusError(where(path, sent.lines[i]), f"HEAD {h} of word {i + 1} is out of range (the sentence has {n} words)",
                              "HEAD must be 0 or the ID of a word in the same sentence; " + _TREE_FIX)
        if h == i + 1:
            raise CorpusError(where(path, sent.lines[i]), f"word {i + 1} is its own head (HEAD {h})", _TREE_FIX)
        if h == 0:
            if root is not None:
                raise CorpusError(where(path, sent.lines[i]), f"word {i + 1} is a second root (HEAD 0, as word {root + 1} is)",
                                  "a sentence has exactly one root; " + _TREE_FIX)
            root = i
    if root is None and n and all(h is not None for h in heads):
        raise CorpusError(where(path, sent.line), "the sentence has no root (no word has HEAD 0)", "a sentence has exactly one root; " + _TREE_FIX)
    cycle = find_cycle([None if h is None or h == 0 else h - 1 for h in heads])
    if cycle is not None:
        ids = [c + 1 for c in cycle] + [cycle[0] + 1]
        raise CorpusError(where(path, sent.lines[cycle[0]]), f"the heads form a cycle ({' -> '.join(map(str, ids))})",
                          "every word must lead to the root by its heads; " + _TREE_FIX)
