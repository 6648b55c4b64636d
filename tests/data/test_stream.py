"""DocStream: disjoint rank shares, per-epoch shuffling, exact resume, errors on bad corpora."""
from __future__ import annotations

import json
import tempfile
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distnlp.data.doc import Doc
from distnlp.data.schema import CORPUS_SCHEMA
from distnlp.data.shards import epoch_pieces, open_corpus, rank_span
from distnlp.data.stream import DocStream, count_words, read_docs
from distnlp.errors import ConfigError, CorpusError

FIELDS = ("words", "spaces", "doc_id", "sent_starts", "tags", "pos", "morphs", "lemmas", "deps", "heads", "ent_spans", "cats")

layouts = st.lists(st.lists(st.integers(1, 6), min_size=1, max_size=4), min_size=1, max_size=4)
hyp = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def ids(docs: Any) -> list[str]:
    return [d.doc_id for d in docs]


def same_doc(a: Doc, b: Doc) -> bool:
    return all(getattr(a, f) == getattr(b, f) for f in FIELDS)


# --- conversion -------------------------------------------------------------------------------


def test_read_docs_equals_from_row(small_corpus: tuple[Path, list[dict[str, Any]]]) -> None:
    root, rows = small_corpus
    docs = list(read_docs(root))
    assert len(docs) == len(rows)
    for doc, row in zip(docs, rows):
        assert same_doc(doc, Doc.from_row(row))
    assert count_words(root) == sum(len(r["words"]) for r in rows)


def test_only_requested_columns(small_corpus: tuple[Path, list[dict[str, Any]]]) -> None:
    root, rows = small_corpus
    docs = list(DocStream(root, columns=["tags"], shuffle=False))
    assert [d.tags for d in docs] == [r["tags"] for r in rows]
    assert all(d.pos is None and d.heads is None and d.doc_id is None for d in docs)
    assert [d.words for d in docs] == [r["words"] for r in rows]  # words/spaces always come
    with pytest.raises(ConfigError, match="taggs"):
        DocStream(root, columns=["taggs"])


def test_uri_and_stored_order(small_corpus: tuple[Path, list[dict[str, Any]]]) -> None:
    root, rows = small_corpus
    assert ids(DocStream(root.as_uri(), shuffle=False)) == [r["doc_id"] for r in rows]
    assert ids(read_docs(str(root))) == [r["doc_id"] for r in rows]


# --- rank shares ------------------------------------------------------------------------------


@hyp
@given(layout=layouts, world_size=st.integers(1, 5), epoch=st.integers(0, 2), seed=st.integers(0, 2**32),
       shuffle=st.booleans())
def test_ranks_partition_every_epoch(corpus_writer: Any, layout: list[list[int]], world_size: int, epoch: int, seed: int, shuffle: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = corpus_writer(Path(tmp), layout)
        by_id = {r["doc_id"]: r for r in rows}
        shares = []
        for rank in range(world_size):
            stream = DocStream(tmp, rank=rank, world_size=world_size, seed=seed, shuffle=shuffle)
            stream.set_epoch(epoch)
            docs = list(stream)
            assert all(same_doc(d, Doc.from_row(by_id[d.doc_id])) for d in docs)  # content intact
            shares.append(ids(docs))
            assert stream.epoch == epoch + 1
        everything = [i for share in shares for i in share]
        assert sorted(everything) == sorted(r["doc_id"] for r in rows)  # none twice, none dropped
        # Balanced by words (what training consumes), even with fewer row groups than ranks: a
        # share starts at the first doc whose first word is at or past its rank's r*T//W words.
        words = {r["doc_id"]: max(1, len(r["words"])) for r in rows}
        total, biggest = sum(words.values()), max(words.values())
        for rank, share in enumerate(shares):
            assert abs(sum(words[i] for i in share) - total / world_size) < biggest + 1, (rank, [len(s) for s in shares])


def test_rank_span_and_pieces_are_pure() -> None:
    assert [rank_span(10, r, 3) for r in range(3)] == [(0, 3), (3, 6), (6, 10)]
    with pytest.raises(ValueError):
        rank_span(10, 3, 3)


def test_each_row_group_read_by_few_ranks(corpus_writer: Any, tmp_path: Path) -> None:
    corpus_writer(tmp_path, [[10] * 8, [10] * 8])
    info = open_corpus(tmp_path)
    readers_of: dict[int, int] = {}
    for rank in range(4):
        for piece in epoch_pieces(info, seed=1, epoch=0, shuffle=True, rank=rank, world_size=4):
            readers_of[piece.unit.index] = readers_of.get(piece.unit.index, 0) + 1
    # no striping across ranks: only the (at most 3) row groups a word boundary falls in are shared
    assert len(readers_of) == 16 and max(readers_of.values()) <= 2
    assert sum(n - 1 for n in readers_of.values()) <= 3


def test_shuffle_differs_by_epoch_and_is_reproducible(corpus_writer: Any, tmp_path: Path) -> None:
    corpus_writer(tmp_path, [[8, 8, 8], [8, 8]])
    a, b = DocStream(tmp_path, seed=7), DocStream(tmp_path, seed=7)
    a0, a1 = ids(a), ids(a)
    assert a0 != a1 and sorted(a0) == sorted(a1)
    assert ids(b) == a0 and ids(b) == a1
    c = DocStream(tmp_path, seed=8)
    assert ids(c) != a0
    c.set_epoch(1)
    assert ids(c) != a1
    # rows inside a row group are shuffled too, not only the row-group order
    stored = ids(DocStream(tmp_path, shuffle=False))
    positions = [stored.index(i) for i in a0[:8]]
    assert positions != sorted(positions)


# --- cursor -----------------------------------------------------------------------------------


def _take(stream: DocStream, k: int) -> list[str]:
    """k docs from an epoch-mode stream, starting new epochs as needed (as a trainer does)."""
    out: list[str] = []
    while len(out) < k:
        before = len(out)
        for doc in stream:
            out.append(doc.doc_id)
            if len(out) == k:
                break
        if len(out) == before and len(stream) == 0:
            break
    return out


def _rest_until(stream: DocStream, end_epoch: int) -> list[str]:
    out: list[str] = []
    while stream.epoch < end_epoch:
        out.extend(ids(stream))
    return out


@hyp
@given(layout=layouts, world_size=st.integers(1, 4), data=st.data(), seed=st.integers(0, 1000),
       min_length=st.sampled_from([0, 3]))
def test_resume_mid_epoch_matches_uninterrupted(corpus_writer: Any, layout: list[list[int]], world_size: int, data: st.DataObject,
                                                 seed: int, min_length: int) -> None:
    rank = data.draw(st.integers(0, world_size - 1))
    with tempfile.TemporaryDirectory() as tmp:
        corpus_writer(Path(tmp), layout, seed=seed)
        kw = dict(rank=rank, world_size=world_size, seed=seed, min_length=min_length)
        full = DocStream(tmp, **kw)
        expected = _rest_until(full, 3)  # epochs 0, 1, 2
        k = data.draw(st.integers(0, len(expected)))
        first = DocStream(tmp, **kw)
        head = _take(first, k)
        state = json.loads(json.dumps(first.state_dict()))  # plain JSON round trip, as a checkpoint
        resumed = DocStream(tmp, **kw)
        resumed.load_state_dict(state)
        assert head + _rest_until(resumed, 3) == expected


@hyp
@given(layout=layouts, world_size=st.integers(1, 3), data=st.data(), seed=st.integers(0, 1000))
def test_resume_infinite(corpus_writer: Any, layout: list[list[int]], world_size: int, data: st.DataObject, seed: int) -> None:
    rank = data.draw(st.integers(0, world_size - 1))
    with tempfile.TemporaryDirectory() as tmp:
        corpus_writer(Path(tmp), layout, seed=seed)
        kw = dict(rank=rank, world_size=world_size, seed=seed, infinite=True)
        per_epoch = len(DocStream(tmp, **kw))
        n = 3 * per_epoch
        expected = ids(islice(DocStream(tmp, **kw), n))
        assert len(expected) == n
        k = data.draw(st.integers(0, n))
        first = DocStream(tmp, **kw)
        it = iter(first)
        head = ids(islice(it, k))
        resumed = DocStream(tmp, **kw)
        resumed.load_state_dict(first.state_dict())
        assert head + ids(islice(resumed, n - k)) == expected
        # the original iterator, continued, agrees too
        assert ids(islice(it, n - k)) == expected[k:]


def test_cursor_at_epoch_end_moves_to_next_epoch(small_corpus: tuple[Path, list[dict[str, Any]]]) -> None:
    root, rows = small_corpus
    stream = DocStream(root)
    it = iter(stream)
    for _ in range(len(rows)):
        next(it)
    assert stream.state_dict()["epoch"] == 1 and stream.state_dict()["position"] == 0
    with pytest.raises(StopIteration):
        next(it)
    assert stream.epoch == 1


def test_cursor_rejects_other_world_size(small_corpus: tuple[Path, list[dict[str, Any]]]) -> None:
    root, _ = small_corpus
    state = DocStream(root, world_size=2).state_dict()
    with pytest.raises(ConfigError, match="world_size"):
        DocStream(root, world_size=3).load_state_dict(state)


def test_length_filter_is_counted(small_corpus: tuple[Path, list[dict[str, Any]]]) -> None:
    root, rows = small_corpus
    stream = DocStream(root, min_length=3, max_length=8)
    docs = list(stream)
    assert all(3 <= len(d) <= 8 for d in docs)
    assert len(docs) + stream.skipped == len(rows)
    assert stream.skipped == sum(not 3 <= len(r["words"]) <= 8 for r in rows)


def test_more_ranks_than_docs_infinite_does_not_hang(corpus_writer: Any, tmp_path: Path) -> None:
    corpus_writer(tmp_path, [[2]])
    # balanced by docs (a mixture's infinite sub-streams): shares are 0,0,1,0,1 in every epoch
    empty = DocStream(tmp_path, rank=3, world_size=5, infinite=True, balance_by_words=False)
    assert len(empty) == 0 and list(empty) == []
    # balanced by words, a share can be empty in one epoch and not in the next: epoch by epoch
    shares = [[len(DocStream(tmp_path, rank=r, world_size=5, seed=s)) for r in range(5)] for s in range(8)]
    assert all(sum(share) == 2 for share in shares) and len({tuple(share) for share in shares}) > 1
    one = DocStream(tmp_path, rank=0, world_size=5)
    for epoch in range(8):
        assert len(list(one)) == sum(len(p) for p in one.pieces(epoch)) and one.epoch == epoch + 1


# --- bad corpora ------------------------------------------------------------------------------


def test_missing_meta(corpus_writer: Any, tmp_path: Path) -> None:
    corpus_writer(tmp_path, [[3]], write_meta=False)
    with pytest.raises(CorpusError, match="distnlp convert"):
        DocStream(tmp_path)
    with pytest.raises(CorpusError, match="distnlp convert"):
        open_corpus(tmp_path / "nowhere")


def test_truncated_shard_named(corpus_writer: Any, tmp_path: Path) -> None:
    corpus_writer(tmp_path, [[4, 4], [4, 4]])
    shard = tmp_path / "shard-00001.parquet"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(CorpusError, match=r"shard-00001\.parquet.*distnlp convert"):
        DocStream(tmp_path)


def test_corrupt_page_names_shard_and_row_group(corpus_writer: Any, tmp_path: Path) -> None:
    corpus_writer(tmp_path, [[50, 50]], min_words=20, max_words=30)
    shard = tmp_path / "shard-00000.parquet"
    md = pq.ParquetFile(shard).metadata
    col = md.row_group(1).column(2)  # leaves: doc_id, text, words, ...
    start = col.data_page_offset
    data = bytearray(shard.read_bytes())
    data[start:start + 64] = b"\xff" * 64
    shard.write_bytes(bytes(data))
    stream = DocStream(tmp_path, shuffle=False)  # the footer is intact: opening works
    with pytest.raises(CorpusError, match=r"shard-00000\.parquet row group 1"):
        list(stream)


def test_row_count_mismatch_with_meta(corpus_writer: Any, tmp_path: Path) -> None:
    corpus_writer(tmp_path, [[3], [3]])
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["shards"][1]["rows"] = 5
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CorpusError, match="shard-00001.parquet.*meta.json says 5"):
        open_corpus(tmp_path)
    (tmp_path / "shard-00001.parquet").unlink()
    with pytest.raises(CorpusError, match="shard-00001.parquet.*missing"):
        open_corpus(tmp_path)


def test_bad_row_named(corpus_writer: Any, row_maker: Any, tmp_path: Path) -> None:
    import random

    corpus_writer(tmp_path, [[3]])
    rows = [row_maker(i, 4, random.Random(i)) for i in range(5)]
    rows[3]["spaces"] = rows[3]["spaces"][:2]
    pq.write_table(pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA), tmp_path / "shard-00000.parquet")
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["shards"][0]["rows"] = 5
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CorpusError, match=r"shard-00000\.parquet row group 0 row 3"):
        list(read_docs(tmp_path))
