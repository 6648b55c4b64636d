"""spaCy DocBin (`.spacy`) files: every annotation spaCy stores, as distnlp Docs.

A DocBin is one compressed msgpack blob, so the file is read whole; the Docs are then built one
at a time (the corpus writer streams them into shards). spaCy's own missing-value conventions
map onto the corpus schema's: an empty tag/POS/lemma/dep, a token without morphology set, and a
token whose `ent_iob_` is "" are null (per token) or a missing-entity range, never a label.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...errors import CorpusError
from ...interop.spacy_import import require_spacy
from ..doc import Doc
from .report import ConvertReport


def read_docbin(path: str | Path, *, spans_key: str | None = None, report: ConvertReport | None = None) -> Iterator[Doc]:
    """Docs from a `.spacy` file; with `spans_key`, `doc.spans[spans_key]` are the entities."""
    require_spacy(f"{path}: reading a .spacy file")
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

    report = report if report is not None else ConvertReport()
    p = Path(path)
    if not p.exists():
        raise CorpusError(str(path), "file not found", "check the path")
    if p.is_dir():
        raise CorpusError(str(path), "is a directory, not a file", "pass the .spacy files inside it")
    try:
        docbin = DocBin(store_user_data=False).from_disk(p)  # user_data: extensions distnlp does not read
    except Exception as exc:  # zlib / msgpack / KeyError from a file that is not a DocBin
        raise CorpusError(str(path), f"not a readable spaCy DocBin ({type(exc).__name__}: {str(exc)[:80]})",
                          "write it with spacy.tokens.DocBin(...).to_disk, or check the file is not truncated") from None
    if spans_key is not None:
        report.info["spans_key"] = spans_key
    vocab = Vocab()
    for i, sdoc in enumerate(docbin.get_docs(vocab)):
        doc = doc_from_spacy(sdoc, f"{path} doc {i}", spans_key=spans_key, report=report)
        if doc is None:
            report.counts["empty_docs"] += 1
            continue
        doc.doc_id = f"{p.stem}:{i}"
        yield doc


def doc_from_spacy(sdoc: Any, where: str, *, spans_key: str | None = None, report: ConvertReport | None = None) -> Doc | None:
    """A distnlp Doc with the annotations of a spaCy Doc (None when it has no tokens)."""
    report = report if report is not None else ConvertReport()
    if len(sdoc) == 0:
        return None
    doc = Doc(words=[t.text for t in sdoc], spaces=[bool(t.whitespace_) for t in sdoc])
    if sdoc.has_annotation("TAG"):
        doc.tags = [t.tag_ or None for t in sdoc]
    if sdoc.has_annotation("POS"):
        doc.pos = [t.pos_ or None for t in sdoc]
    if sdoc.has_annotation("MORPH"):
        doc.morphs = [str(t.morph) if t.has_morph() else None for t in sdoc]
    if sdoc.has_annotation("LEMMA"):
        doc.lemmas = [t.lemma_ or None for t in sdoc]
    if sdoc.has_annotation("DEP"):
        # a token without a dep label has no head either (spaCy's missing-head convention)
        doc.deps = [t.dep_ or None for t in sdoc]
        doc.heads = [t.head.i if t.dep_ else None for t in sdoc]
    if sdoc.has_annotation("SENT_START"):
        doc.sent_starts = [i == 0 or t.is_sent_start for i, t in enumerate(sdoc)]
    if spans_key is not None:
        _spans_as_entities(doc, sdoc, spans_key, where, report)
    elif sdoc.has_annotation("ENT_IOB"):
        doc.ent_spans = [(e.start, e.end, e.label_) for e in sdoc.ents]
        doc.ents_missing = _runs([t.ent_iob_ == "" for t in sdoc]) or None
    if sdoc.cats:
        doc.cats = {str(k): float(v) for k, v in sdoc.cats.items()}
    return doc


def _spans_as_entities(doc: Doc, sdoc: Any, key: str, where: str, report: ConvertReport) -> None:
    if key not in sdoc.spans:
        report.counts["docs_without_spans_key"] += 1  # entities unknown for this doc, not "none"
        return
    spans = sorted((s.start, s.end, s.label_) for s in sdoc.spans[key])
    for (s1, e1, l1), (s2, e2, l2) in zip(spans, spans[1:]):
        if s2 < e1:
            raise CorpusError(where, f"spans[{key!r}] overlap: tokens [{s1}, {e1}) {l1} and [{s2}, {e2}) {l2}",
                              "entities must not overlap: pick a spans key without overlaps, or leave --spans-key out")
    doc.ent_spans = spans


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """[start, end) ranges where flags are True."""
    out: list[tuple[int, int]] = []
    start = None
    for i, f in enumerate([*flags, False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i))
            start = None
    return out
