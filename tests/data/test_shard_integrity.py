"""A corpus shard changed in place (bytes overwritten, bits flipped, size unchanged) is never read
as other data: every row group's bytes are checked against the hash meta.json holds, every page
against its checksum, the footer against meta.json's row groups. Damage is one line naming the
shard (and row group), never a traceback."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from distnlp.cli.compose import DEMO_DATA
from distnlp.data.convert import write_corpus
from distnlp.data.doc import Doc
from distnlp.data.stream import DocStream, read_docs
from distnlp.errors import CorpusError

FIELDS = ("doc_id", "words", "spaces", "sent_starts", "tags", "pos", "morphs", "lemmas", "deps", "heads", "ent_spans", "cats")


def _content(docs: list[Doc]) -> list[tuple[Any, ...]]:
    return [tuple(getattr(d, f) for f in FIELDS) for d in docs]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("integrity") / "corpus"
    write_corpus(list(read_docs(DEMO_DATA / "dev")), out, shard_size=60, row_group_size=20, fmt="test")
    return out


def _damaged_copy(corpus: Path, to: Path, rnd: random.Random) -> str:
    shutil.copytree(corpus, to)
    shard = rnd.choice(sorted(to.glob("shard-*.parquet")))
    data = bytearray(shard.read_bytes())
    at = rnd.randrange(len(data))
    if rnd.random() < 0.5:
        data[at] ^= 1 << rnd.randrange(8)  # one bit flipped
    else:
        for i in range(at, min(len(data), at + rnd.randint(1, 16))):  # bytes overwritten
            data[i] = rnd.randrange(256)
    shard.write_bytes(bytes(data))  # same size
    return f"{shard.name}@{at}"


def test_random_damage_is_never_silent_and_never_a_traceback(corpus: Path, tmp_path: Path) -> None:
    reference = _content(list(read_docs(corpus)))
    rnd = random.Random(2026)
    refused = unchanged = 0
    for trial in range(300):
        copy = tmp_path / f"t{trial}"
        what = _damaged_copy(corpus, copy, rnd)
        try:
            got = _content(list(read_docs(copy, label="corpus.train")))
        except CorpusError as exc:
            assert "\n" not in str(exc) and str(exc).startswith("corpus.train: shard-"), (what, str(exc))
            refused += 1
        else:
            assert got == reference, f"{what}: damaged data read as valid"
            unchanged += 1  # bytes no reader uses (footer padding, statistics): same docs
        shutil.rmtree(copy)
    assert refused > 250, (refused, unchanged)


def test_a_changed_row_group_is_named(corpus: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from distnlp.data.shards import row_group_span

    copy = tmp_path / "c"
    shutil.copytree(corpus, copy)
    shard = copy / "shard-00001.parquet"
    start, stop = row_group_span(pq.read_metadata(shard), 1)
    data = bytearray(shard.read_bytes())
    data[(start + stop) // 2] ^= 0x10
    shard.write_bytes(bytes(data))
    stream = DocStream(copy, shuffle=False, label="corpus.train")
    with pytest.raises(CorpusError, match=r"^corpus\.train: shard-00001\.parquet row group 1: its bytes differ from the hash"):
        list(stream)


def test_a_corpus_written_before_hashes_still_has_page_checksums(corpus: Path, tmp_path: Path) -> None:
    copy = tmp_path / "old"
    shutil.copytree(corpus, copy)
    meta = json.loads((copy / "meta.json").read_text())
    for entry in meta["shards"]:
        for group in entry["row_groups"]:
            group.pop("sha256")
    (copy / "meta.json").write_text(json.dumps(meta))
    assert _content(list(read_docs(copy))) == _content(list(read_docs(corpus)))
    rnd = random.Random(7)
    reference = _content(list(read_docs(corpus)))
    silent = 0
    for trial in range(60):
        damaged = tmp_path / f"old{trial}"
        _damaged_copy(copy, damaged, rnd)
        try:
            silent += _content(list(read_docs(damaged))) != reference
        except CorpusError as exc:
            assert "\n" not in str(exc)
        shutil.rmtree(damaged)
    assert silent <= 6  # page checksums alone catch most; the hash in meta.json catches the rest
