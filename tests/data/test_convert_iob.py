"""IOB tags to spans, draft-label mapping, standalone IOB corpora and the sent_id join to CoNLL-U."""
from __future__ import annotations

from pathlib import Path

import pytest

from distnlp.data.convert import ConvertReport, join_ner, read_conllu, read_iob, tags_to_spans
from distnlp.errors import CorpusError

CONLLU = (
    "# newdoc id = d1\n# sent_id = s1\n"
    "1\tAl\tAl\tPROPN\tNNP\t_\t0\troot\t_\tSpaceAfter=No\n"
    "2\t-\t-\tPUNCT\tHYPH\t_\t3\tpunct\t_\tSpaceAfter=No\n"
    "3\tZaman\tZaman\tPROPN\tNNP\t_\t1\tflat\t_\t_\n"
    "4\tsaid\tsay\tVERB\tVBD\t_\t1\tparataxis\t_\t_\n\n"
    "# sent_id = s2\n"
    "1\t#audiobooks\t#audiobooks\tNOUN\tNN\t_\t0\troot\t_\t_\n"
    "2\tin\tin\tADP\tIN\t_\t3\tcase\t_\t_\n"
    "3\tParis\tParis\tPROPN\tNNP\t_\t1\tnmod\t_\t_\n\n"
)
# UNER: other sentence order; `#audiobooks` split in two; draft 3-column O lines, B-OTH, B-O
IOB = (
    "# sent_id = s2\n# text = #audiobooks in Paris\n"
    "1\t#\tO\n2\taudiobooks\tB-OTH\t-\tx\n3\tin\tO\n4\tParis\tB-LOC\t-\tx\n\n"
    "# newdoc id = d1\n# sent_id = s1\n# text = Al-Zaman said\n"
    "1\tAl\tB-ORG\t-\tx\n2\t-\tI-ORG\t-\tx\n3\tZaman\tI-ORG\t-\tx\n4\tsaid\tB-O\t-\tx\n\n"
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    "tags, spans",
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [(0, 2, "PER"), (3, 4, "LOC")]),
        (["B-PER", "B-PER", "I-PER"], [(0, 1, "PER"), (1, 3, "PER")]),
        (["U-PER", "B-ORG", "I-ORG", "L-ORG", "O"], [(0, 1, "PER"), (1, 4, "ORG")]),  # BILUO
        (["S-PER", "B-ORG", "E-ORG"], [(0, 1, "PER"), (1, 3, "ORG")]),  # BIOES
        (["B-OTH", "I-OTH", "B-O", "I-O", "B-PER"], [(4, 5, "PER")]),  # draft labels dropped
        (["O", "O"], []),
    ],
)
def test_tags_to_spans(tags: list[str], spans: list[tuple[int, int, str]]) -> None:
    assert tags_to_spans(tags) == spans


def test_drop_labels_is_an_option() -> None:
    assert tags_to_spans(["B-OTH", "I-OTH"], drop_labels=()) == [(0, 2, "OTH")]


def test_strict_iob2_error_names_file_and_line_and_repair(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.iob2", "# sent_id = a\n1\tSan\tI-LOC\t-\tx\n2\tJose\tI-LOC\t-\tx\n\n")
    with pytest.raises(CorpusError, match=r"bad\.iob2:2: tag 'I-LOC' continues an entity"):
        list(read_iob(path))
    (doc,) = read_iob(path, repair=True)
    assert doc.ent_spans == [(0, 2, "LOC")]
    report = ConvertReport()
    (doc,) = read_iob(path, skip_invalid=True, report=report)
    assert doc.words == ["San", "Jose"] and doc.ent_spans is None  # kept; entities unknown, not "none"
    assert report.counts["ner_invalid_sentences"] == 1
    with pytest.raises(CorpusError, match=r"bad\.iob2:2: bad NER tag 'X-LOC'"):
        tags_to_spans(["X-LOC"], path="bad.iob2", lines=[2])


def test_standalone_iob_corpus(tmp_path: Path) -> None:
    path = _write(tmp_path, "ner.iob2", IOB)
    docs = list(read_iob(path))
    assert [d.doc_id for d in docs] == ["s2", "d1"]  # before any newdoc: one doc per sentence
    assert docs[1].words == ["Al", "-", "Zaman", "said"]
    assert docs[1].text == "Al-Zaman said"  # spaces restored from `# text`
    assert docs[1].ent_spans == [(0, 3, "ORG")]
    assert docs[0].ent_spans == [(3, 4, "LOC")]
    conll = _write(tmp_path, "c.iob", "EU B-ORG\nrejects O\n\nPeter B-PER\nBlackburn I-PER\n")
    assert [d.ent_spans for d in read_iob(conll)] == [[(0, 1, "ORG")], [(0, 2, "PER")]]


def test_join_by_sent_id_realigns_by_characters(tmp_path: Path) -> None:
    conllu = _write(tmp_path, "x.conllu", CONLLU)
    ner = _write(tmp_path, "x.iob2", IOB)
    report = ConvertReport()
    (doc,) = join_ner(read_conllu(conllu), ner, report=report)
    assert doc.ent_spans == [(0, 3, "ORG"), (6, 7, "LOC")]
    assert [(e.text, e.label_) for e in doc.ents] == [("Al-Zaman", "ORG"), ("Paris", "LOC")]
    assert report.counts["ner_realigned_sentences"] == 1


def test_join_mismatch_error_names_both_files(tmp_path: Path) -> None:
    conllu = _write(tmp_path, "x.conllu", CONLLU)
    ner = _write(tmp_path, "x.iob2", IOB.replace("2\taudiobooks\tB-OTH", "2\taudiobook\tB-OTH"))
    with pytest.raises(CorpusError, match=r"x\.conllu:8: .*'s2'.*x\.iob2:1 \(token 1: '#audiobooks' vs '#'"):
        list(join_ner(read_conllu(conllu), ner))
    with pytest.raises(CorpusError, match=r"x\.conllu:8"):
        list(join_ner(read_conllu(conllu), _write(tmp_path, "ok.iob2", IOB), on_mismatch="error"))
    report = ConvertReport()
    (doc,) = join_ner(read_conllu(conllu), ner, skip_invalid=True, report=report)
    assert doc.ent_spans == [(0, 3, "ORG")]  # s1 labelled, s2 dropped
    assert doc.ents_missing == [(4, 7)]  # s2's entities are unknown, not "O"
    assert report.counts["ner_mismatched_sentences"] == 1


def test_join_missing_sentences(tmp_path: Path) -> None:
    conllu = _write(tmp_path, "x.conllu", CONLLU + "# newdoc id = d2\n# sent_id = s9\n1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n\n")
    ner = _write(tmp_path, "x.iob2", IOB)
    report = ConvertReport()
    d1, d2 = join_ner(read_conllu(conllu), ner, report=report)
    assert d1.ent_spans is not None and d2.ent_spans is None  # no labelled sentence: not annotated
    assert report.counts["ner_missing_sentences"] == 1


def test_duplicate_sent_id_is_an_error(tmp_path: Path) -> None:
    ner = _write(tmp_path, "d.iob2", "# sent_id = a\n1\tx\tO\n\n# sent_id = a\n1\ty\tO\n")
    conllu = _write(tmp_path, "x.conllu", CONLLU)
    with pytest.raises(CorpusError, match=r"d\.iob2:4: sent_id 'a' occurs twice"):
        list(join_ner(read_conllu(conllu), ner))
