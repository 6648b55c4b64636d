"""Unknown is missing, never a label (docs/architecture.md, decision 7), end to end: convert -> Parquet ->
targets (no loss) -> scoring (not counted), for a dropped NER sentence and for single tokens."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from distnlp.cli.main import main
from distnlp.data.convert import ConvertReport, join_ner, read_conllu, read_iob, write_corpus
from distnlp.data.doc import Doc
from distnlp.data.schema import CORPUS_SCHEMA
from distnlp.data.stream import DocStream, read_docs
from distnlp.errors import CorpusError
from distnlp.models.heads.common import IGNORE
from distnlp.models.heads.ner import NERHead
from distnlp.pipeline.components import MorphologizerComponent, SenterComponent, TokenLabelComponent
from distnlp.scoring import score

# d1 = s1 (labelled) + s2 (its NER tags are invalid) + s3 (not in the NER file)
CONLLU = (
    "# newdoc id = d1\n# sent_id = s1\n"
    "1\tAnn\tAnn\tPROPN\tNNP\t_\t2\tnsubj\t_\t_\n2\tsang\tsing\tVERB\tVBD\t_\t0\troot\t_\t_\n\n"
    "# sent_id = s2\n"
    "1\tIn\tin\tADP\tIN\t_\t2\tcase\t_\t_\n2\tParis\tParis\tPROPN\tNNP\t_\t0\troot\t_\t_\n\n"
    "# sent_id = s3\n"
    "1\tBob\tBob\tPROPN\tNNP\t_\t2\tnsubj\t_\t_\n2\tcame\tcome\tVERB\tVBD\t_\t0\troot\t_\t_\n\n"
)
NER = (
    "# sent_id = s1\n1\tAnn\tB-PER\n2\tsang\tO\n\n"
    "# sent_id = s2\n1\tIn\tO\n2\tParis\tI-LOC\n\n"  # I- without B-: invalid IOB2
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _joined(tmp_path: Path) -> Doc:
    (doc,) = join_ner(read_conllu(_write(tmp_path, "x.conllu", CONLLU)), _write(tmp_path, "x.iob2", NER), skip_invalid=True)
    return doc


def test_dropped_ner_sentences_are_missing_not_O(tmp_path: Path) -> None:
    doc = _joined(tmp_path)
    assert doc.ent_spans == [(0, 1, "PER")]
    assert doc.ents_missing == [(2, 6)]  # s2 (invalid) and s3 (absent), merged
    assert [t.ent_iob_ for t in doc] == ["B", "O", "", "", "", ""]


def test_missing_survives_parquet_and_masks_the_ner_loss(tmp_path: Path) -> None:
    meta = write_corpus([_joined(tmp_path)], tmp_path / "c", fmt="conllu", sources=[])
    assert meta["missing_tokens"] == {"ents": 4} and meta["schema_version"] == 2
    (doc,) = read_docs(tmp_path / "c")
    assert doc.ent_spans == [(0, 1, "PER")] and doc.ents_missing == [(2, 6)]
    (only_ents,) = read_docs(tmp_path / "c", columns=["ents"])  # asking for ents brings the ranges
    assert only_ents.ents_missing == [(2, 6)]
    (streamed,) = DocStream(tmp_path / "c", shuffle=False)
    assert streamed.ents_missing == [(2, 6)]

    head = NERHead().initialize(4, ["LOC", "PER"])
    targets = head.targets([doc])
    o = head.label_to_id["O"]
    assert targets.tolist() == [head.label_to_id["U-PER"], o, IGNORE, IGNORE, IGNORE, IGNORE]
    scores = torch.randn(6, len(head.labels), requires_grad=True)
    loss, n = head.loss(scores, targets)
    loss.backward()
    assert n == 2 and scores.grad is not None
    assert torch.all(scores.grad[2:] == 0) and torch.any(scores.grad[:2] != 0)


def test_scorer_ignores_entities_in_missing_regions(tmp_path: Path) -> None:
    gold = _joined(tmp_path)
    pred = gold.copy_unannotated()
    pred.ent_spans = [(0, 1, "PER"), (3, 4, "LOC"), (4, 5, "PER")]  # the last two are in unknown land
    s = score([gold], [pred], ["ents"])
    assert (s["ents_p"], s["ents_r"]) == (1.0, 1.0)
    pred.ent_spans = [(0, 1, "PER"), (1, 3, "LOC")]  # overlaps a missing region: not counted either
    assert score([gold], [pred], ["ents"])["ents_p"] == 1.0
    pred.ent_spans = [(1, 2, "LOC")]  # a false positive where the data says "O"
    assert score([gold], [pred], ["ents"])["ents_p"] == 0.0


def test_conllu_underscore_token_is_missing(tmp_path: Path) -> None:
    text = (
        "# sent_id = a\n"
        "1\tgood\tgood\tADJ\tJJ\tDegree=Pos\t0\troot\t_\t_\n"
        "2\tpix\t_\tX\t_\t_\t_\t_\t_\t_\n"  # goeswith-style part: no lemma, xpos, head or deprel
        "3\t_\t_\tPUNCT\tNFP\t_\t1\tpunct\t_\t_\n\n"  # the word "_": its lemma "_" is real
    )
    (doc,) = read_conllu(_write(tmp_path, "u.conllu", text))
    assert doc.lemmas == ["good", None, "_"] and doc.tags == ["JJ", None, "NFP"]
    assert doc.heads == [0, None, 0] and doc.deps == ["root", None, "punct"]
    meta = write_corpus([doc], tmp_path / "c", fmt="conllu", sources=[])
    assert meta["labels"]["tags"] == ["JJ", "NFP"] and meta["missing_tokens"] == {"deps": 1, "heads": 1, "lemmas": 1, "tags": 1}
    assert meta["labels"]["morphologizer"] == ["POS=ADJ|Degree=Pos", "POS=PUNCT", "POS=X"]
    (back,) = read_docs(tmp_path / "c")
    assert back.tags == ["JJ", None, "NFP"] and back.heads == [0, None, 0]
    tagger = TokenLabelComponent("tagger", torch.nn.Identity(), ["JJ", "NFP"], {"column": "tags"})
    assert tagger.targets([back]).tolist() == [0, IGNORE, 1]
    back.pos = ["ADJ", None, "PUNCT"]
    morph = MorphologizerComponent("morphologizer", torch.nn.Identity(), meta["labels"]["morphologizer"], {})
    assert morph.targets([back]).tolist() == [0, IGNORE, 1]
    back.sent_starts = [True, None, False]
    senter = SenterComponent("senter", torch.nn.Identity(), ["I", "S"], {})
    assert senter.targets([back]).tolist() == [1, IGNORE, 0]
    pred = back.copy_unannotated()
    pred.tags, pred.lemmas = ["JJ", "NN", "NFP"], ["good", "pix", "_"]
    s = score([back], [pred], ["tag", "lemma"])
    assert (s["tag_acc"], s["lemma_acc"]) == (1.0, 1.0)  # the missing token is not scored


def test_standalone_iob_skip_invalid_keeps_document_boundaries(tmp_path: Path) -> None:
    text = (
        "# newdoc id = d1\n# sent_id = a\nAnn B-PER\nsang O\n\n"
        "# newdoc id = d2\n# sent_id = b\nin O\nParis I-LOC\n\n"  # invalid, and it opens d2
        "# sent_id = c\nBob B-PER\ncame O\n\n"
    )
    path = _write(tmp_path, "n.iob2", text)
    docs = list(read_iob(path, skip_invalid=True))
    assert [d.doc_id for d in docs] == ["d1", "d2"]
    assert docs[1].words == ["in", "Paris", "Bob", "came"]
    assert docs[1].ent_spans == [(2, 3, "PER")] and docs[1].ents_missing == [(0, 2)]
    # a comment-only `# newdoc` block still opens the next doc
    lone = _write(tmp_path, "m.iob2", "# newdoc id = d1\n\n# sent_id = a\nA O\n\n# newdoc id = d2\n\n# sent_id = b\nB O\n")
    assert [d.doc_id for d in read_iob(lone)] == ["d1", "d2"]


def test_empty_or_unrelated_ner_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conllu = _write(tmp_path, "x.conllu", CONLLU)
    empty = _write(tmp_path, "empty.iob2", "")
    assert main(["convert", str(conllu), str(tmp_path / "out"), "--ner", str(empty)]) == 1
    assert "empty.iob2: has no sentences" in capsys.readouterr().err
    other = _write(tmp_path, "other.iob2", "# sent_id = zz\n1\tHi\tO\n\n")
    with pytest.raises(CorpusError, match="labels none of the input's sentences"):
        list(join_ner(read_conllu(conllu), other, skip_invalid=True, report=ConvertReport()))
    assert main(["convert", str(conllu), str(tmp_path / "out"), "--ner", str(other), "--skip-invalid"]) == 1
    assert not (tmp_path / "out").exists()


def test_version_1_shards_still_read(tmp_path: Path) -> None:
    old_schema = pa.schema([f for f in CORPUS_SCHEMA if f.name != "ents_missing"])
    root = tmp_path / "old"
    root.mkdir()
    row = {"doc_id": "x", "text": "Ann sang", "words": ["Ann", "sang"], "spaces": [True, False],
           "ents": [{"start": 0, "end": 1, "label": "PER"}], "tags": ["NNP", "VBD"]}
    pq.write_table(pa.Table.from_pylist([row], schema=old_schema), root / "shard-00000.parquet")
    (root / "meta.json").write_text(json.dumps({"schema_version": 1, "shards": [{"file": "shard-00000.parquet", "rows": 1}]}))
    for doc in (*read_docs(root), *DocStream(root, shuffle=False), *read_docs(root, columns=["ents"])):
        assert doc.ent_spans == [(0, 1, "PER")] and doc.ents_missing is None
    assert [t.ent_iob_ for t in next(iter(read_docs(root)))] == ["B", "O"]


def test_writer_rejects_entities_inside_missing_ranges(tmp_path: Path) -> None:
    doc = Doc(words=["a", "b"], spaces=[True, False], doc_id="d", ent_spans=[(0, 1, "PER")], ents_missing=[(0, 2)])
    with pytest.raises(CorpusError, match="overlaps the range"):
        write_corpus([doc], tmp_path / "c", fmt="jsonl", sources=[])
