"""Annotate one split into one output shard: the unit of work of both the single process and
each Ray actor, so both produce the same bytes for the same split."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..data.convert.conllu_out import doc_to_conllu
from ..data.doc import Doc
from ..interop.docbin_out import docbin_bytes
from .inputs import InputRow, Plan, Split, read_split
from .jsonl_out import doc_to_json
from .output import OutputDir
from .settings import Batching


def annotate_split(nlp: Any, plan: Plan, split: Split, out: OutputDir, batching: Batching, *, copy_format: str | None,
                   on_words: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Read, tokenize, predict and commit split `split`; returns its record (output.py)."""
    start = time.perf_counter()
    rows = read_split(plan, split)
    accepted = [r for r in rows if r.reject is None]
    rejects = [{"input": r.where, "id": r.doc_id, "reason": r.reject} for r in rows if r.reject is not None]
    docs: list[Doc] = []
    pending = 0
    for row, doc in zip(accepted, nlp.pipe((_item(r) for r in accepted), batch_size=batching.max_docs,
                                           max_words=batching.max_words, window=batching.window)):
        doc.doc_id = row.doc_id
        docs.append(doc)
        pending += len(doc)
        if on_words is not None and pending >= 2000:
            on_words(pending)
            pending = 0
    if on_words is not None and pending:
        on_words(pending)
    return out.commit_split(split.index, docs, rejects, len(rows), _copy(docs, copy_format), started=start)


def _copy(docs: list[Doc], copy_format: str | None) -> tuple[str, bytes] | None:
    """The shard's docs once more as JSONL, a spaCy DocBin or CoNLL-U: (file extension, bytes)."""
    if copy_format is None or not docs:
        return None
    if copy_format == "jsonl":
        return "jsonl", "".join(doc_to_json(d) + "\n" for d in docs).encode("utf-8")
    if copy_format == "spacy":
        return "spacy", docbin_bytes(docs)
    if copy_format == "conllu":
        return "conllu", "".join(doc_to_conllu(d) for d in docs).encode("utf-8")
    raise ValueError(f"unknown copy format {copy_format!r}")


def _item(row: InputRow) -> str | Doc:
    return row.doc if row.doc is not None else row.text  # type: ignore[return-value]
