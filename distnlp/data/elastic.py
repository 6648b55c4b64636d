"""Elastic resume: the data cursors of a checkpoint taken on N replicas, re-split for M.

Per rank, a cursor says where that rank stands in its contiguous share of the epoch's global
order (`shards.epoch_pieces`): rows before `position` are consumed, except the pending docs a
batcher still held, and `skip` lists rows after that which were already emitted, with their words
(`training/batches.py`); a skip entry with a fourth number is one part of a doc cut at sentence
boundaries (`corpus.split_length`), whose row is read again and that part skipped. Together, the N
cursors describe what the epoch has left, as a global list of row ranges ("the plan"); rows
already emitted stay inside their range as exclusions, so a row group is not cut into pieces
around them. M new cursors split that plan by words into M
contiguous shares, each starting at position 0, so every document of the epoch is used exactly
once whatever N and M. Each new cursor carries only its own share (a second resize joins the
shares again; a batcher's pending doc can put a cursor back into the share's epoch after the
stream moved on): O(row groups + emitted docs) / M per rank. Later epochs are split for the
current world size as usual.
"""
from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import CheckpointError
from .shards import (CorpusInfo, Piece, PieceWords, epoch_pieces, piece_words, plan_totals, split_pieces, unit_order,
                     whole_units)

PlanJson = list[list[Any]]  # [[unit index, start, stop, words, [excluded positions]], ...]
PartSkip = tuple[int, int, int, int]  # (unit index, row in the epoch's unit order, words, part): a part of a cut doc already emitted


def plan_to_json(plan: Sequence[Piece]) -> PlanJson:
    return [[p.unit.index, p.start, p.stop, p.words, list(p.exclude)] for p in plan]


def plan_from_json(info: CorpusInfo, plan: PlanJson) -> list[Piece]:
    """Pieces from JSON; entries of three (checkpoints before exclusions) carry no words."""
    units = info.units
    try:
        return [Piece(units[int(e[0])], int(e[1]), int(e[2]), int(e[3]) if len(e) > 3 else -1,
                      tuple(int(q) for q in e[4]) if len(e) > 4 else ()) for e in plan]
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


def saved_share(info: CorpusInfo, stream: Mapping[str, Any], epoch: int, *, shuffle: bool,
                by_words: bool = True) -> list[Piece] | None:
    """The rank's own pieces of `epoch` its stream state carries (after an elastic resume), or None.
    A checkpoint written before shares were per rank carries the whole plan: its rank's slice."""
    own = stream.get("share")
    if own is not None:
        return plan_from_json(info, own["pieces"]) if int(own["epoch"]) == epoch else None
    legacy = stream.get("plan")
    if legacy is None or int(legacy["epoch"]) != epoch:
        return None
    return share(info, seed=int(stream["seed"]), epoch=epoch, shuffle=shuffle, rank=int(stream["rank"]),
                 world_size=int(stream["world_size"]), plan=plan_from_json(info, legacy["pieces"]), by_words=by_words)


def remaining_plan(info: CorpusInfo, states: Sequence[Mapping[str, Any]], *, shuffle: bool,
                   by_words: bool = True) -> tuple[int, list[Piece], list[PartSkip]]:
    """(epoch, rows it has left, parts of those rows already emitted) from every old rank's batches
    state (`ResumableBatches.state_dict`), in old rank order. The rows a rank already emitted past
    its cursor stay in their pieces as exclusions, and each piece keeps its word count (from the skip entries' words), so neither
    this nor the new ranks' split reads more than the row groups a cursor or a share boundary
    falls in."""
    streams = [s["stream"] for s in states]
    world, seed = len(states), int(streams[0]["seed"])
    epoch = min(int(st["epoch"]) for st in streams)
    words_of = piece_words(info, seed, epoch, shuffle) if by_words else None
    order: tuple[list[Piece], list[int]] | None = None  # the epoch's order and its totals, made once
    remaining: list[Piece] = []
    parts: list[PartSkip] = []
    for rank, (state, st) in enumerate(zip(states, streams)):
        skip: dict[int, int] = {}  # position -> its doc's words (-1: not saved)
        part_skip: list[tuple[int, int, int]] = []  # (position, words, part): the row stays in the plan
        for entry in state.get("skip", []):
            if int(entry[0]) == epoch and len(entry) > 3:
                part_skip.append((int(entry[1]), int(entry[2]), int(entry[3])))
            elif int(entry[0]) == epoch:
                skip[int(entry[1])] = int(entry[2]) if len(entry) > 2 else -1
        if int(st["epoch"]) != epoch:
            ahead = int(st["epoch"]) > epoch + 1 or int(st["position"]) != 0 or any(int(e[0]) > epoch for e in state.get("skip", []))
            if ahead:
                raise CheckpointError(f"rank {rank}'s data cursor is past epoch {epoch + 1}'s start while another rank is "
                                      f"still in epoch {epoch}; resume with the same number of replicas")
            continue  # this rank had used all of its share of the epoch
        own = saved_share(info, st, epoch, shuffle=shuffle, by_words=by_words)
        if own is None:
            if order is None:
                base = whole_units(unit_order(info.units, seed, epoch, shuffle))
                order = (base, plan_totals(base, words_of))
            own = split_pieces(order[0], rank, world, words_of, order[1])
        position = int(st["position"])
        at = sorted(skip)
        offset = 0
        for piece in own:
            lo, hi = max(position, offset), offset + len(piece)
            if lo < hi:
                inside = at[bisect.bisect_left(at, lo):bisect.bisect_left(at, hi)]
                remaining.append(_rest(piece, lo - offset, {p - offset: skip[p] for p in inside}, words_of))
                parts += [(piece.unit.index, piece.start + q - offset, w, k) for q, w, k in part_skip if lo <= q < hi]
            offset += len(piece)
    return epoch, _merged(remaining), parts


def _rest(piece: Piece, used: int, emitted: dict[int, int], words_of: PieceWords | None) -> Piece:
    """The piece from row `used` on, with the rows at `emitted` (offsets in the piece -> words)
    excluded, and its words where they can be known."""
    exclude = tuple(sorted({q for q in piece.exclude if q >= piece.start + used} | {piece.start + i for i in emitted}))
    rest = Piece(piece.unit, piece.start + used, piece.stop, -1, exclude)
    if words_of is None or not piece.unit.words:
        return rest
    if used == 0 and all(w >= 0 for w in emitted.values()):
        words = words_of.total(piece) - sum(emitted.values())  # read nothing more (for a whole row group)
    else:
        words = words_of.total(rest)  # reads the row group: a cursor falls in it, or a checkpoint without words
    return Piece(rest.unit, rest.start, rest.stop, words, exclude)


def resplit(info: CorpusInfo, states: Sequence[Mapping[str, Any]], world_size: int, *, shuffle: bool,
            by_words: bool = True, ranks: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Batches states for the new ranks `ranks` (default all of 0..world_size-1) that continue
    the N saved ones' epoch exactly. Each carries only its own share of what the epoch has left."""
    epoch, plan, parts = remaining_plan(info, states, shuffle=shuffle, by_words=by_words)
    seed = int(states[0]["stream"]["seed"])
    size_index = max(int(s.get("size_index", s.get("batches_emitted", 0))) for s in states)
    words_of = piece_words(info, seed, epoch, shuffle) if by_words else None
    totals = plan_totals(plan, words_of)
    out = []
    for rank in range(world_size) if ranks is None else ranks:
        mine = split_pieces(plan, rank, world_size, words_of, totals)
        out.append({"stream": {"epoch": epoch, "position": 0, "rank": rank, "world_size": world_size, "seed": seed,
                               "share": {"epoch": epoch, "pieces": plan_to_json(mine)}},
                    "skip": _parts_in_share(mine, parts, epoch), "batches_emitted": int(states[0].get("batches_emitted", 0)), "size_index": size_index,
                    "open_epoch": epoch})
    return out


def _parts_in_share(share: Sequence[Piece], parts: Sequence[PartSkip], epoch: int) -> list[list[int]]:
    """Skip entries [epoch, position, words, part] for the emitted parts of cut docs whose rows
    fall in `share`, at their positions in it (a position counts every row of the share's pieces)."""
    by_unit: dict[int, list[PartSkip]] = {}
    for entry in parts:
        by_unit.setdefault(entry[0], []).append(entry)
    out = []
    offset = 0
    for piece in share:
        for _, row, words, part in by_unit.get(piece.unit.index, ()):
            if piece.start <= row < piece.stop:
                out.append([epoch, offset + row - piece.start, words, part])
        offset += len(piece)
    return sorted(out)


def _merged(pieces: list[Piece]) -> list[Piece]:
    """Adjacent ranges of the same unit joined (shorter plans in checkpoints)."""
    out: list[Piece] = []
    for p in pieces:
        if out and out[-1].unit.index == p.unit.index and out[-1].stop == p.start:
            q = out[-1]
            words = q.words + p.words if q.words >= 0 and p.words >= 0 else -1
            out[-1] = Piece(p.unit, q.start, p.stop, words, q.exclude + p.exclude)
        elif len(p):
            out.append(p)
    return out
