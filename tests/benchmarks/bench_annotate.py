"""CPU speed of `distnlp annotate` (issue 13): Ray CPU actors vs `Pipeline.pipe` in one process vs
spaCy 3.8's `nlp.pipe`, same texts, same widths, same run. Run on purpose, not in CI:

    OMP_NUM_THREADS=1 python tests/benchmarks/bench_annotate.py --words 60000 --rounds 3 --out runs/bench_annotate.json

Pipeline on both sides: a CNN tok2vec (MultiHashEmbed NORM/PREFIX/SUFFIX/SHAPE rows
5000/1000/2500/2500, MaxoutWindowEncoder width 96 depth 4 window 1 maxout 3) + tagger +
morphologizer + ner; spaCy's from shared/reference/spacy-baseline/ewt_cnn.cfg minus the parser
(as bench_cpu_vs_spacy.py). Weights are untrained on both sides: speed does not depend on them.
Texts: the sentences of the demo corpus (train + dev), repeated until --words words.

Each measurement runs in its own subprocess, one after the other, 1 torch/BLAS thread each:
  * pipe, tokenization included: `nlp.pipe(texts)` (distnlp: budgeted, length-sorted batches;
    spaCy: batch_size=--spacy-batch-size docs);
  * pipe, tokenization excluded: the components over pre-tokenized Docs;
  * annotate: `distnlp annotate` end to end from a text file to Parquet shards (reading,
    tokenizing, predicting, writing), on one process, and with distributed=ray and 1 and 2 CPU
    actors. Ray's startup (ray.init) is outside the timing; starting the actor pool and
    loading the model in each actor are inside it. Ray overhead at 1 actor = single-process
    annotate words/s / Ray 1-actor annotate words/s. Before timing, each side annotates 50 lines on
    one process once (first-use imports; a Ray actor pays its own inside the timing). `wps_per_busy_process` divides the words
    by the seconds the splits took inside their process (no start-up, no scheduling).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SPACY_CFG = REPO.parent / "shared" / "reference" / "spacy-baseline" / "ewt_cnn.cfg"
PIPELINE = "nlp.pipeline=[tagger,morphologizer,ner]"


def sentences(n_words: int) -> list[str]:
    """Sentence texts of the demo corpus, repeated until n_words words (distnlp tokenization)."""
    from distnlp.cli.compose import DEMO_DATA
    from distnlp.data.stream import read_docs

    sents: list[tuple[str, int]] = []
    for split in ("train", "dev"):
        for doc in read_docs(DEMO_DATA / split):
            starts = [i for i, s in enumerate(doc.sent_starts or [True]) if s] + [len(doc)]
            for a, b in zip(starts, starts[1:]):
                text = "".join(w + (" " if s else "") for w, s in zip(doc.words[a:b], doc.spaces[a:b])).strip()
                if text:
                    sents.append((text, b - a))
    out, words, i = [], 0, 0
    while words < n_words:
        text, n = sents[i % len(sents)]
        out.append(text)
        words += n
        i += 1
    return out


# --- sides (each in its own subprocess) --------------------------------------------------------
def side_distnlp_pipe(work: Path) -> dict[str, Any]:
    from distnlp.pipeline.pipeline import Pipeline

    nlp = Pipeline.from_disk(work / "model")
    texts = (work / "texts.txt").read_text().splitlines()
    list(nlp.pipe(texts[:200]))  # warm-up
    t = time.perf_counter()
    docs = list(nlp.pipe(texts))
    with_tok = time.perf_counter() - t
    words = sum(len(d) for d in docs)
    bare = [d.copy_unannotated() for d in docs]
    t = time.perf_counter()
    list(nlp.pipe(bare))
    without_tok = time.perf_counter() - t
    return {"words": words, "docs": len(docs), "with_tokenization_wps": words / with_tok, "without_tokenization_wps": words / without_tok}


def side_spacy_pipe(work: Path, batch_size: int) -> dict[str, Any]:
    import spacy
    from spacy.tokens import Doc
    from spacy.training import Example

    config = spacy.util.load_config(SPACY_CFG, overrides={"paths.train": None, "paths.dev": None})
    config["nlp"]["pipeline"] = [p for p in config["nlp"]["pipeline"] if p != "parser"]
    del config["components"]["parser"]
    config["training"]["score_weights"] = {k: v for k, v in config["training"]["score_weights"].items() if not k.startswith(("dep_", "sents_"))}
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=False)
    labels = json.loads((work / "labels.json").read_text())
    for name in ("tagger", "morphologizer", "ner"):
        for label in labels.get(name, []):
            nlp.get_pipe(name).add_label(label)
    example = Example.from_dict(nlp.make_doc("A sentence ."), {})
    nlp.initialize(lambda: [example])
    texts = (work / "texts.txt").read_text().splitlines()
    list(nlp.pipe(texts[:200], batch_size=batch_size))  # warm-up
    t = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=batch_size))
    with_tok = time.perf_counter() - t
    words = sum(len(d) for d in docs)
    bare = [Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]) for d in docs]
    t = time.perf_counter()
    stream = iter(bare)
    for _name, proc in nlp.pipeline:
        stream = proc.pipe(stream, batch_size=batch_size)
    list(stream)
    without_tok = time.perf_counter() - t
    return {"words": words, "docs": len(docs), "with_tokenization_wps": words / with_tok, "without_tokenization_wps": words / without_tok,
            "batch_size": batch_size, "spacy": spacy.__version__}


def side_annotate(work: Path, actors: int, rows_per_shard: int) -> dict[str, Any]:
    from distnlp.annotate.run import annotate
    from distnlp.annotate.settings import parse_overrides

    out = work / f"annotated-{actors}"
    shutil.rmtree(out, ignore_errors=True)
    overrides = [f"rows_per_shard={rows_per_shard}"]
    if actors:
        import ray

        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        # address="local": a private Ray, never one that Ray's temp dir names (another user's cluster)
        ray.init(address="local", num_cpus=max(2, actors), include_dashboard=False, log_to_driver=False)
        overrides += ["distributed=ray", f"distributed.num_workers={actors}", "distributed.use_gpu=false"]
    # warm-up on one process: first-use imports (pandas via pyarrow, ~1 s here) are not annotation
    warm = work / f"warm-{actors}"
    shutil.rmtree(warm, ignore_errors=True)
    (work / "warm.txt").write_text("\n".join((work / "texts.txt").read_text().splitlines()[:50]) + "\n")
    annotate(str(work / "model"), [str(work / "warm.txt")], str(warm), parse_overrides([]))
    t = time.perf_counter()
    meta = annotate(str(work / "model"), [str(work / "texts.txt")], str(out), parse_overrides(overrides))
    seconds = time.perf_counter() - t
    words = meta["counts"]["words"]
    # the seconds each split took inside its process (read, tokenize, predict, write): without
    # model loading, actor start-up and Ray Data's scheduling
    busy = sum(json.loads(f.read_text())["seconds"] for f in (out / ".annotate").glob("split-*.json"))
    return {"words": words, "docs": meta["counts"]["docs"], "seconds": seconds, "wps": words / seconds, "actors": actors,
            "shards": len(meta["shards"]), "split_seconds_total": busy, "wps_per_busy_process": words / busy}


# --- driver --------------------------------------------------------------------------------------
def prepare(work: Path, n_words: int) -> None:
    from distnlp.cli.compose import DEMO_DATA, compose_config
    from distnlp.pipeline.pipeline import Pipeline
    from distnlp.training.labels import pipeline_labels

    config = compose_config([PIPELINE])
    labels = pipeline_labels(config, str(DEMO_DATA / "train"))
    shutil.rmtree(work / "model", ignore_errors=True)
    Pipeline(config, labels).to_disk(work / "model")
    spacy_labels = {"tagger": labels["tagger"], "morphologizer": labels["morphologizer"],
                    "ner": sorted({lab[2:] for lab in labels["ner"] if lab[:2] in ("B-", "U-", "I-", "L-")})}
    (work / "labels.json").write_text(json.dumps(spacy_labels))
    (work / "texts.txt").write_text("\n".join(sentences(n_words)) + "\n")


def run_side(args: list[str], work: Path) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, __file__, "--work", str(work), *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"side {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=str(REPO / "runs" / "bench_annotate"))
    ap.add_argument("--words", type=int, default=100_000)
    ap.add_argument("--spacy-batch-size", type=int, default=256)
    ap.add_argument("--rows-per-shard", type=int, default=500, help="annotate: sentences per split (the actors' unit of work)")
    ap.add_argument("--rounds", type=int, default=1, help="run every side this many times, interleaved; medians reported")
    ap.add_argument("--skip-spacy", action="store_true")
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--side", choices=("distnlp_pipe", "spacy_pipe", "annotate"), help=argparse.SUPPRESS)
    ap.add_argument("--actors", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.work)
    if args.side:
        import torch

        torch.set_num_threads(1)
        result = {"distnlp_pipe": lambda: side_distnlp_pipe(work), "spacy_pipe": lambda: side_spacy_pipe(work, args.spacy_batch_size),
                  "annotate": lambda: side_annotate(work, args.actors, args.rows_per_shard)}[args.side]()
        print(json.dumps(result))
        return
    work.mkdir(parents=True, exist_ok=True)
    prepare(work, args.words)
    report: dict[str, Any] = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "words_target": args.words,
                              "machine": f"{platform.machine()} {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start",
                              "command": " ".join(sys.argv)}
    sides: dict[str, list[str]] = {"distnlp_pipe": ["--side", "distnlp_pipe"]}
    if not args.skip_spacy:
        sides["spacy_pipe"] = ["--side", "spacy_pipe", "--spacy-batch-size", str(args.spacy_batch_size)]
    shard = ["--rows-per-shard", str(args.rows_per_shard)]
    sides["annotate_single"] = ["--side", "annotate", *shard]
    if not args.skip_ray:
        for actors in (1, 2):
            sides[f"annotate_ray_{actors}"] = ["--side", "annotate", "--actors", str(actors), *shard]
    # rounds A B C A B C ...: the machine's load drifts, so every side sees each phase of it
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, side in sides.items():
            runs[name].append(run_side(side, work))
    for name, results in runs.items():
        report[name] = {"runs": results, **{f"median_{k}": statistics.median(r[k] for r in results)
                                            for k in results[0] if k.endswith(("wps", "wps_per_busy_process"))}}
    if not args.skip_ray:
        report["ray_overhead_at_1_actor"] = report["annotate_single"]["median_wps"] / report["annotate_ray_1"]["median_wps"]
    report["load_average_at_end"] = os.getloadavg()[0]
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
