"""Raw text for pretraining from spaCy `.spacy` (DocBin) files, as `spacy pretrain` reads them.

A DocBin is one compressed blob, so a file's docs are loaded once; only their words and spaces
are kept (spaCy's tokenization, not re-tokenized), one entry per doc, which `TextStream` then
orders, shares out across ranks and resumes exactly as it does lines of a text file.
"""
from __future__ import annotations

from pathlib import Path

from ..data.convert.docbin import read_docbin

DOCBIN_SUFFIX = ".spacy"

Tokens = tuple[list[str], list[bool]]


def load_docbin_tokens(path: Path) -> list[Tokens | None]:
    """(words, spaces) per doc of the file; None for an empty doc (skipped like a blank line)."""
    out: list[Tokens | None] = []
    for doc in read_docbin(path):
        out.append((doc.words, doc.spaces))
    return out
