"""Writing Docs as Parquet shards (DESIGN.md corpus schema) plus meta.json, atomically and deterministically.

- Atomic: everything is written into a temporary directory beside OUTPUT_DIR and renamed only when
  complete, so a failed conversion never leaves shards that look finished.
- Deterministic: same docs in -> byte-identical shards and meta.json (no timestamps anywhere;
  pyarrow's `created_by` names only its version).
- Labels: the inventories are accumulated while writing and stored in meta.json, so training
  never has to peek at examples to learn its label set.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ...errors import CorpusError
from ..doc import Doc
from ..schema import CORPUS_SCHEMA, LABEL_COLUMNS, SCHEMA_VERSION
from .report import ConvertReport

META_FILE = "meta.json"
SHARD_PATTERN = "shard-{:05d}.parquet"
_ANNOTATION_COLUMNS = ("sent_starts", "tags", "pos", "morphs", "lemmas", "deps", "heads", "ents", "cats")


def write_corpus(
    docs: Iterable[Doc],
    out_dir: str | Path,
    *,
    shard_size: int = 10_000,
    row_group_size: int = 256,
    sources: list[Path] | list[str] | None = None,
    fmt: str,
    overwrite: bool = False,
    report: ConvertReport | None = None,
) -> dict[str, Any]:
    """Write `docs` to OUTPUT_DIR/shard-NNNNN.parquet (shard_size docs each) + meta.json; return the meta."""
    if shard_size < 1 or row_group_size < 1:
        raise CorpusError("--shard-size/--row-group-size", "must be at least 1", "pass positive numbers")
    out = Path(out_dir)
    _check_output(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a corpus is meant to be read by others
    try:
        stats = _Stats()
        shards: list[dict[str, Any]] = []
        batch: list[dict[str, Any]] = []
        for doc in docs:
            batch.append(stats.add(doc))
            if len(batch) >= shard_size:
                shards.append(_write_shard(batch, tmp, len(shards), row_group_size))
                batch = []
        if batch:
            shards.append(_write_shard(batch, tmp, len(shards), row_group_size))
        if not shards:
            where = ", ".join(str(s) for s in sources or []) or str(out)
            raise CorpusError(where, "no documents found in the input", "check the input files and --format")
        meta = _meta(stats, shards, sources or [], fmt, report or ConvertReport())
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _check_output(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise CorpusError(str(out), "exists and is not a directory", "choose another OUTPUT_DIR")
    if overwrite:
        return
    if (out / META_FILE).exists():
        raise CorpusError(str(out), "already holds a converted corpus (meta.json)", "pass --overwrite to replace it, or choose another OUTPUT_DIR")
    if any(out.iterdir()):
        raise CorpusError(str(out), "exists and is not empty", "choose an empty or new OUTPUT_DIR, or pass --overwrite")


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished directory into place; an old one is set aside first and removed last."""
    old: Path | None = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rmdir(old)
        os.rename(out, old)
    os.rename(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_shard(rows: list[dict[str, Any]], tmp: Path, index: int, row_group_size: int) -> dict[str, Any]:
    name = SHARD_PATTERN.format(index)
    table = pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA)
    pq.write_table(table, tmp / name, compression="zstd", row_group_size=row_group_size)
    return {"file": name, "rows": len(rows), "words": sum(len(r["words"]) for r in rows)}


class _Stats:
    """Counts, label inventories and per-column coverage, gathered while the rows go by."""

    def __init__(self) -> None:
        self.docs = self.sentences = self.words = self.entities = 0
        self.labels: dict[str, set[str]] = {c: set() for c in LABEL_COLUMNS}
        self.annotated: Counter[str] = Counter()

    def add(self, doc: Doc) -> dict[str, Any]:
        row = doc.to_row()
        if doc.user_data.get("text_is_synthetic"):
            row["text"] = None
        if row["heads"] is not None and any(not 0 <= h < len(doc) for h in row["heads"]):
            raise CorpusError(f"doc {doc.doc_id!r}", "a head points outside the doc", "heads are absolute token indices")
        self.docs += 1
        self.words += len(doc.words)
        if doc.sent_starts is not None:
            self.sentences += sum(doc.sent_starts)
        for col in _ANNOTATION_COLUMNS:
            if row[col] is not None:
                self.annotated[col] += 1
        for col in ("tags", "pos", "morphs", "deps"):
            if row[col] is not None:
                self.labels[col].update(row[col])
        if doc.ent_spans is not None:
            self.entities += len(doc.ent_spans)
            self.labels["ents"].update(label for _, _, label in doc.ent_spans)
        if doc.cats is not None:
            self.labels["cats"].update(doc.cats)
        return row


def _meta(stats: _Stats, shards: list[dict[str, Any]], sources: list[Path] | list[str], fmt: str, report: ConvertReport) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "format": fmt,
        "counts": {"docs": stats.docs, "sentences": stats.sentences, "words": stats.words, "entities": stats.entities},
        "labels": {col: sorted(vals) for col, vals in stats.labels.items() if stats.annotated[col]},
        "annotated": {col: stats.annotated[col] for col in _ANNOTATION_COLUMNS if stats.annotated[col]},
        "sources": [_describe_source(p) for p in sources],
        "shards": shards,
        # what the readers counted: skipped sentences, NER join results (see ConvertReport)
        "conversion_counts": dict(sorted(report.counts.items())),
        "skipped_examples": list(report.examples),
        **{k: v for k, v in sorted(report.info.items())},
    }


def _describe_source(path: Path | str) -> dict[str, Any]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            n += len(block)
    return {"path": str(path), "sha256": h.hexdigest(), "bytes": n}
