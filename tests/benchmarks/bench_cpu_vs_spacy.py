"""CPU speed of distnlp's shared CNN pipeline against spaCy 3.8, same widths, same docs, same run.

Pipeline on both sides: tok2vec (MultiHashEmbed NORM/PREFIX/SUFFIX/SHAPE rows 5000/1000/2500/2500,
MaxoutWindowEncoder width 96 depth 4 window 1 maxout 3) + the --pipeline components (default
tagger (XPOS) + morphologizer (UPOS+feats) + ner); spaCy's from
shared/reference/spacy-baseline/ewt_cnn.cfg with the other components removed, plus a
trainable_lemmatizer (Tagger.v2 over the tok2vec, top_k 1, min_tree_freq 3, backoff orth) when
`lemmatizer` is asked for. `--pipeline parser` puts distnlp's biaffine parser beside spaCy's
transition-based parser (hidden 128, maxout 3); both parse within the gold sentence starts at
inference.
Run on purpose (not in CI), with spaCy in its own venv:

    python3 -m venv /tmp/spacy-venv && /tmp/spacy-venv/bin/pip install 'spacy>=3.8,<3.9'
    python tests/benchmarks/bench_cpu_vs_spacy.py --spacy-python /tmp/spacy-venv/bin/python \
        --seconds 60 --threads 1 --out /tmp/cpu_vs_spacy.json
    python tests/benchmarks/bench_cpu_vs_spacy.py --skip-spacy --seconds 2 --corpus distnlp/demo_data/train

What is timed, per side (each side runs in its own subprocess, one after the other, A B A B):
  * training: the update step on the SAME doc-index batches (distnlp's batch_by_words, a port
    of spaCy's minibatch_by_words: ~1000 words, tolerance 0.2, whole docs, a doc longer than
    1200 words is a batch alone), for N seconds after a few warm-up batches. distnlp:
    `nlp.featurize(batch)` + `train_step` (AdamW, grad clip 1.0, dropout 0.1); spaCy:
    `nlp.update` (Adam with L2 as weight decay, grad clip 1.0, dropout 0.1), which featurizes
    inside. Reading the corpus (Parquet / DocBin) is outside the timed loop on both sides.
  * inference: all components over pre-tokenized, unannotated Docs (tokenization excluded on
    both sides), batches of --infer-batch-size docs, whole passes over the docs until
    --infer-seconds are spent; distnlp `nlp.pipe(doc copies)`, spaCy `proc.pipe` chained.
Known architectural difference: spaCy's ner is a transition-based parser (hidden 64, maxout 2);
distnlp's is a per-token BILUO head with constrained Viterbi decoding.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "reference" / "spacy-baseline"
SPACY_SIDE = Path(__file__).resolve().with_name("spacy_side.py")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def default_corpus() -> Path:
    ewt = REPO / "corpus" / "ewt-train"
    return ewt if (ewt / "meta.json").exists() else REPO / "distnlp" / "demo_data" / "train"


def load_docs(corpus: Path) -> list[Any]:
    from distnlp.data.stream import read_docs

    return [d for d in read_docs(str(corpus)) if len(d) > 0]


# --- the driver -------------------------------------------------------------------------------
def write_inputs(docs: list[Any], work: Path, batch_words: int, seed: int, min_words: int) -> dict[str, Any]:
    """docs.jsonl for spaCy, and batches.json (doc indices) shared by both sides."""
    from distnlp.data.batching import batch_by_words

    with (work / "docs.jsonl").open("w", encoding="utf8") as f:
        for d in docs:
            morphs = None if d.morphs is None else [m if m not in ("", "_") else "" for m in d.morphs]
            f.write(json.dumps({"words": d.words, "spaces": d.spaces, "tags": d.tags, "pos": d.pos,
                                "morphs": morphs, "ents": d.ent_spans, "lemmas": d.lemmas, "heads": d.heads,
                                "deps": d.deps, "sent_starts": d.sent_starts}) + "\n")
    lengths = [len(d) for d in docs]
    rng = random.Random(seed)
    batches: list[list[int]] = []
    order = list(range(len(docs)))
    words = 0
    while words < min_words:  # shuffled epochs until far more words than either side can use
        rng.shuffle(order)
        for b in batch_by_words(list(order), batch_words, tolerance=0.2, get_length=lengths.__getitem__):
            batches.append(b)
            words += sum(lengths[i] for i in b)
    (work / "batches.json").write_text(json.dumps(batches))
    sizes = sorted(sum(lengths[i] for i in b) for b in batches)
    return {"batches": len(batches), "batch_words_median": sizes[len(sizes) // 2], "batch_words_max": sizes[-1],
            "docs": len(docs), "words": sum(lengths)}


def thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    return env


def run_side(cmd: list[str], threads: int, out: Path) -> dict[str, Any]:
    load_before = os.getloadavg()
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=thread_env(threads), cwd=str(REPO), text=True, capture_output=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"side failed (rc {proc.returncode}): {' '.join(cmd)}")
    result = json.loads(out.read_text())
    result["wall_seconds"] = wall
    result["loadavg_before"] = list(load_before)
    result["loadavg_after"] = list(os.getloadavg())
    return result


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def driver(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    import distnlp

    corpus = Path(args.corpus)
    docs = load_docs(corpus)
    work = Path(tempfile.mkdtemp(prefix="bench_cpu_vs_spacy-"))
    # enough batches for the fastest side at ~100k words/s; the sides wrap around if not
    data = write_inputs(docs, work, args.batch_words, args.seed, min_words=int(max(args.seconds, 1) * 100_000))
    del docs
    common = ["--work-dir", str(work), "--seconds", str(args.seconds), "--infer-seconds", str(args.infer_seconds),
              "--infer-batch-size", str(args.infer_batch_size), "--warmup-batches", str(args.warmup_batches),
              "--threads", str(args.threads), "--seed", str(args.seed), "--pipeline", args.pipeline]
    rounds: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    for r in range(args.rounds):
        if r > 0 and args.max_total_seconds and time.perf_counter() - t_start > args.max_total_seconds / 2:
            break  # a second round would not fit the time budget
        row: dict[str, Any] = {}
        out = work / f"distnlp-{r}.json"
        overrides = [f"--distnlp-override={o}" for o in args.distnlp_override]
        row["distnlp"] = run_side([sys.executable, str(Path(__file__).resolve()), "--worker", "distnlp",
                                   "--corpus", str(corpus), "--out", str(out)] + common + overrides, args.threads, out)
        if not args.skip_spacy:
            out = work / f"spacy-{r}.json"
            row["spacy"] = run_side([args.spacy_python, str(SPACY_SIDE), "--config", str(args.spacy_config),
                                     "--code", str(args.spacy_code), "--out", str(out)] + common, args.threads, out)
        rounds.append(row)
        print_round(r, row)

    summary: dict[str, Any] = {}
    for side in ("distnlp", "spacy"):
        tr = [row[side]["train"]["words_per_second"] for row in rounds if side in row]
        inf = [row[side]["inference"]["words_per_second"] for row in rounds if side in row]
        tr_cpu = [row[side]["train"]["words_per_cpu_second"] for row in rounds if side in row]
        inf_cpu = [row[side]["inference"]["words_per_cpu_second"] for row in rounds if side in row]
        if tr:
            summary[side] = {"train_wps_mean": mean(tr), "train_wps_per_round": tr,
                             "inference_wps_mean": mean(inf), "inference_wps_per_round": inf,
                             "train_words_per_cpu_second_mean": mean(tr_cpu),
                             "inference_words_per_cpu_second_mean": mean(inf_cpu)}
    if "spacy" in summary:
        summary["ratio_distnlp_over_spacy"] = {
            "train": summary["distnlp"]["train_wps_mean"] / summary["spacy"]["train_wps_mean"],
            "inference": summary["distnlp"]["inference_wps_mean"] / summary["spacy"]["inference_wps_mean"],
            "train_per_round": [row["distnlp"]["train"]["words_per_second"] / row["spacy"]["train"]["words_per_second"] for row in rounds],
            "inference_per_round": [row["distnlp"]["inference"]["words_per_second"] / row["spacy"]["inference"]["words_per_second"] for row in rounds],
            # per CPU-second of each side's own process: a cross-check when other jobs share the cores
            "train_cpu": summary["distnlp"]["train_words_per_cpu_second_mean"] / summary["spacy"]["train_words_per_cpu_second_mean"],
            "inference_cpu": summary["distnlp"]["inference_words_per_cpu_second_mean"] / summary["spacy"]["inference_words_per_cpu_second_mean"],
        }
    spacy_versions = next((row["spacy"]["versions"] for row in rounds if "spacy" in row), None)
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "corpus": str(corpus),
        "data": data,
        "settings": {"seconds": args.seconds, "infer_seconds": args.infer_seconds, "threads": args.threads,
                     "batch_words": args.batch_words, "infer_batch_size": args.infer_batch_size,
                     "warmup_batches": args.warmup_batches, "rounds_run": len(rounds), "seed": args.seed,
                     "pipeline": args.pipeline, "distnlp_overrides": args.distnlp_override,
                     "spacy_config": str(args.spacy_config) + " (components outside --pipeline removed)"},
        "machine": {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "loadavg_at_end": list(os.getloadavg())},
        "versions": {"distnlp": getattr(distnlp, "__version__", "?"), "torch": torch.__version__,
                     "python": platform.python_version(), "spacy_side": spacy_versions},
        "summary": summary,
        "rounds": rounds,
        "work_dir": str(work),
    }


def print_round(r: int, row: dict[str, Any]) -> None:
    for side, res in row.items():
        print(f"round {r} {side:8s} train {res['train']['words_per_second']:9.0f} w/s ({res['train']['steps']} steps, "
              f"{res['train']['words']} words, {res['train']['words_per_cpu_second']:.0f}/cpu-s)  "
              f"inference {res['inference']['words_per_second']:9.0f} w/s ({res['inference']['words_per_cpu_second']:.0f}/cpu-s)  "
              f"load {res['loadavg_before'][0]:.2f}->{res['loadavg_after'][0]:.2f}", flush=True)


def print_table(report: dict[str, Any]) -> None:
    s = report["summary"]
    print(f"\n{report['date']}  {report['machine']['cpu_model']}  threads={report['settings']['threads']}  "
          f"pipeline=tok2vec+{report['settings']['pipeline']}  "
          f"corpus={report['corpus']} ({report['data']['docs']} docs, {report['data']['words']} words)")
    print(f"{'side':10s} {'train w/s':>12s} {'inference w/s':>15s}")
    for side in ("distnlp", "spacy"):
        if side in s:
            print(f"{side:10s} {s[side]['train_wps_mean']:12.0f} {s[side]['inference_wps_mean']:15.0f}")
    if "ratio_distnlp_over_spacy" in s:
        ratio = s["ratio_distnlp_over_spacy"]
        print(f"{'ratio':10s} {ratio['train']:11.2f}x {ratio['inference']:14.2f}x   (distnlp / spaCy, wall)")
        print(f"{'ratio cpu':10s} {ratio['train_cpu']:11.2f}x {ratio['inference_cpu']:14.2f}x   (per CPU-second of each side)")


# --- the distnlp side (a subprocess of the driver, same venv) --------------------------------
def unannotated_with_sentences(doc: Any) -> Any:
    """Words, spaces and the gold sentence starts, as the spaCy side's inference Docs get them:
    both parsers then parse within the same sentences."""
    copy = doc.copy_unannotated()
    copy.sent_starts = None if doc.sent_starts is None else list(doc.sent_starts)
    return copy


def distnlp_worker(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    import distnlp
    from distnlp.cli.compose import compose_config
    from distnlp.training.loop import build_pipeline, seed_everything
    from distnlp.training.optim import build_optimizer
    from distnlp.training.pipeline_objective import train_step

    # 1 thread by default: on 2 shared cores, OpenMP worker threads busy-wait (spin) between
    # parallel regions, so extra threads steal the core the other side / other jobs need and
    # make timings noisy; thinc's blis is single-threaded anyway.
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    work = Path(args.work_dir)
    pipeline = args.pipeline.split(",")
    config = compose_config([f"corpus.train={args.corpus}", "corpus.dev=null",
                             f"nlp.pipeline=[{args.pipeline}]", f"seed={args.seed}"] + list(args.distnlp_override))
    seed_everything(args.seed)
    t = time.perf_counter()
    nlp = build_pipeline(config)
    init_seconds = time.perf_counter() - t
    assert nlp.pipe_names == pipeline, nlp.pipe_names
    tcfg = config["training"]
    optimizer, _lr = build_optimizer(nlp, tcfg["optimizer"])
    grad_clip = float(tcfg["optimizer"]["grad_clip"])
    nlp.set_dropout(tcfg["dropout"])
    nlp.train()

    docs = load_docs(Path(args.corpus))
    batches = json.loads((work / "batches.json").read_text())
    it = iter(batches * 1000)
    step = 0
    for _ in range(args.warmup_batches):
        train_step(nlp, [nlp.featurize([docs[i] for i in next(it)])], step=step, optimizer=optimizer, grad_clip=grad_clip)
        step += 1
    words = steps = 0
    feat_seconds = 0.0
    losses: dict[str, float] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    elapsed = 0.0
    while elapsed < args.seconds:
        tf = time.perf_counter()
        batch = nlp.featurize([docs[i] for i in next(it)])  # featurization inside the timed loop
        feat_seconds += time.perf_counter() - tf
        result = train_step(nlp, [batch], step=step, optimizer=optimizer, grad_clip=grad_clip)
        for k, v in result.losses.items():
            losses[k] = losses.get(k, 0.0) + v
        words += result.words
        steps += 1
        step += 1
        elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0  # CPU seconds of this process (all threads): less sensitive to other load
    train = {"words": words, "steps": steps, "seconds": elapsed, "words_per_second": words / elapsed,
             "cpu_seconds": cpu, "words_per_cpu_second": words / max(cpu, 1e-9),
             "featurize_seconds": feat_seconds, "losses": losses}

    passes, inf_words, inf_seconds, inf_cpu = 0, 0, 0.0, 0.0
    while passes == 0 or inf_seconds < args.infer_seconds:
        copies = [unannotated_with_sentences(d) for d in docs]
        t, c = time.perf_counter(), time.process_time()
        out = list(nlp.pipe(copies, batch_size=args.infer_batch_size))
        inf_seconds += time.perf_counter() - t
        inf_cpu += time.process_time() - c
        inf_words += sum(len(d) for d in out)
        passes += 1
    inference = {"words": inf_words, "passes": passes, "seconds": inf_seconds,
                 "words_per_second": inf_words / inf_seconds, "batch_size_docs": args.infer_batch_size,
                 "cpu_seconds": inf_cpu, "words_per_cpu_second": inf_words / max(inf_cpu, 1e-9),
                 "predicted_entities_last_pass": sum(len(d.ent_spans or []) for d in out)}
    result_json = {
        "side": "distnlp",
        "train": train,
        "inference": inference,
        "init_seconds": init_seconds,
        "docs": len(docs),
        "corpus_words": sum(len(d) for d in docs),
        "pipeline": ["tok2vec(encoder)"] + nlp.pipe_names,
        "labels": {name: len(labels) for name, labels in nlp.labels.items()},
        "parameters": sum(p.numel() for p in nlp.parameters()),
        "warmup_batches": args.warmup_batches,
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "env_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "versions": {"distnlp": getattr(distnlp, "__version__", "?"), "torch": torch.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
    }
    Path(args.out).write_text(json.dumps(result_json, indent=2))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(default_corpus()), help="a converted distnlp corpus directory")
    ap.add_argument("--spacy-python", default="/tmp/spacy-venv/bin/python", help="python of a venv with spacy>=3.8,<3.9")
    ap.add_argument("--spacy-config", default=str(REFERENCE / "ewt_cnn.cfg"))
    ap.add_argument("--spacy-code", default=str(REFERENCE / "baseline_code.py"))
    ap.add_argument("--skip-spacy", action="store_true", help="run only the distnlp side (no spaCy needed)")
    ap.add_argument("--seconds", type=float, default=60.0, help="training seconds per side and round")
    ap.add_argument("--infer-seconds", type=float, default=None, help="inference seconds per side and round (default: min(seconds, 30); at least one pass)")
    ap.add_argument("--infer-batch-size", type=int, default=128, help="docs per inference batch, both sides")
    ap.add_argument("--batch-words", type=int, default=1000, help="batch_by_words target size")
    ap.add_argument("--warmup-batches", type=int, default=2, help="untimed training batches first")
    # Default 1: on 2 shared cores, busy-waiting OpenMP threads distort timings (see distnlp_worker).
    ap.add_argument("--threads", type=int, default=1, help="torch / OpenMP / BLAS threads for both sides")
    ap.add_argument("--rounds", type=int, default=2, help="A B rounds (distnlp, then spaCy)")
    ap.add_argument("--max-total-seconds", type=float, default=0, help="skip further rounds past half this budget; 0 = no limit")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pipeline", default="tagger,morphologizer,ner",
                    help="components after the shared tok2vec, distnlp names (lemmatizer = spaCy's trainable_lemmatizer)")
    ap.add_argument("--distnlp-override", action="append", default=[],
                    help="a Hydra override for the distnlp side only, e.g. components.parser.model.lstm_width=128")
    ap.add_argument("--out", default=None, help="write the JSON report here")
    ap.add_argument("--keep-work-dir", action="store_true", help="keep docs.jsonl, docs.spacy, batches.json and the per-side JSON")
    ap.add_argument("--worker", choices=["distnlp"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--work-dir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.infer_seconds is None:
        args.infer_seconds = min(args.seconds, 30.0)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker == "distnlp":
        distnlp_worker(args)
        return
    if not args.skip_spacy and not Path(args.spacy_python).exists():
        raise SystemExit(f"no spaCy python at {args.spacy_python}: create the venv (see --help) or pass --skip-spacy")
    report = driver(args)
    if not args.keep_work_dir:
        shutil.rmtree(report["work_dir"], ignore_errors=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    print_table(report)
    if args.out:
        print(f"report: {args.out}")


if __name__ == "__main__":
    main()
