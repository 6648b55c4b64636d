"""Streaming Docs out of a Parquet corpus: this rank's shuffled share, one row group at a time.

`DocStream` is what a training replica iterates. Work is assigned by `shards.epoch_pieces` (a
contiguous slice of the epoch's shuffled global order per rank, balanced by words); the stream keeps a cursor
(epoch, position) that goes into checkpoints, so a resumed run yields exactly the docs an
uninterrupted one would have yielded next.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import ConfigError, CorpusError
from .cursor import CursorStream
from .doc import Doc
from .schema import CORPUS_SCHEMA
from .elastic import plan_to_json, saved_share, share
from .shards import REBUILD, CorpusInfo, Piece, open_corpus, row_order

# Columns a Doc is built from ("text" is derived from words + spaces, so it is never read).
DOC_COLUMNS = ("doc_id", "words", "spaces", "sent_starts", "tags", "pos", "morphs", "lemmas", "deps", "heads", "ents", "cats", "ents_missing")
_REQUIRED = ("words", "spaces")
_DOC_FIELD = {"ents": "ent_spans"}  # column name -> Doc field name, where they differ


def _select_columns(info: CorpusInfo, columns: Sequence[str] | None) -> list[str]:
    if columns is None:
        return [c for c in DOC_COLUMNS if c in info.columns]
    unknown = [c for c in columns if c not in CORPUS_SCHEMA.names]
    if unknown:
        raise ConfigError("columns", f"unknown corpus column(s) {unknown}", f"choose from {list(DOC_COLUMNS)}")
    missing = [c for c in columns if c not in info.columns]
    if missing:
        raise CorpusError(info.path, f"column(s) {missing} are not in this corpus", f"it has {info.columns}")
    wanted = set(columns) | set(_REQUIRED)
    if "ents" in wanted and "ents_missing" in info.columns:
        wanted.add("ents_missing")  # entities without their missing ranges would read as "O"
    return [c for c in DOC_COLUMNS if c in wanted]


# --- Arrow -> Docs, column-wise ----------------------------------------------------------------
# Per-token Python work is what makes readers slow. Each column is converted with one flat
# conversion (strings via a dictionary, so each distinct string becomes one shared Python object)
# and then cut into per-doc lists with C-level slices.


def _flat_values(values: pa.Array) -> list[Any]:
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        values = values.dictionary_encode()
    if pa.types.is_dictionary(values.type):
        # Index a small object array: one shared Python str per distinct value, C-speed.
        lookup = np.array(values.dictionary.to_pylist() + [None], dtype=object)
        idx = values.indices
        if idx.null_count:
            idx = idx.fill_null(len(lookup) - 1)
        return lookup[idx.to_numpy()].tolist()
    if values.null_count == 0 and (pa.types.is_boolean(values.type) or pa.types.is_integer(values.type)):
        return values.to_numpy(zero_copy_only=False).tolist()
    return values.to_pylist()


def _all_null(arr: pa.Array) -> bool:
    return arr.null_count == len(arr)


def _cut(flat: list[Any], offsets: list[int], valid: np.ndarray | None) -> list[Any]:
    lists = [flat[a:b] for a, b in zip(offsets, offsets[1:])]
    if valid is not None:
        lists = [v if ok else None for v, ok in zip(lists, valid.tolist())]
    return lists


def _validity(arr: pa.Array) -> np.ndarray | None:
    return arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count else None


def _list_column(arr: pa.Array) -> list[list[Any] | None]:
    offsets = arr.offsets.to_numpy().tolist()
    return _cut(_flat_values(arr.values), offsets, _validity(arr))


def _ents_column(arr: pa.Array) -> list[list[tuple[int, int, str]] | None]:
    structs = arr.values
    flat = list(zip(
        _flat_values(structs.field("start")),
        _flat_values(structs.field("end")),
        _flat_values(structs.field("label")),
    ))
    return _cut(flat, arr.offsets.to_numpy().tolist(), _validity(arr))


def _ranges_column(arr: pa.Array) -> list[list[tuple[int, int]] | None]:
    structs = arr.values
    flat = list(zip(_flat_values(structs.field("start")), _flat_values(structs.field("end"))))
    return [r or None for r in _cut(flat, arr.offsets.to_numpy().tolist(), _validity(arr))]


def _cats_column(arr: pa.Array) -> list[dict[str, float] | None]:
    offsets = arr.offsets.to_numpy().tolist()
    keys = _flat_values(arr.keys)
    items = arr.items.cast(pa.float64()).to_pylist()
    valid = _validity(arr)
    out = [dict(zip(keys[a:b], items[a:b])) for a, b in zip(offsets, offsets[1:])]
    if valid is not None:
        out = [d if ok else None for d, ok in zip(out, valid.tolist())]
    return out


def _column(table: pa.Table, name: str) -> list[Any]:
    arr = table.column(name).combine_chunks()
    if _all_null(arr):  # an annotation this corpus (or row group) does not have
        return [None] * len(arr)
    if name == "doc_id":
        return arr.to_pylist()
    if name == "ents":
        return _ents_column(arr)
    if name == "ents_missing":
        return _ranges_column(arr)
    if name == "cats":
        return _cats_column(arr)
    if name == "spaces" and arr.values.null_count:  # as Doc.from_row: a null space is no space
        arr = pa.ListArray.from_arrays(arr.offsets, arr.values.fill_null(False), mask=arr.is_null())
    return _list_column(arr)


def _lengths(table: pa.Table, name: str) -> np.ndarray:
    arr = table.column(name).combine_chunks()
    lengths = np.diff(arr.offsets.to_numpy())
    if arr.null_count:
        lengths = np.where(arr.is_valid().to_numpy(zero_copy_only=False), lengths, -1)
    return lengths


# Doc is built positionally (no per-doc kwargs dict); the order comes from the dataclass itself.
_DOC_ORDER = [f.name for f in dataclasses.fields(Doc) if f.init][: len(DOC_COLUMNS)]
_COLUMN_OF = {_DOC_FIELD.get(c, c): c for c in DOC_COLUMNS}
_POSITIONAL = set(_DOC_ORDER) == set(_COLUMN_OF)  # else Doc changed shape: fall back to kwargs


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Building ~10 lists per doc triggers the cyclic GC every few hundred docs, and each run
    walks every young Doc: half the read time. Nothing built here is cyclic, so pause it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def table_to_docs(table: pa.Table, where: str = "", rows: Sequence[int] | None = None) -> list[Doc]:
    """One Doc per row, equal to `Doc.from_row` of each row but much faster.

    `rows` are the stored row numbers (for error messages) when `table` was reordered.
    """
    with _gc_paused():
        return _table_to_docs(table, where, rows)


def _table_to_docs(table: pa.Table, where: str, rows: Sequence[int] | None) -> list[Doc]:
    n_words, n_spaces = _lengths(table, "words"), _lengths(table, "spaces")
    bad = np.flatnonzero((n_words != n_spaces) | (n_words < 0))
    if bad.size:
        i = int(bad[0])
        row = i if rows is None else int(rows[i])
        raise CorpusError(
            f"{where} row {row}",
            f"words ({n_words[i]}) and spaces ({n_spaces[i]}) differ in length or are null",
            REBUILD,
        )
    present = set(table.column_names)
    if not _POSITIONAL:
        names = [c for c in DOC_COLUMNS if c in present]
        fields = [_DOC_FIELD.get(c, c) for c in names]
        return [Doc(**dict(zip(fields, v))) for v in zip(*(_column(table, c) for c in names))]
    cols = [
        _column(table, _COLUMN_OF[f]) if _COLUMN_OF[f] in present else itertools.repeat(None)
        for f in _DOC_ORDER
    ]
    return list(itertools.starmap(Doc, zip(*cols)))


# --- the stream ----------------------------------------------------------------------------


class DocStream(CursorStream):
    """This rank's disjoint, shuffled share of a corpus, epoch by epoch, with a resumable cursor.

    Epoch mode (`infinite=False`): each `iter()` yields the rest of the current epoch, then the
    epoch advances. Infinite mode: one iterator runs epoch after epoch. `position` counts rows of
    this rank's share already consumed this epoch (skipped ones included); the cursor moves to
    (epoch + 1, 0) as the last row of an epoch is handed out, so a checkpoint taken there resumes
    at the next epoch. One live iterator per stream: a new `iter()` continues from the cursor.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        infinite: bool = False,
        columns: list[str] | None = None,
        min_length: int = 0,
        max_length: int = 0,
        label: str | None = None,
        balance_by_words: bool = True,
    ) -> None:
        """`label`: the config key naming this corpus ("corpus.train"), put in every error.
        `balance_by_words`: ranks' shares hold equal words (training consumes words), else equal
        docs (a mixture's draws are docs: equal docs keep one epoch of draws covering each share)."""
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError("rank", f"rank {rank} is outside 0..{world_size - 1}", "pass 0 <= rank < world_size")
        self.info = open_corpus(path, label)
        self.rank, self.world_size, self.seed = int(rank), int(world_size), int(seed)
        self.shuffle, self.infinite = bool(shuffle), bool(infinite)
        self.columns = _select_columns(self.info, columns)
        self.min_length, self.max_length = int(min_length), int(max_length)
        self.balance_by_words = bool(balance_by_words)
        self.epoch = 0
        self.position = 0
        self.skipped = 0  # docs outside [min_length, max_length] since this stream was made
        self._pieces_key: tuple[int, int] | None = None
        self._pieces: list[Piece] = []
        # After an elastic resume, this rank's share of what one epoch has left (data/elastic.py);
        # None = the epoch's own order, split for this world size.
        self._share: tuple[int, list[Piece]] | None = None
        self._share_json: dict[str, Any] | None = None
        self._last_unit: tuple[int, int, list[Doc | None]] | None = None  # (epoch, unit index, its docs) converted last
        self._last_table: tuple[int, pa.Table] | None = None  # (unit index, its rows) read last: few of them ours
        self._unit_rows: dict[int, int] = {}
        self._unit_rows_key: tuple[int, int] | None = None

    # --- plan --------------------------------------------------------------------------------
    def pieces(self, epoch: int | None = None) -> list[Piece]:
        """This rank's pieces of an epoch (cached for the current one: it is O(row groups))."""
        epoch = self.epoch if epoch is None else epoch
        key = (epoch, len(self.info.units))
        if self._pieces_key != key:
            if self._share is not None and self._share[0] == epoch:
                self._pieces = self._share[1]
            else:
                self._pieces = share(self.info, seed=self.seed, epoch=epoch, shuffle=self.shuffle, rank=self.rank,
                                     world_size=self.world_size, plan=None, by_words=self.balance_by_words)
            self._pieces_key = key
        return self._pieces

    # --- cursor --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self._share is not None:
            # Kept after its epoch too: a batcher's pending doc can put the saved cursor back
            # into the share's epoch after the stream itself moved on (training/batches.py).
            # One shared object, never copied: the state is taken for every doc read.
            state["share"] = self._share_json
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        saved = state.get("share", state.get("plan"))  # "plan": a checkpoint from before per-rank shares
        self._share = self._share_json = None
        if saved is not None:
            epoch = int(saved["epoch"])
            mine = saved_share(self.info, state, epoch, shuffle=self.shuffle, by_words=self.balance_by_words)
            self._share = (epoch, mine or [])
            # the saved share as it is (one shared object); a legacy whole plan: this rank's slice
            self._share_json = dict(saved) if "share" in state else {"epoch": epoch, "pieces": plan_to_json(self._share[1])}
        self._pieces_key = None

    def _gives_nothing_after(self, epoch: int, empty_epochs: int) -> bool:
        # A share balanced by words can be empty in one epoch and not the next (a long doc can
        # span a rank's whole span of words), so an empty share ends an infinite stream only
        # when the corpus is empty or after many epochs in a row; docs all filtered end it.
        if not self.balance_by_words or self.info.n_docs == 0 or self.pieces(epoch):
            return True
        return empty_epochs >= 64

    def __len__(self) -> int:
        """Rows (docs before length filtering) in this rank's share of the current epoch (the same
        in every epoch when balanced by docs; within a doc's words of T / world_size by words)."""
        return sum(len(p) for p in self.pieces())

    # --- iteration ---------------------------------------------------------------------------
    def _rest_of_epoch(self) -> Iterator[Doc]:
        epoch, pieces = self.epoch, self.pieces()
        total = sum(len(p) for p in pieces)
        if self.position >= total:  # an empty share, or a cursor saved at the very end
            self.set_epoch(epoch + 1)
            return
        offset = 0
        for piece in pieces:
            if offset + len(piece) <= self.position:
                offset += len(piece)
                continue
            skip = self.position - offset
            docs = self._read_piece(piece, epoch, skip)
            for doc in docs:
                row = (epoch, self.position)
                # Move the cursor before handing the doc out: a checkpoint taken right after
                # receiving it must not yield it again.
                if self.position + 1 >= total:
                    self.set_epoch(epoch + 1)
                else:
                    self.position += 1
                if doc is not None:
                    self.last_row = row
                    yield doc
            offset += len(piece)

    def _read_piece(self, piece: Piece, epoch: int, skip: int) -> list[Doc | None]:
        unit = piece.unit
        rows = row_order(unit, self.seed, epoch, self.shuffle)[piece.start + skip:piece.stop]
        # A resumed epoch's plan cuts a row group into many consecutive pieces (around docs already
        # emitted): read and verify it once for the run of them (and convert it once, when most of
        # its rows are ours), not once per piece.
        # Keyed by epoch too: a Doc object is handed out at most once per epoch.
        if self._last_unit is not None and self._last_unit[:2] == (epoch, unit.index):
            docs = self._last_unit[2]
            self.skipped += sum(docs[i] is None for i in rows.tolist())
            return _excluded(piece, skip, [docs[i] for i in rows.tolist()])
        if self._last_table is None or self._last_table[0] != unit.index:
            self._last_table = (unit.index, self.info.read_unit(unit, self.columns))
        table = self._last_table[1]
        where = self.info.where(f"{self.info.shards[unit.shard].name} row group {unit.row_group}")
        keep = self._keep_mask(table)
        wanted = rows if keep is None else rows[keep[rows]]
        if keep is not None:
            self.skipped += len(rows) - len(wanted)
        # Reordering Python Docs costs ~nothing; an Arrow take of list columns costs as much as
        # converting them. So convert whole units, and take only when few of its rows are ours
        # (in all of this epoch's pieces of the unit, not only this one).
        if self._rows_in_unit(unit.index) * 2 >= unit.rows:
            docs: list[Doc | None] = list(table_to_docs(table, where))
            if keep is not None:
                docs = [d if ok else None for d, ok in zip(docs, keep.tolist())]
            self._last_unit = (epoch, unit.index, docs)
            return _excluded(piece, skip, [docs[i] for i in rows.tolist()])
        picked = dict(zip(wanted.tolist(), table_to_docs(table.take(pa.array(wanted)), where, wanted)))
        return _excluded(piece, skip, [picked.get(i) for i in rows.tolist()])

    def _rows_in_unit(self, unit_index: int) -> int:
        """Rows of a unit in this rank's pieces of the current epoch."""
        if self._unit_rows_key != self._pieces_key:
            counts: dict[int, int] = {}
            for p in self._pieces:
                counts[p.unit.index] = counts.get(p.unit.index, 0) + len(p)
            self._unit_rows, self._unit_rows_key = counts, self._pieces_key
        return self._unit_rows.get(unit_index, 0)

    def _keep_mask(self, table: pa.Table) -> np.ndarray | None:
        if not self.min_length and not self.max_length:
            return None
        lengths = _lengths(table, "words")
        keep = lengths >= self.min_length
        if self.max_length:
            keep &= lengths <= self.max_length
        return None if keep.all() else keep


def _excluded(piece: Piece, skip: int, docs: list[Doc | None]) -> list[Doc | None]:
    """The piece's docs from row `skip` on, with None for rows a resumed epoch already used."""
    first = piece.start + skip
    for q in piece.exclude:
        if q >= first:
            docs[q - first] = None
    return docs


def read_docs(path: str | os.PathLike[str], columns: list[str] | None = None, label: str | None = None) -> Iterator[Doc]:
    """Every doc of a corpus in stored order (evaluation), one row group in memory at a time.
    `label` (e.g. "corpus.dev") names the corpus in errors."""
    info = open_corpus(path, label)
    cols = _select_columns(info, columns)
    for unit in info.units:
        table = info.read_unit(unit, cols)
        yield from table_to_docs(table, info.where(f"{info.shards[unit.shard].name} row group {unit.row_group}"))


def count_words(path: str | os.PathLike[str], label: str | None = None) -> int:
    """Words in the corpus, from meta.json (no shard is read)."""
    info = open_corpus(path, label)
    counts = info.meta.get("counts", {})
    if "words" not in counts:
        raise CorpusError(info.where(f"{info.path}/meta.json"), "has no counts.words", REBUILD)
    return int(counts["words"])


__all__ = ["DocStream", "read_docs", "count_words", "table_to_docs"]
