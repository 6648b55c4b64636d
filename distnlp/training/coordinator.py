"""Committed checkpoints on a filesystem (docs/architecture.md, "Checkpoints").

Every rank hands its own state (data cursor, RNG) to rank 0 through a collective; rank 0 writes
the whole checkpoint into `step-N.tmp/`, then the manifest, then renames it to `step-N/`: that
rename is the commit. The last `keep` are kept.

On resume every rank restores the same step, agreed through collectives (`restore_agreed`):
only committed checkpoints of this run are candidates, newest first; each copy's checksums are
verified once, by the lowest rank that sees it on its host (one hash pass per node and copy,
however many ranks a node runs), and a step is taken only if every rank holds a verified copy;
one that does not verify is skipped with a warning naming the bad file. If any rank then fails to
load the agreed step, every rank stops with the same one-line CheckpointError.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import CheckpointError
from . import checkpoint as ckpt
from .run_identity import RunIdentity, committed_checkpoints

log = logging.getLogger(__name__)

Gather = Callable[[Any], list[Any]]


def _local_gather(obj: Any) -> list[Any]:
    return [obj]


class Coordinator(Protocol):
    """Where the loop's checkpoints go: files (FileCoordinator) or Ray Train's storage
    (ray_backend/coordinator.py). Both call every rank; both write through training/checkpoint.py."""

    failure: "FailureInjection"  # set by the loop: a resumed run is never failed again

    def restore(self, *, nlp: Any, optimizer: Any, averages: Any, stream: Any) -> dict[str, Any] | None: ...

    def checkpoint(self, *, step: int, nlp: Any, optimizer: Any, averages: Any, stream: Any, state: dict[str, Any],
                   metrics: dict[str, Any] | None = None) -> None: ...


@dataclass(frozen=True)
class FailureInjection:
    """Testing aid (distributed.fail_at_step / fail_in_checkpoint): die as a crashed worker would."""

    step: int | None = None
    in_checkpoint: bool = False
    armed: bool = True  # never on a resumed run, so the resumed run can finish

    def at_step(self, step: int, rank: int, world_size: int) -> None:
        if self.armed and not self.in_checkpoint and self.step is not None and step == self.step and rank == world_size - 1:
            os._exit(1)

    def in_commit(self, step: int) -> None:
        """Called by the writing rank after the per-rank files, before the commit."""
        if self.armed and self.in_checkpoint and self.step is not None and step == self.step:
            os._exit(1)


def write_checkpoint(root: Path, *, step: int, world_size: int, identity: RunIdentity | None, nlp: Any, optimizer: Any, averages: Any,
                     states: list[Any], state: dict[str, Any], before_commit: Callable[[], None] | None = None) -> None:
    """Rank 0: everything of one checkpoint into `root` (manifest last). `world_size` counts
    replicas; the manifest's world_size counts data ranks (the rank directories), which differ
    only when a replica hosts several (distributed.keep_global_batch)."""
    out = ckpt.Writer(root)
    ckpt.save_shared(out, nlp=nlp, optimizer=optimizer, averages=averages, state=state)
    states = ckpt.by_data_rank(states)
    ckpt.write_rank_states(out, states)
    if before_commit is not None:
        before_commit()
    info = {"step": step, "world_size": len(states), "replicas": world_size, **({"run_id": identity.run_id, "config_hash": identity.config_hash} if identity else {})}
    ckpt.write_manifest(out, info)


# One rank's view of the candidates: its host, and per step (as a string: JSON keys) the copies it sees.
Listing = dict[str, Any]


def _listing(candidates: Iterable[Path]) -> Listing:
    steps: dict[str, list[str]] = {}
    for path in candidates:
        manifest = ckpt.read_manifest(path)
        if manifest is not None and "step" in manifest:
            steps.setdefault(str(int(manifest["step"])), []).append(str(path.resolve()))
    return {"host": socket.gethostname(), "steps": {k: sorted(v) for k, v in steps.items()}}


def _verifiers(listings: list[Listing], step: str) -> dict[tuple[str, str], int]:
    """Each copy of `step` (host, path) and the rank that verifies it: the lowest that sees it.
    Ranks on one host see one filesystem, so a node hashes each copy once, not once per rank."""
    out: dict[tuple[str, str], int] = {}
    for rank, listing in enumerate(listings):
        for path in listing["steps"].get(step, []):
            out.setdefault((listing["host"], path), rank)
    return out


def _verify(path: str) -> str | None:
    """None if every file of the checkpoint has its recorded size and checksum, else why not."""
    try:
        ckpt.verify(Path(path))
    except (CheckpointError, OSError) as exc:
        return str(exc)
    return None


def _failures(listings: list[Listing], step: str, rank: int) -> dict[str, str]:
    """This rank's share of the checksum work for `step`: the copies that fail, "host:path" -> why."""
    results = {f"{host}:{path}": _verify(path) for (host, path), who in _verifiers(listings, step).items() if who == rank}
    return {where: why for where, why in results.items() if why is not None}


def _verified_copy(listing: Listing, step: str, failed: Mapping[str, str]) -> str | None:
    """The first copy of `step` this rank sees whose checksums verified."""
    return next((p for p in listing["steps"].get(step, []) if f"{listing['host']}:{p}" not in failed), None)


def _seen(listings: list[Listing]) -> set[str]:
    return set().union(*(set(listing["steps"]) for listing in listings))


def _blind(listings: list[Listing], step: str) -> str:
    """The ranks that do not see `step`, for a message."""
    return ", ".join(str(r) for r, listing in enumerate(listings) if step not in listing["steps"])


def _agree_on_copies(listings: list[Listing], rank: int, gather: Gather) -> tuple[str, list[str]] | None:
    """The newest step of which every rank holds a verified copy, and each rank's copy; None if there is none."""
    common = set.intersection(*(set(listing["steps"]) for listing in listings))
    for step in sorted(common, key=int, reverse=True):
        failed = {where: why for part in gather(_failures(listings, step, rank)) for where, why in part.items()}
        copies = [_verified_copy(listing, step, failed) for listing in listings]
        if all(c is not None for c in copies):
            if rank == 0:
                for newer in sorted((s for s in _seen(listings) - common if int(s) > int(step)), key=int):
                    log.warning("skipping checkpoint step %s: rank(s) %s do not see it; resuming from step %s", newer, _blind(listings, newer), step)
            return step, [str(c) for c in copies]
        if rank == 0:
            for why in failed.values():
                log.warning("skipping checkpoint step %s: %s; trying the previous one", step, why)
    unshared = sorted(_seen(listings) - common, key=int)
    if unshared:
        # Some rank sees a checkpoint another does not, and none is on every rank: starting from
        # scratch would have ranks train from different steps.
        raise CheckpointError(f"checkpoint step {unshared[-1]} is missing on rank(s) {_blind(listings, unshared[-1])} and no step verifies on every rank; "
                              "every rank must see the run's checkpoints (a shared filesystem, or Ray storage)")
    return None


def _load_everywhere(path: Path, load: Callable[[Path], dict[str, Any]], gather: Gather) -> dict[str, Any]:
    """Every rank loads its copy; if any cannot, all raise the same one-line error."""
    state: dict[str, Any] | None = None
    error: str | None = None
    try:
        state = load(path)
    except CheckpointError as exc:
        error = " ".join(str(exc).split())  # one line, whatever torch put in it
    except Exception as exc:  # any failure must stop every rank, not leave the others waiting in the gather
        error = " ".join(f"{path}: cannot load ({type(exc).__name__}: {exc})".split())
    errors = gather(error)
    failing = [r for r, e in enumerate(errors) if e is not None]
    if not failing:
        assert state is not None
        return state
    first = errors[failing[0]]
    if len(failing) == len(errors) and all(e == first for e in errors):
        raise CheckpointError(first)  # the same on every rank (world size, config): say it once
    raise CheckpointError(f"rank {failing[0]} cannot load the checkpoint every rank agreed on, so no rank resumes: {first}"
                          + (f" (ranks {', '.join(map(str, failing[1:]))} failed too)" if len(failing) > 1 else ""))


def restore_agreed(candidates: Iterable[Path], load: Callable[[Path], dict[str, Any]], *, rank: int, gather: Gather = _local_gather) -> dict[str, Any] | None:
    """Load, on every rank, the newest step of which every rank has a copy that verifies; None
    if no rank has a candidate, or none verifies. Every call makes the same collectives on every
    rank (the decisions depend on gathered data only)."""
    listings = gather(_listing(candidates))
    agreed = _agree_on_copies(listings, rank, gather)
    if agreed is None:
        return None
    step, copies = agreed
    state = _load_everywhere(Path(copies[rank]), load, gather)
    if rank == 0:
        log.info("resumed from %s (step %s)", copies[0], step)
    return state


class FileCoordinator:
    def __init__(
        self,
        directory: str | Path,
        *,
        rank: int = 0,
        world_size: int = 1,
        keep: int = 3,
        gather: Gather = _local_gather,
        identity: RunIdentity | None = None,
        failure: FailureInjection | None = None,
    ) -> None:
        self.dir = Path(directory)
        self.rank, self.world_size, self.keep = rank, world_size, keep
        self.gather = gather
        self.identity = identity
        self.failure = failure or FailureInjection()

    def committed(self) -> list[Path]:
        """This run's committed checkpoints, oldest first."""
        if self.identity is None:
            return sorted(p for p in self.dir.glob("step-*") if p.is_dir() and ckpt.is_complete(p)) if self.dir.exists() else []
        return committed_checkpoints([self.dir], self.identity.run_id)

    def restore(self, *, nlp: Any, optimizer: Any, averages: Any, stream: Any) -> dict[str, Any] | None:
        def load(path: Path) -> dict[str, Any]:
            return ckpt.load(path, self.rank, nlp=nlp, optimizer=optimizer, averages=averages, stream=stream, world_size=self.world_size)

        state = restore_agreed(self.committed(), load, rank=self.rank, gather=self.gather)
        if state is None and self.identity is not None and self.identity.resume:
            raise CheckpointError(f"{self.dir}: no committed checkpoint of run {self.identity.run_id} could be loaded (see the warnings above); "
                                  "start the run again with overwrite=true")
        return state

    def checkpoint(self, *, step: int, nlp: Any, optimizer: Any, averages: Any, stream: Any, state: dict[str, Any], metrics: dict[str, Any] | None = None) -> None:
        states = self.gather(ckpt.rank_state(stream))
        if self.rank != 0:
            return
        final = self.dir / f"step-{step:08d}"
        tmp = self.dir / f"step-{step:08d}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)  # a crashed attempt at this step: ours (the name is distnlp's)
        tmp.mkdir(parents=True)
        write_checkpoint(tmp, step=step, world_size=self.world_size, identity=self.identity, nlp=nlp, optimizer=optimizer,
                         averages=averages, states=states, state=state, before_commit=lambda: self.failure.in_commit(step))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in self.committed()[: -self.keep] if self.keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
