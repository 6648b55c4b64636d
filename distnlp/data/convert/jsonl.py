"""spaCy-style JSONL: one JSON object per line, raw text or pre-tokenized, with optional entities and cats.

Accepted keys: `text` (tokenized with `Tokenizer`) or `words` (+ optional `spaces`); entities as
`entities: [[start, end, label], ...]` or `spans`/`ents: [{"start", "end", "label"}, ...]` in
character offsets (or `token_start`/`token_end`, inclusive, as Prodigy writes them); `cats:
{label: score}`; `id`/`doc_id`. A line with only `text` is a raw-text doc for pretraining.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...errors import CorpusError
from ..doc import Doc
from ..tokenizer import Tokenizer
from .lines import iter_lines, where
from .report import ConvertReport

ALIGNMENT_MODES = ("strict", "contract", "expand")


def read_jsonl(
    path: str | Path,
    *,
    alignment_mode: str = "strict",
    tokenizer: Tokenizer | None = None,
    report: ConvertReport | None = None,
) -> Iterator[Doc]:
    """Docs from a JSONL file; a span off token boundaries is an error unless alignment_mode says how to snap it."""
    if alignment_mode not in ALIGNMENT_MODES:
        raise CorpusError("--alignment-mode", f"unknown mode {alignment_mode!r}", "use strict, contract or expand")
    tok = tokenizer or Tokenizer()
    report = report if report is not None else ConvertReport()
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        loc = where(path, lineno)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(loc, f"not valid JSON ({e.msg} at column {e.colno})", "each line must be one JSON object") from None
        if not isinstance(obj, dict):
            raise CorpusError(loc, f"expected a JSON object, found {type(obj).__name__}", 'write one {"text": ...} object per line')
        doc = doc_from_dict(obj, loc, tok, alignment_mode, report)
        if doc is None:
            report.counts["empty_docs"] += 1
            continue
        if doc.doc_id is None:
            doc.doc_id = f"{Path(path).stem}:{lineno}"
        yield doc


def doc_from_dict(obj: dict[str, Any], loc: str, tok: Tokenizer, alignment_mode: str, report: ConvertReport) -> Doc | None:
    """One Doc from a parsed JSONL object (None when it has no tokens)."""
    if "words" in obj:
        words = obj["words"]
        if not isinstance(words, list) or not all(isinstance(w, str) and w for w in words):
            raise CorpusError(loc, '"words" must be a list of non-empty strings', 'e.g. {"words": ["Hello", "!"]}')
        spaces = obj.get("spaces")
        synthetic = spaces is None
        if spaces is None:
            spaces = [True] * len(words)
            if spaces:
                spaces[-1] = False
        if not isinstance(spaces, list) or len(spaces) != len(words) or not all(isinstance(s, bool) for s in spaces):
            raise CorpusError(loc, f'"spaces" must be a list of {len(words)} booleans, one per word', "or leave it out")
        doc = Doc(words=list(words), spaces=list(spaces))
        # the text was never given: don't store a made-up one (the schema allows null)
        doc.user_data["text_is_synthetic"] = synthetic
    elif "text" in obj:
        text = obj["text"]
        if not isinstance(text, str):
            raise CorpusError(loc, f'"text" must be a string, not {type(text).__name__}', "")
        doc = tok(text)
    else:
        raise CorpusError(loc, 'the object has neither "text" nor "words"', f"found keys {sorted(obj)}")
    if not doc.words:
        return None
    doc_id = obj.get("doc_id", obj.get("id"))
    if doc_id is not None:
        doc.doc_id = str(doc_id)
    raw_spans = _raw_spans(obj, loc)
    if raw_spans is not None:
        doc.ent_spans = _align(doc, raw_spans, loc, alignment_mode, report)
    if "cats" in obj:
        cats = obj["cats"]
        if not isinstance(cats, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in cats.values()):
            raise CorpusError(loc, '"cats" must map labels to numbers', 'e.g. {"cats": {"POSITIVE": 1.0, "NEGATIVE": 0.0}}')
        doc.cats = {str(k): float(v) for k, v in cats.items()}
    return doc


def _raw_spans(obj: dict[str, Any], loc: str) -> list[tuple[str, int, int, str]] | None:
    """[(kind "char"|"token", start, end (exclusive), label)] from whichever key the line uses."""
    key = next((k for k in ("entities", "ents", "spans") if k in obj), None)
    if key is None:
        return None
    items = obj[key]
    if isinstance(items, dict) and key == "spans":
        # spaCy's doc.spans layout {"sc": [...]}: only a single group can be entities
        if len(items) != 1:
            raise CorpusError(loc, f'"spans" has {len(items)} groups; entities need exactly one', 'use "entities"')
        items = next(iter(items.values()))
    if not isinstance(items, list):
        raise CorpusError(loc, f'"{key}" must be a list', 'e.g. "entities": [[0, 5, "PER"]]')
    out = []
    for item in items:
        if isinstance(item, (list, tuple)) and len(item) == 3:
            start, end, label = item
            kind = "char"
        elif isinstance(item, dict) and "token_start" in item and "token_end" in item:
            start, end, label = item["token_start"], item["token_end"] + 1 if isinstance(item["token_end"], int) else None, item.get("label")
            kind = "token"
        elif isinstance(item, dict):
            start, end, label = item.get("start"), item.get("end"), item.get("label")
            kind = "char"
        else:
            raise CorpusError(loc, f"bad entity {item!r} in {key!r}", "write [start, end, label] or {\"start\", \"end\", \"label\"}")
        if not (isinstance(start, int) and isinstance(end, int) and isinstance(label, str) and label) or start >= end or start < 0:
            raise CorpusError(loc, f"bad entity {item!r} in {key!r}", "start < end must be integers and label a non-empty string")
        out.append((kind, start, end, label))
    return out


def _align(doc: Doc, spans: list[tuple[str, int, int, str]], loc: str, mode: str, report: ConvertReport) -> list[tuple[int, int, str]]:
    text = doc.text
    out: list[tuple[int, int, str]] = []
    for kind, start, end, label in spans:
        if kind == "token":
            if end > len(doc):
                raise CorpusError(loc, f"entity tokens [{start}, {end}) {label} run past the {len(doc)} tokens", "fix token_start/token_end")
            out.append((start, end, label))
            continue
        if end > len(text):
            raise CorpusError(loc, f"entity [{start}, {end}) {label} runs past the end of the text ({len(text)} characters)", "fix the offsets")
        span = doc.char_span(start, end, label, alignment_mode=mode)
        if span is None:
            if mode == "strict":
                toks = [w for w, o in zip(doc.words, doc.char_offsets()) if o < end and o + len(w) > start]
                raise CorpusError(
                    loc,
                    f"entity [{start}, {end}) {label} {text[start:end]!r} does not fall on token boundaries (tokens {toks})",
                    "fix the offsets, or pass --alignment-mode contract or expand to snap spans to tokens",
                )
            report.skip("ents_dropped_alignment", f"{loc}: entity [{start}, {end}) {label} {text[start:end]!r} covers no whole token")
            continue
        if (span.start_char, span.end_char) != (start, end):
            report.counts["ents_realigned"] += 1
        out.append((span.start, span.end, label))
    out.sort()
    for (s1, e1, l1), (s2, e2, l2) in zip(out, out[1:]):
        if s2 < e1:
            raise CorpusError(loc, f"entities overlap: tokens [{s1}, {e1}) {l1} and [{s2}, {e2}) {l2}", "NER needs non-overlapping entities")
    return out
