"""Device-to-host transfers in a training step. On a GPU each one (`.item()`, `.tolist()`,
`int(t)`, `float(t)`, `bool(t)`, `.cpu()`, `.numpy()`, `nonzero`) stalls the pipeline until the
device catches up, so a step that does not log reads nothing back: item counts, words and which
parameters have a gradient are host numbers (summed over ranks on a CPU group), the loss sums,
gradient norm and non-finite flag stay on the device, and a non-finite step is skipped there (the
fused optimizer's `found_inf`). The loop reads the pending steps' numbers in one transfer on a
logging step or at a save point (training/pending_steps.py). The forward passes read nothing:
the parser's sentence shapes are taken on the host, before the targets go to the device.

Counted here with a TorchFunctionMode on CPU: a conversion counts when distnlp's code calls it
directly (torch's own host-side bookkeeping, such as Adam's step counters, which live on the CPU
on every device, does not)."""
from __future__ import annotations

import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

import distnlp
import distnlp.training.engine as engine
from distnlp.cli.compose import compose_config
from distnlp.training.loop import run_worker

SYNCS = {"item", "tolist", "__int__", "__float__", "__bool__", "__index__", "cpu", "numpy", "nonzero"}
PACKAGE = str(Path(distnlp.__file__).parent)
WRAPPERS = ("torch/_tensor.py", "torch/overrides.py", "torch/_tensor_str.py", __file__)
STEP_MACHINERY = ("training/", "distributed/")  # the step, the loop's bookkeeping, the reducer


class HostSyncs(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.counting = False
        self.calls: Counter = Counter()

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = getattr(func, "__name__", "")
        if self.counting and _selects_by_mask(name, args):
            name = f"{name} by a mask"  # its output's size is the mask's count: read from the device first
        if self.counting and (name in SYNCS or name.endswith(" by a mask")):
            caller = [f for f in traceback.extract_stack()[:-1] if not f.filename.endswith(WRAPPERS)][-1]
            if caller.filename.startswith(PACKAGE):
                self.calls[(name, f"{caller.filename[len(PACKAGE) + 1:]}:{caller.lineno}")] += 1
        return func(*args, **(kwargs or {}))

    def per_step(self, steps: int, parts: tuple[str, ...]) -> float:
        return sum(n for (_, where), n in self.calls.items() if where.startswith(parts)) / steps


def _selects_by_mask(name: str, args: tuple) -> bool:
    """`t[mask]`, `masked_select`, one-argument `where`, `unique`: an output sized by the data."""
    if name in ("masked_select", "unique", "unique_consecutive", "_unique2") or (name == "where" and len(args) == 1):
        return True
    if name != "__getitem__" or len(args) < 2:
        return False
    index = args[1] if isinstance(args[1], tuple) else (args[1],)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index)


def _counted_steps(mode: HostSyncs, steps: list[int], until: int = 0) -> Any:
    """The loop's optimizer_step, counting the transfers inside each step; with `until`, also
    those between steps, until that many steps are done (the last step's save point is not a step)."""
    original = engine.optimizer_step

    def counted_step(*args: Any, **kwargs: Any) -> Any:
        mode.counting = True
        try:
            return original(*args, **kwargs)
        finally:
            steps[0] += 1
            mode.counting = steps[0] < until

    return counted_step


def _count_training_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str) -> tuple[HostSyncs, int]:
    mode, steps = HostSyncs(), [0]
    monkeypatch.setattr(engine, "optimizer_step", _counted_steps(mode, steps))
    config = compose_config(["encoder.width=32", "distributed.num_threads=1", "training.max_steps=4", "training.eval_frequency=1000",
                             "training.log_every=1000", "training.checkpoints_to_keep=0", "training.max_eval_docs=2", "training.batcher.size=1500",
                             f"training.output_dir={tmp_path / 'run'}", *overrides])
    with mode:
        run_worker(config)
    return mode, steps[0]


@pytest.mark.parametrize("accumulate", [1, 3])
def test_a_step_that_does_not_log_reads_nothing_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, accumulate: int) -> None:
    mode, steps = _count_training_steps(tmp_path, monkeypatch, f"training.accumulate_gradient={accumulate}")
    assert steps == 4
    machinery = {k: n for k, n in mode.calls.items() if k[1].startswith(STEP_MACHINERY)}
    assert not machinery, f"host syncs in the step machinery over {steps} steps: {machinery}"
    # The forward passes read nothing back: heads return their counts as tensors, the parser's
    # sentence shapes come from the host (models/heads/parser.py `host_segment`).
    forward = {k: n for k, n in mode.calls.items() if k[1].startswith(("models/", "pipeline/"))}
    assert not forward, f"host syncs in the forward passes over {steps} steps: {forward}"


def test_textcat_and_a_second_corpus_read_nothing_back_either(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The text classifier's head, and batches where a head has no labels at all (intent docs
    for the parser-free tagger and NER; EWT docs for textcat), are where masks replace gathers."""
    from distnlp.cli.compose import DEMO_DATA
    from tests.training.test_multi_corpus import INTENTS, convert

    intents = convert(tmp_path, "intents", INTENTS, ".csv")
    mode, steps = _count_training_steps(tmp_path, monkeypatch, "nlp.pipeline=[tagger,ner,textcat]",
                                        f"corpus.train=[{DEMO_DATA / 'train'},{intents}]", f"corpus.dev={DEMO_DATA / 'dev'}")
    assert steps == 4
    assert mode.per_step(steps, STEP_MACHINERY) == 0, dict(mode.calls)
    forward = {k: n for k, n in mode.calls.items() if k[1].startswith(("models/", "pipeline/"))}
    assert not forward, f"host syncs in the forward passes over {steps} steps: {forward}"


def _pretrain_config(tmp_path: Path, objective: str, *overrides: str) -> dict[str, Any]:
    """4 pretraining steps on demo text that never log; for `vectors-LOSS`, a random table that
    has a vector for half the words."""
    import json

    import numpy as np

    from distnlp.vectors.table import Vectors
    from tests.pretrain.test_pretrain import _config, _texts

    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps({"text": text}) + "\n" for text in _texts()[:200]))
    extra = []
    if objective.startswith("vectors"):
        words = sorted({w.lower() for text in _texts()[:200] for w in text.split()})[::2]
        vectors = np.random.default_rng(0).normal(size=(len(words), 16)).astype(np.float32)
        Vectors(words, vectors, key_attr="LOWER", name="tiny").to_disk(tmp_path / "vectors")
        extra = ["pretrain.objective=vectors", f"pretrain.vectors={tmp_path / 'vectors'}", f"pretrain.objectives.vectors.loss={objective.split('-')[1]}"]
    return _config(raw, tmp_path / "out", "pretrain.max_steps=4", "pretrain.max_epochs=0", "pretrain.log_every=1000", *extra, *overrides)


PRETRAIN_OBJECTIVES = ["characters", "vectors-cosine", "vectors-L2"]


@pytest.mark.parametrize("objective", PRETRAIN_OBJECTIVES)
def test_a_pretraining_step_that_does_not_log_reads_nothing_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, objective: str) -> None:
    """Pretraining runs the same loop: its counts come from the host targets, and the cosine
    loss weighs words without a vector by a mask instead of selecting the others (a boolean
    index would read the row count back)."""
    from distnlp.pretrain.entry import run_pretrain_worker

    config = _pretrain_config(tmp_path, objective)
    mode, steps = HostSyncs(), [0]
    monkeypatch.setattr(engine, "optimizer_step", _counted_steps(mode, steps))
    with mode:
        run_pretrain_worker(config)
    assert steps[0] == 4
    assert not mode.calls, f"host syncs in {steps[0]} pretraining steps: {dict(mode.calls)}"


def _strict_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every optimizer step of the loop, and every input prepare (run inline, with prefetch off,
    so that it never overlaps the loop's own reads), under `set_sync_debug_mode("error")`: a
    blocking host-to-device copy in the prepare waits for the device as surely as a read."""
    import distnlp.training.prefetch as prefetch

    def strict(fn: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            torch.cuda.set_sync_debug_mode("error")
            try:
                return fn(*args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return run

    monkeypatch.setattr(engine, "optimizer_step", strict(engine.optimizer_step))
    monkeypatch.setattr(prefetch.InputPrefetcher, "_prepared", strict(prefetch.InputPrefetcher._prepared))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: CUDA's sync debug mode")
def test_on_a_gpu_a_step_that_does_not_log_never_waits_for_the_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the CPU count above cannot see: a blocking host-to-device copy also waits for the
    device. `set_sync_debug_mode("error")` raises on any synchronising CUDA call inside a step or
    an input prepare."""
    from distnlp.training.env import WorkerEnv

    _strict_steps(monkeypatch)
    config = compose_config(["encoder.width=32", "training.max_steps=4", "training.eval_frequency=1000", "training.log_every=1000",
                             "training.checkpoints_to_keep=0", "training.max_eval_docs=2", "training.batcher.size=1500",
                             "training.prefetch=false", f"training.output_dir={tmp_path / 'run'}"])
    assert run_worker(config, WorkerEnv(device="cuda"))["step"] == 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: CUDA's sync debug mode")
@pytest.mark.parametrize("objective", PRETRAIN_OBJECTIVES)
def test_on_a_gpu_a_pretraining_step_that_does_not_log_never_waits_either(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, objective: str) -> None:
    from distnlp.pretrain.entry import run_pretrain_worker
    from distnlp.training.env import WorkerEnv

    _strict_steps(monkeypatch)
    assert run_pretrain_worker(_pretrain_config(tmp_path, objective, "pretrain.prefetch=false"), WorkerEnv(device="cuda"))["step"] == 4


LOOP_MACHINERY = ("training/engine.py", "training/step.py", "training/pending_steps.py", "distributed/")  # loop, step, reducer


def _count_replica(rank: int, world: int, port: int, out_dir: str, overrides: list[str]) -> None:
    """One gloo replica of the real loop; transfers are counted from its first step's start to
    its last step's end, so the loop's bookkeeping between steps (the epoch agreement, logging
    every `log_every` steps) counts too."""
    import json
    import os

    from distnlp.training.env import WorkerEnv

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    mode, steps = HostSyncs(), [0]
    engine.optimizer_step = _counted_steps(mode, steps, until=STEPS)
    config = compose_config(["encoder.width=32", "distributed.num_threads=1", f"training.max_steps={STEPS}", "training.eval_frequency=1000",
                             f"training.log_every={LOG_EVERY}", "training.checkpoints_to_keep=0", "training.max_eval_docs=2",
                             "training.batcher.size=1000", f"training.output_dir={Path(out_dir) / 'run'}", *overrides])
    with mode:
        run_worker(config, WorkerEnv(rank=rank, world_size=world))
    calls = {f"{name} {where}": n for (name, where), n in mode.calls.items() if where.startswith(LOOP_MACHINERY)}
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps({"steps": steps[0], "calls": calls}))


STEPS, LOG_EVERY = 6, 3


@pytest.mark.multiprocess
def test_a_replica_reads_the_device_back_only_on_logging_steps(tmp_path: Path) -> None:
    """On 2 gloo replicas: which parameters have a gradient anywhere, the item counts and the
    loop's epoch agreement are summed on the host; the loss sums and the norm are read once per
    logging step, every step since the last one in the same transfer. The demo corpus's small
    batches cross an epoch within the steps, so the agreement is exercised."""
    import json
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    from distnlp.cli.compose import DEMO_DATA

    overrides = [f"corpus.train={DEMO_DATA / 'dev'}", f"corpus.dev={DEMO_DATA / 'dev'}"]
    mp.spawn(_count_replica, args=(2, port, str(tmp_path), overrides), nprocs=2, join=True)
    for rank in range(2):
        record = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert record["steps"] == STEPS
        logging_steps = STEPS // LOG_EVERY - 1  # the last step's read is after its step: not counted
        assert sum(record["calls"].values()) <= logging_steps, f"rank {rank}: host syncs over {STEPS} steps: {record['calls']}"
    metrics = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert max(m.get("epoch", 0) for m in metrics) >= 1, "the steps never crossed an epoch"
