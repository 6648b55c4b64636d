"""`distnlp annotate` on one process: every input row is annotated or rejected with a reason,
order and ids are kept, the output is a corpus training reads, and a killed job rerun gives
exactly one copy of every row."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from distnlp.annotate.jsonl_out import doc_to_json
from distnlp.annotate.run import annotate
from distnlp.annotate.settings import parse_overrides
from distnlp.cli.main import main
from distnlp.data.doc import Doc
from distnlp.data.stream import read_docs
from distnlp.errors import ConfigError
from distnlp.pipeline.pipeline import Pipeline

from .fixtures import PIPELINE


def _run(model: Path, inputs: dict[str, Path], out: Path, *overrides: str, jsonl: bool = False) -> dict:
    paths = [str(inputs["text"]), str(inputs["jsonl"]), str(inputs["corpus"])]
    return annotate(str(model), paths, str(out), parse_overrides(["rows_per_shard=4", *overrides]),
                    copy_format="jsonl" if jsonl else None)


def _rows(out: Path) -> list[dict]:
    meta = json.loads((out / "meta.json").read_text())
    return [row for s in meta["shards"] for row in pq.read_table(out / s["file"]).to_pylist()]


def test_every_row_is_annotated_or_rejected_in_order(tiny_model: Path, inputs: dict[str, Path], tmp_path: Path) -> None:
    meta = _run(tiny_model, inputs, tmp_path / "out")
    counts = meta["annotate"]
    assert (counts["rows_in"], counts["rows_out"], counts["rejected"]) == (12 + 6 + 9, 10 + 3 + 9, 2 + 3)
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert [(Path(r["input"]).name, r["reason"].split(" (")[0]) for r in rejects] == [
        ("texts.txt:4", "empty text"), ("texts.txt:8", "not UTF-8"),
        ("docs.jsonl:2", "malformed JSON"), ("docs.jsonl:3", 'no "text" string'), ("docs.jsonl:5", "empty line"),
    ]
    assert rejects[3]["id"] == "a-3"  # an id given with a rejected row is kept too
    # order and ids: text lines by line number, JSONL ids kept, corpus doc ids kept
    corpus_docs = list(read_docs(inputs["corpus"]))
    got = list(read_docs(tmp_path / "out"))
    ids = [d.doc_id for d in got]
    assert ids[:10] == [f"texts.txt:{n}" for n in (1, 2, 3, 5, 6, 7, 9, 10, 11, 12)]
    assert ids[10:13] == ["a-1", "docs.jsonl:4", "42"]
    assert ids[13:] == [d.doc_id for d in corpus_docs]
    assert [d.words for d in got[13:]] == [d.words for d in corpus_docs]
    # the same predictions as the pipeline itself, text tokenized as nlp() does
    nlp = Pipeline.from_disk(tiny_model)
    expected = nlp(inputs["text"].read_bytes().splitlines()[4].decode())  # line 5
    assert (got[3].words, got[3].tags, got[3].heads, got[3].ent_spans) == (expected.words, expected.tags, expected.heads, expected.ent_spans)
    assert all(d.tags is not None and d.pos is not None and d.heads is not None and d.ent_spans is not None for d in got)
    assert sum(s["rows"] for s in meta["shards"]) == meta["counts"]["docs"] == 22


def test_jsonl_output_has_character_offsets(tiny_model: Path, inputs: dict[str, Path], tmp_path: Path) -> None:
    meta = _run(tiny_model, inputs, tmp_path / "out", jsonl=True)
    records = [json.loads(line) for f in meta["annotate"]["copies"] for line in (tmp_path / "out" / f).read_text().splitlines()]
    docs = list(read_docs(tmp_path / "out"))
    assert [r["id"] for r in records] == [d.doc_id for d in docs]
    assert [(r["text"], r["tokens"], r["tags"], r["heads"]) for r in records] == [(d.text, d.words, d.tags, d.heads) for d in docs]
    # an untrained NER predicts few entities: check the offsets on a doc with known ones
    doc = Doc(words=["In", "New", "York", ",", "Ms.", "Lee"], spaces=[True, True, False, True, True, False], doc_id="x")
    doc.ent_spans = [(1, 3, "GPE"), (5, 6, "PERSON")]
    record = json.loads(doc_to_json(doc))
    assert [(record["text"][e["start"]:e["end"]], e["label"]) for e in record["ents"]] == [("New York", "GPE"), ("Lee", "PERSON")]
    assert "tags" not in record  # not predicted: left out, not empty


def test_spacy_output_holds_the_same_docs_as_a_docbin(tiny_model: Path, inputs: dict[str, Path], tmp_path: Path) -> None:
    spacy = pytest.importorskip("spacy")
    from spacy.tokens import DocBin

    meta = annotate(str(tiny_model), [str(inputs["text"]), str(inputs["corpus"])], str(tmp_path / "out"),
                    parse_overrides(["rows_per_shard=4"]), copy_format="spacy")
    files = meta["annotate"]["copies"]
    assert files and all(f.endswith(".spacy") for f in files) and len(files) == len(meta["shards"])
    vocab = spacy.blank("en").vocab
    got = [d for f in files for d in DocBin().from_disk(tmp_path / "out" / f).get_docs(vocab)]
    docs = list(read_docs(tmp_path / "out"))
    assert [[t.text for t in d] for d in got] == [d.words for d in docs]
    assert [[t.tag_ for t in d] for d in got] == [d.tags for d in docs]
    assert [[t.head.i for t in d] for d in got] == [d.heads for d in docs]
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in got] == [[tuple(e) for e in d.ent_spans] for d in docs]


def test_conllu_output_has_one_tree_per_sentence(tiny_model: Path, inputs: dict[str, Path], tmp_path: Path) -> None:
    from distnlp.scoring.conll18_raw import read_ud

    meta = annotate(str(tiny_model), [str(inputs["text"]), str(inputs["corpus"])], str(tmp_path / "out"),
                    parse_overrides(["rows_per_shard=4"]), copy_format="conllu")
    files = meta["annotate"]["copies"]
    assert files and all(f.endswith(".conllu") for f in files) and len(files) == len(meta["shards"])
    docs = list(read_docs(tmp_path / "out"))
    # read as the official scorer reads a file: it checks every sentence is one tree (one root, no cycle)
    words = [w.form for f in files for w in read_ud(tmp_path / "out" / f).words]
    assert words == [w.lower() for d in docs for w in d.words if w.strip()]
    texts = [line for f in files for line in (tmp_path / "out" / f).read_text(encoding="utf8").splitlines() if line.startswith("# text = ")]
    assert len(texts) == sum(1 for d in docs for sent in d.sents if any(t.text.strip() for t in sent))


def test_killed_job_rerun_gives_one_copy_of_every_row(tiny_model: Path, inputs: dict[str, Path], tmp_path: Path) -> None:
    straight = _run(tiny_model, inputs, tmp_path / "straight")
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "distnlp.cli.main", "annotate", str(tiny_model), str(inputs["text"]), str(inputs["jsonl"]),
           str(inputs["corpus"]), str(out), "rows_per_shard=4"]
    killed = subprocess.run([*cmd, "debug.exit_after_splits=3"], capture_output=True, text=True)
    assert killed.returncode == 3, killed.stderr
    assert not (out / "meta.json").exists()  # not a readable corpus until finished
    assert sorted(p.name for p in out.glob("shard-*.parquet")) == ["shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet"]
    # a kill between a shard's rename and its record: the shard is there, the split is not finished
    (out / ".annotate" / "split-00002.json").unlink()
    (out / ".shard-00003.parquet.tmp-0123abcd").write_bytes(b"half a shard")
    resumed = subprocess.run(cmd, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "3 of 8 splits already finished" not in resumed.stderr and "2 of 8 splits already finished" in resumed.stderr
    assert _rows(out) == _rows(tmp_path / "straight")
    ids = [r["doc_id"] for r in _rows(out)]
    assert len(ids) == len(set(ids)) == straight["annotate"]["rows_out"]
    assert json.loads((out / "meta.json").read_text())["annotate"] == straight["annotate"] | {"model": straight["annotate"]["model"]}
    assert not list(out.glob(".*.tmp-*"))


def test_output_trains(tiny_model: Path, inputs: dict[str, Path], tmp_path: Path) -> None:
    _run(tiny_model, inputs, tmp_path / "silver")
    silver = tmp_path / "silver"
    code = main(["train", PIPELINE, "encoder.width=32", f"corpus.train={silver}", f"corpus.dev={silver}",
                 f"training.output_dir={tmp_path / 'train'}", "training.max_steps=3", "training.eval_frequency=3"])
    assert code == 0
    assert (tmp_path / "train" / "model-last" / "model.safetensors").exists()


def test_bad_input_and_foreign_output_get_one_line_errors(tiny_model: Path, inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="batch.max_wrds: unknown annotate key .*did you mean 'batch.max_words'"):
        parse_overrides(["batch.max_wrds=10"])
    with pytest.raises(ConfigError, match="rows_per_shard: must be positive"):
        parse_overrides(["rows_per_shard=0"])
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["annotate", str(tiny_model), str(inputs["text"]), str(foreign)]) == 1
    assert main(["annotate", str(tiny_model), str(tmp_path / "missing.txt"), str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: ") and "notes.txt" in err[0] and "did not write" in err[0]
    assert err[1].startswith("error: ") and "missing.txt: input not found" in err[1]
    assert (foreign / "notes.txt").read_text() == "keep me" and sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_a_directory_of_text_files_reads_them_in_name_order(tiny_model: Path, inputs: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "b.jsonl").write_bytes(inputs["jsonl"].read_bytes())
    (folder / "a.txt").write_bytes(inputs["text"].read_bytes())
    (folder / ".hidden").write_text("not an input\n")
    meta = annotate(str(tiny_model), [str(folder)], str(tmp_path / "out"), parse_overrides(["rows_per_shard=4"]))
    assert [s["path"] for s in meta["sources"]] == [str(folder / "a.txt"), str(folder / "b.jsonl")]
    assert [s["kind"] for s in meta["sources"]] == ["text", "jsonl"]
    assert (meta["annotate"]["rows_in"], meta["annotate"]["rejected"]) == (12 + 6, 2 + 3)


def test_transformer_pipeline_annotates_a_long_doc_whole(inputs: dict[str, Path], tmp_path: Path) -> None:
    """A doc far longer than the transformer's 64-wordpiece window is windowed, not truncated:
    every word gets a tag, and the same tags as the pipeline gives it alone."""
    from distnlp.cli.compose import DEMO_DATA, compose_config
    from distnlp.training.labels import pipeline_labels

    config = compose_config(["encoder=tiny_transformer", "nlp.pipeline=[tagger,ner]"])
    model = tmp_path / "trf"
    Pipeline(config, pipeline_labels(config, str(DEMO_DATA / "train"))).to_disk(model)
    long_text = " ".join(line.decode() for line in inputs["text"].read_bytes().splitlines() if line and b"\xe9" not in line)
    texts = tmp_path / "long.txt"
    texts.write_text(long_text + "\nA short one.\n")
    annotate(str(model), [str(texts)], str(tmp_path / "out"), parse_overrides(["batch.max_words=50"]))
    got = list(read_docs(tmp_path / "out"))
    assert len(got[0]) > 150 and all(t is not None for t in got[0].tags)
    nlp = Pipeline.from_disk(model)
    alone = nlp(long_text)
    assert (got[0].words, got[0].tags, got[0].ent_spans) == (alone.words, alone.tags, alone.ent_spans)
    assert nlp.encoder.truncation["words_uncovered"] == 0 and nlp.encoder.truncation["words_truncated"] == 0, nlp.encoder.truncation


def test_progress_counts_words_per_second_and_is_quiet_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from distnlp.annotate.progress import Progress

    progress = Progress(total_rows=10, done_rows=4)
    progress.add_words(500)
    progress.add_rows(3)
    assert progress.bar.disable  # stderr is captured, not a terminal
    assert progress.words == 500 and progress.words_per_second > 0
    progress.close()
    assert capsys.readouterr().err == ""  # stderr is not a terminal here
