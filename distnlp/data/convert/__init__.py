"""Converters: CoNLL-U, IOB2/BILUO, spaCy-style JSONL, CSV/TSV text classification and raw text
into the Parquet corpus (data/schema.py) + meta.json. `distnlp convert` is the command line."""
from .conllu import read_conllu
from .csv_text import read_csv
from .formats import FORMATS, ReadOptions, guess_format, read_docs, resolve_format
from .iob import UNER_DRAFT_DROP_LABELS, join_ner, read_iob, tags_to_spans
from .jsonl import read_jsonl
from .raw_text import read_text
from .report import ConvertReport
from .writer import write_corpus

__all__ = [
    "FORMATS", "ConvertReport", "ReadOptions", "UNER_DRAFT_DROP_LABELS", "guess_format", "join_ner",
    "read_conllu", "read_csv", "read_docs", "read_iob", "read_jsonl", "read_text", "resolve_format",
    "tags_to_spans", "write_corpus",
]
