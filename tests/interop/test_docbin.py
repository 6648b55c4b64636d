"""DocBin in (`distnlp convert X.spacy`), out (`distnlp export`, `distnlp.to_spacy`) and as
pretraining text: every annotation spaCy stores survives, missing values stay missing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

spacy = pytest.importorskip("spacy")
from spacy.tokens import Doc as SpacyDoc  # noqa: E402
from spacy.tokens import DocBin, Span  # noqa: E402

import distnlp  # noqa: E402
from distnlp.cli.main import main  # noqa: E402
from distnlp.data.stream import read_docs  # noqa: E402
from distnlp.pretrain.text_stream import open_text_stream  # noqa: E402

ATTRS = ("tag_", "pos_", "lemma_", "dep_", "ent_iob_", "ent_type_")


def _annotated_docs(vocab) -> list[SpacyDoc]:
    words = ["Ada", "Lovelace", "visited", "New", "York", "."]
    d1 = SpacyDoc(
        vocab, words=words, spaces=[True, True, True, True, False, False],
        tags=["NNP", "NNP", "VBD", "NNP", "NNP", "."], pos=["PROPN", "PROPN", "VERB", "PROPN", "PROPN", "PUNCT"],
        morphs=["Number=Sing", "Number=Sing", "Tense=Past", "", "Number=Sing", ""],
        lemmas=["Ada", "Lovelace", "visit", "New", "York", "."],
        heads=[1, 2, 2, 4, 2, 2], deps=["compound", "nsubj", "ROOT", "compound", "obj", "punct"],
    )
    # NER: Ada Lovelace is a PERSON, "New York" unknown (missing), "." is O
    d1.set_ents([Span(d1, 0, 2, "PERSON")], missing=[d1[3:5]], outside=[d1[2:3], d1[5:6]])
    d1.spans["sc"] = [Span(d1, 0, 2, "NAME"), Span(d1, 3, 5, "CITY")]
    d1.cats = {"TRAVEL": 1.0, "SPORT": 0.0}
    # a second doc: two sentences, tags only on some tokens, no entities at all
    d2 = SpacyDoc(vocab, words=["Hi", "!", "Bye", "."], sent_starts=[True, False, True, False])
    d2[0].tag_ = "UH"
    return [d1, d2]


@pytest.fixture()
def docbin_file(tmp_path: Path) -> Path:
    nlp = spacy.blank("en")
    path = tmp_path / "train.spacy"
    DocBin(docs=_annotated_docs(nlp.vocab), store_user_data=True).to_disk(path)
    return path


def test_convert_docbin_keeps_every_annotation_and_missing_values(docbin_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    assert main(["convert", str(docbin_file), str(out)]) == 0
    d1, d2 = read_docs(out)
    assert d1.text == "Ada Lovelace visited New York."
    assert d1.tags == ["NNP", "NNP", "VBD", "NNP", "NNP", "."]
    assert d1.pos == ["PROPN", "PROPN", "VERB", "PROPN", "PROPN", "PUNCT"]
    assert d1.morphs == ["Number=Sing", "Number=Sing", "Tense=Past", "", "Number=Sing", ""]
    assert d1.lemmas == ["Ada", "Lovelace", "visit", "New", "York", "."]
    assert d1.heads == [1, 2, 2, 4, 2, 2] and d1.deps[2] == "ROOT"
    assert d1.ent_spans == [(0, 2, "PERSON")] and d1.ents_missing == [(3, 5)]
    assert d1.cats == {"TRAVEL": 1.0, "SPORT": 0.0}
    assert d2.sent_starts == [True, False, True, False]
    assert d2.tags == ["UH", None, None, None]  # untagged tokens are missing, not a label
    assert d2.ent_spans is None and d2.deps is None and d2.lemmas is None
    meta = json.loads((out / "meta.json").read_text())
    assert meta["format"] == "spacy"
    assert meta["counts"] == {"docs": 2, "sentences": 3, "words": 10, "entities": 1}
    assert meta["missing_tokens"] == {"ents": 2, "tags": 3}


def test_convert_docbin_spans_key_as_entities(docbin_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    assert main(["convert", str(docbin_file), str(out), "--spans-key", "sc"]) == 0
    d1, d2 = read_docs(out)
    assert d1.ent_spans == [(0, 2, "NAME"), (3, 5, "CITY")] and not d1.ents_missing
    assert d2.ent_spans is None  # the key is absent there: unknown, not "no entities"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["conversion_counts"]["docs_without_spans_key"] == 1 and meta["spans_key"] == "sc"


def test_corrupt_docbin_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.spacy"
    bad.write_bytes(b"this is not a DocBin")
    assert main(["convert", str(bad), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert "bad.spacy" in err and "not a readable spaCy DocBin" in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_docbin_round_trip_through_export(docbin_file: Path, tmp_path: Path) -> None:
    corpus, back = tmp_path / "corpus", tmp_path / "back.spacy"
    assert main(["convert", str(docbin_file), str(corpus)]) == 0
    assert main(["export", str(corpus), str(back)]) == 0
    vocab = spacy.blank("en").vocab
    originals = list(DocBin().from_disk(docbin_file).get_docs(vocab))
    exported = list(DocBin().from_disk(back).get_docs(vocab))
    for a, b in zip(originals, exported, strict=True):
        assert [t.text_with_ws for t in a] == [t.text_with_ws for t in b]
        for attr in ATTRS:
            assert [getattr(t, attr) for t in a] == [getattr(t, attr) for t in b], attr
        assert [str(t.morph) for t in a] == [str(t.morph) for t in b]
        assert [t.has_morph() for t in a] == [t.has_morph() for t in b]
        assert [t.head.i for t in a] == [t.head.i for t in b]
        assert [t.is_sent_start for t in a] == [t.is_sent_start for t in b]
        assert a.cats == b.cats
    # export never replaces a file
    assert main(["export", str(corpus), str(back)]) == 1


def test_to_spacy_carries_predicted_tensor_and_trf_data() -> None:
    import numpy as np

    doc = distnlp.data.doc.Doc(words=["a", "b"], spaces=[True, False], tags=["X", "Y"])
    doc.tensor = np.ones((2, 3), dtype=np.float32)
    doc.trf_data = {"wordpieces": ["a", "b"]}
    (sdoc,) = distnlp.to_spacy([doc], spacy.blank("en"))
    assert [t.tag_ for t in sdoc] == ["X", "Y"]
    assert sdoc.tensor.shape == (2, 3)
    assert sdoc._.trf_data == {"wordpieces": ["a", "b"]}


def test_pretrain_reads_docbin_text(docbin_file: Path) -> None:
    stream = open_text_stream(docbin_file, shuffle=False, infinite=False)
    texts = [d.text for d in stream]
    assert texts == ["Ada Lovelace visited New York.", "Hi ! Bye . "]  # spaCy's own tokenization and spaces
    # two ranks share the docs out disjointly
    shares = [[d.doc_id for d in open_text_stream(docbin_file, rank=r, world_size=2, shuffle=False, infinite=False)] for r in (0, 1)]
    assert sorted(shares[0] + shares[1]) == ["train.spacy:0", "train.spacy:1"] and not set(shares[0]) & set(shares[1])
