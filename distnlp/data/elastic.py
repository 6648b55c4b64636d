"""Elastic resume: the data cursors of a checkpoint taken on N replicas, re-split for M.

Per rank, a cursor says where that rank stands in its contiguous share of the epoch's global
order (`shards.epoch_pieces`): rows before `position` are consumed, except the pending docs a
batcher still held, and `skip` lists rows after that which were already emitted
(`training/batches.py`). Together, the N cursors describe what the epoch has left, as a global
list of row ranges ("the plan"). M new cursors split that plan into M contiguous shares, each
starting at position 0, so every document of the epoch is used exactly once whatever N and M.
The plan travels in every cursor (a second resize re-splits it again; a batcher's pending doc can
put a cursor back into the plan's epoch after the stream moved on); later epochs are split for the
current world size as usual.
"""
from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import CheckpointError
from .shards import CorpusInfo, Piece, epoch_pieces, piece_words, plan_totals, split_pieces, unit_order, whole_units

PlanJson = list[list[int]]  # [[unit index, start, stop], ...]


def plan_to_json(plan: Sequence[Piece]) -> PlanJson:
    return [[p.unit.index, p.start, p.stop] for p in plan]


def plan_from_json(info: CorpusInfo, plan: PlanJson) -> list[Piece]:
    units = info.units
    try:
        return [Piece(units[int(u)], int(a), int(b)) for u, a, b in plan]
    except (IndexError, ValueError, TypeError):
        raise CheckpointError(f"{info.path}: a saved data plan names row groups this corpus does not have; "
                              "resume with the corpus the run started with") from None


def share(info: CorpusInfo, *, seed: int, epoch: int, shuffle: bool, rank: int, world_size: int,
          plan: Sequence[Piece] | None, by_words: bool = True) -> list[Piece]:
    """A rank's pieces of an epoch: its slice of the plan when there is one, else of the epoch's
    order; balanced by words (`by_words`) or by docs."""
    if plan is not None:
        return split_pieces(plan, rank, world_size, piece_words(info, seed, epoch, shuffle) if by_words else None)
    return epoch_pieces(info, seed, epoch, shuffle, rank, world_size, by_words)


def remaining_plan(info: CorpusInfo, states: Sequence[Mapping[str, Any]], *, shuffle: bool,
                   by_words: bool = True) -> tuple[int, list[Piece]]:
    """(epoch, rows it has left) from every old rank's batches state (`ResumableBatches.state_dict`),
    in old rank order."""
    streams = [s["stream"] for s in states]
    world, seed = len(states), int(streams[0]["seed"])
    epoch = min(int(st["epoch"]) for st in streams)
    saved = next((st["plan"]["pieces"] for st in streams if st.get("plan") and int(st["plan"]["epoch"]) == epoch), None)
    plan = None if saved is None else plan_from_json(info, saved)
    remaining: list[Piece] = []
    # Every old rank's share of the same plan (or epoch order): its piece totals computed once,
    # not once per rank (a resumed plan holds many pieces, and N can be large).
    base = plan if plan is not None else whole_units(unit_order(info.units, seed, epoch, shuffle))
    words_of = piece_words(info, seed, epoch, shuffle) if by_words else None
    totals = plan_totals(base, words_of)
    for rank, (state, st) in enumerate(zip(states, streams)):
        skip = sorted(int(p) for e, p in state.get("skip", []) if int(e) == epoch)
        if int(st["epoch"]) != epoch:
            ahead = int(st["epoch"]) > epoch + 1 or int(st["position"]) != 0 or any(int(e) > epoch for e, _ in state.get("skip", []))
            if ahead:
                raise CheckpointError(f"rank {rank}'s data cursor is past epoch {epoch + 1}'s start while another rank is "
                                      f"still in epoch {epoch}; resume with the same number of replicas")
            continue  # this rank had used all of its share of the epoch
        position = int(st["position"])
        offset = 0
        for piece in split_pieces(base, rank, world, words_of, totals):
            lo, hi = max(position, offset), offset + len(piece)
            run = lo
            for q in skip[bisect.bisect_left(skip, lo):bisect.bisect_left(skip, hi)]:  # already emitted: cut out
                if run < q:
                    remaining.append(Piece(piece.unit, piece.start + run - offset, piece.start + q - offset))
                run = q + 1
            if run < hi:
                remaining.append(Piece(piece.unit, piece.start + run - offset, piece.start + hi - offset))
            offset += len(piece)
    return epoch, _merged(remaining)


def resplit(info: CorpusInfo, states: Sequence[Mapping[str, Any]], world_size: int, *, shuffle: bool,
            by_words: bool = True) -> list[dict[str, Any]]:
    """M batches states (one per new rank) that continue the N saved ones' epoch exactly."""
    epoch, plan = remaining_plan(info, states, shuffle=shuffle, by_words=by_words)
    seed = int(states[0]["stream"]["seed"])
    size_index = max(int(s.get("size_index", s.get("batches_emitted", 0))) for s in states)
    pieces = plan_to_json(plan)  # one list shared by every new rank's state (read-only)
    return [{"stream": {"epoch": epoch, "position": 0, "rank": rank, "world_size": world_size, "seed": seed,
                        "plan": {"epoch": epoch, "pieces": pieces}},
             "skip": [], "batches_emitted": int(states[0].get("batches_emitted", 0)), "size_index": size_index,
             "open_epoch": epoch}
            for rank in range(world_size)]


def _merged(pieces: list[Piece]) -> list[Piece]:
    """Adjacent ranges of the same unit joined (shorter plans in checkpoints)."""
    out: list[Piece] = []
    for p in pieces:
        if out and out[-1].unit.index == p.unit.index and out[-1].stop == p.start:
            out[-1] = Piece(p.unit, out[-1].start, p.stop)
        elif len(p):
            out.append(p)
    return out
