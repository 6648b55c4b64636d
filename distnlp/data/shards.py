"""A converted corpus on disk: meta.json, its Parquet shards and their row groups.

`open_corpus` reads only meta.json and each shard's Parquet footer (row-group row counts), so
opening a corpus larger than memory, local or remote, is cheap. The pure functions at the end
decide which rows of an epoch belong to which rank; they take `rank` and `world_size` as ints and
never touch torch.distributed (docs/architecture.md, decision 3).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import CorpusError

META_FILE = "meta.json"
SHARD_PREFIX = "shard-"
REBUILD = "re-run `distnlp convert` to rebuild the corpus"


@dataclass(frozen=True)
class Unit:
    """One work unit: a row group of a shard. `index` is its position in stored order."""

    index: int
    shard: int
    row_group: int
    rows: int
    # Words in it, from the footer (the words column's value count: an empty doc counts 1), so
    # ranks can share an epoch by words without reading a row. 0 = unknown: weigh rows by count.
    words: int = 0
    # SHA-256 (first 32 hex digits) of the row group's bytes in its shard, from meta.json; checked
    # at every read of the row group. None: a corpus written before, page checksums only.
    sha256: str | None = None


@dataclass
class Shard:
    file: str  # path inside `CorpusInfo.fs`
    name: str  # file name, for messages
    # The Parquet footer; None until the shard is first read when meta.json lists its row groups
    # (opening a corpus then reads one footer, not one per shard: start-up does not grow with it).
    metadata: pq.FileMetaData | None = field(repr=False, default=None)
    groups: list[tuple[int, int]] = field(default_factory=list)  # (rows, words) per row group

    @property
    def rows(self) -> int:
        return sum(rows for rows, _ in self.groups)


@dataclass
class CorpusInfo:
    path: str  # as the user gave it, for messages
    fs: pafs.FileSystem = field(repr=False)
    root: str
    meta: dict[str, Any]
    shards: list[Shard]
    units: list[Unit]
    columns: list[str]  # column names stored in the shards
    # which corpus this is, for messages (e.g. "corpus.train": the config key the user can fix)
    label: str | None = None
    # Parquet leaf paths of nested string columns (words.list.element, ...): read as Arrow
    # dictionaries, so decoding skips materializing (and later re-hashing) every string.
    dict_leaves: list[str] = field(default_factory=list)
    # unit index -> each stored row's word count (max(len, 1), as the footer counts): read only for
    # the few row groups where a rank's share starts or ends
    _row_words: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _piece_words: dict[tuple[int, int, bool], Any] = field(default_factory=dict, repr=False)  # shards.piece_words

    @property
    def n_docs(self) -> int:
        return sum(u.rows for u in self.units)

    @property
    def n_words(self) -> int:
        return int(self.meta.get("counts", {}).get("words", 0))

    def where(self, text: str) -> str:
        """`text` (a shard, a row group) prefixed with the corpus label, for an error's `where`."""
        return labelled(self.label, text)

    def footer(self, shard: int) -> pq.FileMetaData:
        """The shard's footer, read once, and checked against what meta.json (or the first shard) says."""
        s = self.shards[shard]
        if s.metadata is None:
            md = _read_footer(self.fs, s.file, self.where(s.name))
            _check_footer(md, s, self.columns, self.where(s.name))
            s.metadata = md
        return s.metadata

    def open_shard(self, shard: int) -> pq.ParquetFile:
        """A ParquetFile that reuses the footer already read (one less request on s3)."""
        s = self.shards[shard]
        md = self.footer(shard)
        try:
            return pq.ParquetFile(self.fs.open_input_file(s.file), metadata=md, read_dictionary=self.dict_leaves,
                                  page_checksum_verification=True)
        except (OSError, ValueError, pa.ArrowException) as exc:  # ValueError: undecodable names in a damaged footer
            raise CorpusError(self.where(s.name), f"cannot open shard: {_one_line(exc)}", REBUILD) from exc

    def read_unit(self, unit: Unit, columns: Sequence[str], verify: bool = True) -> pa.Table:
        """The rows of one row group, only `columns`. Its bytes are checked against meta.json's
        hash (`verify`) and every page against its checksum: any damage names shard and row group."""
        name = self.where(self.shards[unit.shard].name)
        try:
            parquet = self.open_shard(unit.shard)
            if verify and unit.sha256 is not None:
                self._verify_unit(unit, parquet.metadata, f"{name} row group {unit.row_group}")
            table = parquet.read_row_group(unit.row_group, columns=list(columns))
        except CorpusError:
            raise
        except (OSError, ValueError, pa.ArrowException) as exc:  # ValueError: undecodable names in a damaged footer
            raise CorpusError(f"{name} row group {unit.row_group}", f"corrupt or truncated data: {_one_line(exc)}", REBUILD) from exc
        if table.num_rows != unit.rows:
            raise CorpusError(
                f"{name} row group {unit.row_group}",
                f"read {table.num_rows} rows, the footer says {unit.rows}",
                REBUILD,
            )
        return table

    def _verify_unit(self, unit: Unit, md: pq.FileMetaData, where: str) -> None:
        start, stop = row_group_span(md, unit.row_group)
        with self.fs.open_input_file(self.shards[unit.shard].file) as f:
            data = f.read_at(stop - start, start)
        if len(data) != stop - start or content_hash(data) != unit.sha256:
            raise CorpusError(where, "its bytes differ from the hash meta.json holds (the shard was changed or damaged "
                                     "after it was written)", "restore the shard from a good copy or " + REBUILD)

    def row_words(self, unit: Unit) -> np.ndarray:
        """Each stored row's word count (an empty or null doc weighs 1, as in `Unit.words`)."""
        cached = self._row_words.get(unit.index)
        if cached is None:
            if not unit.words:
                cached = np.ones(unit.rows, dtype=np.int64)
            else:
                # not verified here (only where a boundary falls; the row group's real read is)
                arr = self.read_unit(unit, ["spaces"], verify=False).column("spaces").combine_chunks()
                cached = np.maximum(np.diff(arr.offsets.to_numpy()).astype(np.int64), 1)
                if arr.null_count:
                    cached[~arr.is_valid().to_numpy(zero_copy_only=False)] = 1
            self._row_words[unit.index] = cached
        return cached


def _one_line(exc: BaseException) -> str:
    """An Arrow or Thrift message folded onto one line (they can span several)."""
    return " ".join(str(exc).split())


def resolve_path(path: str | os.PathLike[str]) -> tuple[pafs.FileSystem, str]:
    """A filesystem and a path inside it, for a local path or any URI pyarrow knows (s3://, gs://)."""
    text = os.fspath(path)
    if "://" in text:
        try:
            return pafs.FileSystem.from_uri(text)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise CorpusError(text, f"cannot open this location: {exc}", "check the URI and credentials") from exc
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(text)).replace(os.sep, "/")


def labelled(label: str | None, where: str) -> str:
    return f"{label}: {where}" if label else where


def open_corpus(path: str | os.PathLike[str], label: str | None = None) -> CorpusInfo:
    """Read meta.json and every shard footer. Raises CorpusError on anything missing or corrupt.

    `label` names the corpus in every error (give the config key, e.g. "corpus.dev"), so a
    message about a shard says which of the run's corpora it belongs to.
    """
    try:
        return _open_corpus(path, label)
    except CorpusError as exc:
        if not label:
            raise
        raise CorpusError(labelled(label, exc.where), exc.problem, exc.fix) from exc.__cause__


def _open_corpus(path: str | os.PathLike[str], label: str | None) -> CorpusInfo:
    shown = os.fspath(path)
    fs, root = resolve_path(path)
    root = root.rstrip("/") or "/"
    meta = _read_meta(fs, root, shown)
    shard_files = _shard_files(fs, root, meta, shown)
    listed = _listed_groups(meta, len(shard_files))
    shards: list[Shard] = []
    columns: list[str] | None = None
    for s_idx, (file, expected_rows) in enumerate(shard_files):
        name = posixpath.basename(file)
        shard = Shard(file=file, name=name)
        if listed is not None and s_idx > 0:
            shard.groups = listed[s_idx]  # its footer is read when the shard is first read
            if expected_rows is not None and shard.rows != expected_rows:
                raise CorpusError(f"{shown}/{META_FILE}", f"lists {shard.rows} rows in {name}'s row groups and {expected_rows} as its rows", REBUILD)
        else:
            md = _read_footer(fs, file, name)
            shard.groups = listed[s_idx] if listed is not None else _footer_groups(md)
            if expected_rows is not None and md.num_rows != expected_rows:
                raise CorpusError(name, f"has {md.num_rows} rows, meta.json says {expected_rows} (truncated or replaced?)", REBUILD)
            names = list(md.schema.to_arrow_schema().names)
            if columns is None:
                columns = names
            _check_footer(md, shard, columns, name)
            shard.metadata = md
        shards.append(shard)
    hashes = _listed_hashes(meta, len(shards))
    units = [Unit(index=0, shard=s_idx, row_group=rg, rows=rows, words=words, sha256=hashes[s_idx][rg] if hashes else None)
             for s_idx, shard in enumerate(shards) for rg, (rows, words) in enumerate(shard.groups)]
    units = [dataclasses.replace(u, index=i) for i, u in enumerate(units)]
    cols = columns or []
    for required in ("words", "spaces"):
        if shards and required not in cols:
            raise CorpusError(shards[0].name, f"no {required!r} column (not a distnlp corpus?)", REBUILD)
    return CorpusInfo(path=shown, fs=fs, root=root, meta=meta, shards=shards, units=units, columns=cols, label=label,
                      dict_leaves=_nested_string_leaves(shards[0].metadata) if shards and shards[0].metadata is not None else [])


def _footer_groups(md: pq.FileMetaData) -> list[tuple[int, int]]:
    """(rows, words) per row group; words is the words column's value count (an empty doc counts 1)."""
    leaf = _leaf_index(md, "words.list.element")
    groups = []
    for rg in range(md.num_row_groups):
        group = md.row_group(rg)
        groups.append((group.num_rows, group.column(leaf).num_values if leaf is not None and group.num_rows else 0))
    return groups


def content_hash(data: bytes | pa.Buffer) -> str:
    return hashlib.sha256(memoryview(data)).hexdigest()[:32]


def row_group_span(md: pq.FileMetaData, row_group: int) -> tuple[int, int]:
    """The byte range [start, stop) of a row group's column chunks in its file."""
    group = md.row_group(row_group)
    starts, stops = [], []
    for c in range(group.num_columns):
        col = group.column(c)
        start = col.dictionary_page_offset if col.has_dictionary_page and col.dictionary_page_offset else col.data_page_offset
        starts.append(start)
        stops.append(start + col.total_compressed_size)
    return min(starts), max(stops)


def footer_groups(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """What meta.json lists for a shard just written (`row_groups`): rows, words and the content
    hash of each row group (read back once, at conversion)."""
    md = pq.read_metadata(path)
    out = []
    with open(path, "rb") as f:
        for rg, (rows, words) in enumerate(_footer_groups(md)):
            start, stop = row_group_span(md, rg)
            f.seek(start)
            out.append({"rows": rows, "words": words, "sha256": content_hash(f.read(stop - start))})
    return out


def _listed_hashes(meta: dict[str, Any], n_shards: int) -> list[list[str | None]] | None:
    listed = meta.get("shards")
    if _listed_groups(meta, n_shards) is None:
        return None
    return [[g.get("sha256") if isinstance(g.get("sha256"), str) else None for g in e["row_groups"]] for e in listed]


def _listed_groups(meta: dict[str, Any], n_shards: int) -> list[list[tuple[int, int]]] | None:
    """Each shard's (rows, words) per row group from meta.json, when it lists them for every shard."""
    listed = meta.get("shards")
    if not listed or len(listed) != n_shards or not all(isinstance(e, dict) and isinstance(e.get("row_groups"), list) for e in listed):
        return None
    try:
        return [[(int(g["rows"]), int(g["words"])) for g in e["row_groups"]] for e in listed]
    except (KeyError, TypeError, ValueError):
        return None  # a hand-edited entry: read the footers instead


def _check_footer(md: pq.FileMetaData, shard: Shard, columns: list[str], where: str) -> None:
    """A footer agrees with the first shard's columns and with the row groups meta.json lists."""
    try:
        names = list(md.schema.to_arrow_schema().names)
        found = _footer_groups(md)
    except (ValueError, pa.ArrowException) as exc:
        raise CorpusError(where, f"corrupt footer: {_one_line(exc)}", REBUILD) from exc
    if names != columns:
        raise CorpusError(where, f"columns {names} differ from the first shard's {columns}", REBUILD)
    if found != shard.groups:
        raise CorpusError(where, f"row groups (rows, words) {found[:3]}... differ from meta.json's {shard.groups[:3]}... (truncated or replaced?)", REBUILD)


def _leaf_index(md: pq.FileMetaData, path: str) -> int | None:
    return next((i for i in range(md.num_columns) if md.schema.column(i).path == path), None)


def _nested_string_leaves(md: pq.FileMetaData) -> list[str]:
    leaves = []
    for i in range(md.num_columns):
        col = md.schema.column(i)
        # map keys (cats) stay plain: Arrow maps do not take dictionary keys everywhere
        nested = "." in col.path and ".key_value." not in col.path
        if col.physical_type == "BYTE_ARRAY" and nested and col.logical_type.type == "STRING":
            leaves.append(col.path)
    return leaves


def _read_meta(fs: pafs.FileSystem, root: str, shown: str) -> dict[str, Any]:
    meta_path = f"{root}/{META_FILE}"
    info = fs.get_file_info(meta_path)
    if info.type != pafs.FileType.File:
        what = "directory not found" if fs.get_file_info(root).type != pafs.FileType.Directory else f"no {META_FILE}"
        raise CorpusError(
            shown,
            f"{what}: not a converted corpus",
            "run `distnlp convert <input> <output-dir>` first and point the corpus path at its output",
        )
    try:
        with fs.open_input_stream(meta_path) as f:
            meta = json.loads(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{shown}/{META_FILE}", f"not valid JSON: {exc}", REBUILD) from exc
    if not isinstance(meta, dict):
        raise CorpusError(f"{shown}/{META_FILE}", "expected a JSON object", REBUILD)
    return meta


def _shard_files(fs: pafs.FileSystem, root: str, meta: dict[str, Any], shown: str) -> list[tuple[str, int | None]]:
    """meta.json's shard list when it has one (authoritative order and row counts), else a listing."""
    listed = meta.get("shards")
    if listed:
        out: list[tuple[str, int | None]] = []
        for entry in listed:
            file = entry["file"] if isinstance(entry, dict) else str(entry)
            rows = entry.get("rows") if isinstance(entry, dict) else None
            full = f"{root}/{file}"
            if fs.get_file_info(full).type != pafs.FileType.File:
                raise CorpusError(f"{shown}/{file}", "shard listed in meta.json is missing", REBUILD)
            out.append((full, None if rows is None else int(rows)))
        return out
    sel = pafs.FileSelector(root, recursive=False)
    files = sorted(
        i.path for i in fs.get_file_info(sel)
        if i.type == pafs.FileType.File and i.base_name.startswith(SHARD_PREFIX) and i.base_name.endswith(".parquet")
    )
    if not files:
        raise CorpusError(shown, "no shard-*.parquet files", REBUILD)
    return [(f, None) for f in files]


def _read_footer(fs: pafs.FileSystem, file: str, name: str) -> pq.FileMetaData:
    try:
        with fs.open_input_file(file) as f:
            return pq.ParquetFile(f).metadata
    except (OSError, ValueError, pa.ArrowException) as exc:  # ValueError: undecodable names in a damaged footer
        raise CorpusError(name, f"corrupt or truncated shard: {_one_line(exc)}", REBUILD) from exc


# --- rank assignment (pure) -------------------------------------------------------------------
#
# An epoch's global order is: units in an order shuffled by (seed, epoch), each unit's rows in
# an order shuffled by (seed, epoch, unit). Rank r takes the rows of that order whose first word
# falls in [r*T//W, (r+1)*T//W), T the epoch's words: a contiguous slice balanced by words, not
# by documents, because training consumes words (batches of N words), so shares of equal words
# take as many steps on every rank. Why contiguous rather than striping every W-th row:
#  - striping makes every rank read and decode every row group (W times the I/O of the corpus
#    per epoch: at 64 GPUs, 64x); a contiguous slice reads each row group once, except at most
#    W-1 boundary row groups that two neighbours both read;
#  - word counts per rank differ by at most one document, even with fewer row groups than ranks
#    (a row group is then split between several ranks, each taking a slice of its shuffled rows);
#  - the unit order is reshuffled every epoch, so which units a rank sees changes every epoch.
# Whole row groups are weighed by their footer's word count; only a row group a boundary falls in
# has its rows' word counts read (the `spaces` column of that row group). Every rank computes the
# same split from the same data, so the shares partition the epoch.


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) % (1 << 63) for k in key])


def unit_order(units: Sequence[Unit], seed: int, epoch: int, shuffle: bool) -> list[Unit]:
    if not shuffle:
        return list(units)
    perm = _rng(seed, epoch).permutation(len(units))
    return [units[i] for i in perm]


@functools.lru_cache(maxsize=1024)
def row_order(unit: Unit, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The order of a unit's rows; keyed by the unit's stored index so every rank agrees.
    Cached (read-only): a resumed epoch's plan can cut one row group into many pieces."""
    if not shuffle:
        order = np.arange(unit.rows, dtype=np.int64)
    else:
        order = _rng(seed, epoch, unit.index, 0x5EED).permutation(unit.rows).astype(np.int64)
    order.flags.writeable = False
    return order


def rank_span(total: int, rank: int, world_size: int) -> tuple[int, int]:
    """This rank's [lo, hi) of a total: sizes differ by at most one."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in range for world_size {world_size}")
    return rank * total // world_size, (rank + 1) * total // world_size


@dataclass(frozen=True)
class Piece:
    """Rows [start, stop) of a unit's shuffled row order. A resumed epoch's plan also says which
    of them were already used (`exclude`: positions in that order; the stream yields nothing for
    them) and, where known, the piece's words net of those (`words`; -1: count from the row group).
    Exclusions keep a piece whole, so a resumed rank reads whole row groups as a fresh one does."""

    unit: Unit
    start: int
    stop: int
    words: int = -1
    exclude: tuple[int, ...] = ()

    def __len__(self) -> int:
        return self.stop - self.start

    def cut(self, a: int, b: int, words: int = -1) -> "Piece":
        """Rows [start + a, start + b) of this piece, with their exclusions."""
        lo, hi = self.start + a, self.start + b
        return Piece(self.unit, lo, hi, words, tuple(q for q in self.exclude if lo <= q < hi))


class PieceWords:
    """Word counts of an epoch's pieces. Per row group, the cumulative words along its row order
    are kept, so a piece's total is one subtraction; a row group is read only for pieces that cut
    it and do not carry their words."""

    def __init__(self, info: CorpusInfo, seed: int, epoch: int, shuffle: bool) -> None:
        self.info, self.seed, self.epoch, self.shuffle = info, seed, epoch, shuffle
        self._cumulative: dict[int, list[int]] = {}  # a list: scalar lookups are 50x numpy's

    def _cum(self, unit: Unit) -> list[int]:
        cum = self._cumulative.get(unit.index)
        if cum is None:
            words = self.info.row_words(unit)[row_order(unit, self.seed, self.epoch, self.shuffle)]
            cum = self._cumulative[unit.index] = [0, *np.cumsum(words).tolist()]
        return cum

    def __call__(self, piece: Piece) -> np.ndarray:
        """The word count of each of the piece's rows, in its order (0 for an excluded row)."""
        words = np.diff(np.asarray(self._cum(piece.unit)[piece.start:piece.stop + 1], dtype=np.int64))
        if piece.exclude:
            words[np.asarray(piece.exclude, dtype=np.int64) - piece.start] = 0
        return words

    def total(self, piece: Piece) -> int:
        if piece.words >= 0:
            return piece.words
        if piece.start == 0 and piece.stop == piece.unit.rows and not piece.exclude:
            return piece.unit.words  # a whole row group: its footer says, nothing is read
        cum = self._cum(piece.unit)
        return cum[piece.stop] - cum[piece.start] - sum(cum[q + 1] - cum[q] for q in piece.exclude)


def piece_words(info: CorpusInfo, seed: int, epoch: int, shuffle: bool) -> PieceWords:
    """The epoch's PieceWords, kept on `info` for the epoch (every split of it reuses the sums)."""
    key = (seed, epoch, shuffle)
    cached = info._piece_words.get(key)
    if cached is None:
        if len(info._piece_words) >= 4:
            info._piece_words.clear()
        cached = info._piece_words[key] = PieceWords(info, seed, epoch, shuffle)
    return cached


def _piece_total(piece: Piece, words_of: PieceWords | None) -> int:
    if words_of is None or not piece.unit.words:
        return len(piece) - len(piece.exclude)
    return words_of.total(piece)


def split_pieces(plan: Sequence[Piece], rank: int, world_size: int, words_of: PieceWords | None,
                 totals: Sequence[int] | None = None) -> list[Piece]:
    """This rank's contiguous slice of `plan` (an epoch's rows in order): the rows whose first
    word falls in its span of the plan's words (`words_of` None: of its docs). `totals`: each
    piece's words, when the caller splits the same plan for many ranks."""
    if totals is None:
        totals = plan_totals(plan, words_of)
    lo, hi = rank_span(sum(totals), rank, world_size)
    pieces: list[Piece] = []
    offset = 0
    for p, total in zip(plan, totals):
        end = offset + total
        if offset >= hi:
            break
        if end > lo:
            if lo <= offset and end <= hi:
                pieces.append(p)
            else:
                by_words = words_of is not None and p.unit.words
                weights = words_of(p) if by_words else np.ones(len(p), dtype=np.int64)
                if not by_words and p.exclude:
                    weights[np.asarray(p.exclude, dtype=np.int64) - p.start] = 0
                starts = offset + np.cumsum(weights) - weights
                # an excluded row (weight 0) goes with the row after it: the cut lands between rows
                a, b = (int(i) for i in np.searchsorted(starts, [lo, hi], side="left"))
                if a < b:
                    pieces.append(p.cut(a, b, int(weights[a:b].sum()) if by_words else -1))
        offset = end
    return pieces


def plan_totals(plan: Sequence[Piece], words_of: PieceWords | None) -> list[int]:
    return [_piece_total(p, words_of) for p in plan]


def whole_units(ordered: Sequence[Unit]) -> list[Piece]:
    return [Piece(u, 0, u.rows) for u in ordered]


def epoch_pieces(info: CorpusInfo, seed: int, epoch: int, shuffle: bool, rank: int, world_size: int,
                 by_words: bool = True) -> list[Piece]:
    """This rank's pieces of an epoch, balanced by words (or by docs: a mixture's draws are docs)."""
    plan = whole_units(unit_order(info.units, seed, epoch, shuffle))
    return split_pieces(plan, rank, world_size, piece_words(info, seed, epoch, shuffle) if by_words else None)
