"""Opening a corpus reads one Parquet footer, not one per shard: meta.json lists each shard's row
groups (rows, words), so start-up does not grow with the number of shards. A shard's footer is
read when the shard is first read, and checked against meta.json then."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from distnlp.cli.compose import DEMO_DATA
from distnlp.data import shards
from distnlp.data.convert import write_corpus
from distnlp.data.stream import DocStream, read_docs
from distnlp.errors import CorpusError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    docs = list(read_docs(DEMO_DATA / "dev"))
    out = tmp_path_factory.mktemp("lazy") / "corpus"
    write_corpus(docs, out, shard_size=20, row_group_size=7, fmt="test")  # 6 shards
    return out


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = shards._read_footer

    def counted(fs, file, name):  # noqa: ANN001, ANN202
        calls.append(name)
        return real(fs, file, name)

    monkeypatch.setattr(shards, "_read_footer", counted)
    return calls


def test_open_reads_one_footer_and_units_match_the_footers(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(monkeypatch)
    info = shards.open_corpus(corpus)
    assert len(info.shards) == 6 and calls == ["shard-00000.parquet"]
    meta = json.loads((corpus / "meta.json").read_text())
    stripped = corpus.parent / "no_groups"
    shutil.copytree(corpus, stripped)
    for entry in meta["shards"]:
        entry.pop("row_groups")
    (stripped / "meta.json").write_text(json.dumps(meta))
    def shape(units: list) -> list:
        return [(u.index, u.shard, u.row_group, u.rows, u.words) for u in units]

    assert shape(shards.open_corpus(stripped).units) == shape(info.units)  # what the footers say, exactly
    assert len(calls) == 7  # a corpus written before: every footer, as before
    assert [d.doc_id for d in DocStream(corpus, seed=3)] == [d.doc_id for d in DocStream(stripped, seed=3)]


def test_a_damaged_shard_is_named_when_first_read(corpus: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(corpus, broken)
    shard = broken / "shard-00003.parquet"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    info = shards.open_corpus(broken, "corpus.train")  # only shard 0's footer is read here
    with pytest.raises(CorpusError, match=r"^corpus\.train: shard-00003\.parquet: corrupt or truncated") as err:
        list(read_docs(broken, label="corpus.train"))
    assert "\n" not in str(err.value)
    assert info.shards[3].metadata is None


def test_row_groups_that_disagree_with_meta_json_are_refused(corpus: Path, tmp_path: Path) -> None:
    edited = tmp_path / "edited"
    shutil.copytree(corpus, edited)
    meta = json.loads((edited / "meta.json").read_text())
    meta["shards"][2]["row_groups"][0]["words"] += 1
    (edited / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CorpusError, match=r"shard-00002\.parquet: row groups .* differ from meta\.json"):
        list(read_docs(edited))
