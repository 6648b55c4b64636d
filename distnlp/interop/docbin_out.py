"""Writing distnlp Docs as a spaCy DocBin (`.spacy`) file, atomically and never over a user's file."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ..data.doc import Doc
from ..errors import DistnlpError
from .spacy_import import require_spacy
from .to_spacy import spacy_doc


def write_docbin(docs: Iterable[Doc], out: str | Path) -> int:
    """Write `docs` to `out` (a new `.spacy` file); return how many docs were written."""
    require_spacy("writing a .spacy file")
    path = Path(out)
    if path.suffix != ".spacy":
        raise DistnlpError(f"{path}: a DocBin file must end in .spacy (spaCy's readers pick files by it)")
    if os.path.lexists(path):
        # a single file cannot prove distnlp wrote it: never replace one
        raise DistnlpError(f"{path}: already exists (choose a new output path, or remove the file yourself)")
    if not path.parent.is_dir():
        raise DistnlpError(f"{path.parent}: directory not found (create it first)")
    data, n = _docbin(docs)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        Path(tmp).write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return n


def docbin_bytes(docs: Iterable[Doc]) -> bytes:
    """`docs` as the bytes of a `.spacy` file (annotate --format spacy writes one per shard)."""
    require_spacy("writing a .spacy file")
    return _docbin(docs)[0]


def _docbin(docs: Iterable[Doc]) -> tuple[bytes, int]:
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

    vocab = Vocab()
    docbin = DocBin(store_user_data=False)  # trf_data / tensors are not training data
    n = 0
    for doc in docs:
        sdoc = spacy_doc(doc, vocab)
        sdoc.tensor = None  # type: ignore[assignment]
        docbin.add(sdoc)
        n += 1
    return docbin.to_bytes(), n
