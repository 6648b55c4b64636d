"""Writing Docs as Parquet shards (data/schema.py) plus meta.json, atomically and deterministically.

- Atomic: everything is written into a temporary directory beside OUTPUT_DIR and renamed only when
  complete, so a failed conversion never leaves shards that look finished. A temporary directory
  left by a killed run is removed by the next run (`owned_paths.clean_stale_temps`).
- Safe: only a corpus distnlp wrote (its meta.json and the shards it lists) is ever replaced; a
  directory holding anything else, or holding an input, is refused (`owned_paths`).
- Deterministic: same docs in -> byte-identical shards and meta.json (no timestamps anywhere;
  pyarrow's `created_by` names only its version).
- Labels: the inventories are accumulated while writing and stored in meta.json, so training
  never has to peek at examples to learn its label set: each column's labels, the
  morphologizer's POS+features labels, and the lemma edit trees with their counts (training
  applies its own min_tree_freq, summed over several corpora). Start-up reads meta.json only,
  however large the corpus.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ...errors import CorpusError
from ...lemma.edit_trees import trees_of_pair_counts
from ...owned_paths import check_replaceable, clean_stale_temps, discard_temp_dir, make_temp_dir, publish_dir
from ..doc import Doc, join_morph, merge_ranges
from ..schema import CORPUS_SCHEMA, LABEL_COLUMNS, SCHEMA_VERSION
from ..shards import footer_groups
from .report import ConvertReport

META_FILE = "meta.json"
SHARD_PATTERN = "shard-{:05d}.parquet"
_SHARD_NAME = re.compile(r"shard-\d{5,}\.parquet")
_ANNOTATION_COLUMNS = ("sent_starts", "tags", "pos", "morphs", "lemmas", "deps", "heads", "ents", "cats", "ents_missing")
_TOKEN_COLUMNS = ("sent_starts", "tags", "pos", "morphs", "lemmas", "deps", "heads")


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
    out = Path(os.path.abspath(out_dir))  # "." or "..": its parent and name must be real
    owned = _check_output(out, overwrite, sources or [])
    # hidden `.OUT.tmp-*` / `.OUT.old-*` directories of a conversion that was killed mid-way
    for kind in ("tmp", "old"):
        clean_stale_temps(out.parent, f".{out.name}.{kind}-", _is_corpus_entry)
    tmp = make_temp_dir(out.parent, f".{out.name}.tmp-")
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
        publish_dir(tmp, out, owned, what="corpus directory")
    except BaseException:
        discard_temp_dir(tmp, _is_corpus_entry)
        raise
    return meta


def corpus_entries(out: Path) -> set[str]:
    """The names a distnlp corpus in `out` consists of (meta.json + the shards it lists); empty
    when `out` holds no meta.json written by distnlp convert."""
    try:
        meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(meta, dict) or "schema_version" not in meta or not isinstance(meta.get("shards"), list):
        return set()
    files = {s.get("file") for s in meta["shards"] if isinstance(s, dict)}
    return {META_FILE} | {f for f in files if isinstance(f, str) and _SHARD_NAME.fullmatch(f)}


def _is_corpus_entry(name: str) -> bool:
    """What a temporary conversion directory may hold."""
    return name == META_FILE or bool(_SHARD_NAME.fullmatch(name))


def _check_output(out: Path, overwrite: bool, sources: Sequence[str | Path]) -> set[str]:
    """Refuse an OUTPUT_DIR that is not ours to replace; return the names of the corpus in it."""
    if not os.path.lexists(out):
        return set()
    if not out.is_dir():
        raise CorpusError(str(out), "exists and is not a directory", "choose another OUTPUT_DIR")
    owned = corpus_entries(out)
    check_replaceable(
        out, owned, inputs=sources, what="output directory",
        fix="choose an empty or new OUTPUT_DIR: only a corpus that distnlp convert wrote is ever replaced",
    )
    if owned and not overwrite:
        raise CorpusError(str(out), "already holds a converted corpus (meta.json)", "pass --overwrite to replace it, or choose another OUTPUT_DIR")
    return owned


def _write_shard(rows: list[dict[str, Any]], tmp: Path, index: int, row_group_size: int) -> dict[str, Any]:
    name = SHARD_PATTERN.format(index)
    table = pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA)
    # page checksums: a damaged page is an error on reading, never other data
    pq.write_table(table, tmp / name, compression="zstd", row_group_size=row_group_size, write_page_checksum=True)
    # Each row group's rows, words and content hash, from the shard just written: opening the corpus
    # then reads one footer, not one per shard; ranks share epochs by words without reading a row;
    # and a row group changed after writing is refused when it is read.
    return {"file": name, "rows": len(rows), "words": sum(len(r["words"]) for r in rows), "row_groups": footer_groups(tmp / name)}


class _Stats:
    """Counts, label inventories and per-column coverage, gathered while the rows go by."""

    def __init__(self) -> None:
        self.docs = self.sentences = self.words = self.entities = 0
        self.labels: dict[str, set[str]] = {c: set() for c in (*LABEL_COLUMNS, "morphologizer")}
        self.annotated: Counter[str] = Counter()
        self.missing: Counter[str] = Counter()  # tokens whose annotation is missing, per column
        self.lemma_pairs: Counter[tuple[str, str | None]] = Counter()  # (form, lemma) -> n: a tree per distinct pair, once, at the end
        # edit-tree counts merged in from other stats (annotate's splits); None: a part did not count them
        self.merged_trees: Counter[str] | None = Counter()

    def add(self, doc: Doc) -> dict[str, Any]:
        _check_doc(doc)
        if doc.ents_missing:
            doc.ents_missing = merge_ranges(doc.ents_missing)
        row = doc.to_row()
        if doc.user_data.get("text_is_synthetic"):
            row["text"] = None
        self.docs += 1
        self.words += len(doc.words)
        if doc.sent_starts is not None:
            self.sentences += sum(1 for s in doc.sent_starts if s)
        for col in _ANNOTATION_COLUMNS:
            if row[col] is not None:
                self.annotated[col] += 1
        for col in _TOKEN_COLUMNS:
            if row[col] is not None:
                self.missing[col] += sum(1 for v in row[col] if v is None)
        for col in ("tags", "pos", "morphs", "deps"):
            if row[col] is not None:
                self.labels[col].update(v for v in row[col] if v is not None)  # None: missing, not a label
        if doc.pos is not None and doc.morphs is not None:
            self.labels["morphologizer"].update(m for m in map(join_morph, doc.pos, doc.morphs) if m is not None)
        if doc.lemmas is not None:
            self.lemma_pairs.update(zip(doc.words, doc.lemmas))  # a None lemma (missing) is skipped by the tree count
        if doc.ent_spans is not None:
            self.entities += len(doc.ent_spans)
            self.labels["ents"].update(label for _, _, label in doc.ent_spans)
            self.missing["ents"] += sum(e - s for s, e in doc.ents_missing or ())
        if doc.cats is not None:
            self.labels["cats"].update(doc.cats)
        return row

    def lemma_trees(self) -> Counter[str] | None:
        """Edit tree -> how many tokens it turns into their lemma; None when not every part was counted."""
        if self.merged_trees is None:
            return None
        return self.merged_trees + trees_of_pair_counts(self.lemma_pairs)


def _check_doc(doc: Doc) -> None:
    """Annotations that fit the doc: one value per token, heads inside it, entities clear of missing ranges."""
    where, n = f"doc {doc.doc_id!r}", len(doc)
    for col in _TOKEN_COLUMNS:
        values = getattr(doc, col)
        if values is not None and len(values) != n:
            raise CorpusError(where, f"{len(values)} {col} for {n} tokens", "give one value per token (null where unknown)")
    if doc.heads is not None and any(h is not None and not 0 <= h < n for h in doc.heads):
        raise CorpusError(where, "a head points outside the doc", "heads are absolute token indices")
    for s, e in doc.ents_missing or ():
        if not 0 <= s < e <= n:
            raise CorpusError(where, f"missing-entity range [{s}, {e}) is outside the doc's {n} tokens", "fix the converter")
        clash = next(((a, b, lab) for a, b, lab in doc.ent_spans or () if a < e and s < b), None)
        if clash is not None:
            raise CorpusError(where, f"entity {clash} overlaps the range [{s}, {e}) whose entities are unknown", "fix the converter")


def _meta(stats: _Stats, shards: list[dict[str, Any]], sources: list[Path] | list[str], fmt: str, report: ConvertReport) -> dict[str, Any]:
    trees = stats.lemma_trees()
    return {
        "schema_version": SCHEMA_VERSION,
        "format": fmt,
        "counts": {"docs": stats.docs, "sentences": stats.sentences, "words": stats.words, "entities": stats.entities},
        "labels": {col: sorted(vals) for col, vals in stats.labels.items() if vals or stats.annotated[col]},
        # tokens whose annotation is unknown inside annotated docs (not trained, not scored)
        "missing_tokens": {col: n for col, n in sorted(stats.missing.items()) if n},
        "annotated": {col: stats.annotated[col] for col in _ANNOTATION_COLUMNS if stats.annotated[col]},
        # the lemmatizer's labels before min_tree_freq ({} without lemmas); absent: `distnlp corpus-labels` adds it
        **({"lemma_trees": dict(sorted(trees.items()))} if trees is not None else {}),
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
