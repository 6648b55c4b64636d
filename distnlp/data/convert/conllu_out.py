"""Predictions written back into a copy of the CoNLL-U file they were read from.

Every line of the input is kept as it is (comments, multiword-token lines `3-4`, empty nodes
`5.1`, blank lines, line endings) except the word lines, whose LEMMA, UPOS, XPOS, FEATS, HEAD
and DEPREL take the pipeline's predictions where it predicts that column (the others keep the
input's values). So the official CoNLL 2018 scorer can compare it with the input.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
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


def doc_to_conllu(doc: Doc) -> str:
    """One predicted Doc as CoNLL-U: `# newdoc id`, then per sentence `# sent_id`, `# text` and its
    words (LEMMA, UPOS, XPOS, FEATS, HEAD, DEPREL where predicted, else "_"; SpaceAfter=No in MISC).
    Whitespace tokens are not words in CoNLL-U: they are left out (their spacing stays in `# text`),
    and a sentence of whitespace alone is not written. A head outside the sentence is written as 0."""
    n = len(doc)
    starts = [True] * min(n, 1) + [bool(s) for s in (doc.sent_starts or [False] * n)[1:n]]
    bounds = [i for i in range(n) if starts[i]] + [n]
    lines = [f"# newdoc id = {doc.doc_id}"]
    k = 0
    for b, e in zip(bounds, bounds[1:]):
        kept = [i for i in range(b, e) if doc.words[i].strip()]
        if not kept:
            continue
        k += 1
        number = {i: j + 1 for j, i in enumerate(kept)}
        text = "".join(doc.words[i] + (" " if doc.spaces[i] else "") for i in range(kept[0], kept[-1] + 1))
        lines += [f"# sent_id = {doc.doc_id}-{k}", "# text = " + " ".join(text.split())]
        lines += ["\t".join(_word_columns(doc, i, number)) for i in kept] + [""]  # a blank line ends a sentence
    return "\n".join(lines) + "\n"


def _word_columns(doc: Doc, i: int, number: dict[int, int]) -> list[str]:
    def col(attr: str) -> str:
        values = getattr(doc, attr)
        return "_" if values is None or not values[i] else str(values[i])

    head, deprel = "_", "_"
    if doc.heads is not None and doc.heads[i] is not None:
        h = int(doc.heads[i])
        head = str(number[h]) if h != i and h in number else "0"
        deprel = col("deps")
    nxt = i + 1
    space_after = doc.spaces[i] or nxt >= len(doc) or not doc.words[nxt].strip()
    misc = "_" if space_after else "SpaceAfter=No"
    return [str(number[i]), doc.words[i], col("lemmas"), col("pos"), col("tags"), col("morphs"), head, deprel, "_", misc]


def write_conllu_docs(docs: Iterable[Doc], out: str | Path) -> None:
    """Predicted Docs as one CoNLL-U file (the official CoNLL 2018 scorer reads it)."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf8") as f:
        for doc in docs:
            f.write(doc_to_conllu(doc))
