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
    ap.add_argument("--pipeline", default="tagger,morphologizer,ner", help="distnlp names of the components after tok2vec")
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
    # The benchmark pipeline: tok2vec + the asked components (distnlp's lemmatizer is spaCy's
    # trainable_lemmatizer, added here with the settings of distnlp's default config).
    wanted = ["trainable_lemmatizer" if name == "lemmatizer" else name for name in args.pipeline.split(",")]
    if "trainable_lemmatizer" in wanted:
        config["components"]["trainable_lemmatizer"] = {
            "factory": "trainable_lemmatizer", "backoff": "orth", "min_tree_freq": 3, "top_k": 1,
            "overwrite": False, "scorer": {"@scorers": "spacy.lemmatizer_scorer.v1"},
            "model": {"@architectures": "spacy.Tagger.v2", "nO": None, "normalize": False,
                      "tok2vec": {"@architectures": "spacy.Tok2VecListener.v1",
                                  "width": "${components.tok2vec.model.encode.width}", "upstream": "*"}}}
    unknown = [name for name in wanted if name not in config["components"]]
    if unknown:
        raise SystemExit(f"--pipeline: no spaCy component for {unknown}")
    config["nlp"]["pipeline"] = ["tok2vec"] + wanted
    for name in list(config["components"]):
        if name not in config["nlp"]["pipeline"]:
            del config["components"][name]
    config["training"]["score_weights"] = {}
    # Gold-token reference Docs from the driver's JSONL, saved as a DocBin (read back below).
    blank = spacy.blank("en")
    refs = []
    with (work / "docs.jsonl").open(encoding="utf8") as f:
        for line in f:
            row = json.loads(line)
            heads, deps = row.get("heads"), row.get("deps")
            if heads is None or deps is None or None in heads:
                heads = deps = None
            else:  # UD's lowercase root is spaCy's ROOT (as its conllu converter writes it)
                deps = ["ROOT" if d == "root" else d for d in deps]
            doc = Doc(blank.vocab, words=row["words"], spaces=row["spaces"], tags=row.get("tags"),
                      pos=row.get("pos"), morphs=row.get("morphs"), heads=heads, deps=deps,
                      lemmas=None if row.get("lemmas") is None else [x or "" for x in row["lemmas"]],
                      sent_starts=None if heads is not None else row.get("sent_starts"))
            if row.get("ents") is not None:
                doc.ents = [Span(doc, s, e, label=lab) for s, e, lab in row["ents"]]
            refs.append(doc)
    DocBin(store_user_data=False, docs=refs).to_disk(work / "docs.spacy")
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.pipe_names == config["nlp"]["pipeline"], nlp.pipe_names
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
        docs = [Doc(nlp.vocab, words=[t.text for t in r], spaces=[bool(t.whitespace_) for t in r],
                    sent_starts=[bool(t.is_sent_start) for t in r]) for r in refs]  # the gold sentences, as distnlp's side
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
