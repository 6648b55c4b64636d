"""Predictions written back into a copy of the CoNLL-U file they were read from.

Every line of the input is kept as it is (comments, multiword-token lines `3-4`, empty nodes
`5.1`, blank lines, line endings) except the word lines, whose LEMMA, UPOS, XPOS, FEATS, HEAD
and DEPREL take the pipeline's predictions where it predicts that column (the others keep the
input's values). So the official CoNLL 2018 scorer can compare it with the input.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from ...errors import CorpusError
from ..doc import Doc

# CoNLL-U column -> Doc column
_COLUMNS = {2: "lemmas", 3: "pos", 4: "tags", 5: "morphs"}


def _words(docs: Sequence[Doc]) -> Iterator[tuple[Doc, int]]:
    for doc in docs:
        for i in range(len(doc)):
            yield doc, i


def _is_word(cols: list[str]) -> bool:
    return len(cols) == 10 and not cols[0].startswith("#") and "-" not in cols[0] and "." not in cols[0]


def write_conllu_predictions(source: str | Path, docs: Sequence[Doc], out: str | Path) -> None:
    """`docs`: the predictions for read_conllu(source), in its order (one word per word line)."""
    words = _words(docs)
    lines = Path(source).read_text(encoding="utf8").splitlines(keepends=True)
    bodies = [line.rstrip("\r\n") for line in lines]
    # words per sentence block, so HEAD can be written relative to the sentence
    sizes: list[int] = []
    n = 0
    for body in bodies + [""]:
        if body.strip():
            n += _is_word(body.split("\t"))
        else:
            sizes.append(n)
            n = 0
    block, start = 0, None  # current block; doc index of its first word
    result: list[str] = []
    for lineno, (line, body) in enumerate(zip(lines, bodies), 1):
        cols = body.split("\t")
        if not body.strip():
            block, start = block + 1, None
        if body.startswith("#") or not _is_word(cols):
            result.append(line)
            continue
        try:
            doc, i = next(words)
        except StopIteration:
            raise CorpusError(f"{source}:{lineno}", "more words than predictions", "pass the same file that was evaluated") from None
        if doc.words[i] != cols[1]:
            raise CorpusError(f"{source}:{lineno}", f"word {cols[1]!r} but the prediction is for {doc.words[i]!r}", "pass the same file that was evaluated")
        start = i if start is None else start
        result.append("\t".join(_predicted(cols, doc, i, start, sizes[block])) + line[len(body):])
    if next(words, None) is not None:
        raise CorpusError(str(source), "fewer words than predictions", "pass the same file that was evaluated")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("".join(result), encoding="utf8")


def _predicted(cols: list[str], doc: Doc, i: int, start: int, size: int) -> list[str]:
    cols = list(cols)
    for index, attr in _COLUMNS.items():
        col = getattr(doc, attr)
        if col is not None and col[i] is not None:
            cols[index] = col[i] or "_"  # an empty analysis is "_"
    if doc.heads is not None and doc.deps is not None and doc.heads[i] is not None and doc.deps[i] is not None:
        head = int(doc.heads[i])
        # CoNLL-U heads count within the sentence; a doc's root points to itself. A head outside
        # this sentence cannot be written: the word is written as a root.
        inside = start <= head < start + size and head != i
        cols[6] = str(head - start + 1) if inside else "0"
        cols[7] = doc.deps[i]
    return cols
