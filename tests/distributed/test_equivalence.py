"""The contract of DESIGN.md decision 3: two gloo ranks stepping on their own (uneven) batches
end with the same parameters as one process stepping on the union of those batches."""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from distnlp.cli.compose import DEMO_DATA, compose_config
from distnlp.data.stream import read_docs
from distnlp.distributed.grad_sync import GradAllReducer
from distnlp.training.loop import build_pipeline, seed_everything
from distnlp.training.optim import build_optimizer
from distnlp.training.step import train_step

from ..pipeline.conftest import first_sentences

pytestmark = pytest.mark.multiprocess

STEPS = 3
CLIP = 0.0  # off: Adam is scale-invariant, so the gradients themselves are compared too


def _named_grads(nlp: Any) -> dict[str, torch.Tensor]:
    return {f"grad.{n}": p.grad.detach().clone().contiguous() for n, p in nlp.named_parameters() if p.grad is not None}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _docs() -> list:
    docs = [first_sentences(d, 2) for d in read_docs(DEMO_DATA / "train")]
    return [d for d in docs if d.ent_spans][:12]


def _rank_batches(rank: int) -> list[list]:
    """Per step: rank 0 gets 3 docs, rank 1 gets 1 doc (uneven word counts too)."""
    docs = _docs()
    out = []
    for step in range(STEPS):
        chunk = docs[step * 4 : step * 4 + 4]
        out.append(chunk[:3] if rank == 0 else chunk[3:])
    return out


def _build(config: dict[str, Any]) -> tuple[Any, Any]:
    seed_everything(0)
    nlp = build_pipeline(config)
    nlp.train()
    optimizer, _ = build_optimizer(nlp, config["training"]["optimizer"])
    return nlp, optimizer


def _worker(rank: int, world: int, port: int, config: dict[str, Any], out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        nlp, optimizer = _build(config)
        reducer = GradAllReducer(list(nlp.named_parameters()), bucket_mb=0.05)  # several buckets
        for step, docs in enumerate(_rank_batches(rank)):
            train_step(nlp, [nlp.featurize(docs)], step=step, optimizer=optimizer, grad_clip=CLIP, reducer=reducer)
        if rank == 0:
            save_file({**_named_grads(nlp), **{k: v.contiguous() for k, v in nlp.state_dict().items()}}, out)
    finally:
        dist.destroy_process_group()


def _config(overrides: list[str]) -> dict[str, Any]:
    return compose_config(["training.dropout=0.0", "encoder.width=32", "components.ner.grad_factor=0.5", *overrides])


@pytest.mark.parametrize("overrides", [[], ["pipeline=independent"]], ids=["shared-cnn", "independent-cnn"])
def test_two_ranks_equal_one_rank_on_the_union(tmp_path: Path, overrides: list[str]) -> None:
    config = _config(overrides)
    out = str(tmp_path / "rank0.safetensors")
    mp.spawn(_worker, args=(2, _free_port(), config, out), nprocs=2, join=True)
    distributed = load_file(out)

    torch.set_num_threads(1)
    nlp, optimizer = _build(config)
    both = list(zip(_rank_batches(0), _rank_batches(1)))
    for step, (a, b) in enumerate(both):
        train_step(nlp, [nlp.featurize(a), nlp.featurize(b)], step=step, optimizer=optimizer, grad_clip=CLIP)
    for name, grad in _named_grads(nlp).items():
        assert float(grad.abs().sum()) > 0 or "ner" in name, name
        torch.testing.assert_close(distributed[name], grad, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")
    single = nlp.state_dict()
    moved = 0
    initial = _build(config)[0].state_dict()
    for name, value in single.items():
        torch.testing.assert_close(distributed[name], value, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")
        moved += int(not torch.equal(value, initial[name]))
    assert moved > len(single) // 2  # the comparison is about trained weights, not initial ones
