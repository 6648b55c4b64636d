"""spaCy on RAW TEXT and on gold tokens, written as CoNLL-U for the CoNLL 2018 scorer; never imported.

    OMP_NUM_THREADS=1 python tests/benchmarks/spacy_raw.py --model MODEL_DIR --gold en_ewt-ud-dev.conllu \
        --raw-out pred-raw-dev.conllu --gold-out pred-gold-dev.conllu

Run with a python that has spaCy (a trained pipeline dir, e.g. the baseline's model-last). Only the
standard library and spaCy are used here: this file must not import distnlp.

* --raw-out: the model on the raw text of each document, with its own tokenizer and sentences
  (doc.sents). The raw text of a document (the rule distnlp's side uses too): a document begins at
  `# newdoc` (every sentence is its own document when the file has no `# newdoc`); within a
  paragraph the sentences' `# text` values are joined by one space; a `# newpar` line starts a new
  paragraph, joined to the previous one by "\\n\\n". Whitespace-only tokens are not written.
* --gold-out: the model on the gold words, spaces and sentence starts of each document
  (Doc(words=, spaces=, sent_starts=) then the pipeline components), written into the gold
  file's own sentence and token structure (comments and multiword-token lines copied, empty
  nodes dropped), so the gold-tokenization metrics apply.

Prints one JSON line: words/s per mode (words of the gold file / seconds inside the pipeline,
the tokenizer included for raw), the thread count, and the counts behind them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


# ----------------------------------------------------------------------------- reading CoNLL-U
@dataclass
class Sentence:
    comments: list[str] = field(default_factory=list)  # comment lines, verbatim
    rows: list[list[str]] = field(default_factory=list)  # all token lines (words, MWT ranges, empty nodes)
    newpar: bool = False
    text: str | None = None

    def words(self) -> list[list[str]]:
        return [r for r in self.rows if r[0].isdigit()]

    def tokens_with_space(self) -> tuple[list[str], list[bool]]:
        """Syntactic words and whether a space follows each (multiword tokens give the spacing)."""
        words, spaces = [], []
        mwt_end, mwt_space = 0, True
        for r in self.rows:
            if "." in r[0]:
                continue
            if "-" in r[0]:
                mwt_end, mwt_space = int(r[0].split("-")[1]), "SpaceAfter=No" not in r[9].split("|")
                continue
            i = int(r[0])
            space = False if i < mwt_end else mwt_space if i == mwt_end else "SpaceAfter=No" not in r[9].split("|")
            words.append(r[1])
            spaces.append(space)
        return words, spaces

    def surface_text(self) -> str:
        """`# text`, or the surface tokens (MWT forms) with their SpaceAfter when it is absent."""
        if self.text is not None:
            return self.text
        out, skip_to = [], 0
        for r in self.rows:
            if "." in r[0]:
                continue
            if "-" in r[0]:
                skip_to = int(r[0].split("-")[1])
            elif int(r[0]) <= skip_to:
                continue
            out.append(r[1] + ("" if "SpaceAfter=No" in r[9].split("|") else " "))
        return "".join(out).strip()


@dataclass
class Document:
    doc_id: str | None
    sentences: list[Sentence] = field(default_factory=list)

    def raw_text(self) -> str:
        paragraphs: list[list[str]] = []
        for i, s in enumerate(self.sentences):
            if i == 0 or s.newpar:
                paragraphs.append([])
            paragraphs[-1].append(s.surface_text())
        return "\n\n".join(" ".join(p) for p in paragraphs)


def read_conllu(path: Path) -> list[Document]:
    sentences: list[tuple[bool, str | None, Sentence]] = []  # (newdoc seen, doc id, sentence)
    cur: Sentence | None = None
    pending_doc: tuple[bool, str | None] = (False, None)
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                cur = None
                continue
            if cur is None:
                cur = Sentence()
                sentences.append((False, None, cur))
            if line.startswith("#"):
                cur.comments.append(line)
                key, _, value = line[1:].partition("=")
                key = key.strip()
                if key == "newdoc" or key.startswith("newdoc "):
                    sentences[-1] = (True, value.strip() or None, cur)
                elif key == "newpar" or key.startswith("newpar "):
                    cur.newpar = True
                elif key == "text":
                    cur.text = value.strip()
                continue
            cols = line.split("\t")
            if len(cols) != 10:
                sys.exit(f"{path}:{lineno}: expected 10 tab-separated columns")
            cur.rows.append(cols)
    sentences = [t for t in sentences if t[2].rows]
    has_newdoc = any(t[0] for t in sentences)
    docs: list[Document] = []
    for newdoc, doc_id, s in sentences:
        if not docs or newdoc or not has_newdoc:
            docs.append(Document(doc_id))
        docs[-1].sentences.append(s)
    return docs


def sent_id_of(s: Sentence) -> str | None:
    for c in s.comments:
        key, _, value = c[1:].partition("=")
        if key.strip() == "sent_id":
            return value.strip()
    return None


# ----------------------------------------------------------------------------- writing CoNLL-U
def tree_rows(tokens, out_index: dict[int, int]) -> list[tuple[int, str]]:
    """(head, deprel) per written token: heads within the sentence, exactly one root.

    Heads through skipped (whitespace) tokens follow those tokens' own heads; a head outside the
    written tokens, or a second root, is attached to the first root."""
    heads: list[int] = []
    deprels: list[str] = []
    for t in tokens:
        h, seen = t.head, set()
        while h.i not in out_index and h.i != h.head.i and h.i not in seen:
            seen.add(h.i)
            h = h.head
        dep = (t.dep_ or "dep")
        if h.i == t.i or h.i not in out_index:
            heads.append(0)
        else:
            heads.append(out_index[h.i])
        deprels.append("root" if dep.lower() == "root" else dep)
    roots = [k for k, h in enumerate(heads) if h == 0]
    if not roots:  # cannot happen with a tree, but stay valid
        roots = [0]
        heads[0] = 0
    first = roots[0]
    deprels[first] = "root"
    for k in roots[1:]:
        heads[k] = first + 1
        if deprels[k] == "root":
            deprels[k] = "dep"
    return list(zip(heads, deprels))


def annotation_cols(t) -> list[str]:
    return [t.lemma_ or "_", t.pos_ or "_", t.tag_ or "_", str(t.morph) or "_"]


def write_raw(docs, gold_docs: list[Document], out) -> int:
    n_sents = 0
    for k, (doc, gold) in enumerate(zip(docs, gold_docs)):
        doc_id = gold.doc_id or sent_id_of(gold.sentences[0]) or f"doc{k + 1}"
        out.write(f"# newdoc id = {doc_id}\n")
        n_in_doc = 0
        for sent in doc.sents:
            tokens = [t for t in sent if not t.is_space]
            if not tokens:
                continue
            n_in_doc += 1
            n_sents += 1
            out_index = {t.i: j + 1 for j, t in enumerate(tokens)}
            text = " ".join(sent.text.split())
            out.write(f"# sent_id = {doc_id}-{n_in_doc:04d}\n# text = {text}\n")
            for j, (t, (head, deprel)) in enumerate(zip(tokens, tree_rows(tokens, out_index)), 1):
                # SpaceAfter=No: nothing blank follows (no trailing whitespace and no whitespace
                # token next); the document's last token is left unmarked.
                nxt = doc[t.i + 1] if t.i + 1 < len(doc) else None
                no_space = not t.whitespace_ and nxt is not None and not nxt.is_space
                out.write("\t".join([str(j), t.text, *annotation_cols(t), str(head), deprel, "_",
                                     "SpaceAfter=No" if no_space else "_"]) + "\n")
            out.write("\n")
    return n_sents


def write_gold_structure(docs, gold_docs: list[Document], out) -> int:
    mismatched = 0
    for doc, gold in zip(docs, gold_docs):
        offset = 0
        for s in gold.sentences:
            n = len(s.words())
            tokens = list(doc[offset:offset + n])
            out_index = {t.i: j + 1 for j, t in enumerate(tokens)}
            if any(t.head.i not in out_index for t in tokens):
                mismatched += 1
            pred = dict(zip((r[0] for r in s.words()), zip(tokens, tree_rows(tokens, out_index))))
            for c in s.comments:
                out.write(c + "\n")
            for r in s.rows:
                if "." in r[0]:
                    continue  # empty nodes: no prediction, the scorer skips them
                if "-" in r[0]:
                    out.write("\t".join([r[0], r[1], "_", "_", "_", "_", "_", "_", "_", r[9]]) + "\n")
                    continue
                t, (head, deprel) = pred[r[0]]
                misc = "SpaceAfter=No" if "SpaceAfter=No" in r[9].split("|") else "_"
                out.write("\t".join([r[0], r[1], *annotation_cols(t), str(head), deprel, "_", misc]) + "\n")
            out.write("\n")
            offset += n
    return mismatched


# ----------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a spaCy pipeline directory (e.g. .../model-last)")
    ap.add_argument("--gold", required=True, type=Path,
                    help="gold CoNLL-U (its raw text and gold tokens are the input)")
    ap.add_argument("--raw-out", type=Path, help="CoNLL-U predictions from raw text")
    ap.add_argument("--gold-out", type=Path, help="CoNLL-U predictions on gold tokens and sentences")
    ap.add_argument("--threads", type=int, default=1, help="OMP/MKL/OpenBLAS threads, set before spaCy loads")
    ap.add_argument("--batch-size", type=int, default=None, help="nlp.pipe batch size (default: the model's)")
    ap.add_argument("--warmup-docs", type=int, default=5, help="documents run untimed first, per mode")
    args = ap.parse_args()
    if not args.raw_out and not args.gold_out:
        ap.error("give --raw-out and/or --gold-out")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import spacy
    from spacy.tokens import Doc

    nlp = spacy.load(args.model)
    gold_docs = read_conllu(args.gold)
    n_words = sum(len(s.words()) for d in gold_docs for s in d.sentences)
    n_sents = sum(len(d.sentences) for d in gold_docs)
    pipe_kw = {"batch_size": args.batch_size} if args.batch_size else {}
    result = {"model": str(args.model), "gold_file": str(args.gold), "spacy": spacy.__version__,
              "pipeline": nlp.pipe_names, "threads": args.threads, "docs": len(gold_docs),
              "gold_sentences": n_sents, "words": n_words}

    if args.raw_out:
        texts = [d.raw_text() for d in gold_docs]
        list(nlp.pipe(texts[:args.warmup_docs], **pipe_kw))
        t0 = time.perf_counter()
        docs = list(nlp.pipe(texts, **pipe_kw))
        secs = time.perf_counter() - t0
        args.raw_out.parent.mkdir(parents=True, exist_ok=True)
        with args.raw_out.open("w", encoding="utf-8") as out:
            n_pred_sents = write_raw(docs, gold_docs, out)
        result["raw"] = {"seconds": round(secs, 3), "words_per_s": round(n_words / secs, 1),
                         "tokens": sum(1 for d in docs for t in d if not t.is_space),
                         "sentences": n_pred_sents, "out": str(args.raw_out)}

    if args.gold_out:
        inputs = []
        for d in gold_docs:
            words, spaces, starts = [], [], []
            for s in d.sentences:
                w, sp = s.tokens_with_space()
                words += w
                spaces += sp
                starts += [True] + [False] * (len(w) - 1)
            if spaces:
                spaces[-1] = False
            inputs.append((words, spaces, starts))

        def make_docs():
            return [Doc(nlp.vocab, words=w, spaces=sp, sent_starts=st) for w, sp, st in inputs]

        list(nlp.pipe(make_docs()[:args.warmup_docs], **pipe_kw))
        pre = make_docs()
        t0 = time.perf_counter()
        docs = list(nlp.pipe(pre, **pipe_kw))
        secs = time.perf_counter() - t0
        args.gold_out.parent.mkdir(parents=True, exist_ok=True)
        with args.gold_out.open("w", encoding="utf-8") as out:
            crossing = write_gold_structure(docs, gold_docs, out)
        result["gold"] = {"seconds": round(secs, 3), "words_per_s": round(n_words / secs, 1),
                          "sentences_with_heads_outside": crossing, "out": str(args.gold_out)}

    print(json.dumps(result))


if __name__ == "__main__":
    main()
