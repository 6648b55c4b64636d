"""Every replica starts from the same weights (issue 22, item 4): after building the model each
rank hashes its state_dict and gathers the hashes; if any rank differs, every rank stops with one
line naming the ranks and the first tensor. Two gloo ranks for the collective; the wiring into
`run_objective` with a stand-in worker whose peer built other weights."""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from distnlp.cli.compose import compose_config
from distnlp.distributed.grad_sync import all_gather_json
from distnlp.training.env import WorkerEnv
from distnlp.training.loop import TRAIN, run_objective
from distnlp.training.setup import ReplicaMismatchError, Worker, check_same_weights

pytestmark = pytest.mark.multiprocess


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check(rank: int, seed: int) -> str:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    with torch.no_grad():
        model[1].weight.fill_(1.0)  # the same on every rank, whatever the seed
    try:
        check_same_weights(model, all_gather_json)
    except ReplicaMismatchError as exc:
        return str(exc)
    return "same"


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        same = _check(rank, seed=0)
        other = _check(rank, seed=0 if rank < 2 else rank)  # rank 2 alone built other weights
        Path(out, f"rank{rank}.txt").write_text(f"{same}\n{other}")
    finally:
        dist.destroy_process_group()


def test_ranks_with_other_initial_weights_stop_every_rank(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(3, _free_port(), str(tmp_path)), nprocs=3, join=True)
    outcomes = [(tmp_path / f"rank{r}.txt").read_text().split("\n") for r in range(3)]
    assert [same for same, _ in outcomes] == ["same"] * 3
    lines = [other for _, other in outcomes]
    assert lines[0] == lines[1] == lines[2]  # every rank stops, with the same one line
    assert "rank(s) 2 built other weights than rank 0 (first: 0.bias)" in lines[0]


def _other(obj: Any) -> Any:
    """What a peer that built other weights reports: other digests (the identity is rank 0's anyway)."""
    if isinstance(obj, str):
        return obj[::-1]
    if isinstance(obj, dict):
        return {k: _other(v) for k, v in obj.items()}
    return obj


class _PeerWithOtherWeights(Worker):
    def gather(self, obj: Any) -> list[Any]:
        return [obj, _other(obj)]


def test_run_objective_checks_the_initial_weights_before_training(tmp_path: Path) -> None:
    config = compose_config(["encoder.width=32", "distributed.num_threads=1", "training.max_eval_docs=3", "training.max_steps=1",
                             f"training.output_dir={tmp_path / 'run'}", "nlp.pipeline=[tagger]"])
    env = WorkerEnv(rank=0, world_size=2)
    with pytest.raises(ReplicaMismatchError, match=r"rank\(s\) 1 built other weights than rank 0 \(first: \S+\)"):
        run_objective(config, TRAIN, env, worker=_PeerWithOtherWeights(env, torch.device("cpu")))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # stopped before the first step
