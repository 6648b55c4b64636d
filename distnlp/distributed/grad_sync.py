"""Weighted gradient all-reduce, overlapped with backward (bucketed, as DDP does).

Heads divide their loss sums by the *global* item counts (reduced first, in `sum_counts`), so
summing the gradients over ranks gives exactly the gradient of one process that saw the union
of the batches (docs/architecture.md, "The equivalence contract"). Gradients are flattened into fixed buckets identified by
stable parameter names; a bucket is all-reduced as soon as every gradient in it is final, in a
fixed bucket order on every rank so the collectives always match. Parameters that get no
gradient on a rank (a head with no labels in its batch, a listener at grad_factor 0, frozen
weights) contribute zeros, so no collective ever waits for them.

Each bucket also carries one presence flag per parameter (1 where the rank has a gradient). A
parameter with no gradient on any rank gets `grad = None` after the reduce, exactly as in one
process, so the optimizer neither decays nor steps it (docs/architecture.md, "The equivalence
contract"). The flags stay on the device until the step reads back its other numbers: until then
such a gradient is zeros, which adds nothing to the norm and nothing when clipped.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

DEFAULT_BUCKET_MB = 25.0


class _Bucket:
    def __init__(self, index: int, params: list[tuple[str, nn.Parameter]]) -> None:
        self.index = index
        self.params = params
        self.numel = sum(p.numel() for _, p in params)
        p0 = params[0][1]
        # The gradients, then one presence flag per parameter.
        self.flat = torch.zeros(self.numel + len(params), dtype=p0.dtype, device=p0.device)
        self.ready: set[int] = set()
        self.handle: Any = None

    def pack(self) -> None:
        offset = 0
        for j, (_, p) in enumerate(self.params):
            n = p.numel()
            if p.grad is None:
                self.flat[offset : offset + n].zero_()
            else:
                self.flat[offset : offset + n].copy_(p.grad.reshape(-1))
            self.flat[self.numel + j] = 0.0 if p.grad is None else 1.0
            offset += n

    def unpack(self) -> None:
        offset = 0
        for _, p in self.params:
            n = p.numel()
            chunk = self.flat[offset : offset + n].view_as(p)
            if p.grad is None:
                p.grad = chunk.clone()
            else:
                p.grad.copy_(chunk)
            offset += n

    def presence(self) -> torch.Tensor:
        return self.flat[self.numel :] > 0.5


class GradAllReducer:
    """The `Reducer` of a distributed step: sums counts and gradients over all ranks."""

    def __init__(
        self,
        named_params: Sequence[tuple[str, nn.Parameter]],
        *,
        device: torch.device | str = "cpu",
        bucket_mb: float = DEFAULT_BUCKET_MB,
        overlap: bool = True,
    ) -> None:
        self.device = torch.device(device)  # NCCL needs the small tensors (counts, flags) on the GPU too
        self.named_params = [(n, p) for n, p in named_params if p.requires_grad]
        # Same order on every rank: parameters sorted by their stable names would also do, but
        # reversed registration order approximates the order gradients become final.
        self.buckets = _make_buckets(self.named_params, int(bucket_mb * 1024 * 1024))
        self._where: dict[int, tuple[int, int]] = {}
        for b in self.buckets:
            for j, (_, p) in enumerate(b.params):
                self._where[id(p)] = (b.index, j)
        self.overlap = overlap
        self._final_backward = False
        self._next_launch = 0
        self._hooks: list[Any] = []
        if overlap:
            for _, p in self.named_params:
                self._hooks.append(p.register_post_accumulate_grad_hook(self._on_grad))

    # --- Reducer protocol --------------------------------------------------------------------
    def sum_counts(self, counts: torch.Tensor) -> torch.Tensor:
        out = counts.to(self.device, copy=True)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        self._start_step()
        return out  # on the device: the step reads it back once, with its other numbers

    def final_backward(self, is_final: bool) -> None:
        """Only the last sub-batch's backward may launch reductions (gradient accumulation)."""
        self._final_backward = is_final

    def sum_grads(self, params: Sequence[nn.Parameter]) -> torch.Tensor:
        """Every parameter's summed gradient (zeros where no rank has one), and, on the device,
        whether any rank has one: the step reads it back with its other numbers (`drop_absent`)."""
        self._launch_ready(force=True)
        for b in self.buckets:
            b.handle.wait()
            b.unpack()
        present = torch.cat([b.presence() for b in self.buckets])
        self._start_step()
        return present

    def drop_absent(self, present: Sequence[bool]) -> None:
        """`grad = None` where no rank had a gradient, as one process would leave it."""
        for (_, p), keep in zip((named for b in self.buckets for named in b.params), present, strict=True):
            if not keep:
                p.grad = None

    def gather_objects(self, obj: Any) -> list[Any]:
        """All-gather a JSON-able object from every rank (evaluation counts)."""
        return all_gather_json(obj, self.device)

    def close(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    # --- overlap -----------------------------------------------------------------------------
    def _start_step(self) -> None:
        self._next_launch = 0
        self._final_backward = not self.overlap
        for b in self.buckets:
            b.ready.clear()
            b.handle = None

    def _on_grad(self, p: nn.Parameter) -> None:
        if not self._final_backward:
            return
        where = self._where.get(id(p))
        if where is None:
            return
        b_idx, j = where
        bucket = self.buckets[b_idx]
        bucket.ready.add(j)
        self._launch_ready(force=False)

    def _launch_ready(self, force: bool) -> None:
        # Launch strictly in bucket order so every rank issues the same collectives in the same order.
        while self._next_launch < len(self.buckets):
            b = self.buckets[self._next_launch]
            if b.handle is None and not force and len(b.ready) < len(b.params):
                return
            if b.handle is None:
                b.pack()
                b.handle = dist.all_reduce(b.flat, op=dist.ReduceOp.SUM, async_op=True)
            self._next_launch += 1


def _make_buckets(named: list[tuple[str, nn.Parameter]], cap_bytes: int) -> list[_Bucket]:
    buckets: list[_Bucket] = []
    current: list[tuple[str, nn.Parameter]] = []
    size = 0
    for name, p in reversed(named):
        nbytes = p.numel() * p.element_size()
        if current and (size + nbytes > cap_bytes or p.dtype != current[0][1].dtype or p.device != current[0][1].device):
            buckets.append(_Bucket(len(buckets), current))
            current, size = [], 0
        current.append((name, p))
        size += nbytes
    if current:
        buckets.append(_Bucket(len(buckets), current))
    return buckets


def all_gather_json(obj: Any, device: torch.device | str = "cpu") -> list[Any]:
    """Gather JSON-able objects as UTF-8 bytes (no pickle crosses the wire)."""
    payload = json.dumps(obj).encode("utf8")
    data = torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(device)
    world = dist.get_world_size()
    sizes = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([data.numel()], dtype=torch.int64, device=device))
    cap = int(max(s.item() for s in sizes))
    padded = torch.zeros(cap, dtype=torch.uint8, device=device)
    padded[: data.numel()] = data
    out = [torch.zeros(cap, dtype=torch.uint8, device=device) for _ in range(world)]
    dist.all_gather(out, padded)
    return [json.loads(t[: int(s.item())].cpu().numpy().tobytes().decode("utf8")) for t, s in zip(out, sizes)]


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
