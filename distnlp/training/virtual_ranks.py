"""The data ranks one replica trains on: its own, or several with `distributed.keep_global_batch`.

A run's global batch is one batch per data rank. Normally data ranks are replicas. When a run
checkpointed on N replicas resumes on M != N with `keep_global_batch=true`, the N data ranks
stay: replica m hosts every data rank v with v % M == m, takes one batch from each per step and
accumulates their gradients (one sub-batch after another, so peak memory stays that of one
batch). The sum over sub-batches is the sum the N replicas' all-reduce formed, so the run
continues as the N-replica run would have, to float tolerance (docs/architecture.md, "Exact
resume"). Each hosted data rank also keeps its own torch generator, swapped in for its
sub-batches, so dropout draws the masks the N-replica run draws.

The alternative (`keep_global_batch=false`, the default) re-splits what the epoch has left over
M replicas (data/elastic.py): every replica is busy, and the global batch is M/N of the old one.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data.doc import Doc
from .batches import ResumableBatches
from .checkpoint import generator_states

MakeBatches = Callable[[int, int], ResumableBatches]  # (data rank, data world size) -> its batches


@dataclass
class Generators:
    """A hosted data rank's torch generator states (CPU, and the current CUDA device's)."""

    cpu: torch.Tensor
    cuda: torch.Tensor | None = None

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "Generators":
        cuda = state.get("cuda") if torch.cuda.is_available() else None
        return cls(torch.tensor(state["torch"], dtype=torch.uint8), None if cuda is None else torch.tensor(cuda, dtype=torch.uint8))

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Draw from this data rank's generators; the replica's own are put back after."""
        own_cpu = torch.get_rng_state()
        own_cuda = torch.cuda.get_rng_state() if self.cuda is not None else None
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda)
        try:
            yield
        finally:
            self.cpu = torch.get_rng_state()
            torch.set_rng_state(own_cpu)
            if own_cuda is not None:
                self.cuda = torch.cuda.get_rng_state()
                torch.cuda.set_rng_state(own_cuda)


@contextlib.contextmanager
def data_rank_generators(generators: Generators | None) -> Iterator[None]:
    """The generators a sub-batch's randomness comes from (None: the replica's own)."""
    if generators is None:
        yield
        return
    with generators.active():
        yield


class HostedBatch(list):
    """A step's docs from several hosted data ranks: the docs in rank order, plus the groups."""

    def __init__(self, groups: list[tuple[Generators | None, list[Doc]]]) -> None:
        super().__init__(doc for _, docs in groups for doc in docs)
        self.groups = groups


@dataclass
class _Hosted:
    batches: ResumableBatches
    generators: Generators | None = None


@dataclass
class DataRanks:
    """What the loop calls `batches`: one ResumableBatches per hosted data rank.

    With one data rank per replica (always, unless a keep_global_batch resume changed the
    number of replicas) it is a transparent wrapper: batches, checkpoints and RNG use are exactly
    those of the ResumableBatches it holds.
    """

    make: MakeBatches
    rank: int
    world_size: int
    keep_global_batch: bool = False
    data_world_size: int = 0
    hosted: dict[int, _Hosted] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data_world_size = self.world_size
        self.hosted = {self.rank: _Hosted(self.make(self.rank, self.world_size))}

    @property
    def _own(self) -> ResumableBatches | None:
        """The single ResumableBatches of the usual case (None while hosting other data ranks)."""
        if len(self.hosted) == 1 and self.rank in self.hosted and self.data_world_size == self.world_size:
            return self.hosted[self.rank].batches
        return None

    # --- what the loop calls -------------------------------------------------------------------
    def take(self) -> list[Doc]:
        own = self._own
        if own is not None:
            return own.take()
        return HostedBatch([(h.generators, h.batches.take()) for _, h in sorted(self.hosted.items())])

    @property
    def reached_epoch(self) -> int:
        if not self.hosted:  # more replicas than data ranks: this one only joins the collectives
            return 1 << 30
        return min(h.batches.reached_epoch for h in self.hosted.values())

    def data_state(self) -> dict[int, dict[str, Any]]:
        """Every hosted data rank's batch state, to go back to with `set_data_state` (prefetch)."""
        return {v: h.batches.state_dict() for v, h in self.hosted.items()}

    def set_data_state(self, states: Mapping[int, dict[str, Any]]) -> None:
        for v, state in states.items():
            self.hosted[v].batches.load_state_dict(state)

    def begin_epoch(self, epoch: int) -> None:
        for h in self.hosted.values():
            h.batches.begin_epoch(epoch)

    def restart(self) -> None:
        for h in self.hosted.values():
            h.batches.restart()

    # --- checkpoints (training/checkpoint.py) ---------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        own = self._own
        if own is None:
            raise RuntimeError("a replica hosting several data ranks has one state per data rank: use hosted_states()")
        return own.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._host({self.rank: None}, self.world_size)
        self.hosted[self.rank].batches.load_state_dict(state)

    def load_resplit(self, states: list[dict[str, Any]]) -> None:
        self._host({self.rank: None}, self.world_size)
        self.hosted[self.rank].batches.load_resplit(states)

    def hosted_states(self) -> dict[int, dict[str, Any]] | None:
        """data rank -> its full rank state (cursor + generators), or None in the usual case."""
        if self._own is not None:
            return None

        shared = generator_states()  # Python and NumPy: the replica's; torch: each data rank's own
        out: dict[int, dict[str, Any]] = {}
        for v, h in self.hosted.items():
            state: dict[str, Any] = {"stream": h.batches.state_dict(), **shared}
            if h.generators is not None:
                state["torch"] = h.generators.cpu.tolist()
                if h.generators.cuda is not None:
                    state["cuda"] = h.generators.cuda.tolist()
            out[v] = state
        return out

    def load_hosted(self, states: list[Mapping[str, Any]]) -> None:
        """Continue the len(states) saved data ranks on this world size: host v % world_size == rank."""
        n = len(states)
        self._host({v: states[v] for v in range(n) if v % self.world_size == self.rank}, n)
        for v, h in self.hosted.items():
            h.batches.load_state_dict(dict(states[v]["stream"]))

    def _host(self, ranks: Mapping[int, Mapping[str, Any] | None], data_world_size: int) -> None:
        self.data_world_size = data_world_size
        self.hosted = {
            v: _Hosted(self.make(v, data_world_size), None if state is None or data_world_size == self.world_size and v == self.rank
                       else Generators.from_state(state))
            for v, state in ranks.items()
        }


def split_hosted(docs: list[Doc], parts: int, split: Callable[[list[Doc], int], list[list[Doc]]]) -> list[tuple[Generators | None, list[Doc]]]:
    """A step's sub-batches: each hosted data rank's batch split for accumulate_gradient, in
    data-rank order, with the generators its randomness comes from."""
    groups = getattr(docs, "groups", None)
    if groups is None:
        return [(None, chunk) for chunk in split(docs, parts)]
    return [(gens, chunk) for gens, group in groups for chunk in split(group, parts)]


__all__ = ["DataRanks", "Generators", "HostedBatch", "data_rank_generators", "split_hosted"]
