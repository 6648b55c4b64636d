"""Start-up that does not grow with the corpus: the writers store every label inventory (the
morphologizer's labels, the lemma edit trees with their counts) in meta.json, training reads them
from there and no shard, a corpus written before gets one line naming `distnlp corpus-labels`,
and that command stores what a fresh conversion would."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import distnlp.training.labels as labels_module
from distnlp.annotate.output import _merge_stats, _stats_to_json
from distnlp.cli.compose import DEMO_DATA, compose_config
from distnlp.cli.main import main
from distnlp.data.convert import write_corpus
from distnlp.data.convert.writer import _meta, _Stats
from distnlp.data.convert.report import ConvertReport
from distnlp.data.doc import Doc
from distnlp.data.stream import read_docs
from distnlp.errors import CorpusError
from distnlp.training.labels import lemma_tree_counts, lemma_tree_labels, morph_labels, pipeline_labels
from tests.pipeline.conftest import first_sentences

MORPH_AND_LEMMAS = ["nlp.pipeline=[tagger,morphologizer,lemmatizer]"]


def _docs(start: int, n: int) -> list[Doc]:
    """Short demo docs; some lose their lemmas (whole doc or one token) as partial corpora do."""
    docs = [first_sentences(d, 4) for d in list(read_docs(DEMO_DATA / "train"))[start:start + n]]
    for i, doc in enumerate(docs):
        if i % 5 == 1:
            doc.lemmas = None
        elif i % 5 == 2 and doc.lemmas:
            doc.lemmas[0] = None
        elif i % 5 == 3 and doc.morphs:
            doc.morphs[-1] = None
    return docs


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("labels")
    # several shards each: the stored counts must cover every one
    write_corpus(_docs(0, 30), root / "a", shard_size=7, row_group_size=3, fmt="conllu", sources=[])
    write_corpus(_docs(100, 20), root / "b", shard_size=6, fmt="conllu", sources=[])
    return [str(root / "a"), str(root / "b")]


def _meta_of(path: str) -> dict[str, Any]:
    return json.loads((Path(path) / "meta.json").read_text(encoding="utf-8"))


def _no_shard_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("start-up read a shard for labels")

    monkeypatch.setattr(labels_module, "read_docs", refuse)


def test_stored_inventories_equal_the_full_scans(corpora: list[str]) -> None:
    for path in corpora:
        meta = _meta_of(path)
        assert meta["labels"]["morphologizer"] == morph_labels(path)
        assert meta["lemma_trees"] == dict(lemma_tree_counts(path)) and meta["lemma_trees"]
    for min_tree_freq in (1, 3, 7):
        config = compose_config([*MORPH_AND_LEMMAS, f"components.lemmatizer.min_tree_freq={min_tree_freq}"])
        for paths in (corpora[0], corpora, corpora[::-1]):
            labels = pipeline_labels(config, paths)
            assert labels["lemmatizer"] == lemma_tree_labels(paths, min_tree_freq)  # counts summed, same order
            assert set(labels["morphologizer"]) == set(morph_labels(paths))
    # over both corpora some trees pass min_tree_freq that pass it in neither alone
    config = compose_config([*MORPH_AND_LEMMAS, "components.lemmatizer.min_tree_freq=3"])
    both = set(pipeline_labels(config, corpora)["lemmatizer"])
    assert both > set(pipeline_labels(config, corpora[0])["lemmatizer"]) | set(pipeline_labels(config, corpora[1])["lemmatizer"])


def test_start_up_reads_no_shard(corpora: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    config = compose_config([])  # the default pipeline: every component
    expected = pipeline_labels(config, corpora)
    _no_shard_reads(monkeypatch)
    assert pipeline_labels(config, corpora) == expected
    assert expected["morphologizer"] and expected["lemmatizer"]
    assert pipeline_labels(config, str(DEMO_DATA / "train"))["lemmatizer"][:1] == ['["m",0,0,null,null]']  # shipped demo too


def _as_if_written_before(src: str, dst: Path) -> str:
    """A copy of the corpus whose meta.json lacks what distnlp did not store before."""
    dst.mkdir()
    for entry in Path(src).iterdir():
        (dst / entry.name).write_bytes(entry.read_bytes())
    meta = _meta_of(src)
    del meta["lemma_trees"], meta["labels"]["morphologizer"]
    (dst / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return str(dst)


@pytest.mark.parametrize(("pipeline", "missing"), [("[tagger,lemmatizer]", "lemma edit-tree counts"), ("[morphologizer]", "morphologizer labels")])
def test_a_corpus_written_before_gets_one_line_naming_the_command(
    corpora: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pipeline: str, missing: str
) -> None:
    old = _as_if_written_before(corpora[1], tmp_path / "old")
    _no_shard_reads(monkeypatch)  # no scan on every rank as a fallback either
    with pytest.raises(CorpusError) as info:
        pipeline_labels(compose_config([f"nlp.pipeline={pipeline}"]), [corpora[0], old])
    message = str(info.value)
    assert message == (f"{old}: meta.json has no {missing} (written before distnlp stored them) "
                       f"(run `distnlp corpus-labels {old}` once (or re-run distnlp convert))")
    assert "\n" not in message
    assert pipeline_labels(compose_config(["nlp.pipeline=[tagger]"]), old)["tagger"]  # other heads need nothing new


def test_distnlp_train_on_a_corpus_written_before_prints_the_fix(corpora: list[str], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    old = _as_if_written_before(corpora[1], tmp_path / "old")
    code = main(["train", f"corpus.train={old}", f"corpus.dev={old}", f"training.output_dir={tmp_path / 'out'}", "training.max_steps=1"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0 and f"`distnlp corpus-labels {old}`" in err and "Traceback" not in err


def test_a_corpus_without_lemmas_needs_no_tree_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _docs(0, 3)
    for doc in docs:
        doc.lemmas = None
    write_corpus(docs, tmp_path / "nolemmas", fmt="conllu", sources=[])
    assert _meta_of(str(tmp_path / "nolemmas"))["lemma_trees"] == {}
    meta = _meta_of(str(tmp_path / "nolemmas"))
    del meta["lemma_trees"]  # written before: annotated counts no lemmas, so nothing is missing
    (tmp_path / "nolemmas" / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    _no_shard_reads(monkeypatch)
    assert pipeline_labels(compose_config(["nlp.pipeline=[tagger,lemmatizer]"]), str(tmp_path / "nolemmas"))["lemmatizer"] == []


def test_corpus_labels_stores_what_convert_would(corpora: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    old = _as_if_written_before(corpora[0], tmp_path / "old")
    shards = {p.name: p.read_bytes() for p in Path(old).glob("shard-*.parquet")}
    assert main(["corpus-labels", old]) == 0
    assert "lemma edit trees" in capsys.readouterr().out
    # byte for byte the meta.json a fresh conversion writes; shards untouched, no temporary file left
    assert (Path(old) / "meta.json").read_bytes() == (Path(corpora[0]) / "meta.json").read_bytes()
    assert {p.name: p.read_bytes() for p in Path(old).glob("shard-*.parquet")} == shards
    assert sorted(p.name for p in Path(old).iterdir()) == sorted(["meta.json", *shards])
    assert main(["corpus-labels", old]) == 0 and "already has" in capsys.readouterr().out
    config = compose_config(MORPH_AND_LEMMAS)
    expected = pipeline_labels(config, corpora[0])
    _no_shard_reads(monkeypatch)
    assert pipeline_labels(config, old) == expected


def test_corpus_labels_on_a_directory_that_is_not_a_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["corpus-labels", str(tmp_path)]) == 1
    assert "not a converted corpus" in capsys.readouterr().err


def test_annotate_splits_merge_to_the_counts_of_one_pass() -> None:
    """annotate writes a stats record per split and meta.json from their merge: the tree counts
    must add up to what one writer over all the docs stores."""
    docs = _docs(0, 12)
    whole = _Stats()
    for doc in _docs(0, 12):
        whole.add(doc)
    merged = _Stats()
    for part in (docs[:5], docs[5:]):
        split = _Stats()
        for doc in part:
            split.add(doc)
        _merge_stats(merged, json.loads(json.dumps(_stats_to_json(split))))  # as the record file holds it
    meta = _meta(merged, [], [], "annotate", ConvertReport())
    assert meta["lemma_trees"] == _meta(whole, [], [], "annotate", ConvertReport())["lemma_trees"] != {}
    # a split recorded by an older distnlp: the counts are left out (training then names the fix), never short
    old_record = _stats_to_json(whole)
    del old_record["lemma_trees"]
    _merge_stats(merged, old_record)
    assert "lemma_trees" not in _meta(merged, [], [], "annotate", ConvertReport())
