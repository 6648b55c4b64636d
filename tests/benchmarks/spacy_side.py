"""The spaCy half of bench_cpu_vs_spacy.py; run with the *spaCy* venv's python, never imported.

    /tmp/spacy-venv/bin/python tests/benchmarks/spacy_side.py --work-dir DIR --config ewt_cnn.cfg \
        --code baseline_code.py --seconds 60 --threads 1 --out DIR/spacy-0.json

Reads DIR/docs.jsonl (words/spaces/tags/pos/morphs/ents per doc, written by the driver) and
DIR/batches.json (doc-index batches, shared with the distnlp side), builds gold-token Docs,
writes them as DIR/docs.spacy (a DocBin), builds the pipeline from the spaCy baseline config
minus the parser, trains with `nlp.update` for N seconds, then times inference by running the
components over pre-tokenized Docs (tokenization excluded, as on the distnlp side).
Only the standard library and spaCy are used here: this file must not import distnlp.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--code", default=None)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--infer-seconds", type=float, default=30.0)
    ap.add_argument("--infer-batch-size", type=int, default=128)
    ap.add_argument("--warmup-batches", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import numpy
    import spacy
    import thinc
    from spacy.tokens import Doc, DocBin, Span
    from spacy.training import Example
    from thinc.api import fix_random_seed

    work = Path(args.work_dir)
    if args.code:
        spacy.util.import_file("baseline_code", args.code)  # its registered readers/logger names
    fix_random_seed(args.seed)

    # The config's corpora point at paths.train/dev (validated on load): point them at our DocBin.
    config = spacy.util.load_config(args.config, overrides={"paths.train": str(work / "docs.spacy"),
                                                            "paths.dev": str(work / "docs.spacy")})
    # The benchmark pipeline: tok2vec + tagger + morphologizer + ner (the baseline minus parser).
    config["nlp"]["pipeline"] = [p for p in config["nlp"]["pipeline"] if p != "parser"]
    del config["components"]["parser"]
    config["training"]["score_weights"] = {k: v for k, v in config["training"]["score_weights"].items()
                                           if not k.startswith(("dep_", "sents_"))}
    # Gold-token reference Docs from the driver's JSONL, saved as a DocBin (read back below).
    blank = spacy.blank("en")
    refs = []
    with (work / "docs.jsonl").open(encoding="utf8") as f:
        for line in f:
            row = json.loads(line)
            doc = Doc(blank.vocab, words=row["words"], spaces=row["spaces"], tags=row.get("tags"),
                      pos=row.get("pos"), morphs=row.get("morphs"))
            if row.get("ents") is not None:
                doc.ents = [Span(doc, s, e, label=lab) for s, e, lab in row["ents"]]
            refs.append(doc)
    DocBin(store_user_data=False, docs=refs).to_disk(work / "docs.spacy")
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.pipe_names == ["tok2vec", "tagger", "morphologizer", "ner"], nlp.pipe_names
    refs = list(DocBin().from_disk(work / "docs.spacy").get_docs(nlp.vocab))
    batches = json.loads((work / "batches.json").read_text())
    n_words_corpus = sum(len(d) for d in refs)

    def example(ref: Doc) -> Example:  # as baseline_code.gold_token_examples: gold tokens, no annotation
        pred = Doc(nlp.vocab, words=[t.text for t in ref], spaces=[bool(t.whitespace_) for t in ref])
        return Example(pred, ref)

    examples = [example(r) for r in refs]
    t = time.perf_counter()
    optimizer = nlp.initialize(lambda: examples)  # labels from the whole corpus, as distnlp's meta.json
    init_seconds = time.perf_counter() - t
    dropout = float(config["training"]["dropout"])

    # --- training: nlp.update on the shared word batches ------------------------------------
    losses: dict[str, float] = {}
    it = iter(batches * 1000)
    for _ in range(args.warmup_batches):
        nlp.update([examples[i] for i in next(it)], drop=dropout, sgd=optimizer, losses=losses)
    words = steps = 0
    t0, c0 = time.perf_counter(), time.process_time()
    elapsed = 0.0
    while elapsed < args.seconds:
        batch = [examples[i] for i in next(it)]
        nlp.update(batch, drop=dropout, sgd=optimizer, losses=losses)
        words += sum(len(eg.reference) for eg in batch)
        steps += 1
        elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0  # CPU seconds of this process (all threads): less sensitive to other load
    train = {"words": words, "steps": steps, "seconds": elapsed, "words_per_second": words / elapsed,
             "cpu_seconds": cpu, "words_per_cpu_second": words / max(cpu, 1e-9),
             "losses": {k: float(v) for k, v in losses.items()}}

    # --- inference: every component over pre-tokenized Docs (no tokenizer) ------------------
    passes, inf_words, inf_seconds, inf_cpu = 0, 0, 0.0, 0.0
    while passes == 0 or inf_seconds < args.infer_seconds:
        docs = [Doc(nlp.vocab, words=[t.text for t in r], spaces=[bool(t.whitespace_) for t in r]) for r in refs]
        t, c = time.perf_counter(), time.process_time()
        stream = iter(docs)
        for _name, proc in nlp.pipeline:
            stream = proc.pipe(stream, batch_size=args.infer_batch_size)
        out = list(stream)
        inf_seconds += time.perf_counter() - t
        inf_cpu += time.process_time() - c
        inf_words += sum(len(d) for d in out)
        passes += 1
    n_ents = sum(len(d.ents) for d in out)
    inference = {"words": inf_words, "passes": passes, "seconds": inf_seconds,
                 "words_per_second": inf_words / inf_seconds, "batch_size_docs": args.infer_batch_size,
                 "cpu_seconds": inf_cpu, "words_per_cpu_second": inf_words / max(inf_cpu, 1e-9),
                 "predicted_entities_last_pass": n_ents}

    result = {
        "side": "spacy",
        "train": train,
        "inference": inference,
        "init_seconds": init_seconds,
        "docs": len(refs),
        "corpus_words": n_words_corpus,
        "pipeline": nlp.pipe_names,
        "labels": {name: len(proc.labels) for name, proc in nlp.pipeline if hasattr(proc, "labels") and name != "tok2vec"},
        "warmup_batches": args.warmup_batches,
        "threads": args.threads,
        "env_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "versions": {"spacy": spacy.__version__, "thinc": thinc.__version__, "numpy": numpy.__version__,
                     "python": sys.version.split()[0], "ops": type(thinc.api.get_current_ops()).__name__},
    }
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
