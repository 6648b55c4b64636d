"""spaCy-style JSONL, raw text and CSV/TSV text classification; banking77 counts."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from distnlp.data.convert import ConvertReport, read_csv, read_jsonl, read_text, write_corpus
from distnlp.data.doc import Doc
from distnlp.errors import CorpusError

SHARED = Path(os.environ.get("DISTNLP_SHARED_DATA", Path(__file__).parents[2].parent / "shared" / "data"))


def _jsonl(tmp_path: Path, *objs: object, name: str = "x.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs), encoding="utf-8")
    return p


def test_jsonl_text_entities_cats_and_words(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path,
        {"text": "Apple hired Tim Cook.", "entities": [[0, 5, "ORG"], [12, 20, "PER"]], "cats": {"TECH": 1.0}},
        {"text": "Paris is nice", "spans": [{"start": 0, "end": 5, "label": "LOC"}], "id": 7},
        {"words": ["New", "York", "!"], "spaces": [True, False, False], "ents": [{"token_start": 0, "token_end": 1, "label": "LOC"}]},
        {"words": ["a", "b"]},
        "",
        {"text": "raw text only"},
    )
    d1, d2, d3, d4, d5 = read_jsonl(path)
    assert [(e.text, e.label_) for e in d1.ents] == [("Apple", "ORG"), ("Tim Cook", "PER")]
    assert d1.cats == {"TECH": 1.0} and d1.doc_id == "x:1"
    assert d2.ent_spans == [(0, 1, "LOC")] and d2.doc_id == "7" and d2.cats is None
    assert d3.text == "New York!" and d3.ent_spans == [(0, 2, "LOC")]
    assert d4.user_data["text_is_synthetic"] and d4.ent_spans is None
    assert d5.words == ["raw", "text", "only"] and d5.ent_spans is None
    meta = write_corpus(read_jsonl(path), tmp_path / "out", sources=[path], fmt="jsonl")
    assert meta["labels"] == {"ents": ["LOC", "ORG", "PER"], "cats": ["TECH"]}
    rows = pq.read_table(tmp_path / "out" / "shard-00000.parquet").to_pylist()
    assert rows[3]["text"] is None and rows[2]["text"] == "New York!"  # no made-up text for bare words
    assert Doc.from_row(rows[0]).cats == {"TECH": 1.0}


def test_misaligned_span_is_an_error_unless_alignment_mode(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, {"text": "ok"}, {"text": "Visit NewYork now", "entities": [[6, 9, "LOC"]]})
    with pytest.raises(CorpusError, match=r"x\.jsonl:2: entity \[6, 9\) LOC 'New' does not fall on token boundaries"):
        list(read_jsonl(path))
    (_, doc) = read_jsonl(path, alignment_mode="expand")
    assert [e.text for e in doc.ents] == ["NewYork"]
    report = ConvertReport()
    (_, doc) = read_jsonl(path, alignment_mode="contract", report=report)
    assert doc.ent_spans == [] and report.counts["ents_dropped_alignment"] == 1


@pytest.mark.parametrize(
    "line, problem",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"foo": 1}', 'neither "text" nor "words"'),
        ('{"text": "a b", "entities": [[0, 1, "X"], [0, 3, "Y"]]}', "entities overlap"),
        ('{"text": "a b", "entities": [[0, 9, "X"]]}', "runs past the end"),
        ('{"words": ["a"], "spaces": [true, false]}', '"spaces" must be'),
        ('{"text": "a", "cats": {"A": "yes"}}', '"cats" must map'),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = _jsonl(tmp_path, {"text": "fine"}, line)
    with pytest.raises(CorpusError, match=rf"x\.jsonl:2: .*{problem}"):
        list(read_jsonl(path))


def test_non_utf8_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(CorpusError, match=r"x\.jsonl:2: not valid UTF-8 \(byte 0xe9"):
        list(read_jsonl(path))


def test_plain_text_lines(tmp_path: Path) -> None:
    path = tmp_path / "raw.txt"
    path.write_text("First line here.\n\n  Second,  spaced.\r\n", encoding="utf-8")
    docs = list(read_text(path))
    assert [d.text for d in docs] == ["First line here.", "  Second,  spaced."]
    assert [d.doc_id for d in docs] == ["raw:1", "raw:3"]
    assert all(d.ent_spans is None and d.cats is None for d in docs)


def test_csv_one_hot_cats_over_all_labels(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b'text,category\r\nhi there,greet\r\n"where, is it?",ask\r\n"multi\r\nline",greet\r\n')
    docs = list(read_csv(path))
    assert [d.cats for d in docs] == [
        {"ask": 0.0, "greet": 1.0}, {"ask": 1.0, "greet": 0.0}, {"ask": 0.0, "greet": 1.0},
    ]
    assert docs[1].words == ["where", ",", "is", "it", "?"]
    assert [d.doc_id for d in docs] == ["x:2", "x:3", "x:4"]
    tsv = tmp_path / "y.tsv"
    tsv.write_text("label\ttext\npos\tgood\nneg\tbad\n", encoding="utf-8")
    assert [d.cats for d in read_csv(tsv)] == [{"neg": 0.0, "pos": 1.0}, {"neg": 1.0, "pos": 0.0}]


@pytest.mark.parametrize(
    "content, where, problem",
    [
        ("words,category\nhi,a\n", "x.csv:1", "no text column"),
        ("text,label\nhi,a\nbye,\n", "x.csv:3", "empty label"),
        ("text,label\nhi,a\nbye,b,c\n", "x.csv:3", "3 fields"),
    ],
)
def test_csv_errors(tmp_path: Path, content: str, where: str, problem: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"{where}: .*{problem}"):
        list(read_csv(path))


@pytest.mark.skipif(not (SHARED / "banking77" / "train_split.csv").exists(), reason="shared banking77 data not found")
def test_banking77_train_split(tmp_path: Path) -> None:
    src = SHARED / "banking77" / "train_split.csv"
    report = ConvertReport()  # shared by reader and writer: carries cats_exclusive into meta.json
    meta = write_corpus(read_csv(src, report=report), tmp_path / "bank", sources=[src], fmt="csv", shard_size=4000, report=report)
    assert meta["counts"]["docs"] == 9_000
    assert len(meta["labels"]["cats"]) == 77 and meta["cats_exclusive"] is True
    assert [s["rows"] for s in meta["shards"]] == [4000, 4000, 1000]
    assert meta["annotated"] == {"cats": 9_000}
    assert pq.ParquetFile(tmp_path / "bank" / "shard-00000.parquet").metadata.num_row_groups == 16  # 4000 / 256
