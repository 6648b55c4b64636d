"""IOB2 / BIO / BILUO (BIOES) named-entity files: tags to token-offset spans, and the sent_id join.

The UNER format is `index<TAB>token<TAB>tag<TAB>-<TAB>annotator` with `# sent_id` comments; CoNLL
style `token tag` (or `token ... tag`) lines are read too. Two uses:

- `read_iob`: a standalone NER corpus (words come from the IOB file);
- `join_ner`: NER labels added to CoNLL-U docs by sent_id, because the NER file's sentence order
  differs from the treebank's (UNER was made from an older EWT).
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import CorpusError
from ..doc import Doc, merge_ranges
from .lines import iter_lines, where
from .report import ConvertReport

# The UNER English-EWT DRAFT train file has OTH ("other") entities and stray `B-O` tags that the
# final release does not have; treat them as O so its labels match the final tag set
# (PER, ORG, LOC). Pass drop_labels=() to keep every label.
UNER_DRAFT_DROP_LABELS: frozenset[str] = frozenset({"OTH", "O"})

_BEGIN, _INSIDE, _LAST, _UNIT = "B", "I", "L", "U"
_PREFIX_KIND = {"B": _BEGIN, "I": _INSIDE, "L": _LAST, "E": _LAST, "U": _UNIT, "S": _UNIT}


@dataclass
class IobSentence:
    line: int  # first line of the block
    sent_id: str | None
    words: list[str]
    spans: list[tuple[int, int, str]] | None  # None: labels dropped (invalid, skipped)
    newdoc: str | None = None
    text: str | None = None  # `# text`, used to restore spaces in a standalone corpus
    tag_lines: list[int] = field(default_factory=list)


def tags_to_spans(
    tags: list[str],
    *,
    drop_labels: Collection[str] = UNER_DRAFT_DROP_LABELS,
    repair: bool = False,
    path: str | Path = "<tags>",
    lines: list[int] | None = None,
) -> list[tuple[int, int, str]]:
    """Token-offset spans (start, end, label) from IOB2 / BIO / BILUO / BIOES tags.

    Strict IOB2: an entity must start with B- (or U-/S-); `I-X` that does not continue an open X
    raises CorpusError naming the line, unless repair=True, which starts a new entity there (the
    IOB1 reading). Tags whose label is in drop_labels count as O.
    """
    spans: list[tuple[int, int, str]] = []
    start, label = -1, ""  # the open entity, if start >= 0

    def close(end: int) -> None:
        nonlocal start
        if start >= 0:
            spans.append((start, end, label))
        start = -1

    for i, tag in enumerate(tags):
        if tag == "O":
            close(i)
            continue
        prefix, sep, lab = tag.partition("-")
        kind = _PREFIX_KIND.get(prefix.upper()) if sep else None
        if kind is None or not lab:
            raise CorpusError(
                where(path, lines[i] if lines else None),
                f"bad NER tag {tag!r}",
                "tags are O or B-/I-/L-/U-/E-/S- followed by a label, e.g. B-PER",
            )
        if lab in drop_labels:
            close(i)
            continue
        continues = start >= 0 and label == lab
        if kind in (_INSIDE, _LAST) and not continues:
            if not repair:
                opened = f"an open {label} entity" if start >= 0 else "no open entity"
                raise CorpusError(
                    where(path, lines[i] if lines else None),
                    f"tag {tag!r} continues an entity but follows {opened} (strict IOB2: entities start with B-)",
                    "fix the tag, or pass --skip-invalid to drop this sentence's NER labels",
                )
            close(i)
            start, label = i, lab
        elif kind in (_BEGIN, _UNIT):
            close(i)
            start, label = i, lab
        if kind in (_LAST, _UNIT):
            close(i + 1)
    close(len(tags))
    return spans


def read_iob_sentences(
    path: str | Path,
    *,
    drop_labels: Collection[str] = UNER_DRAFT_DROP_LABELS,
    repair: bool = False,
    skip_invalid: bool = False,
    report: ConvertReport | None = None,
) -> Iterator[IobSentence]:
    """Every sentence of an IOB file with its spans; with skip_invalid, bad tags drop that sentence's labels."""
    report = report if report is not None else ConvertReport()
    blocks = _blocks(path)
    pending_newdoc: str | None = None  # a comment-only block's `# newdoc` opens the next doc
    for block in blocks:
        sent = _parse_block(path, block, drop_labels, repair, skip_invalid, report)
        if not sent.words:
            pending_newdoc = sent.newdoc if sent.newdoc is not None else pending_newdoc
            continue
        if sent.newdoc is None:
            sent.newdoc = pending_newdoc
        pending_newdoc = None
        yield sent


def _blocks(path: str | Path) -> Iterator[list[tuple[int, str]]]:
    block: list[tuple[int, str]] = []
    for lineno, line in iter_lines(path):
        if line.strip():
            block.append((lineno, line))
        elif block:
            yield block
            block = []
    if block:
        yield block


def _parse_block(
    path: str | Path,
    block: list[tuple[int, str]],
    drop_labels: Collection[str],
    repair: bool,
    skip_invalid: bool,
    report: ConvertReport,
) -> IobSentence:
    sent = IobSentence(line=block[0][0], sent_id=None, words=[], spans=None)
    tags: list[str] = []
    for lineno, line in block:
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            key = key.strip()
            if key == "sent_id":
                sent.sent_id = value.strip()
            elif key.startswith("newdoc"):
                sent.newdoc = value.strip()
            elif key == "text":
                sent.text = value.strip()
            continue
        cols = line.split("\t") if "\t" in line else line.split()
        if len(cols) < 2:
            raise CorpusError(
                where(path, lineno),
                f"expected a token and a tag, found {len(cols)} column",
                "IOB lines are `index token tag ...` (UNER) or `token tag` separated by tabs",
            )
        if len(cols) >= 3 and cols[0].isdigit():
            word, tag = cols[1], cols[2]  # UNER: index token tag [- annotator]
        else:
            word, tag = cols[0], cols[-1]  # CoNLL: token [pos chunk] tag
        sent.words.append(word)
        tags.append(tag)
        sent.tag_lines.append(lineno)
    if not sent.words:
        return sent
    try:
        sent.spans = tags_to_spans(tags, drop_labels=drop_labels, repair=repair, path=path, lines=sent.tag_lines)
    except CorpusError as e:
        if not skip_invalid:
            raise
        report.skip("ner_invalid_sentences", str(e))
    return sent


def read_iob(
    path: str | Path,
    *,
    n_sents: int | None = None,
    drop_labels: Collection[str] = UNER_DRAFT_DROP_LABELS,
    repair: bool = False,
    skip_invalid: bool = False,
    report: ConvertReport | None = None,
) -> Iterator[Doc]:
    """A standalone NER corpus: docs from `# newdoc` (or every n_sents sentences, or one per sentence).

    Spaces come from the `# text` comment when the words can be found in it in order; otherwise
    every word is followed by a space. A sentence whose labels were dropped (skip_invalid) keeps
    its words and its place (and its `# newdoc`), with its tokens in `ents_missing`: unknown, not
    "O". A doc none of whose sentences has labels gets ents=None.
    """
    if n_sents is not None and n_sents < 1:
        raise CorpusError("--n-sents", f"must be at least 1, not {n_sents}", "pass a positive number")
    report = report if report is not None else ConvertReport()
    group: list[IobSentence] = []
    seen_newdoc = False
    for sent in read_iob_sentences(path, drop_labels=drop_labels, repair=repair, skip_invalid=skip_invalid, report=report):
        if n_sents is not None:
            starts = len(group) >= n_sents
        else:
            seen_newdoc = seen_newdoc or sent.newdoc is not None
            starts = sent.newdoc is not None or not seen_newdoc
        if starts and group:
            yield _doc_from_sentences(group, path, n_sents)
            group = []
        group.append(sent)
    if group:
        yield _doc_from_sentences(group, path, n_sents)


def _doc_from_sentences(sents: list[IobSentence], path: str | Path, n_sents: int | None) -> Doc:
    words: list[str] = []
    spaces: list[bool] = []
    starts: list[bool] = []
    ents: list[tuple[int, int, str]] = []
    missing: list[tuple[int, int]] = []
    for s in sents:
        base = len(words)
        words += s.words
        spaces += _spaces_from_text(s.words, s.text)
        starts += [True] + [False] * (len(s.words) - 1)
        if s.spans is None:
            missing.append((base, len(words)))
        else:
            ents += [(a + base, b + base, lab) for a, b, lab in s.spans]
    spaces[-1] = False
    first = sents[0]
    doc_id = first.newdoc if (n_sents is None and first.newdoc) else first.sent_id
    labelled = any(s.spans is not None for s in sents)
    doc = Doc(
        words=words, spaces=spaces, doc_id=doc_id or f"{Path(path).stem}:{first.line}", sent_starts=starts,
        ent_spans=ents if labelled else None, ents_missing=merge_ranges(missing) if labelled and missing else None,
    )
    doc.user_data["sent_ids"] = [s.sent_id for s in sents]
    return doc


def _spaces_from_text(words: list[str], text: str | None) -> list[bool]:
    """Whether each word is followed by whitespace in `text`; all True when the words are not found in order."""
    if text is None:
        return [True] * len(words)
    out: list[bool] = []
    pos = 0
    for w in words:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if not text.startswith(w, pos):
            return [True] * len(words)
        pos += len(w)
        out.append(pos < len(text) and text[pos].isspace())
    out[-1] = True  # the sentence end: the next sentence follows after a space
    return out


# --- the join ------------------------------------------------------------------------------


@dataclass
class _NerIndex:
    path: str | Path
    by_id: dict[str, IobSentence]
    used: set[str] = field(default_factory=set)
    labelled: int = 0  # sentences whose labels were joined, over all docs


def load_ner_index(
    path: str | Path,
    *,
    drop_labels: Collection[str] = UNER_DRAFT_DROP_LABELS,
    repair: bool = False,
    skip_invalid: bool = False,
    report: ConvertReport | None = None,
) -> _NerIndex:
    """The NER file's sentences by sent_id (every sentence must have a unique one)."""
    by_id: dict[str, IobSentence] = {}
    for sent in read_iob_sentences(path, drop_labels=drop_labels, repair=repair, skip_invalid=skip_invalid, report=report):
        if sent.sent_id is None:
            raise CorpusError(where(path, sent.line), "sentence has no `# sent_id` comment", "joining NER labels to a treebank needs a sent_id on every sentence")
        if sent.sent_id in by_id:
            raise CorpusError(
                where(path, sent.line),
                f"sent_id {sent.sent_id!r} occurs twice (first at line {by_id[sent.sent_id].line})",
                "sent_ids must be unique",
            )
        by_id[sent.sent_id] = sent
    return _NerIndex(path, by_id)


def join_ner(
    docs: Iterable[Doc],
    ner_path: str | Path,
    *,
    drop_labels: Collection[str] = UNER_DRAFT_DROP_LABELS,
    on_mismatch: str = "align",
    repair: bool = False,
    skip_invalid: bool = False,
    report: ConvertReport | None = None,
) -> Iterator[Doc]:
    """Add NER spans from `ner_path` to CoNLL-U docs, matching sentences by sent_id.

    A sentence whose words differ between the files: on_mismatch="error" raises CorpusError
    naming both places; "align" (default) maps the spans by character offsets when both files
    have the same characters (e.g. `#audiobooks` vs `#` `audiobooks`) and every span lands on
    token boundaries, else raises; "drop" drops that sentence's labels. skip_invalid turns every
    raise into a drop. Drops and sentences missing from the NER file are counted in `report`; a
    doc keeps the spans of its labelled sentences, its other sentences become `ents_missing`
    ranges (unknown, never "O"), and it gets ents=None only when none is labelled. An NER file
    without sentences, or one that labels no sentence at all, is an error.
    """
    if on_mismatch not in ("error", "align", "drop"):
        raise ValueError(f"on_mismatch must be error, align or drop, not {on_mismatch!r}")
    report = report if report is not None else ConvertReport()
    index = load_ner_index(ner_path, drop_labels=drop_labels, repair=repair, skip_invalid=skip_invalid, report=report)
    if not index.by_id:
        raise CorpusError(str(ner_path), "has no sentences with NER tags", "pass the IOB file that labels these sentences")
    report.info["ner"] = {"source": str(ner_path), "drop_labels": sorted(drop_labels), "on_mismatch": on_mismatch}
    n_docs = 0
    for doc in docs:
        n_docs += 1
        yield _join_doc(doc, index, on_mismatch, skip_invalid, report)
    if n_docs and not index.labelled:
        raise CorpusError(
            str(ner_path), "labels none of the input's sentences (no sent_id matched, or every match was dropped)",
            "check that the NER file belongs to this treebank",
        )
    report.counts["ner_unused_sentences"] += len(index.by_id) - len(index.used)


def _join_doc(doc: Doc, index: _NerIndex, on_mismatch: str, skip_invalid: bool, report: ConvertReport) -> Doc:
    sent_ids: list[str | None] = doc.user_data.get("sent_ids") or []
    offsets: list[int] = doc.user_data.get("sent_offsets") or []
    lines: list[int] = doc.user_data.get("sent_lines") or [0] * len(sent_ids)
    source = doc.user_data.get("source", "<conllu>")
    ents: list[tuple[int, int, str]] = []
    missing: list[tuple[int, int]] = []  # sentences without usable labels: unknown, not "O"
    labelled = 0
    for k, sid in enumerate(sent_ids):
        start = offsets[k]
        end = offsets[k + 1] if k + 1 < len(offsets) else len(doc)
        ner = index.by_id.get(sid) if sid is not None else None
        if ner is None:
            report.skip("ner_missing_sentences", f"{where(source, lines[k])}: sent_id {sid!r} is not in {index.path}")
            missing.append((start, end))
            continue
        index.used.add(sid)  # type: ignore[arg-type]
        spans = ner.spans  # None: its tags were invalid and skipped
        words = doc.words[start:end]
        if spans is not None and words != ner.words:
            spans = _resolve_mismatch(words, ner, source, lines[k], index.path, on_mismatch, skip_invalid, report)
        if spans is None:
            missing.append((start, end))
            continue
        labelled += 1
        ents += [(a + start, b + start, lab) for a, b, lab in spans]
    report.counts["ner_labelled_sentences"] += labelled
    index.labelled += labelled
    doc.ent_spans = ents if labelled else None
    doc.ents_missing = merge_ranges(missing) if labelled and missing else None
    return doc


def _resolve_mismatch(
    words: list[str],
    ner: IobSentence,
    source: str,
    line: int,
    ner_path: str | Path,
    on_mismatch: str,
    skip_invalid: bool,
    report: ConvertReport,
) -> list[tuple[int, int, str]] | None:
    assert ner.spans is not None
    if on_mismatch == "align":
        aligned = _align_spans(words, ner.words, ner.spans)
        if aligned is not None:
            report.counts["ner_realigned_sentences"] += 1
            return aligned
    i = next((j for j, (a, b) in enumerate(zip(words, ner.words)) if a != b), min(len(words), len(ner.words)))
    mine = words[i] if i < len(words) else "<end>"
    theirs = ner.words[i] if i < len(ner.words) else "<end>"
    message = (
        f"{where(source, line)}: sentence {ner.sent_id!r} is tokenized differently in {where(ner_path, ner.line)} "
        f"(token {i + 1}: {mine!r} vs {theirs!r}; {len(words)} vs {len(ner.words)} tokens)"
    )
    if on_mismatch == "error" or (on_mismatch == "align" and not skip_invalid):
        raise CorpusError(
            where(source, line),
            message.split(": ", 1)[1],
            "fix one of the files, or pass --skip-invalid to drop the NER labels of such sentences",
        )
    report.skip("ner_mismatched_sentences", message)
    return None


def _align_spans(
    words: list[str], ner_words: list[str], spans: list[tuple[int, int, str]]
) -> list[tuple[int, int, str]] | None:
    """Spans over ner_words moved onto words by character offsets (ignoring spaces), or None."""
    if "".join(words) != "".join(ner_words):
        return None
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    pos = 0
    for i, w in enumerate(words):
        starts[pos] = i
        pos += len(w)
        ends[pos] = i + 1
    ner_offsets = [0]
    for w in ner_words:
        ner_offsets.append(ner_offsets[-1] + len(w))
    out = []
    for a, b, lab in spans:
        s, e = starts.get(ner_offsets[a]), ends.get(ner_offsets[b])
        if s is None or e is None:
            return None
        out.append((s, e, lab))
    return out
