"""The annotate output directory: one Parquet shard per split, committed split by split, so a
killed job rerun with the same OUTPUT redoes only the splits it had not finished.

Layout (everything else in OUTPUT is refused, never touched):
    shard-NNNNN.parquet     split N's annotated docs, in the corpus schema (absent if all rejected)
    shard-NNNNN.jsonl       the same docs as JSONL, with --format jsonl
    shard-NNNNN.spacy       the same docs as a spaCy DocBin, with --format spacy
    shard-NNNNN.conllu      the same docs as CoNLL-U (a tree per sentence), with --format conllu
    .annotate/job.json      what this job annotates: the model, inputs and options
    .annotate/split-NNNNN.json  split N is finished: its counts, label stats and rejects
    meta.json, rejects.jsonl    written once every split is finished

Commit protocol for a split: its files are written under temporary names and renamed into place,
the record last. A split counts as finished only when its record is there and its shard has the
rows the record says; a crash anywhere before that leaves the split to be redone, and redoing it
writes the same names, so no row is ever written twice. Until meta.json exists the directory is
not a readable corpus, so a half-finished job cannot be trained on by mistake.
"""
from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..data.convert.report import ConvertReport
from ..data.convert.writer import _meta, _Stats  # the convert writer's counts and meta.json, reused as-is
from ..data.doc import Doc
from ..data.schema import CORPUS_SCHEMA
from ..errors import DistnlpError
from ..data.shards import footer_groups
from ..owned_paths import check_replaceable
from .inputs import Plan

STATE_DIR = ".annotate"
JOB_FILE = "job.json"
META_FILE = "meta.json"
REJECTS_FILE = "rejects.jsonl"
ROW_GROUP_SIZE = 256
_OWNED = re.compile(r"(shard-\d{5,}\.(parquet|jsonl|spacy|conllu)|meta\.json|rejects\.jsonl|\.annotate|\..+\.tmp-[0-9a-f]{8})")
_TEMP = re.compile(r"\..+\.tmp-[0-9a-f]{8}")


class AnnotateOutputError(DistnlpError):
    """The output directory is not this job's to write."""


def shard_name(index: int, ext: str = "parquet") -> str:
    return f"shard-{index:05d}.{ext}"


def _record_name(index: int) -> str:
    return f"split-{index:05d}.json"


def _write_atomic(path: Path, data: bytes | None = None, table: pa.Table | None = None) -> None:
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        if table is not None:
            pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_SIZE, write_page_checksum=True)
        else:
            tmp.write_bytes(data or b"")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class OutputDir:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(os.path.abspath(path))
        self.state = self.path / STATE_DIR

    # --- claiming ----------------------------------------------------------------------------
    def claim(self, job: dict[str, Any], inputs: Sequence[str], overwrite: bool = False) -> None:
        """Start a new job here, or continue the same job (resume); refuse anything else."""
        fix = "choose a new or empty OUTPUT: only an annotate job's own files are ever replaced"
        local_inputs = [p for p in inputs if "://" not in p]
        check_replaceable(self.path, lambda name: bool(_OWNED.fullmatch(name)), local_inputs, what="annotate output", fix=fix)
        previous = self._read_job()
        self.created = not self.path.exists()
        if previous is None and not self.created and any(self.path.iterdir()):
            # Only a directory holding annotate's job record was written by annotate: anything
            # else (a corpus from `distnlp convert`, files named like ours) is never replaced.
            raise AnnotateOutputError(f"{self.path}: holds {self._describe()}, not an annotate job's output (no {STATE_DIR}/{JOB_FILE}); "
                                      "annotate never replaces it, even with --overwrite: choose another OUTPUT")
        if previous is not None and previous != job and not self._has_work():
            previous = None  # a job that never finished a split (a refused run): nothing to keep
            self._remove_job_files()
        if previous is not None and previous != job:
            if not overwrite:
                changed = sorted(k for k in set(previous) | set(job) if previous.get(k) != job.get(k))
                raise AnnotateOutputError(
                    f"{self.path}: holds an annotate job with another {', '.join(changed)}; rerun with the same MODEL, "
                    "INPUTs and options to resume it, or pass --overwrite to replace it, or choose another OUTPUT")
            self._remove_job_files()
        self.fresh = previous is None  # this run starts the job: a refusal may take its record back
        self.state.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.state / JOB_FILE, (json.dumps(job, indent=2, sort_keys=True) + "\n").encode())

    def _describe(self) -> str:
        """What the directory holds, in words, for a refusal."""
        try:
            meta = json.loads((self.path / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = None
        if isinstance(meta, dict) and meta.get("format"):
            writer = "an annotate run whose job record was removed" if meta["format"] == "annotate" else "distnlp convert"
            return f"a corpus written by {writer} (meta.json format {meta['format']!r})"
        names = sorted(p.name for p in self.path.iterdir())
        return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")

    def _has_work(self) -> bool:
        """Whether a split was ever finished here (a record or a shard)."""
        records = self.state.is_dir() and any(re.fullmatch(r"split-\d{5,}\.json", f.name) for f in self.state.iterdir())
        return bool(records) or any(_OWNED.fullmatch(e.name) and e.name.startswith("shard-") for e in self.path.iterdir())

    def release(self) -> None:
        """A run refused before finishing any split leaves nothing behind: its job record goes,
        and the directory too when this run created it and it is empty."""
        if not getattr(self, "fresh", False) or self._has_work():
            return
        self._remove_job_files()
        if getattr(self, "created", False) and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()

    def _read_job(self) -> dict[str, Any] | None:
        try:
            job = json.loads((self.state / JOB_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return job if isinstance(job, dict) else None

    def _remove_job_files(self) -> None:
        """--overwrite: remove what an annotate job writes here (claim checked nothing else is)."""
        for entry in self.path.iterdir():
            if entry.name == STATE_DIR and entry.is_dir() and not entry.is_symlink():
                for f in entry.iterdir():
                    if re.fullmatch(r"(job\.json|split-\d{5,}\.json|\..+\.tmp-[0-9a-f]{8})", f.name):
                        f.unlink()
                if any(entry.iterdir()):
                    raise AnnotateOutputError(f"{entry}: holds files an annotate job did not write; move them, or choose another OUTPUT")
                entry.rmdir()
            elif _OWNED.fullmatch(entry.name) and entry.is_file():
                entry.unlink()

    # --- splits ------------------------------------------------------------------------------
    def finished(self, plan: Plan) -> dict[int, dict[str, Any]]:
        """The records of the splits already finished (and whose shard is intact)."""
        done: dict[int, dict[str, Any]] = {}
        for split in plan.splits:
            record = self._read_record(split.index)
            if record is not None and self._shard_intact(record):
                done[split.index] = record
        return done

    def _read_record(self, index: int) -> dict[str, Any] | None:
        try:
            record = json.loads((self.state / _record_name(index)).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("split") == index else None

    def _shard_intact(self, record: dict[str, Any]) -> bool:
        if not record.get("shard"):
            return True
        try:
            return pq.ParquetFile(self.path / record["shard"]).metadata.num_rows == record["rows_out"]
        except (OSError, pa.ArrowException):
            return False

    def commit_split(self, index: int, docs: Sequence[Doc], rejects: list[dict[str, Any]], rows_in: int,
                     copy: tuple[str, bytes] | None, started: float | None = None) -> dict[str, Any]:
        """Write split `index`'s shard (and JSONL), then its record: the split is finished.
        `started` (perf_counter) puts the split's seconds in the record, for speed reports."""
        stats = _Stats()
        rows = [stats.add(doc) for doc in docs]
        record: dict[str, Any] = {
            "split": index, "rows_in": rows_in, "rows_out": len(rows), "rejected": len(rejects),
            "words": stats.words, "shard": None, "copy": None, "rejects": rejects, "stats": _stats_to_json(stats),
        }
        if rows_in != len(rows) + len(rejects):
            raise DistnlpError(f"split {index}: {rows_in} rows in but {len(rows)} annotated + {len(rejects)} rejected (a bug: please report it)")
        if rows:
            record["shard"] = shard_name(index)
            _write_atomic(self.path / record["shard"], table=pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA))
            if copy is not None:  # --format jsonl / spacy / conllu: the same docs once more
                ext, data = copy
                record["copy"] = shard_name(index, ext)
                _write_atomic(self.path / record["copy"], data)
        if started is not None:
            record["seconds"] = round(time.perf_counter() - started, 4)
        _write_atomic(self.state / _record_name(index), (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
        return record

    # --- the end -----------------------------------------------------------------------------
    def finish(self, plan: Plan, job: dict[str, Any]) -> dict[str, Any]:
        """Every split is finished: write rejects.jsonl and meta.json (counts in = out + rejected)."""
        records = self.finished(plan)
        missing = [s.index for s in plan.splits if s.index not in records]
        if missing:
            raise DistnlpError(f"{self.path}: splits {missing[:5]} are not finished; rerun the same command to finish them")
        stats = _Stats()
        shards: list[dict[str, Any]] = []
        rejects: list[dict[str, Any]] = []
        for split in plan.splits:
            record = records[split.index]
            _merge_stats(stats, record["stats"])
            rejects.extend(record["rejects"])
            if record["shard"]:
                # row groups with their content hashes, as convert lists them (data/shards.py)
                shards.append({"file": record["shard"], "rows": record["rows_out"], "words": record["words"],
                               "row_groups": footer_groups(self.path / record["shard"])})
        rows_out = sum(r["rows_out"] for r in records.values())
        if plan.rows != rows_out + len(rejects):
            raise DistnlpError(f"{self.path}: {plan.rows} rows in but {rows_out} annotated + {len(rejects)} rejected; rerun with --overwrite")
        _write_atomic(self.path / REJECTS_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejects).encode("utf-8"))
        meta = _meta(stats, shards, [], "annotate", ConvertReport())
        meta["sources"] = [{"path": s.path, "kind": s.kind, "rows": s.rows} for s in plan.sources]
        meta["annotate"] = {
            "model": job["model"], "rows_in": plan.rows, "rows_out": rows_out, "rejected": len(rejects),
            "rejects_file": REJECTS_FILE, "splits": len(plan.splits),
            "rejected_by_reason": dict(sorted(Counter(r["reason"].split(" (")[0] for r in rejects).items())),
            "copies": [r["copy"] for r in (records[s.index] for s in plan.splits) if r.get("copy")],
        }
        _write_atomic(self.path / META_FILE, (json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
        self._remove_stale_temps()
        return meta

    def _remove_stale_temps(self) -> None:
        """Temporary files a killed run left behind (every split is finished, none is in flight)."""
        for folder in (self.path, self.state):
            for entry in folder.iterdir():
                if _TEMP.fullmatch(entry.name) and entry.is_file():
                    entry.unlink()


def _stats_to_json(stats: _Stats) -> dict[str, Any]:
    return {
        "docs": stats.docs, "sentences": stats.sentences, "words": stats.words, "entities": stats.entities,
        "labels": {k: sorted(v) for k, v in stats.labels.items() if v},
        "annotated": dict(stats.annotated), "missing": dict(stats.missing),
        "lemma_trees": dict(stats.lemma_trees() or {}),  # a split's own stats: always counted
    }


def _merge_stats(into: _Stats, data: dict[str, Any]) -> None:
    into.docs += data["docs"]
    into.sentences += data["sentences"]
    into.words += data["words"]
    into.entities += data["entities"]
    for col, labels in data["labels"].items():
        into.labels.setdefault(col, set()).update(labels)
    into.annotated.update(data["annotated"])
    into.missing.update(data["missing"])
    if "lemma_trees" not in data or into.merged_trees is None:
        into.merged_trees = None  # a split recorded before the counts were kept: meta.json leaves them out, not short
    else:
        into.merged_trees.update(data["lemma_trees"])
