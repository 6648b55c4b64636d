"""launch/torchrun.sh: torchrun starts 2 CPU ranks with gloo, each running the same worker as
one process and the Ray replicas; rank 0 claims the output directory and the run trains,
checkpoints and saves a model that loads."""
from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.multiprocess

REPO = Path(__file__).resolve().parents[2]


def test_torchrun_two_cpu_ranks(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["bash", str(REPO / "launch" / "torchrun.sh"), f"training.output_dir={out}", "encoder.width=32", "training.max_steps=6",
            "training.eval_frequency=3", "training.log_every=1", "training.max_eval_docs=4", "distributed.num_threads=1"]
    env = {**os.environ, "DISTNLP_CPU_WORKERS": "2", "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "torchrun: 2 ranks on cpu" in done.stdout and "replicas: 2" in done.stdout
    run = json.loads((out / "run.json").read_text())
    manifest = json.loads((out / "checkpoints" / "step-00000006" / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["run_id"] == run["run_id"]
    assert (out / "checkpoints" / "step-00000006" / "rank-00001" / "state.json").exists()
    steps = [json.loads(l)["step"] for l in (out / "metrics.jsonl").read_text().splitlines() if '"event": "step"' in l]
    assert steps == [1, 2, 3, 4, 5, 6]  # rank 0 alone logs, once per step
    import distnlp

    nlp = distnlp.load(out / "model-last")
    assert [t.tag_ for t in nlp("The cat sat on the mat .")]


# The logging batcher records every doc it yields; with training.prefetch a batch prepared
# ahead is discarded at each checkpoint and yielded again after it, so these runs read inline
# (test_prefetch_resumes_elastically_as_inline checks that prefetch changes none of it).
READ_INLINE = "training.prefetch=false"

LOGGED_BATCHER = """
import json, os
from distnlp.data.batching import configure_batch_by_words
from distnlp.registry import batchers


@batchers("test.logged_batch_by_words.v1")
def logged(log_dir, **settings):
    inner = configure_batch_by_words(**settings)

    def batcher(docs, start=0):  # every doc a step trains on, with the epoch it was read in
        path = os.path.join(log_dir, f"rank{os.environ.get('RANK', '0')}-{os.getpid()}.jsonl")
        for batch in inner(docs, start=start):
            with open(path, "a") as f:
                f.writelines(json.dumps([d.user_data["_distnlp_cursor"][0], f"{d.doc_id}@{d.words[0]}/{len(d)}"]) + "\\n" for d in batch)
            yield batch
    return batcher
"""


# Documents cut at sentence boundaries (corpus.split_length) are logged piece by piece.
SPLIT = "corpus.split_length=100"


def _pieces(docs: Any) -> Counter:
    from distnlp.data.split_docs import split_at_sentences

    return Counter(f"{p.doc_id}@{p.words[0]}/{len(p)}" for d in docs for p in split_at_sentences(d, 100))


def _docs_used(log_dir: Path) -> dict[int, Counter]:
    by_epoch: dict[int, Counter] = {}
    for f in log_dir.glob("*.jsonl"):
        for line in f.read_text().splitlines():
            epoch, doc_id = json.loads(line)
            by_epoch.setdefault(epoch, Counter())[doc_id] += 1
    return by_epoch


@pytest.mark.parametrize("first_ranks,resume_ranks", [(2, 1), (2, 3), (1, 2)])
def test_checkpoint_on_two_ranks_resumes_on_another_number(tmp_path: Path, first_ranks: int, resume_ranks: int) -> None:
    """Elastic resume through the engine: 2 gloo ranks (or 1) stop mid-epoch at a checkpoint and the
    run continues on 1 or 3 ranks (or 2); every document of the epoch is trained on exactly once (a logging
    batcher records each doc a step takes, with the epoch it was read in)."""
    from distnlp.cli.compose import DEMO_DATA
    from distnlp.data.stream import read_docs

    out, logs = tmp_path / "run", tmp_path / "docs"
    logs.mkdir()
    (tmp_path / "logged.py").write_text(LOGGED_BATCHER)
    common = [f"training.output_dir={out}", "encoder.width=16", f"corpus.train={DEMO_DATA / 'dev'}", "training.eval_frequency=3",
              "training.log_every=1", "training.max_eval_docs=2", "distributed.num_threads=1", "nlp.pipeline=[tagger,ner]",
              f"code={tmp_path / 'logged.py'}", f"training.batcher._use_=test.logged_batch_by_words.v1", f"+training.batcher.log_dir={logs}",
              "training.curves=false", READ_INLINE, SPLIT]
    env = {**os.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"}
    first = subprocess.run(["bash", str(REPO / "launch" / "torchrun.sh"), *common, "training.max_steps=6"],
                           capture_output=True, text=True, env={**env, "DISTNLP_CPU_WORKERS": str(first_ranks)}, timeout=300)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    assert sum(_docs_used(logs)[0].values()) > 0
    rest = ["training.resume=true", "training.max_steps=0", "training.max_epochs=1"]
    second = subprocess.run(["bash", str(REPO / "launch" / "torchrun.sh"), *common, *rest],
                            capture_output=True, text=True, env={**env, "DISTNLP_CPU_WORKERS": str(resume_ranks)}, timeout=300)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    assert f"replicas: {resume_ranks}" in second.stdout
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines() if '"event": "step"' in line]
    assert steps[:6] == [1, 2, 3, 4, 5, 6] and steps[6] == 7  # continued after step 6, not from the start
    corpus = _pieces(read_docs(DEMO_DATA / "dev"))
    assert _docs_used(logs)[0] == corpus  # epoch 0: none twice, none dropped


def test_four_ranks_resized_to_three_then_two_mid_window_and_mid_epoch(tmp_path: Path) -> None:
    """torchrun 4 -> 3 -> 2 through the engine, each resize at a checkpoint where ranks are mid-epoch
    and the batchers hold docs read from a shuffle window; the run then goes on through a second
    epoch. Every document of each epoch is trained on exactly once, and every rank's docs at each
    step are of the epoch the run is in (the epochs are crossed together)."""
    from distnlp.cli.compose import DEMO_DATA
    from distnlp.data.stream import read_docs

    out, logs = tmp_path / "run", tmp_path / "docs"
    logs.mkdir()
    (tmp_path / "logged.py").write_text(LOGGED_BATCHER)
    common = [f"training.output_dir={out}", "encoder.width=16", f"corpus.train={DEMO_DATA / 'dev'}", "training.eval_frequency=3",
              "training.log_every=1", "training.max_eval_docs=2", "distributed.num_threads=1", "nlp.pipeline=[tagger]",
              f"code={tmp_path / 'logged.py'}", "training.batcher._use_=test.logged_batch_by_words.v1", f"+training.batcher.log_dir={logs}",
              "training.curves=false", "corpus.shuffle_words=3000", READ_INLINE, SPLIT]
    env = {**os.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"}

    def run(ranks: int, *limits: str) -> None:
        done = subprocess.run(["bash", str(REPO / "launch" / "torchrun.sh"), *common, *limits], capture_output=True, text=True,
                              env={**env, "DISTNLP_CPU_WORKERS": str(ranks)}, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        assert f"replicas: {ranks}" in done.stdout

    run(4, "training.max_steps=3")
    run(3, "training.resume=true", "training.max_steps=6")
    run(2, "training.resume=true", "training.max_steps=0", "training.max_epochs=2")
    steps = _step_log(out)
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))  # each resume continued where the last stopped
    epoch_of_step = [s["epoch"] for s in steps]
    assert epoch_of_step[5] == 0 and epoch_of_step[-1] == 2  # both resizes mid-epoch 0; two epochs done
    corpus = _pieces(read_docs(DEMO_DATA / "dev"))
    used = _docs_used(logs)
    assert used[0] == corpus and used[1] == corpus and set(used) == {0, 1}  # each epoch exactly once, nothing of epoch 2


def test_prefetch_resumes_elastically_as_inline(tmp_path: Path) -> None:
    """2 gloo ranks checkpoint mid-epoch and the run goes on on 1 (the epoch's rest re-split),
    through an epoch boundary: with training.prefetch on, every step trains the same global words
    with the same losses as with it off."""
    from distnlp.cli.compose import DEMO_DATA

    env = {**os.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"}

    def run(out: Path, prefetch: str, ranks: int, *limits: str) -> None:
        args = [f"training.output_dir={out}", "encoder.width=16", f"corpus.train={DEMO_DATA / 'dev'}", "training.eval_frequency=3",
                "training.log_every=1", "training.max_eval_docs=2", "distributed.num_threads=1", "nlp.pipeline=[tagger,ner]",
                "training.curves=false", "training.batcher.size=600", f"training.prefetch={prefetch}", *limits]
        done = subprocess.run(["bash", str(REPO / "launch" / "torchrun.sh"), *args], capture_output=True, text=True,
                              env={**env, "DISTNLP_CPU_WORKERS": str(ranks)}, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

    logs = {}
    for prefetch in ("false", "true"):
        out = tmp_path / f"prefetch-{prefetch}"
        run(out, prefetch, 2, "training.max_steps=5")
        run(out, prefetch, 1, "training.resume=true", "training.max_steps=16")
        logs[prefetch] = _step_log(out)
    inline, prefetched = logs["false"], logs["true"]
    assert [s["step"] for s in inline] == [s["step"] for s in prefetched] == list(range(1, 17))
    assert inline[-1]["epoch"] >= 1, "the run never crossed an epoch"
    for a, b in zip(inline, prefetched):
        assert (a["epoch"], a["words"]) == (b["epoch"], b["words"]), (a["step"], a["words"], b["words"])
        for name, value in a["losses"].items():
            assert abs(b["losses"][name] - value) <= 1e-4 * max(1.0, abs(value)), (a["step"], name, value, b["losses"][name])


def _step_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"event": "step"' in line]


@pytest.mark.parametrize("corpora", [1, 2])
def test_keep_global_batch_continues_the_two_rank_run_on_one(tmp_path: Path, corpora: int) -> None:
    """distributed.keep_global_batch: a run checkpointed on 2 ranks continues on 1, which hosts
    both data ranks (their batches, cursors and dropout generators) and accumulates them; it
    trains exactly as the uninterrupted 2-rank run: the same global words and losses per step and
    the same final weights, to float tolerance. (Without it the epoch's rest is re-split for one
    rank and every later batch differs.)"""
    from safetensors.torch import load_file

    from distnlp.cli.compose import DEMO_DATA

    # Two corpora (data/mixture.py) cannot re-split for another number of replicas; hosted, they go on.
    train = (f"corpus.train={DEMO_DATA / 'dev'}" if corpora == 1 else
             f"corpus.train=[{{name: a, path: {DEMO_DATA / 'dev'}}}, {{name: b, path: {DEMO_DATA / 'train'}}}]")

    def run(out: Path, ranks: int, *extra: str) -> str:
        args = [f"training.output_dir={out}", "encoder.width=16", train, f"corpus.dev={DEMO_DATA / 'dev'}", "training.eval_frequency=3",
                "training.log_every=1", "training.max_eval_docs=4", "distributed.num_threads=1", "nlp.pipeline=[tagger,ner]",
                "training.dropout=0.2", "training.curves=false", *extra]
        env = {**os.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}", "DISTNLP_CPU_WORKERS": str(ranks)}
        done = subprocess.run(["bash", str(REPO / "launch" / "torchrun.sh"), *args], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return done.stdout

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run(whole, 2, "training.max_steps=12")
    run(cut, 2, "training.max_steps=6")
    stdout = run(cut, 1, "training.max_steps=12", "training.resume=true", "distributed.keep_global_batch=true")
    assert "replicas: 1" in stdout
    manifest = json.loads((cut / "checkpoints" / "step-00000012" / "manifest.json").read_text())
    assert (manifest["world_size"], manifest["replicas"]) == (2, 1)  # two data ranks, one replica
    expected, got = _step_log(whole), _step_log(cut)
    assert [s["step"] for s in got] == list(range(1, 13))
    for a, b in zip(expected[6:], got[6:]):
        assert a["words"] == b["words"], (a["step"], a["words"], b["words"])  # the same global batch
        for name, value in a["losses"].items():
            assert abs(b["losses"][name] - value) <= 1e-4 * max(1.0, abs(value)), (a["step"], name, value, b["losses"][name])
    w_whole = load_file(str(whole / "checkpoints" / "step-00000012" / "model.safetensors"))
    w_cut = load_file(str(cut / "checkpoints" / "step-00000012" / "model.safetensors"))
    worst = max(float((w_whole[k] - w_cut[k]).abs().max()) for k in w_whole)
    assert worst < 1e-5, worst
