"""Weighted gradient all-reduce, overlapped with backward (bucketed, as DDP does).

Heads divide their loss sums by the *global* item counts (summed first, on the host: `sum_on_host`), so
summing the gradients over ranks gives exactly the gradient of one process that saw the union
of the batches (docs/architecture.md, "The equivalence contract"). Gradients live in fixed flat
buckets of stable parameter order: at the start of a step every parameter's `.grad` is set to a
zeroed view into its bucket, backward accumulates into it in place, and a bucket is all-reduced
in place as soon as every gradient in it is final, in one launch order on every rank so the
collectives always match: reverse registration order for the first step, then the order in which
rank 0 saw the buckets become final during that step's backward (all ranks take it from rank 0,
as DDP rebuilds its buckets after the first iteration). Only the launch order is learned, never
the buckets' contents, so the sums are the same bits whatever the order, and a resumed run,
which learns again, reduces exactly as the uninterrupted one. No gradient is copied into a bucket or back out of it (DDP's
`gradient_as_bucket_view`). Parameters that get no gradient on a rank (a head with no labels in
its batch, a listener at grad_factor 0, frozen weights) contribute zeros, so no collective ever
waits for them.

Which parameters have a gradient is known on the host (the gradient hook marks it), and so are
the step's item counts and words: those are summed over a CPU (gloo) group of the same ranks
(`host_group`), never through the device, so a step reads nothing back from a GPU. A parameter
with no gradient on any rank gets `grad = None` after the reduce, exactly as in one process, so
the optimizer neither decays nor steps it (docs/architecture.md, "The equivalence contract").

`reduce_dtype=torch.bfloat16` (distributed.reduce_dtype) sends each bucket as a bf16 copy, half
the bytes of float32, and casts the sum back: gradients then carry bf16 rounding (8 bits of
mantissa, per rank and in the sum), so replicas no longer equal one process to float tolerance;
the default (None: the gradients' own type, no cast) keeps the equivalence contract.
"""
from __future__ import annotations

import json
from array import array
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .process_group import host_group

DEFAULT_BUCKET_MB = 25.0
WIRE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}  # distributed.reduce_dtype


class _Bucket:
    def __init__(self, index: int, params: list[tuple[str, nn.Parameter]]) -> None:
        self.index = index
        self.params = params
        self.numel = sum(p.numel() for _, p in params)
        p0 = params[0][1]
        self.flat = torch.zeros(self.numel, dtype=p0.dtype, device=p0.device)
        self.views: list[torch.Tensor] = []
        offset = 0
        for _, p in params:
            self.views.append(self.flat[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
        self.ready: set[int] = set()
        self.seen: set[int] = set()  # parameters with a gradient on this rank, this step (host-side presence)
        self.handle: Any = None
        self.sent: torch.Tensor | None = None  # the reduce_dtype copy on the wire, if not the flat itself

    def attach(self) -> None:
        """A new step: zeroed gradients, each parameter's `.grad` a view into this bucket."""
        self.flat.zero_()
        for (_, p), view in zip(self.params, self.views):
            p.grad = view
        self.ready.clear()
        self.seen.clear()
        self.handle = None
        self.sent = None

    def gather_strays(self) -> None:
        """A gradient autograd put elsewhere than its view (e.g. a replaced `.grad`): copy it in."""
        for j, ((_, p), view) in enumerate(zip(self.params, self.views)):
            if p.grad is not None and p.grad is not view:
                view.copy_(p.grad)
                self.seen.add(j)
                p.grad = view

    def launch(self, reduce_dtype: torch.dtype | None) -> None:
        self.gather_strays()
        self.sent = self.flat if reduce_dtype in (None, self.flat.dtype) else self.flat.to(reduce_dtype)
        self.handle = dist.all_reduce(self.sent, op=dist.ReduceOp.SUM, async_op=True)

    def wait(self) -> None:
        self.handle.wait()
        if self.sent is not self.flat:
            self.flat.copy_(self.sent)


class GradAllReducer:
    """The `Reducer` of a distributed step: sums counts and gradients over all ranks."""

    def __init__(
        self,
        named_params: Sequence[tuple[str, nn.Parameter]],
        *,
        device: torch.device | str = "cpu",
        bucket_mb: float = DEFAULT_BUCKET_MB,
        overlap: bool = True,
        reduce_dtype: torch.dtype | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """`reduce_dtype`: the type buckets are sent in; None = the gradients' own (exact).
        `timeout_s`: of the host group's collectives (distributed.timeout_s)."""
        self.device = torch.device(device)  # NCCL needs the loss sums on the GPU too
        self.host_group = host_group(timeout_s)  # before the hooks: a collective, on every rank in the same order
        self.named_params = [(n, p) for n, p in named_params if p.requires_grad]
        # Same order on every rank: parameters sorted by their stable names would also do, but
        # reversed registration order approximates the order gradients become final.
        self.buckets = _make_buckets(self.named_params, int(bucket_mb * 1024 * 1024))
        self._where: dict[int, tuple[int, int]] = {}
        for b in self.buckets:
            for j, (_, p) in enumerate(b.params):
                self._where[id(p)] = (b.index, j)
        self.overlap = overlap
        self.reduce_dtype = reduce_dtype
        self._final_backward = False
        self._next_launch = 0  # position in `launch_order` of the next bucket to launch
        self.launch_order = list(range(len(self.buckets)))
        self._order_learned = not overlap or len(self.buckets) < 2
        self._became_final: list[int] = []  # bucket indices, in the order their gradients became final
        # Always hooked: the hook is what marks a gradient present (an attached view is never None).
        self._hooks = [p.register_post_accumulate_grad_hook(self._on_grad) for _, p in self.named_params]

    # --- Reducer protocol --------------------------------------------------------------------
    def sum_on_host(self, values: Sequence[float]) -> list[float]:
        return host_sum(values, self.host_group)

    def sum_on_device(self, values: torch.Tensor) -> torch.Tensor:
        out = values.to(self.device, copy=True)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out  # stays on the device until the loop reads it

    def zero_grads(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)  # parameters the reducer does not hold
        self._next_launch = 0
        self._final_backward = False
        self._became_final = []
        for b in self.buckets:
            b.attach()

    def final_backward(self, is_final: bool, loss: torch.Tensor | None = None) -> None:
        """Only the last sub-batch's backward may launch reductions (gradient accumulation).

        Before it, every parameter its loss does not reach is final already (a head without
        labels in this batch, a listener at grad_factor 0): marked ready now, so it does not
        hold its bucket, and every later one, until backward ends."""
        self._final_backward = is_final and self.overlap
        if not self._final_backward:
            return
        reached = _reached_parameters(loss)
        for b in self.buckets:
            b.ready.update(j for j, (_, p) in enumerate(b.params) if id(p) not in reached)
            self._note_if_final(b)
        self._launch_ready(force=False)

    def sum_grads(self, params: Sequence[nn.Parameter]) -> None:
        """Every parameter's summed gradient, in place in its view; `grad = None` where no rank
        has one (which ones is summed on the host group while the device reduces the buckets)."""
        self._launch_ready(force=True)
        ranks_with_grad = host_sum([float(j in b.seen) for b in self.buckets for j in range(len(b.params))], self.host_group)
        for b in self.buckets:
            b.wait()
        if not self._order_learned:  # on every rank in the same step, whatever its own backward did
            self._learn_launch_order()
        for (_, p), ranks in zip((named for b in self.buckets for named in b.params), ranks_with_grad, strict=True):
            if ranks == 0:
                p.grad = None  # no rank had one: as one process would leave it

    def gather_objects(self, obj: Any) -> list[Any]:
        """All-gather a JSON-able object from every rank (evaluation counts), on the host group."""
        return all_gather_json(obj, "cpu", self.host_group)

    def close(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    # --- overlap -----------------------------------------------------------------------------
    def _on_grad(self, p: nn.Parameter) -> None:
        where = self._where.get(id(p))
        if where is None:
            return
        b_idx, j = where
        bucket = self.buckets[b_idx]
        bucket.seen.add(j)
        if self._final_backward:
            bucket.ready.add(j)
            self._note_if_final(bucket)
            self._launch_ready(force=False)

    def _note_if_final(self, bucket: _Bucket) -> None:
        if not self._order_learned and len(bucket.ready) == len(bucket.params) and bucket.index not in self._became_final:
            self._became_final.append(bucket.index)

    def _learn_launch_order(self) -> None:
        """Launch from now on in the order rank 0's buckets became final in this step (buckets
        still waiting at the end of backward after them, by index). A collective, once: every
        rank reaches it in the same step."""
        seen = self._became_final + [i for i in range(len(self.buckets)) if i not in self._became_final]
        order = array("q", seen)  # the same length on every rank; a host fact, sent on the host group
        dist.broadcast(torch.frombuffer(order, dtype=torch.int64), src=0, group=self.host_group)
        self.launch_order = list(order)
        self._order_learned = True

    def _launch_ready(self, force: bool) -> None:
        # One launch order on every rank, so all ranks issue the same collectives in the same order.
        while self._next_launch < len(self.buckets):
            b = self.buckets[self.launch_order[self._next_launch]]
            if b.handle is None and not force and len(b.ready) < len(b.params):
                return
            if b.handle is None:
                b.launch(self.reduce_dtype)
            self._next_launch += 1


def _reached_parameters(loss: torch.Tensor | None) -> set[int]:
    """ids of the leaf tensors whose gradients a backward of `loss` accumulates (its graph's
    AccumulateGrad nodes), as DDP's find_unused_parameters finds them."""
    if loss is None or loss.grad_fn is None:
        return set()
    reached: set[int] = set()
    seen = set()
    stack = [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        leaf = getattr(node, "variable", None)
        if leaf is not None:
            reached.add(id(leaf))
            continue
        stack.extend(next_node for next_node, _ in node.next_functions)
    return reached


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


def host_sum(values: Sequence[float], group: Any = None) -> list[float]:
    """Sum numbers the host holds over the ranks of `group`. The tensor shares the memory of a
    Python array, so the result is read without a tensor conversion: nothing touches a device."""
    buffer = array("d", values)
    if buffer:
        dist.all_reduce(torch.frombuffer(buffer, dtype=torch.float64), op=dist.ReduceOp.SUM, group=group)
    return list(buffer)


def all_gather_json(obj: Any, device: torch.device | str = "cpu", group: Any = None) -> list[Any]:
    """Gather JSON-able objects as UTF-8 bytes (no pickle crosses the wire)."""
    payload = json.dumps(obj).encode("utf8")
    data = torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(device)
    world = dist.get_world_size(group)
    sizes = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([data.numel()], dtype=torch.int64, device=device), group=group)
    cap = int(max(s.item() for s in sizes))
    padded = torch.zeros(cap, dtype=torch.uint8, device=device)
    padded[: data.numel()] = data
    out = [torch.zeros(cap, dtype=torch.uint8, device=device) for _ in range(world)]
    dist.all_gather(out, padded, group=group)
    return [json.loads(t[: int(s.item())].cpu().numpy().tobytes().decode("utf8")) for t, s in zip(out, sizes)]


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
