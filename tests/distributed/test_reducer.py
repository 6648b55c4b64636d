"""The gradient reducer on 2 gloo ranks (distributed/grad_sync.py): gradients live as views into
the buckets it all-reduces, so a step copies no gradient into a bucket or out of it; the sums
equal the per-tensor sums exactly; a gradient only one rank has is kept, one no rank has is None;
parameters no loss reaches do not hold back their bucket's all-reduce; `reduce_dtype=bfloat16`
sends half the bytes and lands within bf16 rounding of float32."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from distnlp.distributed.grad_sync import GradAllReducer

pytestmark = pytest.mark.multiprocess

COPIES = {torch.ops.aten.copy_.default, torch.ops.aten.clone.default, torch.ops.aten._to_copy.default}


class CopiedBytes(TorchDispatchMode):
    """Bytes written by copies of more than one element (a presence flag set is one element)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if func in COPIES and isinstance(out, torch.Tensor) and out.numel() > 1:
            self.bytes += out.numel() * out.element_size()
        return out


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(16, 16)  # a gradient on both ranks
        self.rank0_only = nn.Linear(16, 4)  # a head with labels on rank 0 only
        self.unused = nn.Linear(16, 4)  # no rank's loss reaches it
        self.frozen = nn.Linear(16, 16).requires_grad_(False)

    def loss(self, x: torch.Tensor, rank: int) -> torch.Tensor:
        h = torch.tanh(self.shared(self.frozen(x)))
        loss = h.pow(2).sum()
        return loss + self.rank0_only(h).sum() if rank == 0 else loss


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _join(rank: int, world: int, port: int) -> None:
    """This process as gloo rank `rank` of `world`, one thread."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)


def _worker(rank: int, world: int, port: int, out: str, wire: str) -> None:
    _join(rank, world, port)
    try:
        torch.manual_seed(0)
        model = Model()
        x = torch.randn(8, 16, generator=torch.Generator().manual_seed(rank))
        # The reference: each rank's own gradients, summed tensor by tensor.
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        local = dict(zip(names, torch.autograd.grad(model.loss(x, rank), [p for _, p in model.named_parameters() if p.requires_grad],
                                                    allow_unused=True)))
        reference = {}
        for name in names:
            g = local[name] if local[name] is not None else torch.zeros_like(dict(model.named_parameters())[name])
            g = g.clone()
            dist.all_reduce(g)
            reference[name] = g
        # bucket_mb small: several buckets, launched during backward
        reducer = GradAllReducer(list(model.named_parameters()), bucket_mb=0.0005, reduce_dtype=getattr(torch, wire) if wire else None)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        records = []
        for _ in range(2):  # the second step re-attaches views after the first's None
            copies = CopiedBytes()
            with copies:
                reducer.zero_grads(optimizer)
                loss = model.loss(x, rank)
                reducer.final_backward(True, loss)
                loss.backward()
                launched = sum(b.handle is not None for b in reducer.buckets)
                reducer.sum_grads([p for p in model.parameters() if p.requires_grad])
            grads = dict(model.named_parameters())
            records.append({
                "copied_bytes": copies.bytes,
                "launched_in_backward": launched,
                "buckets": len(reducer.buckets),
                "wire_dtypes": sorted({str(b.sent.dtype) for b in reducer.buckets}),
                "none": sorted(n for n in names if grads[n].grad is None),
                "max_rel_err": {n: float(((grads[n].grad - reference[n]).abs().max() / reference[n].abs().max().clamp(min=1e-12)))
                                for n in names if grads[n].grad is not None},
                "exact": sorted(n for n in names if grads[n].grad is not None and torch.equal(grads[n].grad, reference[n])),
            })
            optimizer.zero_grad(set_to_none=True)
        Path(out, f"rank{rank}.json").write_text(json.dumps(records))
    finally:
        dist.destroy_process_group()


def _run(tmp_path: Path, wire: str) -> list[list[dict]]:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), wire), nprocs=2, join=True)
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


def test_the_default_reduce_copies_no_gradient_and_sums_exactly(tmp_path: Path) -> None:
    for rank, records in enumerate(_run(tmp_path, "")):
        for step, r in enumerate(records):
            assert r["buckets"] >= 3, r
            assert r["copied_bytes"] == 0, f"rank {rank}, step {step}: {r['copied_bytes']} bytes of gradients copied"
            assert r["none"] == ["unused.bias", "unused.weight"], r  # no rank has one: None, as in one process
            assert r["exact"] == ["rank0_only.bias", "rank0_only.weight", "shared.bias", "shared.weight"], r
            assert r["wire_dtypes"] == ["torch.float32"]


def test_a_parameter_without_a_gradient_holds_back_no_bucket(tmp_path: Path) -> None:
    """The first bucket (reverse registration order) holds the heads only rank 0 uses and the
    one no rank uses: unless they are known to be final before backward, that bucket, and so
    every later one, waits for the end of backward."""
    for rank, records in enumerate(_run(tmp_path, "")):
        for r in records:
            assert r["launched_in_backward"] == r["buckets"], (rank, r)


def test_bfloat16_reduce_sends_half_the_bytes_within_its_rounding(tmp_path: Path) -> None:
    for records in _run(tmp_path, "bfloat16"):
        for r in records:
            assert r["wire_dtypes"] == ["torch.bfloat16"]
            assert r["none"] == ["unused.bias", "unused.weight"], r
            assert all(err < 1e-2 for err in r["max_rel_err"].values()), r  # bf16: 8 bits of mantissa
            assert any(err > 0 for err in r["max_rel_err"].values()), r  # ... and it did round


class Misregistered(nn.Module):
    """The output layer is registered first but used last: reverse registration order, the
    reducer's first guess, is the opposite of the order backward finalises gradients in."""

    def __init__(self) -> None:
        super().__init__()
        self.out = nn.Linear(16, 4)
        self.body = nn.Linear(16, 16)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.body(x))).pow(2).sum()


def _order_worker(rank: int, world: int, port: int, out: str) -> None:
    import distnlp.distributed.grad_sync as grad_sync

    _join(rank, world, port)
    try:
        torch.manual_seed(0)
        model = Misregistered()
        x = torch.randn(8, 16, generator=torch.Generator().manual_seed(rank))
        hooks_seen = [0]
        launched_after: list[int] = []  # per launch, how many gradients backward had finalised
        launch = grad_sync._Bucket.launch

        def recording(bucket: Any, *a: Any) -> None:
            launched_after.append(hooks_seen[0])
            launch(bucket, *a)

        grad_sync._Bucket.launch = recording
        reducer = GradAllReducer(list(model.named_parameters()), bucket_mb=0.0005)  # one bucket per parameter
        for p in model.parameters():  # registered after the reducer's hooks: they run after them
            p.register_post_accumulate_grad_hook(lambda _p: hooks_seen.__setitem__(0, hooks_seen[0] + 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        steps = []
        for _ in range(3):
            hooks_seen[0] = 0
            launched_after.clear()
            reducer.zero_grads(optimizer)
            loss = model.loss(x)
            reducer.final_backward(True, loss)
            loss.backward()
            reducer.sum_grads(list(model.parameters()))
            steps.append({"launched_after": list(launched_after), "order": list(reducer.launch_order),
                          "grads": [p.grad.clone().tolist() for p in model.parameters()]})
        Path(out, f"rank{rank}.json").write_text(json.dumps(steps))
    finally:
        dist.destroy_process_group()


def test_buckets_launch_in_the_order_backward_finalises_them_from_the_second_step(tmp_path: Path) -> None:
    mp.spawn(_order_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for steps in ranks:
        first, second, third = steps
        # step 1, reverse registration: out's bucket (its gradients final first) is launched last,
        # once body's are in too (3 gradients counted before the launch in the 4th one's hook)
        assert first["order"] == [2, 0, 1] and first["launched_after"][-1] == 3, first
        # from step 2, the learned order: out's bucket goes first, as soon as its own gradients are in
        assert second["launched_after"][0] <= 1 and third["launched_after"] == second["launched_after"], second
        assert first["grads"] == second["grads"] == third["grads"]  # the same sums, bit for bit
    assert ranks[0][1]["order"] == ranks[1][1]["order"]  # every rank launches in rank 0's order
