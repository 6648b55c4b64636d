"""Property: converting any corpus with injected bad sentences and --skip-invalid never changes the
labels of the remaining tokens, and what was dropped is missing (no loss, not scored), never "O"."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distnlp.data.convert import ConvertReport, join_ner, read_conllu, read_iob, write_corpus
from distnlp.data.doc import Doc
from distnlp.data.stream import read_docs
from distnlp.models.biluo import biluo_tags_from_spans, iob2_tags_from_spans
from distnlp.models.heads.common import IGNORE
from distnlp.models.heads.ner import NERHead

WORDS = ["Ann", "Bob", "Paris", "in", "sang", "the", "big", "Acme"]
LABELS = ["LOC", "ORG", "PER"]
# good: labelled; bad_tags: invalid IOB2 in the NER file; mismatch: the NER file's words differ;
# absent: no NER sentence; bad_conllu: the treebank sentence itself is malformed (dropped whole)
KINDS = ["good", "good", "good", "bad_tags", "mismatch", "absent", "bad_conllu"]


@dataclass
class Sent:
    words: list[str]
    spans: list[tuple[int, int, str]]
    kind: str


@st.composite
def sentence(draw: st.DrawFn) -> Sent:
    n = draw(st.integers(1, 6))
    words = [draw(st.sampled_from(WORDS)) for _ in range(n)]
    spans, i = [], 0
    while i < n:
        if draw(st.booleans()):
            length = draw(st.integers(1, n - i))
            spans.append((i, i + length, draw(st.sampled_from(LABELS))))
            i += length
        i += draw(st.integers(1, 2))
    return Sent(words, spans, draw(st.sampled_from(KINDS)))


corpora = st.lists(st.lists(sentence(), min_size=1, max_size=4), min_size=1, max_size=4)


def _tags(s: Sent) -> list[str]:
    return [f"T{len(w)}" for w in s.words]  # a per-token column to check alongside the entities


def _write_files(docs: list[list[Sent]], root: Path) -> tuple[Path, Path]:
    conllu, iob = [], []
    for d, sents in enumerate(docs):
        for k, s in enumerate(sents):
            sid = f"d{d}-s{k}"
            head = f"# newdoc id = d{d}\n" if k == 0 else ""
            # a valid tree (word 1 is the root), so only the kinds above are invalid
            lines = [f"{i + 1}\t{w}\t{w.lower()}\tX\t{t}\t_\t{min(i, 1)}\tdep\t_\t_" for i, (w, t) in enumerate(zip(s.words, _tags(s)))]
            if s.kind == "bad_conllu":
                lines[-1] = lines[-1].replace("\t", " ", 1)  # a token line with too few columns
            conllu.append(f"{head}# sent_id = {sid}\n" + "\n".join(lines) + "\n")
            if s.kind == "absent":
                continue
            tags = iob2_tags_from_spans(len(s.words), s.spans)
            words = list(s.words)
            if s.kind == "bad_tags":
                tags[0] = "I-PER" if tags[0] == "O" else "I-" + ("LOC" if tags[0].endswith("PER") else "PER")
            if s.kind == "mismatch":
                words[0] = words[0] + "x"  # other characters: cannot be re-aligned
            iob.append(f"# sent_id = {sid}\n" + "".join(f"{i + 1}\t{w}\t{t}\n" for i, (w, t) in enumerate(zip(words, tags))))
    (root / "x.conllu").write_text("\n".join(conllu) + "\n", encoding="utf-8")
    (root / "x.iob2").write_text("\n".join(iob) + "\n", encoding="utf-8")
    return root / "x.conllu", root / "x.iob2"


def _check_doc(doc: Doc, sents: list[Sent]) -> None:
    """Every sentence of `sents` (the kept ones, in order) against the converted doc."""
    head = NERHead().initialize(2, LABELS)
    targets = head.targets([doc]).tolist()
    labelled = any(s.kind == "good" for s in sents)
    assert (doc.ent_spans is not None) == labelled
    mask = doc.ent_missing_mask()
    base = 0
    for s in sents:
        end = base + len(s.words)
        assert doc.words[base:end] == s.words
        assert doc.tags is not None and doc.tags[base:end] == _tags(s)  # other columns untouched
        inside = [(a - base, b - base, lab) for a, b, lab in doc.ent_spans or () if base <= a < end]
        if s.kind == "good":
            assert inside == s.spans
            assert not any(mask[base:end])
            want = biluo_tags_from_spans(len(s.words), s.spans)
            assert targets[base:end] == [head.label_to_id[t] for t in want]
        else:
            assert inside == []  # nothing invented where the labels were dropped
            assert all(mask[base:end])  # missing, not "O"
            assert targets[base:end] == [IGNORE] * len(s.words)
        base = end
    assert base == len(doc)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpora)
def test_join_with_skip_invalid_keeps_labels_and_marks_drops_missing(docs: list[list[Sent]]) -> None:
    kept = [[s for s in sents if s.kind != "bad_conllu"] for sents in docs]
    kept = [k for k in kept if k]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        conllu, iob = _write_files(docs, root)
        labels_any = any(s.kind == "good" for k in kept for s in k)
        report = ConvertReport()
        stream = join_ner(read_conllu(conllu, skip_invalid=True, report=report), iob, skip_invalid=True, report=report)
        if not kept or not labels_any:
            return  # nothing labelled: an error (tested elsewhere), not a corpus
        write_corpus(stream, root / "out", fmt="conllu", sources=[])
        out = list(read_docs(root / "out"))  # through Parquet and back
        assert len(out) == len(kept)  # every document boundary kept
        for doc, sents in zip(out, kept):
            _check_doc(doc, sents)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpora)
def test_standalone_iob_with_skip_invalid_keeps_labels_and_boundaries(docs: list[list[Sent]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        text = []
        for d, sents in enumerate(docs):
            for k, s in enumerate(sents):
                tags = iob2_tags_from_spans(len(s.words), s.spans)
                if s.kind != "good":
                    tags[0] = "I-PER" if tags[0] == "O" else "I-" + ("LOC" if tags[0].endswith("PER") else "PER")
                head = f"# newdoc id = d{d}\n" if k == 0 else ""
                text.append(head + f"# sent_id = d{d}-s{k}\n" + "".join(f"{w} {t}\n" for w, t in zip(s.words, tags)))
        (root / "n.iob2").write_text("\n".join(text), encoding="utf-8")
        out = list(read_iob(root / "n.iob2", skip_invalid=True))
        assert [d.doc_id for d in out] == [f"d{i}" for i in range(len(docs))]
        for doc, sents in zip(out, docs):
            doc.tags = [t for s in sents for t in _tags(s)]  # IOB carries no tags: give the check some
            _check_doc(doc, sents)
