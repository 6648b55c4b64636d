"""CoNLL-U reader, writer, CLI; full EWT counts and the shipped demo corpus (determinism)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from distnlp.cli.convert import add_parser, run
from distnlp.data.convert import ConvertReport, read_conllu, write_corpus
from distnlp.data.doc import Doc
from distnlp.errors import CorpusError

SHARED = Path(os.environ.get("DISTNLP_SHARED_DATA", Path(__file__).parents[2].parent / "shared" / "data"))
DEMO = Path(__file__).parents[2] / "distnlp" / "demo_data"

HEADER = "# newdoc id = d1\n# sent_id = s1\n# text = I don't know.\n"
SENT1 = (
    "1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "1\tdo\tdo\tAUX\tVBP\tMood=Ind\t3\taux\t_\t_\n"
    "2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_\n"
    "3\tknow\tknow\tVERB\tVB\tVerbForm=Inf\t0\troot\t_\tSpaceAfter=No\n"
    "4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_\n"
)
SENT2 = (
    "# sent_id = s2\n"
    "1\tOk\tok\tINTJ\tUH\t_\t0\troot\t_\t_\n"
    "1.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t1:orphan\t_\n"
    "2\t!\t!\tPUNCT\t.\t_\t1\tpunct\t_\t_\n"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distnlp")
    add_parser(parser.add_subparsers(dest="command"))
    return parser


def _convert(*argv: str) -> int:
    return run(_parser().parse_args(["convert", *argv]))


def _write(tmp_path: Path, text: str, name: str = "x.conllu") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_reads_words_spaces_heads_and_multiword_tokens(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + SENT1 + "\n" + SENT2 + "\n")
    (doc,) = read_conllu(path)
    assert doc.doc_id == "d1"
    assert doc.words == ["do", "n't", "know", ".", "Ok", "!"]  # range line and empty node skipped
    assert doc.text == "don't know. Ok !"
    assert doc.spaces == [False, True, False, True, True, False]
    assert doc.sent_starts == [True, False, False, False, True, False]
    assert doc.heads == [2, 2, 2, 2, 4, 4]  # absolute; roots point to themselves
    assert doc.deps == ["aux", "advmod", "root", "punct", "root", "punct"]
    assert doc.tags == ["VBP", "RB", "VB", ".", "UH", "."] and doc.pos[0] == "AUX"
    assert doc.morphs == ["Mood=Ind", "", "VerbForm=Inf", "", "", ""]
    assert doc.lemmas[1] == "not"
    assert doc.user_data["sent_ids"] == ["s1", "s2"] and doc.user_data["sent_offsets"] == [0, 4]


def test_multiword_token_space_after_applies_to_last_word(tmp_path: Path) -> None:
    text = "# sent_id = a\n1-2\tcannot\t_\t_\t_\t_\t_\t_\t_\tSpaceAfter=No\n" + \
        "1\tcan\tcan\tAUX\tMD\t_\t0\troot\t_\t_\n2\tnot\tnot\tPART\tRB\t_\t1\tadvmod\t_\t_\n3\t!\t!\tPUNCT\t.\t_\t1\tpunct\t_\t_\n"
    (doc,) = read_conllu(_write(tmp_path, text))
    assert doc.text == "cannot!"


def test_doc_boundaries_newdoc_nsents_and_none(tmp_path: Path) -> None:
    both = HEADER + SENT1 + "\n" + SENT2 + "\n" + "# newdoc id = d2\n" + SENT2.replace("s2", "s3") + "\n"
    path = _write(tmp_path, both)
    assert [d.doc_id for d in read_conllu(path)] == ["d1", "d2"]
    assert [len(d.user_data["sent_ids"]) for d in read_conllu(path, n_sents=2)] == [2, 1]
    no_newdoc = _write(tmp_path, SENT2 + "\n" + SENT2.replace("s2", "s3") + "\n", "n.conllu")
    assert [d.doc_id for d in read_conllu(no_newdoc)] == ["s2", "s3"]  # one doc per sentence


@pytest.mark.parametrize(
    "bad_line, line_no, problem",
    [
        ("4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\n", 8, "10 tab-separated columns"),
        ("4\t.\t.\tPUNCT\t.\t_\tx\tpunct\t_\t_\n", 8, "not an integer"),
        ("7\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_\n", 8, "out of sequence"),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, bad_line: str, line_no: int, problem: str) -> None:
    # malformed lines drop the sentence under --skip-invalid; a bad tree (a HEAD out of range, a
    # cycle...) keeps it with the tree missing: tests/data/test_conllu_trees.py
    lines = (HEADER + SENT1).splitlines(keepends=True)
    lines[-1] = bad_line
    path = _write(tmp_path, "".join(lines) + "\n" + SENT2)
    with pytest.raises(CorpusError, match=rf"x\.conllu:{line_no}: .*{problem}"):
        list(read_conllu(path))
    report = ConvertReport()
    docs = list(read_conllu(path, skip_invalid=True, report=report))
    assert report.counts["skipped_sentences"] == 1
    assert [d.user_data["sent_ids"] for d in docs] == [["s2"]]


def test_non_utf8_names_line(tmp_path: Path) -> None:
    path = tmp_path / "x.conllu"
    path.write_bytes((HEADER + SENT1).encode() + b"# bad \xff\n")
    with pytest.raises(CorpusError, match=r"x\.conllu:9: not valid UTF-8"):
        list(read_conllu(path))


def test_writer_meta_determinism_and_atomicity(tmp_path: Path) -> None:
    src = _write(tmp_path, HEADER + SENT1 + "\n" + SENT2 + "\n")
    out1, out2 = tmp_path / "a", tmp_path / "b"
    meta = write_corpus(read_conllu(src), out1, sources=[src], fmt="conllu", shard_size=1)
    write_corpus(read_conllu(src), out2, sources=[src], fmt="conllu", shard_size=1)
    assert meta["counts"] == {"docs": 1, "sentences": 2, "words": 6, "entities": 0}
    assert meta["labels"]["pos"] == ["AUX", "INTJ", "PART", "PUNCT", "VERB"]
    assert meta["labels"]["morphs"] == ["", "Mood=Ind", "VerbForm=Inf"]
    assert "ents" not in meta["labels"] and meta["annotated"]["heads"] == 1
    assert meta["sources"][0]["bytes"] == src.stat().st_size and len(meta["sources"][0]["sha256"]) == 64
    assert (out1 / "shard-00000.parquet").read_bytes() == (out2 / "shard-00000.parquet").read_bytes()
    assert json.loads((out1 / "meta.json").read_text()) == meta
    (doc,) = [Doc.from_row(r) for r in pq.read_table(out1 / "shard-00000.parquet").to_pylist()]
    assert doc.words == ["do", "n't", "know", ".", "Ok", "!"] and doc.heads == [2, 2, 2, 2, 4, 4]
    # never overwritten without overwrite=True; nothing half-written is left behind
    with pytest.raises(CorpusError, match="--overwrite"):
        write_corpus(read_conllu(src), out1, sources=[src], fmt="conllu")

    def failing() -> object:
        yield from read_conllu(src)
        raise CorpusError("x", "boom")

    with pytest.raises(CorpusError, match="boom"):
        write_corpus(failing(), out1, sources=[src], fmt="conllu", overwrite=True)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "x.conllu"]
    assert (out1 / "shard-00000.parquet").read_bytes() == (out2 / "shard-00000.parquet").read_bytes()
    write_corpus(read_conllu(src), out1, sources=[src], fmt="conllu", overwrite=True)


def test_empty_input_is_an_error(tmp_path: Path) -> None:
    src = _write(tmp_path, "# just a comment\n")
    with pytest.raises(CorpusError, match="no documents"):
        write_corpus(read_conllu(src), tmp_path / "out", sources=[src], fmt="conllu")
    assert not (tmp_path / "out").exists()


def test_cli_summary_errors_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path, HEADER + SENT1 + "\n" + SENT2 + "\n")
    out = tmp_path / "out"
    assert _convert(str(src), str(out)) == 0
    assert "1 docs, 2 sentences, 6 words" in capsys.readouterr().out
    assert _convert(str(src), str(out)) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert _convert(str(tmp_path / "missing.conllu"), str(tmp_path / "o2")) == 1
    assert "missing.conllu: file not found" in capsys.readouterr().err
    assert _convert(str(tmp_path / "x.weird"), str(tmp_path / "o3")) == 1
    assert "--format" in capsys.readouterr().err
    # as a module, in its own process: one line on stderr, no traceback
    proc = subprocess.run([sys.executable, "-m", "distnlp.cli.convert", str(src), str(out)], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "meta.json" in proc.stderr


def _same_corpus(made: Path, shipped: Path, counts: tuple[int, int, int]) -> None:
    meta = json.loads((made / "meta.json").read_text())
    c = meta["counts"]
    assert (c["docs"], c["sentences"], c["words"]) == counts
    assert meta == json.loads((shipped / "meta.json").read_text())
    for shard in meta["shards"]:
        assert (made / shard["file"]).read_bytes() == (shipped / shard["file"]).read_bytes()


DEMO_COUNTS = {"train": (540, 12_544, 204_577), "dev": (106, 651, 8304)}


def test_demo_dev_reconverts_to_identical_shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DEMO)  # the shipped meta.json names its sources relative to demo_data/
    assert _convert("demo-dev.conllu", str(tmp_path / "dev"), "--ner", "demo-dev.iob2") == 0
    _same_corpus(tmp_path / "dev", DEMO / "dev", DEMO_COUNTS["dev"])
    # small enough to ship: the train text is not shipped, only its shards (README.md there)
    size = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert size < 4_000_000


def test_demo_corpus_is_remade_by_its_recipe(tmp_path: Path) -> None:
    if not (SHARED / "ud-english-ewt" / "en_ewt-ud-train.conllu").exists():
        pytest.skip("shared EWT data not found")
    script = DEMO / "make_demo_corpus.py"
    proc = subprocess.run([sys.executable, str(script), str(SHARED / "ud-english-ewt"), str(SHARED / "uner-english-ewt"), str(tmp_path)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(DEMO.parents[1])})
    assert proc.returncode == 0, proc.stderr
    for split in ("train", "dev"):
        _same_corpus(tmp_path / split, DEMO / split, DEMO_COUNTS[split])
    for name in ("demo-dev.conllu", "demo-dev.iob2"):
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes()


needs_ewt = pytest.mark.skipif(
    not (SHARED / "ud-english-ewt" / "en_ewt-ud-train.conllu").exists(), reason="shared EWT data not found"
)


@needs_ewt
def test_full_ewt_train_with_draft_uner(tmp_path: Path) -> None:
    ner = SHARED / "uner-english-ewt" / "draft-0c7ce0d" / "en_ewt-ud-train.iob2"
    out = tmp_path / "train"
    # 6 draft sentences are tokenized so differently that they cannot be re-aligned: drop their labels
    assert _convert(str(SHARED / "ud-english-ewt" / "en_ewt-ud-train.conllu"), str(out), "--ner", str(ner), "--skip-invalid") == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"]["docs"] == 540
    assert meta["counts"]["sentences"] == 12_544 and meta["counts"]["words"] == 204_577
    assert meta["labels"]["ents"] == ["LOC", "ORG", "PER"]
    assert len(meta["labels"]["pos"]) == 17 and len(meta["labels"]["deps"]) == 51 and len(meta["labels"]["tags"]) == 49
    cc = meta["conversion_counts"]
    assert cc["ner_missing_sentences"] == 1  # reviews-275919-0013 is not in UNER
    assert cc["ner_labelled_sentences"] + cc["ner_mismatched_sentences"] + cc["ner_missing_sentences"] == 12_544
    table = pq.read_table(out / "shard-00000.parquet")
    assert sum(len(w) for w in table.column("words").to_pylist()) == 204_577
    # the 7 sentences without usable NER labels are missing (46 tokens), not trained as "O";
    # each missing range is whole sentences
    assert meta["missing_tokens"]["ents"] == 46
    for row in table.select(["sent_starts", "ents_missing"]).to_pylist():
        for r in row["ents_missing"] or ():
            starts = row["sent_starts"]
            assert starts[r["start"]] and (r["end"] == len(starts) or starts[r["end"]])


@needs_ewt
def test_full_ewt_dev_with_final_uner(tmp_path: Path) -> None:
    out = tmp_path / "dev"
    ner = SHARED / "uner-english-ewt" / "en_ewt-ud-dev.iob2"
    assert _convert(str(SHARED / "ud-english-ewt" / "en_ewt-ud-dev.conllu"), str(out), "--ner", str(ner)) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["counts"]["sentences"], meta["counts"]["words"]) == (2_001, 25_147)
    assert meta["counts"]["entities"] == 966  # LOC 399 + PER 343 + ORG 224, as the UNER README says
    assert meta["conversion_counts"]["ner_realigned_sentences"] == 3
