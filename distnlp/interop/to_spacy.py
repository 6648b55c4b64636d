"""distnlp Docs as spaCy Docs, with every annotation distnlp predicted (needs the `spacy` extra).

What has no spaCy attribute goes where spaCy users look for it: `doc.tensor` (the shared
embedding's output) as spaCy's own `Doc.tensor`, and `doc.trf_data` (the transformer's wordpieces,
alignment and hidden states) as the user extension `doc._.trf_data`, as spacy-transformers names it.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..data.doc import Doc
from ..errors import DistnlpError
from .spacy_import import require_spacy

TRF_EXTENSION = "trf_data"


def to_spacy(docs: Iterable[Doc], vocab_or_nlp: Any) -> list[Any]:
    """spaCy `Doc`s in the vocab given (a `Vocab`, or a `Language` whose vocab is used)."""
    require_spacy("distnlp.to_spacy")
    vocab = getattr(vocab_or_nlp, "vocab", vocab_or_nlp)
    return [spacy_doc(doc, vocab) for doc in docs]


def spacy_doc(doc: Doc, vocab: Any) -> Any:
    """One spaCy Doc; a token whose value distnlp left unknown (None) stays unset in spaCy too."""
    from spacy.tokens import Doc as SpacyDoc

    where = f"doc {doc.doc_id!r}"
    try:
        sdoc = SpacyDoc(vocab, words=list(doc.words), spaces=list(doc.spaces))
        annotate(sdoc, doc)
    except (ValueError, KeyError) as exc:  # e.g. a POS value outside spaCy's UPOS symbols
        raise DistnlpError(f"{where}: spaCy refused an annotation ({str(exc).splitlines()[0][:160]}); check the doc's labels") from None
    return sdoc


def annotate(sdoc: Any, doc: Doc) -> None:
    """Write doc's annotations onto the spaCy Doc `sdoc` (same tokens), in place."""
    if [t.text for t in sdoc] != list(doc.words):
        raise DistnlpError(f"doc {doc.doc_id!r}: the spaCy Doc has other tokens than the distnlp Doc")
    for tok, tag, pos, morph, lemma in zip(sdoc, *(_column(doc, c) for c in ("tags", "pos", "morphs", "lemmas"))):
        if tag is not None:
            tok.tag_ = tag
        if pos is not None:
            tok.pos_ = pos
        if morph is not None:
            tok.set_morph(morph)  # "" = annotated, no features (has_morph() is True)
        if lemma is not None:
            tok.lemma_ = lemma
    if doc.heads is not None and doc.deps is not None:
        _set_parse(sdoc, doc)
    elif doc.sent_starts is not None:
        for tok, start in zip(sdoc, doc.sent_starts):
            if start is not None:
                tok.is_sent_start = bool(start)
    if doc.ent_spans is not None:
        missing = [sdoc[s:e] for s, e in doc.ents_missing or ()]
        ents = [sdoc.char_span(sdoc[s].idx, sdoc[e - 1].idx + len(sdoc[e - 1]), label=label) for s, e, label in doc.ent_spans]
        sdoc.set_ents(ents, missing=missing, default="outside")
    if doc.cats is not None:
        sdoc.cats = dict(doc.cats)
    if doc.tensor is not None:
        sdoc.tensor = np.asarray(doc.tensor, dtype=np.float32)
    if doc.trf_data is not None:
        from spacy.tokens import Doc as SpacyDoc

        if not SpacyDoc.has_extension(TRF_EXTENSION):
            SpacyDoc.set_extension(TRF_EXTENSION, default=None)
        setattr(sdoc._, TRF_EXTENSION, doc.trf_data)


def _column(doc: Doc, name: str) -> list[Any]:
    values = getattr(doc, name)
    return [None] * len(doc) if values is None else list(values)


def _set_parse(sdoc: Any, doc: Doc) -> None:
    """Heads and labels through arrays (setting `token.head` one by one re-derives sentences each time)."""
    from spacy.attrs import DEP, HEAD

    heads, deps = doc.heads or [], doc.deps or []
    known = [h is not None and bool(d) for h, d in zip(heads, deps)]
    array = np.zeros((len(sdoc), 2), dtype=np.uint64)
    # relative heads, wrapped into uint64 as spaCy stores them; labels as string hashes
    array[:, 0] = np.asarray([h - i if k else 0 for i, (h, k) in enumerate(zip(heads, known))], dtype=np.int64).view(np.uint64)
    array[:, 1] = np.asarray([sdoc.vocab.strings.add(d) if k else 0 for d, k in zip(deps, known)], dtype=np.uint64)
    sdoc.from_array([HEAD, DEP], array)
