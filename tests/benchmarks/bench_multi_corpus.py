"""Several corpora, one pipeline (issue 16): what sharing the embedding costs or saves.

Trains three pipelines with `distnlp train` and compares them:
  (a) ewt:        EWT + UNER: tagger, morphologizer, ner
  (b) shared:     the same plus a banking77 textcat, one shared embedding, the corpora interleaved
  (c) banking77:  a separate banking77 textcat model
and reports, per run, the dev scores per corpus (model-best), the model's size on disk, training
words/s (metrics.jsonl) and inference words/s on each dev corpus it covers, as JSON.

    python tests/benchmarks/bench_multi_corpus.py --max-steps 2000 --out bench/multi_corpus \\
        [--ewt-train corpus/ewt-train --ewt-dev corpus/ewt-dev] \\
        [--b77-train corpus/banking77-train --b77-dev corpus/banking77-dev] [--temperature 0.5] [overrides ...]

Not run in CI at full size; tests/benchmarks/test_bench_scripts.py runs it tiny.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

REPORTED = ("tag_acc", "pos_acc", "morph_acc", "ents_f", "cats_score", "cats_micro_f")
UD_HEADS = ["tagger", "morphologizer", "ner"]


def runs(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """name -> the corpora it trains on ({corpus name: (train, dev)}) and its components."""
    ewt, b77 = ("ewt", (args.ewt_train, args.ewt_dev)), ("banking77", (args.b77_train, args.b77_dev))
    return {
        "ewt": {"corpora": dict([ewt]), "pipeline": UD_HEADS},
        "shared": {"corpora": dict([ewt, b77]), "pipeline": [*UD_HEADS, "textcat"]},
        "banking77": {"corpora": dict([b77]), "pipeline": ["textcat"]},
    }


def corpus_overrides(corpora: dict[str, tuple[str, str]], temperature: float) -> list[str]:
    if len(corpora) == 1:
        ((train, dev),) = corpora.values()
        return [f"corpus.train={train}", f"corpus.dev={dev}"]
    entries = ", ".join(f"{{name: {n}, path: {Path(t).resolve()}, dev: {Path(d).resolve()}}}" for n, (t, d) in corpora.items())
    return [f"corpus.train=[{entries}]", "corpus.dev=null", f"corpus.temperature={temperature}"]


def train(name: str, spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out) / name
    cmd = [sys.executable, "-m", "distnlp.cli.main", "train", *corpus_overrides(spec["corpora"], args.temperature),
           f"nlp.pipeline=[{','.join(spec['pipeline'])}]", f"training.output_dir={out}", f"training.max_steps={args.max_steps}",
           f"training.eval_frequency={args.eval_frequency}", f"distributed.num_threads={args.threads}", "training.overwrite=true", "training.log_every=1",
           *args.overrides]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise SystemExit(f"{name}: distnlp train failed:\n{proc.stderr[-3000:]}")
    wall = time.perf_counter() - start
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["event"] == "step"]
    evals = [r for r in records if r["event"] == "eval"]
    meta = json.loads((out / "model-best" / "meta.json").read_text())
    single = next(iter(spec["corpora"])) if len(spec["corpora"]) == 1 else None
    scores: dict[str, dict[str, float]] = {}
    for corpus in spec["corpora"]:
        prefix = "" if single else f"{corpus}/"
        scores[corpus] = {k: meta["scores"][prefix + k] for k in REPORTED if isinstance(meta["scores"].get(prefix + k), float)}
    return {
        "output_dir": str(out), "steps": len(steps), "best_step": meta.get("step"), "best_score": meta.get("score"),
        "dev_scores": scores,
        "model_bytes": sum(f.stat().st_size for f in (out / "model-best").rglob("*") if f.is_file()),
        # between evaluations, as the console's WORDS/S column (evaluation time excluded)
        "train_words_per_s": sum(r["words_per_second"] for r in evals) / max(1, len(evals)),
        "train_words": sum(r["words"] for r in steps), "train_wall_s": wall,
    }


def inference(model: str, dev: str, seconds: float, max_docs: int, batch_size: int) -> float:
    import torch

    import distnlp
    from distnlp.data.stream import read_docs

    nlp = distnlp.load(model)
    nlp.eval()
    docs = list(read_docs(dev))[: max_docs or None]
    from tests.benchmarks.bench_parser import words_per_s

    with torch.no_grad():
        return words_per_s(nlp, docs, seconds, batch_size)


def main() -> None:
    corpus = ROOT / "corpus"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ewt-train", default=str(corpus / "ewt-train"))
    parser.add_argument("--ewt-dev", default=str(corpus / "ewt-dev"))
    parser.add_argument("--b77-train", default=str(corpus / "banking77-train"))
    parser.add_argument("--b77-dev", default=str(corpus / "banking77-dev"))
    parser.add_argument("--temperature", type=float, default=0.5, help="p_i ~ docs_i ** T for the shared run")
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--eval-frequency", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--infer-seconds", type=float, default=10.0)
    parser.add_argument("--infer-max-docs", type=int, default=0, help="time inference on the first N dev docs (0 = all)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--only", nargs="*", choices=["ewt", "shared", "banking77"], help="run only these (default: all three)")
    parser.add_argument("--out", default="bench/multi_corpus", help="training output directories go here")
    parser.add_argument("--json", default=None, help="write the results here too (default: OUT/results.json)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run, e.g. encoder.width=64")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"max_steps": args.max_steps, "temperature": args.temperature, "overrides": args.overrides, "runs": {}}
    for name, spec in runs(args).items():
        if args.only and name not in args.only:
            continue
        result = train(name, spec, args)
        result["infer_words_per_s"] = {corpus_name: inference(str(Path(result["output_dir"]) / "model-best"), dev, args.infer_seconds,
                                                              args.infer_max_docs, args.batch_size)
                                       for corpus_name, (_, dev) in spec["corpora"].items()}
        results["runs"][name] = result
        print(f"{name}: {json.dumps({k: result[k] for k in ('dev_scores', 'model_bytes', 'train_words_per_s', 'infer_words_per_s')})}",
              file=sys.stderr)
    if {"ewt", "banking77", "shared"} <= set(results["runs"]):
        r = results["runs"]
        # one shared pipeline against the two separate ones it replaces
        results["shared_vs_separate_bytes"] = r["shared"]["model_bytes"] / (r["ewt"]["model_bytes"] + r["banking77"]["model_bytes"])
    path = Path(args.json) if args.json else Path(args.out) / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
