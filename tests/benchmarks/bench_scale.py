"""The data layer at scale (issue 22): N training replicas reading one Parquet corpus, no model.

    python tests/benchmarks/bench_scale.py [--words 50M] [--ranks 64] [--resize 48,8] [--steps 200]
        [--steps-after 1000] [--sample 4] [--resplit-timed 2] [--epoch-words 5M] [--work DIR]
    PYTHONPATH=/path/to/other/checkout python tests/benchmarks/bench_scale.py ...   # another version

Builds once (cached in --work) a synthetic corpus of --words words: docs of 1-60 words, row groups
of 256 docs (the converter's default), shards of 200,000 docs, only doc_id/words/spaces filled.
Replicas (`DocStream` + `ResumableBatches` with the shipped defaults: shuffle window of 1,000,000
words, `distnlp.batch_by_words.v1` compounding 100 -> 1000 by 1.001, tolerance 0.2) are driven the
way the training loop drives them (the World of tests/data/test_global_epoch.py): each global step
every replica takes one batch; with global epochs (`begin_epoch`, 3fb7687) the loop opens the next
epoch on every replica once every `reached_epoch` is past it. Without them (older code, found by
getattr) each replica streams epoch after epoch on its own (infinite=True), as training did.

Phases, each in a fresh process (its own peak RSS; memory handed back in between):
1. fresh N (--ranks): all N replicas in one process, --steps global steps; every rank's state
   measured at --state-at; the states at the last step are the checkpoint re-split next.
2. for each M of --resize: `resplit` of the saved states timed once (cold caches), `load_resplit`
   timed on --resplit-timed fresh replicas; then --sample of the M ranks (spread over 0..M-1) load
   their states and are driven --steps-after steps, the first under a guard (--guard-s,
   --guard-mb: the code before 3fb7687 needs hours and hundreds of GB there). The baseline, the
   same ranks of a never-resized world of M at the same batch-size schedule position (batches
   as large), is driven in the same process, the two taking turns stretch by stretch so both see
   the same machine load. The next resize starts from these states (ranks not driven: as loaded).
3. one whole epoch on N replicas over a corpus of --epoch-words (idle fraction).
Until an epoch ends a rank's data layer does not depend on the others', so driving a sample of
ranks measures per-rank numbers; the epoch run and phase 1 drive all N.

Measured, and how each scales:
- batches/s and words/s per rank: the batches of all driven replicas in the steady steps divided
  by their CPU seconds (one core produces every rank's batch, so this is one rank's data layer on
  one core; CPU time because the machine may be shared), overall and the median of 10 stretches
  (the comparison with the baseline uses the median). Steady steps batch docs already in the shuffle window: O(docs per batch), independent of
  N and of the corpus size. The first step ("fill") is timed apart: each replica reads
  min(window, share) words and builds their Docs, O(window words) of I/O and decoding per rank.
  With the defaults at 50M words and 64 ranks a share (~780K words) is smaller than the window,
  so the first step reads the whole corpus. After a resize a rank's share is a run of plan pieces,
  whole row groups with the rows already used excluded: the same reads as a fresh rank. (Until
  this commit's parent, docs already used cut row groups into many pieces whose words every new
  rank counted by reading each one's `spaces` column; before 3fb7687 every doc read also copied
  the whole plan into its pending stream state: O(window docs x plan pieces) time and memory.)
- memory per replica: opening (a DocStream keeps its CorpusInfo: every shard's decoded Parquet
  footer, O(row groups x leaf columns), so it grows with the corpus, not with N) and the fill
  (O(min(window, share)) Docs plus each pending doc's saved stream state). A phase's peak RSS
  (VmHWM) is one interpreter plus its replicas; "open MB" and "MB/rank" are the RSS growth while
  making, and while filling, divided by the replicas. A real rank adds its own interpreter.
- checkpoint state: JSON of every rank's `state_dict()`. Per rank O(skip entries + plan pieces):
  skip entries are docs already emitted after the earliest doc still pending in the window (they
  grow with steps until the window drains, at most the window's docs); after a resize a rank's
  own share of the rest of the epoch: row ranges with exclusions, O((row groups left + skip
  entries of all old ranks) / M) (older code: the whole plan in each of the M states).
- re-split time, per new replica (ranks run it in parallel at resume): `remaining_plan` is
  O(N x pieces per old share + skip entries) plus reading the `spaces` column of the row groups
  an old cursor or share boundary falls in, O(N); the new rank's split reads two more.
- idle fraction (global epochs): empty steps / all replica steps over one epoch. A replica idles
  from the step its share runs out to the step the last one's does; shares hold equal words (to
  a doc), so the spread is only how differently ranks' batches pack, a few to tens of steps per
  epoch whatever its length: the fraction shrinks as epochs get longer.
  Before 3fb7687 there are no empty steps; ranks drift instead: the spread of the steps at which
  ranks' shares ran out, and the share of batches of the next epoch taken while another rank was
  still on the previous one.
Prints a table and, as the last line, one JSON object with every number.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SEED = 11
COLUMNS = ["doc_id", "words", "spaces"]
ROW_GROUP = 256  # docs per row group: the converter's default (distnlp convert --row-group-size)
SHARD_DOCS = 200_000
BATCHER = {"_use_": "distnlp.batch_by_words.v1",
           "size": {"_use_": "distnlp.compounding.v1", "start": 100, "stop": 1000, "compound": 1.001},
           "tolerance": 0.2, "discard_oversize": False}  # conf/training/default.yaml


def parse_words(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * scale)


# --- memory -------------------------------------------------------------------------------------


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb() -> float:
    kb = _status_kb("VmRSS")
    return (kb if kb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def reset_peak() -> bool:
    """Reset VmHWM (Linux >= 4.0); False where it cannot be, then the peak is the process's."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_mb() -> float:
    kb = _status_kb("VmHWM")
    return (kb if kb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


class OverBudget(Exception):
    pass


class Guard:
    """Abort a phase that runs past `seconds` or grows RSS by more than `mb` (the code before
    3fb7687 can need hours and hundreds of GB after a resize): a timer signal raises in the main
    thread, between bytecodes, wherever it is."""

    def __init__(self, seconds: float, mb: float) -> None:
        self.seconds, self.mb = seconds, mb

    def __enter__(self) -> "Guard":
        self.t0, self.rss0 = time.perf_counter(), rss_mb()
        self.tripped: str | None = None

        def check(signum: int, frame: Any) -> None:
            elapsed, grown = time.perf_counter() - self.t0, rss_mb() - self.rss0
            if self.tripped or elapsed > self.seconds or grown > self.mb:
                # raised again at every tick until it gets out (one raised inside a gc callback is dropped)
                self.tripped = self.tripped or (f"aborted after {elapsed:.0f} s with RSS +{grown:.0f} MB "
                                                f"(budget {self.seconds:.0f} s, +{self.mb:.0f} MB)")
                raise OverBudget(self.tripped)

        self.previous = signal.signal(signal.SIGALRM, check)
        self.hook = sys.unraisablehook
        sys.unraisablehook = lambda u: None if isinstance(u.exc_value, OverBudget) else self.hook(u)
        signal.setitimer(signal.ITIMER_REAL, 0.25, 0.25)
        return self

    def __exit__(self, *exc: Any) -> bool:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)
        sys.unraisablehook = self.hook
        return exc[0] is OverBudget  # swallowed: the caller reads `tripped`


# --- the corpus ---------------------------------------------------------------------------------


def build_corpus(work: Path, words: int, seed: int = 0) -> Path:
    """A corpus of about `words` words (cached: reused when its meta.json is there)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distnlp.data.schema import CORPUS_SCHEMA, SCHEMA_VERSION

    out = work / f"corpus-{words}w-rg{ROW_GROUP}-s{seed}"
    if (out / "meta.json").exists():
        return out
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = pa.array(sorted({"".join(rng.choice(letters, rng.integers(1, 10))) for _ in range(30_000)}) + [",", ".", "the", "of"])
    tmp = work / (out.name + f".tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    shards, total_words, total_docs = [], 0, 0
    while total_words < words:
        lengths = rng.integers(1, 61, SHARD_DOCS)
        cum = np.cumsum(lengths)
        if total_words + int(cum[-1]) >= words:  # the last shard: stop at the doc that reaches `words`
            lengths = lengths[: int(np.searchsorted(cum, words - total_words)) + 1]
        n, n_words = len(lengths), int(lengths.sum())
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        values = vocab.take(pa.array(rng.integers(0, len(vocab), n_words)))
        columns = {
            "doc_id": pa.array([f"d{total_docs + i}" for i in range(n)]),
            "words": pa.ListArray.from_arrays(offsets, values),
            "spaces": pa.ListArray.from_arrays(offsets, pa.array(rng.random(n_words) < 0.8)),
        }
        table = pa.Table.from_arrays([columns.get(f.name, pa.nulls(n, f.type)) for f in CORPUS_SCHEMA], schema=CORPUS_SCHEMA)
        name = f"shard-{len(shards):05d}.parquet"
        pq.write_table(table, tmp / name, compression="zstd", row_group_size=ROW_GROUP)
        shards.append({"file": name, "rows": n, "words": n_words})
        total_words, total_docs = total_words + n_words, total_docs + n
    meta = {"schema_version": SCHEMA_VERSION, "counts": {"docs": total_docs, "sentences": total_docs, "words": total_words},
            "labels": {}, "shards": shards, "format": "synthetic (tests/benchmarks/bench_scale.py)"}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    tmp.rename(out)
    print(f"built {out.name}: {total_words:,} words, {total_docs:,} docs, {len(shards)} shards in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    return out


# --- N replicas, driven as the training loop drives them ----------------------------------------


def global_epochs() -> bool:
    from distnlp.training.batches import ResumableBatches

    return hasattr(ResumableBatches, "begin_epoch")


class GcTimer:
    """Seconds spent in the cyclic GC (all generations, and the full ones) while installed."""

    def __init__(self) -> None:
        self.seconds = self.full_seconds = 0.0
        self.full = 0
        self._t = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            dt = time.perf_counter() - self._t
            self.seconds += dt
            if info.get("generation") == 2:
                self.full += 1
                self.full_seconds += dt

    def __enter__(self) -> "GcTimer":
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        gc.callbacks.remove(self)


class World:
    """Replicas of a world of n driven as the training loop drives them (after
    tests/data/test_global_epoch.py). `ranks`: build and drive only these of the n ranks (a
    sample; until an epoch ends a rank's data layer does not depend on the others')."""

    def __init__(self, corpus: Path, n: int, window: int, ranks: list[int] | None = None) -> None:
        from distnlp.data.stream import DocStream
        from distnlp.registry import resolve
        from distnlp.training.batches import ResumableBatches

        self.n, self.new = n, global_epochs()
        self.ranks = list(range(n)) if ranks is None else list(ranks)
        t0, rss0 = time.perf_counter(), rss_mb()
        # before 3fb7687 the training stream ran epoch after epoch (data/mixture.open_training_stream)
        self.replicas = [ResumableBatches(DocStream(corpus, rank=r, world_size=n, seed=SEED, columns=COLUMNS, infinite=not self.new),
                                          resolve(BATCHER), shuffle_words=window) for r in self.ranks]
        self.build_s = time.perf_counter() - t0
        self.open_mb_per_replica = (rss_mb() - rss0) / len(self.replicas)  # mostly each CorpusInfo's Parquet footers
        self.steps = self.idle = self.ahead = 0
        self.sync_epoch()

    def sync_epoch(self) -> None:
        self.epoch = min(int(getattr(r, "open_epoch", r.epoch)) for r in self.replicas)
        self.done_at: list[int | None] = [None] * len(self.replicas)  # the step each replica's share of `epoch` ran out

    def step(self) -> tuple[int, int]:
        """One optimizer step: (non-empty batches, words) over the replicas."""
        batches = words = 0
        for i, replica in enumerate(self.replicas):
            batch = replica.take()
            if batch:
                batches += 1
                words += sum(len(d) for d in batch)
                if any(d.user_data["_distnlp_cursor"][0] > self.epoch for d in batch):
                    self.ahead += 1  # (no global epochs) trained on the next epoch while another rank is on this one
            else:
                self.idle += 1
            if self.done_at[i] is None and replica.reached_epoch > self.epoch:
                self.done_at[i] = self.steps
        self.steps += 1
        reached = min(r.reached_epoch for r in self.replicas)
        if reached > self.epoch:
            self.epoch = reached
            if self.new:
                for replica in self.replicas:
                    replica.begin_epoch(reached)
        return batches, words

    def states(self) -> list[dict[str, Any]]:
        return [r.state_dict() for r in self.replicas]


def state_stats(states: list[dict[str, Any]]) -> dict[str, Any]:
    t0 = time.perf_counter()
    sizes = [len(json.dumps(s)) for s in states]
    # after a resize: a rank's own share ("share", since the plan moved out of every rank's state)
    # or the whole plan in every rank ("plan", older code)
    plans = [len((s["stream"].get("share") or s["stream"].get("plan"))["pieces"]) for s in states
             if s["stream"].get("share") or s["stream"].get("plan")]
    skips = [len(s.get("skip", [])) for s in states]
    return {"ranks": len(states), "json_bytes": sum(sizes), "json_bytes_per_rank": sum(sizes) / len(sizes),
            "json_bytes_max_rank": max(sizes), "plan_pieces": max(plans, default=0), "skip_entries": sum(skips),
            "skip_entries_max_rank": max(skips), "epochs": sorted({int(s["stream"]["epoch"]) for s in states}),
            "dump_s": time.perf_counter() - t0}


def per_doc_state_cost(world: World, reps: int = 10) -> dict[str, float]:
    """What reading one doc costs in stream state: `ResumableBatches` keeps the stream's
    `state_dict()` for every pending doc (its time, and its JSON size as a proxy of what it holds)."""
    stream = world.replicas[0].stream
    t = time.perf_counter()
    for _ in range(reps):
        state = stream.state_dict()
    return {"stream_state_dict_us": (time.perf_counter() - t) / reps * 1e6, "stream_state_json_bytes": len(json.dumps(state))}


class Run:
    """A world driven step by step: the first step (the window fill) timed apart, then the steady
    steps in stretches. Rates are per CPU second of this process (time.process_time: the machine
    may be shared, and the data layer is one thread), overall and the median over the stretches;
    wall seconds are kept too. Two Runs can take turns (stretch by stretch) in one process, so a
    comparison sees the same machine load."""

    def __init__(self, world: World) -> None:
        self.world, self.k = world, len(world.replicas)
        self.out: dict[str, Any] = {"ranks": world.n, "driven": self.k, "steps": 0, "states": {}, "aborted": None,
                                    "build_s": world.build_s, "open_mb_per_replica": world.open_mb_per_replica}
        self.batches = self.words = 0
        self.steady = self.steady_cpu = 0.0
        self.rates: list[float] = []
        self.gc, self.gc_steady = GcTimer(), GcTimer()

    def fill(self, guard: Guard | None = None) -> bool:
        """The first step; False when the guard stopped it."""
        reset_peak()
        rss0 = rss_mb()
        with self.gc, (guard or Guard(float("inf"), float("inf"))) as g:
            t, c = time.perf_counter(), time.process_time()
            b, _ = self.world.step()
            self.out["first_step_s"], self.out["first_step_cpu_s"] = time.perf_counter() - t, time.process_time() - c
            self.out["first_step_batches"] = b
            self.out["steps"] = 1
        self.out["rss_before_mb"], self.out["peak_mb"] = rss0, peak_mb()
        self.out["per_replica_mb"] = (self.out["peak_mb"] - rss0) / self.k
        if g.tripped:
            self.out["aborted"] = g.tripped
            for key in ("first_step_s", "first_step_cpu_s"):
                self.out.pop(key, None)
            self.out["docs_read_before_abort"] = sum(len(getattr(r, "_pending", ())) for r in self.world.replicas)
            return False
        return True

    def stretch(self, steps: int, state_at: tuple[int, ...] = ()) -> None:
        batches = cpu = 0.0
        with self.gc_steady:
            for _ in range(steps):
                t, c = time.perf_counter(), time.process_time()
                b, w = self.world.step()
                dc = time.process_time() - c
                self.steady += time.perf_counter() - t
                self.steady_cpu += dc
                cpu += dc
                batches += b
                self.batches, self.words = self.batches + b, self.words + w
                self.out["steps"] += 1
                if self.out["steps"] in state_at:
                    self.out["states"][self.out["steps"]] = state_stats(self.world.states())
        if cpu > 0:
            self.rates.append(batches / cpu)

    def result(self) -> dict[str, Any]:
        out = self.out
        out["fill_per_replica_s"] = out["first_step_s"] / self.k if "first_step_s" in out else None
        out["gc_s"] = self.gc.seconds + self.gc_steady.seconds
        out["gc_fill_s"], out["gc_fill_full"] = self.gc.seconds, self.gc.full
        out["gc_steady_s"], out["gc_steady_full"] = self.gc_steady.seconds, self.gc_steady.full
        out["steady_s"], out["steady_cpu_s"], out["steady_batches"] = self.steady, self.steady_cpu, self.batches
        cpu = self.steady_cpu
        out["batches_per_s_per_rank"] = self.batches / cpu if cpu else None
        out["batches_per_s_per_rank_median_chunk"] = sorted(self.rates)[len(self.rates) // 2] if self.rates else None
        out["batches_per_s_per_rank_wall"] = self.batches / self.steady if self.steady else None
        out["words_per_s_per_rank"] = self.words / cpu if cpu else None
        out["words_per_batch"] = self.words / self.batches if self.batches else None
        total = self.steady + out.get("first_step_s", 0.0)
        out["batches_per_s_per_rank_incl_fill_wall"] = (self.batches + out["first_step_batches"]) / total if total and not out["aborted"] else None
        out["idle_steps"] = self.world.idle
        out["rss_after_mb"] = rss_mb()
        return out


def drive(world: World, steps: int, state_at: tuple[int, ...] = (), chunks: int = 10) -> dict[str, Any]:
    """`steps` global steps of one world: the fill, then `chunks` stretches."""
    run = Run(world)
    run.fill()
    if 1 in state_at:
        run.out["states"][1] = state_stats(world.states())
    for n in stretches(steps - 1, chunks):
        run.stretch(n, state_at)
    return run.result()


def stretches(steps: int, chunks: int) -> list[int]:
    return [n for n in (steps * (i + 1) // chunks - steps * i // chunks for i in range(chunks)) if n]


def spread(n: int, k: int) -> list[int]:
    """k ranks spread over 0..n-1 (all when k <= 0 or k >= n)."""
    if k <= 0 or k >= n:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if k > 1 else [0]


# --- phases (each in its own process: its own peak RSS, and memory handed back between them) ------


def phase_fresh(spec: dict[str, Any]) -> dict[str, Any]:
    world = World(Path(spec["corpus"]), spec["n"], spec["window"], spec.get("ranks"))
    run = drive(world, spec["steps"], tuple(spec.get("state_at", ())))
    run["build_s"] = world.build_s
    run["per_doc_state"] = per_doc_state_cost(world)
    if spec.get("states_out"):
        with open(spec["states_out"], "wb") as f:
            pickle.dump(world.states(), f)
    return run


def phase_resize(spec: dict[str, Any]) -> dict[str, Any]:
    """N saved states re-split on m replicas: `resplit` timed once cold, `load_resplit` on a few
    replicas (each with its own CorpusInfo: cold but for the process-wide row_order cache); the
    driven sample loads its states, and `steps` steps are driven under the guard."""
    from distnlp.data.elastic import resplit
    from distnlp.data.shards import open_corpus
    from distnlp.errors import CheckpointError

    reset_peak()
    corpus, m = Path(spec["corpus"]), spec["m"]
    with open(spec["states_in"], "rb") as f:
        states = pickle.load(f)
    res: dict[str, Any] = {"from": len(states), "to": m, "states_in_note": spec.get("states_in_note")}
    timed = spread(m, spec["resplit_timed"])
    probe = World(corpus, m, spec["window"], timed)
    info = open_corpus(corpus)
    t = time.perf_counter()
    try:
        loaded = resplit(info, states, m, shuffle=True)
    except CheckpointError as exc:
        res["refused"] = str(exc)
        return res
    res["resplit_fn_cold_s"] = time.perf_counter() - t
    res["loaded_states"] = state_stats(loaded)
    res["size_index"] = max(int(st["size_index"]) for st in loaded)
    times = []
    for replica in probe.replicas:
        t = time.perf_counter()
        replica.load_resplit(states)
        times.append(time.perf_counter() - t)
    res["load_resplit_timed_ranks"] = timed
    res["load_resplit_s"] = times
    res["load_resplit_per_replica_mean_s"] = sum(times) / len(times)
    res["load_resplit_all_replicas_est_s"] = sum(times) / len(times) * m
    res["load_resplit_same_as_resplit"] = all(r.state_dict() == loaded[r.stream.rank] for r in probe.replicas)
    del probe
    ranks = spread(m, spec["sample"])
    world = World(corpus, m, spec["window"], ranks)
    t = time.perf_counter()
    for replica in world.replicas:
        replica.load_state_dict(loaded[replica.stream.rank])
    res["load_state_dict_per_replica_s"] = (time.perf_counter() - t) / len(world.replicas)
    world.sync_epoch()
    res["per_doc_state"] = per_doc_state_cost(world)
    # The baseline: the same ranks of a world of m that was never resized, its batch-size schedule
    # where the checkpoint's is (batches as large), driven in this process taking turns with the
    # resized one: stretch by stretch, so both see the same machine load.
    base = World(corpus, m, spec["window"], ranks)
    for replica in base.replicas:
        replica.load_state_dict({**replica.state_dict(), "size_index": res["size_index"]})
    base.sync_epoch()
    resized, fresh = Run(world), Run(base)
    ok = resized.fill(Guard(spec["guard_s"], spec["guard_mb"]))
    if not ok:  # the resized world is left as it was stopped; only the baseline goes on
        world.replicas = []
        del world
        gc.collect()
    fresh.fill()
    gc.collect()
    for n in stretches(spec["steps"] - 1, 10):
        if ok:
            resized.stretch(n)
        fresh.stretch(n)
    run = resized.result()
    run.pop("states")
    res["run"] = run
    res["fresh"] = fresh.result()
    res["fresh"].pop("states")
    res["fresh"]["per_doc_state"] = per_doc_state_cost(base)
    after = list(loaded)
    if ok:  # the driven ranks' states after the steps; the others as loaded (they were not driven)
        for replica in world.replicas:
            after[replica.stream.rank] = replica.state_dict()
        res["states_after"] = state_stats(after)
        res["states_out_note"] = (f"ranks {world.ranks} after {run['steps']} steps, the others as loaded" if len(world.ranks) < m
                                  else f"after {run['steps']} steps")
    else:
        res["states_out_note"] = "as loaded (the run after the resize was aborted)"
    with open(spec["states_out"], "wb") as f:
        pickle.dump(after, f)
    return res


def phase_epoch(spec: dict[str, Any]) -> dict[str, Any]:
    """One whole epoch on n replicas: global epochs -> idle fraction; per-rank epochs -> drift."""
    reset_peak()
    world = World(Path(spec["corpus"]), spec["n"], spec["window"])
    t0 = time.perf_counter()
    batches = words = 0
    while world.epoch < 1 and world.steps < spec["max_steps"]:
        b, w = world.step()
        batches, words = batches + b, words + w
    done = [d for d in world.done_at if d is not None]
    n = spec["n"]
    return {"ranks": n, "steps": world.steps, "finished": world.epoch >= 1, "seconds": time.perf_counter() - t0,
            "batches": batches, "words": words, "idle_steps": world.idle, "idle_fraction": world.idle / (world.steps * n),
            "ahead_batches": world.ahead, "ahead_fraction": world.ahead / (world.steps * n),
            "share_done_step_min": min(done, default=None), "share_done_step_max": max(done, default=None), "peak_mb": peak_mb()}


PHASES = {"fresh": phase_fresh, "resize": phase_resize, "epoch": phase_epoch}


def in_child(work: Path, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run a phase in a fresh Python process (same interpreter, same sys.path/PYTHONPATH)."""
    spec_file = work / f"phase-{os.getpid()}-{name}.json"
    out_file = spec_file.with_suffix(".out.json")
    spec_file.write_text(json.dumps({**spec, "phase": name, "out": str(out_file)}))
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--phase", str(spec_file)])
    if proc.returncode != 0:
        raise SystemExit(f"phase {name} failed (exit {proc.returncode}); spec {spec_file}")
    out = json.loads(out_file.read_text())
    out["process_s"] = time.perf_counter() - t
    print(f"  {name} {spec.get('n', spec.get('m'))}: {out['process_s']:.0f} s", file=sys.stderr)
    return out


def child_main(spec_file: str) -> int:
    spec = json.loads(Path(spec_file).read_text())
    # One-time costs kept out of every timing: the registry's imports (torch) and the process's
    # first Parquet read (pyarrow imports pandas there).
    from distnlp.data.shards import open_corpus
    from distnlp.registry import resolve

    resolve(BATCHER)
    warm = open_corpus(spec["corpus"])
    warm.read_unit(warm.units[0], ["spaces"]).column("spaces").combine_chunks().offsets.to_numpy()
    del warm
    gc.collect()
    out = PHASES[spec["phase"]](spec)
    out["rss_start_mb"] = RSS_START
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(spec["out"]).write_text(json.dumps(out, default=str))
    return 0


# --- report -------------------------------------------------------------------------------------


def _f(x: Any, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def table(result: dict[str, Any]) -> str:
    c = result["corpus"]
    lines = [f"distnlp {result['distnlp_file']}  global epochs: {result['global_epochs']}",
             f"corpus {c['words']:,} words, {c['docs']:,} docs, {c['row_groups']:,} row groups, {c['shards']} shards; "
             f"shuffle window {result['window']:,} words; a process's RSS after imports {result['rss_start_mb']:.0f} MB", ""]
    lines.append(f"{'run':<30}{'ranks':>6}{'driven':>7}{'steps':>6}{'fill s':>8}{'fill/rep':>9}{'steady s':>9}{'cpu s':>7}"
                 f"{'batch/s/rank':>13}{'median':>9}{'words/s/rank':>13}{'w/batch':>8}{'vs fresh':>9}{'gc s':>7}{'gc st':>7}"
                 f"{'peak MB':>9}{'open MB':>8}{'MB/rank':>8}  note")
    for name, run in result["runs"].items():
        lines.append(f"{name:<30}{run['ranks']:>6}{run['driven']:>7}{run['steps']:>6}{_f(run.get('first_step_s'), '.2f'):>8}"
                     f"{_f(run.get('fill_per_replica_s'), '.2f'):>9}{_f(run['steady_s'], '.2f'):>9}{_f(run['steady_cpu_s'], '.2f'):>7}"
                     f"{_f(run['batches_per_s_per_rank']):>13}{_f(run['batches_per_s_per_rank_median_chunk']):>9}"
                     f"{_f(run['words_per_s_per_rank']):>13}{_f(run['words_per_batch'], '.0f'):>8}"
                     f"{_f(run.get('vs_fresh'), '+.1%'):>9}{run['gc_s']:>7.1f}{run['gc_steady_s']:>7.2f}{run['peak_mb']:>9,.0f}"
                     f"{run['open_mb_per_replica']:>8.1f}{run['per_replica_mb']:>8.1f}"
                     f"  {run.get('aborted') or ''}")
    lines.append("  (fill = the first step, wall s: every driven replica fills its shuffle window; steady = the other steps, wall and CPU s; "
                 "rates per CPU second, overall and the median of 10 stretches; vs fresh = median steady batches/s against a "
                 "never-resized world of the same size: same driven ranks, same batch sizes; gc s: seconds in the cyclic GC, all / steady steps; "
                 "peak MB: the process's peak RSS during the fill; open MB: RSS growth per replica made (DocStream + batcher, before any read: "
                 "mostly the corpus's Parquet footers); MB/rank: RSS growth in the fill / driven replicas)")
    lines.append("")
    lines.append(f"{'checkpoint state':<34}{'ranks':>6}{'JSON bytes':>13}{'per rank':>11}{'max rank':>11}{'plan pieces':>12}"
                 f"{'skip entries':>13}{'dump s':>8}")
    for name, s in result["states"].items():
        lines.append(f"{name:<34}{s['ranks']:>6}{s['json_bytes']:>13,}{s['json_bytes_per_rank']:>11,.0f}{s['json_bytes_max_rank']:>11,}"
                     f"{s['plan_pieces']:>12,}{s['skip_entries']:>13,}{s['dump_s']:>8.2f}")
    lines.append("")
    for r in result["resizes"]:
        if "refused" in r:
            lines.append(f"resize {r['from']} -> {r['to']}: REFUSED: {r['refused']}")
            continue
        run = result["runs"][r["run_name"]]
        lines.append(f"resize {r['from']} -> {r['to']} (from states {r['states_in_note'] or 'after the run above'}):")
        lines.append(f"  resplit() {r['resplit_fn_cold_s']:.2f} s (cold; every new replica runs it); load_resplit "
                     f"{', '.join(f'{x:.2f}' for x in r['load_resplit_s'])} s on ranks {r['load_resplit_timed_ranks']} "
                     f"-> about {r['load_resplit_all_replicas_est_s']:.0f} s for all {r['to']} in one process (ranks run it in parallel)")
        pd = r["per_doc_state"]
        lines.append(f"  every doc read keeps stream.state_dict(): {pd['stream_state_dict_us']:,.1f} us, "
                     f"{pd['stream_state_json_bytes']:,} JSON bytes; "
                     f"fill {_f(run.get('fill_per_replica_s'), '.2f')} s per replica (fresh: {_f(r.get('fresh_fill_per_replica_s'), '.2f')} s, "
                     f"x{_f(r.get('fill_vs_fresh'), '.1f')})"
                     + (f"; ABORTED: {run['aborted']}, {run['docs_read_before_abort']:,} docs read" if run["aborted"] else ""))
    e = result.get("epoch")
    if e:
        lines.append("")
        lines.append(f"one epoch of {e['corpus_words']:,} words on {e['ranks']} ranks: {e['steps']:,} steps "
                     f"({'finished' if e['finished'] else 'NOT finished'}, {e['seconds']:.1f} s); empty steps {e['idle_steps']:,} = "
                     f"{e['idle_fraction']:.2%} of replica steps; batches of the next epoch while a rank was still on this one: "
                     f"{e['ahead_batches']:,} = {e['ahead_fraction']:.2%}; ranks' shares ran out at steps "
                     f"{e['share_done_step_min']}..{e['share_done_step_max']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--words", default="50M", help="corpus size in words (50M, 200K, ...)")
    ap.add_argument("--ranks", type=int, default=64)
    ap.add_argument("--resize", default="48,8", help="world sizes to re-split to, in turn")
    ap.add_argument("--steps", type=int, default=200, help="global steps driven on the first world (all ranks); its states are re-split")
    ap.add_argument("--state-at", default="1,50,100,200", help="steps of the first run at which every rank's state is measured")
    ap.add_argument("--steps-after", type=int, default=1000, help="global steps driven after each resize, and on a fresh world of that size")
    ap.add_argument("--sample", type=int, default=4, help="after a resize, build and drive this many of the new world's ranks (0 = all)")
    ap.add_argument("--resplit-timed", type=int, default=2, help="replicas on which load_resplit is timed (0 = all)")
    ap.add_argument("--window", type=int, default=1_000_000, help="corpus.shuffle_words")
    ap.add_argument("--epoch-words", default="5M", help="corpus of the one-epoch run (idle fraction); 0 = none")
    ap.add_argument("--epoch-max-steps", type=int, default=20_000)
    ap.add_argument("--guard-s", type=float, default=150, help="a run after a resize is aborted after this many seconds ...")
    ap.add_argument("--guard-mb", type=float, default=4000, help="... or this much RSS growth")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "distnlp_bench_scale"), help="corpora (cached) and phase files")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase:
        return child_main(args.phase)

    import distnlp
    from distnlp.data.shards import open_corpus

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    corpus = build_corpus(work, parse_words(args.words))
    info = open_corpus(corpus)
    sizes = [int(x) for x in args.resize.split(",") if x.strip()]
    state_at = [int(x) for x in args.state_at.split(",") if x.strip()]
    result: dict[str, Any] = {
        "distnlp_file": distnlp.__file__, "global_epochs": global_epochs(), "window": args.window,
        "corpus": {"path": str(corpus), "words": info.n_words, "docs": info.n_docs, "row_groups": len(info.units), "shards": len(info.shards)},
        "args": vars(args), "runs": {}, "states": {}, "resizes": [],
    }
    base = {"corpus": str(corpus), "window": args.window}
    states_file = work / f"states-{os.getpid()}-{args.ranks}.pkl"
    first = in_child(work, "fresh", {**base, "n": args.ranks, "steps": args.steps, "state_at": state_at, "states_out": str(states_file)})
    result["rss_start_mb"] = first["rss_start_mb"]
    result["runs"][f"fresh {args.ranks}"] = first
    for k, s in first.pop("states").items():
        result["states"][f"{args.ranks} ranks, step {k}"] = s
    n, note = args.ranks, None
    for m in sizes:
        out_file = work / f"states-{os.getpid()}-{m}.pkl"
        res = in_child(work, "resize", {**base, "m": m, "states_in": str(states_file), "states_in_note": note, "states_out": str(out_file),
                                        "steps": args.steps_after, "sample": args.sample, "resplit_timed": args.resplit_timed,
                                        "guard_s": args.guard_s, "guard_mb": args.guard_mb})
        result["resizes"].append(res)
        if "refused" in res:
            break
        result["states"][f"{m} ranks, as loaded"] = res["loaded_states"]
        fresh, run = res.pop("fresh"), res.pop("run")
        if res.get("states_after"):
            result["states"][f"{m} ranks, +{run['steps']} steps*"] = res["states_after"]
        res["run_name"], res["fresh_name"] = f"resized {n}->{m}", f"fresh {m} (same batch sizes)"
        if run["batches_per_s_per_rank_median_chunk"] and fresh["batches_per_s_per_rank_median_chunk"]:
            run["vs_fresh"] = run["batches_per_s_per_rank_median_chunk"] / fresh["batches_per_s_per_rank_median_chunk"] - 1
        if run.get("fill_per_replica_s") and fresh.get("fill_per_replica_s"):
            res["fill_vs_fresh"] = run["fill_per_replica_s"] / fresh["fill_per_replica_s"]
        res["fresh_fill_per_replica_s"] = fresh.get("fill_per_replica_s")
        result["runs"][res["run_name"]], result["runs"][res["fresh_name"]] = run, fresh
        states_file, n, note = out_file, m, res["states_out_note"]
    epoch_words = parse_words(args.epoch_words)
    if epoch_words:
        ecorpus = corpus if epoch_words == parse_words(args.words) else build_corpus(work, epoch_words)
        result["epoch"] = in_child(work, "epoch", {**base, "corpus": str(ecorpus), "n": args.ranks, "max_steps": args.epoch_max_steps})
        result["epoch"]["corpus_words"] = open_corpus(ecorpus).n_words
    for f in work.glob(f"*-{os.getpid()}-*"):
        f.unlink()
    print(table(result))
    print(json.dumps(result, default=str))
    return 0


RSS_START = rss_mb()

if __name__ == "__main__":
    sys.exit(main())
