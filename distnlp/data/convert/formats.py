"""Input formats by name and file extension, and one entry point that reads any of them."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from ...errors import CorpusError, did_you_mean
from ..doc import Doc
from ..tokenizer import Tokenizer
from .conllu import read_conllu
from .csv_text import read_csv
from .docbin import read_docbin
from .iob import UNER_DRAFT_DROP_LABELS, join_ner, read_iob
from .jsonl import read_jsonl
from .raw_text import read_text
from .report import ConvertReport

FORMATS = ("conllu", "iob", "jsonl", "csv", "text", "spacy")
_EXTENSIONS = {
    ".conllu": "conllu", ".conll": "conllu",
    ".iob": "iob", ".iob2": "iob", ".bio": "iob", ".bilou": "iob", ".biluo": "iob",
    ".jsonl": "jsonl",
    ".csv": "csv", ".tsv": "csv",
    ".txt": "text",
    ".spacy": "spacy",
}


@dataclass
class ReadOptions:
    n_sents: int | None = None
    skip_invalid: bool = False
    alignment_mode: str = "strict"
    ner: Path | None = None  # IOB file joined to CoNLL-U docs by sent_id
    drop_labels: frozenset[str] = UNER_DRAFT_DROP_LABELS
    spans_key: str | None = None  # .spacy input: doc.spans[key] are the entities


def guess_format(path: str | Path) -> str:
    ext = Path(path).suffix.lower()
    if ext not in _EXTENSIONS:
        raise CorpusError(str(path), f"cannot tell the format from the extension {ext!r}", f"pass --format ({', '.join(FORMATS)})")
    return _EXTENSIONS[ext]


def resolve_format(paths: Sequence[str | Path], fmt: str | None) -> str:
    """The format named, or the one every input's extension agrees on."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise CorpusError("--format", f"unknown format {fmt!r}", did_you_mean(fmt, FORMATS))
        return fmt
    found = {guess_format(p) for p in paths}
    if len(found) > 1:
        raise CorpusError(", ".join(str(p) for p in paths), f"inputs have different formats {sorted(found)}", "convert them separately, or pass --format")
    return found.pop()


def read_docs(paths: Sequence[str | Path], fmt: str, options: ReadOptions, report: ConvertReport) -> Iterator[Doc]:
    """Docs from every input, in order."""
    if options.ner is not None and fmt != "conllu":
        raise CorpusError("--ner", f"joins NER labels to CoNLL-U input, not {fmt}", "convert an IOB file on its own with --format iob")
    if options.n_sents is not None and fmt not in ("conllu", "iob"):
        raise CorpusError("--n-sents", f"applies to conllu and iob input, not {fmt}", "leave it out")
    if options.spans_key is not None and fmt != "spacy":
        raise CorpusError("--spans-key", f"applies to .spacy input, not {fmt}", "leave it out")
    tok = Tokenizer()
    per_file: list[Iterator[Doc]] = []
    for p in paths:
        if fmt == "conllu":
            per_file.append(read_conllu(p, n_sents=options.n_sents, skip_invalid=options.skip_invalid, report=report))
        elif fmt == "iob":
            per_file.append(read_iob(p, n_sents=options.n_sents, drop_labels=options.drop_labels, skip_invalid=options.skip_invalid, report=report))
        elif fmt == "jsonl":
            per_file.append(read_jsonl(p, alignment_mode=options.alignment_mode, tokenizer=tok, report=report))
        elif fmt == "spacy":
            per_file.append(read_docbin(p, spans_key=options.spans_key, report=report))
        elif fmt == "csv":
            per_file.append(read_csv(p, tokenizer=tok, report=report))
        else:
            per_file.append(read_text(p, tokenizer=tok, report=report))
    docs: Iterator[Doc] = chain.from_iterable(per_file)
    if options.ner is not None:
        docs = join_ner(docs, options.ner, drop_labels=options.drop_labels, skip_invalid=options.skip_invalid, report=report)
    return docs
