"""Start-up vs corpus size: label inventories from meta.json only (now) against the full scans
training used to make on every rank at every start (`lemma_tree_labels`, and `morph_labels` for a
corpus without stored morphologizer labels; both kept for `distnlp corpus-labels`), and, with
`--modes first_step`, real training start-up through the end of the first optimizer step.

    python tests/benchmarks/bench_startup.py [--words 0.2M,10M,50M] [--work DIR] [--skip-scan-above 60M]
    python tests/benchmarks/bench_startup.py --modes first_step [--repeats 3] [--profile DIR] [--words ...]

The ~0.2M-word corpus is the shipped demo train set written again by the converter's writer
(`write_corpus`, which counts the edit trees in its one pass); larger ones list that shard k
times (hard links, byte-identical copies) with meta.json's counts and tree counts times k, which
is what the writer stores for the same docs written k times. Each measurement runs in a fresh
Python process: wall seconds of the call, peak RSS (ru_maxrss) and, to subtract, the RSS of the
imports alone. Prints a table and one JSON line.

`first_step` (not in the default modes: it trains): a fresh process per run composes the default
pipeline config on the corpus (the demo dev set, `encoder.width=32`, one thread, `max_steps=1`,
plus any `--set KEY=VALUE`) and calls `run_worker`, the one-process training entry. Time to first
step is wall time from just before the parent launches the child (interpreter start and imports
included) to the return of the first `optimizer_step`; the child then writes its numbers and
exits, so the final evaluation and save are not counted. Phases (hooks on the entry's own
functions): imports, config (compose), labels (`pipeline_labels`), model (the rest of
`build_pipeline`), objective (the corpus's batches, dev docs), other setup (run_worker's settings
and output dir, the loop's optimizer, checkpoint coordinator, logger), first batch (`take` +
featurize), first step; each in wall and in the child's CPU seconds (less moved by other load),
with the peak RSS (VmHWM) reached by its end. The median of `--repeats` runs per size, run round
robin over the sizes; sizes within 10% of each other (max/min - 1 <= `--tolerance`) on time to
first step and on peak RSS pass. `--profile DIR` also writes each size's cProfile of one extra
child (start to first step) to DIR/first_step-<words>.prof and prints its top functions.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODES = ("imports", "meta", "scan_lemma", "scan_morph")
DEFAULT_MODES = MODES  # first_step trains: asked for by name
ALL_MODES = (*MODES, "first_step")
PHASES = ("imports", "config", "labels", "model", "objective", "other_setup", "first_batch", "first_step")
CORPUS_PHASES = ("labels", "objective", "first_batch")  # the phases that open or read the training corpus


def parse_words(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * scale)


def build_base(out: Path) -> dict[str, Any]:
    """The demo train docs through the converter's writer (shards + meta.json with the inventories)."""
    from distnlp.cli.compose import DEMO_DATA
    from distnlp.data.convert import write_corpus
    from distnlp.data.stream import read_docs

    t0 = time.perf_counter()
    meta = write_corpus(read_docs(DEMO_DATA / "train"), out, fmt="conllu", sources=[], shard_size=1_000_000)
    meta["_write_s"] = time.perf_counter() - t0
    return meta


def build_repeated(base: Path, base_meta: dict[str, Any], out: Path, copies: int) -> None:
    """`copies` times the base corpus: its shard listed again under new names, counts scaled."""
    out.mkdir(parents=True, exist_ok=True)
    (shard,) = base_meta["shards"]
    shards = []
    for i in range(copies):
        name = f"shard-{i:05d}.parquet"
        try:
            os.link(base / shard["file"], out / name)
        except OSError:
            (out / name).write_bytes((base / shard["file"]).read_bytes())
        shards.append({**shard, "file": name})
    meta = {k: v for k, v in base_meta.items() if not k.startswith("_")}
    meta["shards"] = shards
    meta["counts"] = {k: v * copies for k, v in base_meta["counts"].items()}
    meta["annotated"] = {k: v * copies for k, v in base_meta["annotated"].items()}
    meta["missing_tokens"] = {k: v * copies for k, v in base_meta["missing_tokens"].items()}
    meta["lemma_trees"] = {tree: n * copies for tree, n in base_meta["lemma_trees"].items()}
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


CHILD = r"""
import hashlib, json, resource, sys, time
mode, path = sys.argv[1], sys.argv[2]
from distnlp.cli.compose import compose_config
from distnlp.training import labels as L
config = compose_config([])  # the default pipeline: every component
min_tree_freq = int(config["components"]["lemmatizer"].get("min_tree_freq", 3))
t0 = time.perf_counter()
if mode == "imports":
    lemma = None
elif mode == "meta":
    lemma = L.pipeline_labels(config, path)["lemmatizer"]
elif mode == "scan_lemma":
    lemma = L.lemma_tree_labels(path, min_tree_freq)
else:
    lemma = None
    L.morph_labels(path)
seconds = time.perf_counter() - t0
digest = None if lemma is None else hashlib.sha256(json.dumps(lemma).encode()).hexdigest()[:12]
print(json.dumps({"seconds": seconds, "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "lemma_labels": digest}))
"""


FIRST_STEP_CHILD = r"""
import time
t_up, cpu_up = time.time(), time.process_time()  # interpreter up; the parent's launch time comes in argv
import json, os, resource, sys
launched, path, out_dir, profile = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
extra = sys.argv[5:]  # --set overrides
marks = {}
def hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def mark(name):
    if name not in marks:
        marks[name] = (time.time() - launched, time.process_time(), hwm())
prof = None
if profile:
    import cProfile
    prof = cProfile.Profile()
    prof.enable()
mark("up")
from distnlp.cli.compose import DEMO_DATA, compose_config
import distnlp.training.engine as engine
import distnlp.training.loop as loop
import distnlp.training.pipeline_objective as po
from distnlp.training.batches import ResumableBatches
mark("imports")
config = compose_config([f"corpus.train={path}", f"corpus.dev={DEMO_DATA / 'dev'}", "training.max_steps=1", f"training.output_dir={out_dir}",
                         "training.max_eval_docs=2", "encoder.width=32", "distributed.num_threads=1", "training.curves=false", *extra])
mark("config")

def wrap(owner, name, before=None, after=None):
    inner = getattr(owner, name)
    def hooked(*args, **kwargs):
        if before:
            mark(before)
        result = inner(*args, **kwargs)
        if after:
            mark(after)
        return result
    setattr(owner, name, hooked)

wrap(po, "pipeline_labels", "labels_start", "labels")        # build_pipeline's global
wrap(loop, "build_pipeline", "build_start", "model")          # pipeline_objective's global
wrap(loop, "pipeline_objective", None, "objective")
import dataclasses
loop.TRAIN = dataclasses.replace(loop.TRAIN, objective=loop.pipeline_objective)  # run_worker's global
wrap(ResumableBatches, "take", "batch_start", None)
wrap(po.PipelineObjective, "prepare", None, "first_batch")

step_inner = engine.optimizer_step
def first_step(*args, **kwargs):
    mark("step_start")
    result = step_inner(*args, **kwargs)
    mark("first_step")
    if prof is not None:
        prof.disable()
        prof.dump_stats(profile)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"t_up": t_up - launched, "cpu_up": cpu_up, "marks": marks, "maxrss_mib": usage.ru_maxrss / 1024,
                      "words_in_step": result.words}), flush=True)
    sys.stderr.flush()
    os._exit(0)  # the final evaluation and save come after the step: not start-up
engine.optimizer_step = first_step
loop.run_worker(config)
raise SystemExit("run_worker returned without an optimizer step")
"""


def measure_first_step(path: Path, work: Path, profile: Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """One fresh process: launch -> end of the first optimizer step; wall seconds per phase and peak RSS."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(dir=work) as out:
        launched = time.time()
        proc = subprocess.run([sys.executable, "-c", FIRST_STEP_CHILD, repr(launched), str(path), str(Path(out) / "run"), str(profile or ""), *(overrides or [])],
                              capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode:
        raise SystemExit(f"first_step on {path} failed:\n{proc.stderr[-3000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    m = {k: tuple(v) for k, v in data["marks"].items()}
    def split(t: dict[str, float]) -> dict[str, float]:
        return {
        "imports": t["imports"],  # interpreter start included
        "config": t["config"] - t["imports"],
        "labels": t["labels"] - t["labels_start"],
        "model": t["model"] - t["build_start"] - (t["labels"] - t["labels_start"]),
        "objective": t["objective"] - t["model"],
        # run_worker's own prelude (settings, output dir) and the loop's (optimizer, coordinator, logger)
        "other_setup": (t["build_start"] - t["config"]) + (t["batch_start"] - t["objective"]),
        "first_batch": t["first_batch"] - t["batch_start"],
        "first_step": t["first_step"] - t["step_start"],
        }

    phases = split({k: v[0] for k, v in m.items()})
    # CPU seconds (user + sys) of the child: the same split, much less moved by other load on the machine
    cpu = {k: v[1] for k, v in m.items()}
    cpu["imports"] += data["cpu_up"]  # before the first mark: interpreter start-up
    phases_cpu = split(cpu)
    ends = {"imports": "imports", "config": "config", "labels": "labels", "model": "model", "objective": "objective",
            "other_setup": "batch_start", "first_batch": "first_batch", "first_step": "first_step"}
    return {"seconds": m["first_step"][0], "cpu_s": phases_cpu["imports"] + (cpu["first_step"] - cpu["imports"]),
            "maxrss_mib": data["maxrss_mib"], "phases": phases, "phases_cpu": phases_cpu,
            "rss_at": {phase: m[ends[phase]][2] for phase in PHASES}, "interpreter_s": data["t_up"],
            "words_in_step": data["words_in_step"]}


def median_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-number medians over repeated runs (each phase on its own)."""
    med = statistics.median
    return {"seconds": med(r["seconds"] for r in runs), "cpu_s": med(r["cpu_s"] for r in runs), "maxrss_mib": med(r["maxrss_mib"] for r in runs),
            "phases": {p: med(r["phases"][p] for r in runs) for p in PHASES},
            "phases_cpu": {p: med(r["phases_cpu"][p] for r in runs) for p in PHASES},
            "rss_at": {p: med(r["rss_at"][p] for r in runs) for p in PHASES},
            "interpreter_s": med(r["interpreter_s"] for r in runs),
            "repeats": len(runs), "all_seconds": [round(r["seconds"], 3) for r in runs], "all_cpu_s": [round(r["cpu_s"], 3) for r in runs],
            "all_maxrss_mib": [round(r["maxrss_mib"], 1) for r in runs]}


def spread(values: list[float]) -> float:
    """max/min - 1: how far apart the sizes are."""
    return max(values) / min(values) - 1 if values and min(values) > 0 else 0.0


def print_first_step(row: dict[str, Any], header: bool) -> None:
    """Two lines per corpus: wall seconds (what the issue asks about) and the child's CPU seconds."""
    if header:
        names = {"imports": "imports", "config": "config", "labels": "labels", "model": "model", "objective": "objective",
                 "other_setup": "other", "first_batch": "batch", "first_step": "step"}
        print(f"{'words':>12} {'clock':>5} | {'to 1st step s':>13} {'peak RSS MiB':>12} | " + " ".join(f"{names[p]:>9}" for p in PHASES)
              + " | RSS MiB at end of: model objective other batch step")
    f = row["first_step"]
    rss = " ".join(f"{f['rss_at'][p]:.0f}" for p in ("model", "objective", "other_setup", "first_batch", "first_step"))
    print(f"{row['words']:>12,} {'wall':>5} | {f['seconds']:13.2f} {f['maxrss_mib']:12.0f} | " + " ".join(f"{f['phases'][p]:9.3f}" for p in PHASES)
          + f" | {rss}", flush=True)
    print(f"{'':>12} {'cpu':>5} | {f['cpu_s']:13.2f} {'':>12} | " + " ".join(f"{f['phases_cpu'][p]:9.3f}" for p in PHASES), flush=True)


def print_profile(path: Path, top: int = 25) -> None:
    """The profiled child's top functions by cumulative time: all, then distnlp's own."""
    import pstats

    print(f"-- {path.name}: top {top} by cumulative time, then distnlp's functions")
    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative").print_stats(top)
    stats.print_stats("distnlp/", top)


def measure(mode: str, path: Path) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(path)], capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode:
        raise SystemExit(f"{mode} on {path} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", default="0.2M,10M,50M", help="corpus sizes, comma-separated (rounded to whole copies of the demo)")
    parser.add_argument("--work", type=Path, default=None, help="where the corpora go (default: a temp dir, removed after)")
    parser.add_argument("--skip-scan-above", default="1000M", help="no full scans on corpora larger than this")
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES), help=f"what to measure, comma-separated (of {', '.join(ALL_MODES)})")
    parser.add_argument("--repeats", type=int, default=3, help="first_step: fresh processes per corpus size (the median is reported)")
    parser.add_argument("--profile", type=Path, default=None, help="first_step: also one cProfiled child per size, its stats written here")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="first_step: an extra config override for the child (repeatable), e.g. corpus.shuffle_words=0")
    parser.add_argument("--tolerance", type=float, default=0.10, help="first_step: how far apart sizes may be (max/min - 1)")
    args = parser.parse_args()
    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in ALL_MODES]
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)} (of {', '.join(ALL_MODES)})")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        base = work / "base"
        base_meta = build_base(base) if not (base / "meta.json").exists() else json.loads((base / "meta.json").read_text())
        rows: list[dict[str, Any]] = []
        paths: list[Path] = []
        for target in (parse_words(w) for w in args.words.split(",")):
            copies = max(1, round(target / base_meta["counts"]["words"]))
            path = base if copies == 1 else work / f"x{copies}"
            t0 = time.perf_counter()
            if copies > 1 and not (path / "meta.json").exists():
                build_repeated(base, base_meta, path, copies)
            built_s = time.perf_counter() - t0
            row: dict[str, Any] = {"words": base_meta["counts"]["words"] * copies, "copies": copies, "build_s": round(built_s, 2),
                                   "meta_json_bytes": (path / "meta.json").stat().st_size}
            scan = row["words"] <= parse_words(args.skip_scan_above)
            for mode in modes:
                if mode == "first_step" or (mode.startswith("scan") and not scan):
                    continue
                row[mode] = measure(mode, path)
            if "scan_lemma" in row and "meta" in row:
                assert row["meta"]["lemma_labels"] == row["scan_lemma"]["lemma_labels"], "stored and scanned edit-tree labels differ"
            rows.append(row)
            paths.append(path)
            if any(m != "first_step" for m in modes):
                print_row(row, header=len(rows) == 1)
        if "first_step" in modes:
            # Round robin (every size once per repeat): load from elsewhere on the machine falls on all sizes alike.
            runs: list[list[dict[str, Any]]] = [[] for _ in rows]
            for _ in range(max(1, args.repeats)):
                for i, path in enumerate(paths):
                    runs[i].append(measure_first_step(path, work, overrides=args.overrides))
            for i, (row, path) in enumerate(zip(rows, paths)):
                row["first_step"] = median_runs(runs[i])
                if args.profile is not None:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    prof = args.profile / f"first_step-{row['words']}.prof"
                    measure_first_step(path, work, profile=prof, overrides=args.overrides)
                    row["first_step"]["profile"] = str(prof)
                print_first_step(row, header=i == 0)
        summary: dict[str, Any] = {"base_write_s": base_meta.get("_write_s"), "rows": rows}
        if "first_step" in modes:
            time_spread = spread([r["first_step"]["seconds"] for r in rows])
            rss_spread = spread([r["first_step"]["maxrss_mib"] for r in rows])
            ok = time_spread <= args.tolerance and rss_spread <= args.tolerance
            cpu_spread = spread([r["first_step"]["cpu_s"] for r in rows])
            # What reads the corpus (labels, the objective's streams, the first batch): the rest is code, config and model
            data_s = [sum(r["first_step"]["phases_cpu"][p] for p in CORPUS_PHASES) for r in rows]
            summary["first_step_spread"] = {"seconds": time_spread, "cpu_s": cpu_spread, "maxrss_mib": rss_spread, "tolerance": args.tolerance,
                                            "within": ok, "corpus_phases_cpu_s": data_s}
            print(f"time to first step: sizes {100 * time_spread:.1f}% apart (CPU time {100 * cpu_spread:.1f}%); peak RSS: "
                  f"{100 * rss_spread:.1f}% apart -> {'within' if ok else 'NOT within'} {100 * args.tolerance:.0f}%", flush=True)
            print(f"corpus-dependent phases ({' + '.join(CORPUS_PHASES)}), CPU s: " + ", ".join(f"{r['words']:,}: {d:.3f}" for r, d in zip(rows, data_s)),
                  flush=True)
            for r in rows:
                if r["first_step"].get("profile"):
                    print_profile(Path(r["first_step"]["profile"]))
        print(json.dumps(summary))


def print_row(row: dict[str, Any], header: bool) -> None:
    """One line per corpus; a mode not measured shows as -."""
    if header:
        print(f"{'words':>12} {'meta.json':>10} | {'now: pipeline_labels':>22} | {'before: lemma scan':>20} | {'before: morph scan':>20} | imports RSS")
        print(f"{'':>12} {'KiB':>10} | {'s':>8} {'peak RSS MiB':>13} | {'s':>7} {'peak MiB':>12} | {'s':>7} {'peak MiB':>12} | MiB")
    def cell(mode: str, width: int) -> str:
        m = row.get(mode)
        return f"{'-':>7} {'-':>{width}}" if m is None else f"{m['seconds']:7.3f} {m['maxrss_mib']:{width}.0f}"
    imports = row.get("imports")
    print(f"{row['words']:>12,} {row['meta_json_bytes'] / 1024:>10.0f} | {cell('meta', 13):>22} | "
          f"{cell('scan_lemma', 12)} | {cell('scan_morph', 12)} | {'-' if imports is None else round(imports['maxrss_mib'])}", flush=True)


if __name__ == "__main__":
    main()
