"""Checkpoint save and restore time against model size and rank count (issue 22, item 4).

    python tests/benchmarks/bench_checkpoint.py [--sizes 1,10,50] [--ranks 1,8,64,256] [--size-ranks 8] [--repeat 3]

old: as before this change: rank 0 writes the files (safetensors' save_file, JSON write_text),
     then hashes every file for the manifest by reading it back (file_sha256); on restore every
     rank verifies every file itself (N hash passes on a node of N ranks).
new: each file's SHA-256 is taken from the bytes as they are written (hashed_files.Writer); on
     restore the ranks of a host agree through a gather and the lowest verifies each copy once
     (coordinator.restore_agreed).

Model: Linear(1024, 1024) layers (1M parameters each) with AdamW moments, so a checkpoint is about
3 x 4 bytes per parameter. Rank states: each rank's real JSON state (cursor and the Python, NumPy
and torch generators, about 30 KB). Ranks on restore are threads of this process (hashlib and
file reads release the GIL), their gather a barrier; with fewer cores than ranks the old
restore's N passes queue for the cores, as N rank processes on a node would. The re-read of the
old save comes from the page cache here; on network storage it would cross the network again.

Prints two tables, then one JSON line with every number (best of --repeat).
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from distnlp.training import checkpoint as ckpt
from distnlp.training.coordinator import restore_agreed, write_checkpoint
from distnlp.training.run_identity import RunIdentity

WIDTH = 1024
IDENTITY = RunIdentity("bench", "bench")


class _Stream:
    """A replica's data cursor (checkpoint.SavedData), one data rank."""

    keep_global_batch = False

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": 0, "position": 123, "pending": []}

    def hosted_states(self) -> None:
        return None


def make_model(million: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    model = nn.Sequential(*(nn.Linear(WIDTH, WIDTH) for _ in range(max(1, million))))
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, WIDTH)).sum().backward()
    optimizer.step()  # moments: the optimizer file is twice the weights
    return model, optimizer


def rank_states(ranks: int) -> list[dict[str, Any]]:
    return [ckpt.rank_state(_Stream()) for _ in range(ranks)]


def old_write(root: Path, model: nn.Module, optimizer: torch.optim.Optimizer, states: list[dict[str, Any]]) -> float:
    """The write before this change; returns the seconds spent re-reading files to hash them."""
    root.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(root / "model.safetensors"))
    tensors, structure = ckpt._flatten_optimizer(optimizer.state_dict())
    save_file(tensors, str(root / "optimizer.safetensors"))
    (root / "optimizer.json").write_text(json.dumps(structure))
    (root / "trainer.json").write_text(json.dumps({"step": 1}))
    for rank, state in enumerate(states):
        d = ckpt.rank_dir(root, rank)
        d.mkdir()
        (d / "state.json").write_text(json.dumps(state))
    t = time.perf_counter()
    files = {str(p.relative_to(root)): {"size": p.stat().st_size, "sha256": ckpt.file_sha256(p)} for p in sorted(root.rglob("*")) if p.is_file()}
    hashing = time.perf_counter() - t
    info = {"step": 1, "world_size": len(states), **IDENTITY.as_dict()}
    (root / ckpt.MANIFEST).write_text(json.dumps({**info, "files": files}, indent=2))
    return hashing


def new_write(root: Path, model: nn.Module, optimizer: torch.optim.Optimizer, states: list[dict[str, Any]]) -> None:
    write_checkpoint(root, step=1, world_size=len(states), identity=IDENTITY, nlp=model, optimizer=optimizer, averages=None, states=states,
                     state={"step": 1})


def on_threads(ranks: int, body: Callable[[int, Callable[[Any], list[Any]]], Any]) -> float:
    """Wall seconds for `ranks` thread ranks to run body(rank, gather)."""
    slots: list[Any] = [None] * ranks
    barrier = threading.Barrier(ranks)
    errors: list[BaseException] = []

    def gather_for(rank: int) -> Callable[[Any], list[Any]]:
        def gather(obj: Any) -> list[Any]:
            slots[rank] = obj
            barrier.wait()
            out = list(slots)
            barrier.wait()
            return out

        return gather

    def run(rank: int) -> None:
        try:
            body(rank, gather_for(rank))
        except BaseException as exc:  # reported after the join
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(ranks)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t


def old_restore_verify(root: Path, ranks: int) -> float:
    return on_threads(ranks, lambda rank, gather: ckpt.verify(root))  # each rank on its own


def new_restore_verify(root: Path, ranks: int) -> float:
    return on_threads(ranks, lambda rank, gather: restore_agreed([root], lambda p: {}, rank=rank, gather=gather))


def best(repeat: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def measure(work: Path, million: int, ranks: int, repeat: int, model: Any = None) -> dict[str, Any]:
    model, optimizer = model or make_model(million)
    states = rank_states(ranks)
    old_root, new_root = work / "old", work / "new"
    hashing: list[float] = []

    def save_old() -> None:
        shutil.rmtree(old_root, ignore_errors=True)
        hashing.append(old_write(old_root, model, optimizer, states))

    def save_new() -> None:
        shutil.rmtree(new_root, ignore_errors=True)
        new_write(new_root, model, optimizer, states)

    row = {
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2), "ranks": ranks,
        "save_old_s": best(repeat, save_old), "save_new_s": best(repeat, save_new),
    }
    row["old_rehash_s"] = min(hashing)
    row["bytes_mb"] = round(sum(p.stat().st_size for p in new_root.rglob("*") if p.is_file()) / 1e6, 1)
    row["verify_old_s"] = min(old_restore_verify(old_root, ranks) for _ in range(repeat))
    row["verify_new_s"] = min(new_restore_verify(new_root, ranks) for _ in range(repeat))
    row["hash_passes_old"], row["hash_passes_new"] = ranks, 1
    shutil.rmtree(old_root)
    shutil.rmtree(new_root)
    return row


def table(title: str, rows: list[dict[str, Any]]) -> None:
    print(title)
    print(f"{'params':>8} {'ranks':>6} {'MB':>8} | {'save old':>9} {'(rehash)':>9} {'save new':>9} {'x':>5} | "
          f"{'verify old':>10} {'passes':>6} {'verify new':>10} {'passes':>6} {'x':>6}")
    for r in rows:
        print(f"{r['params_m']:>7}M {r['ranks']:>6} {r['bytes_mb']:>8} | {r['save_old_s']:>8.3f}s {r['old_rehash_s']:>8.3f}s {r['save_new_s']:>8.3f}s "
              f"{r['save_old_s'] / r['save_new_s']:>5.2f} | {r['verify_old_s']:>9.3f}s {r['hash_passes_old']:>6} {r['verify_new_s']:>9.3f}s "
              f"{r['hash_passes_new']:>6} {r['verify_old_s'] / r['verify_new_s']:>6.1f}")
    print()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,10,50", help="model sizes, millions of parameters")
    ap.add_argument("--size-ranks", type=int, default=8, help="ranks for the model-size table")
    ap.add_argument("--ranks", default="1,8,64,256", help="rank counts, with the smallest model")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(n) for n in args.ranks.split(",")]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        by_size = [measure(work, m, args.size_ranks, args.repeat) for m in sizes]
        small = make_model(sizes[0])
        by_ranks = [measure(work, sizes[0], n, args.repeat, small) for n in counts]
    table(f"vs model size ({args.size_ranks} ranks on one host; best of {args.repeat})", by_size)
    table(f"vs rank count ({sizes[0]}M parameters; best of {args.repeat})", by_ranks)
    print(json.dumps({"machine": platform.processor() or platform.machine(), "by_size": by_size, "by_ranks": by_ranks}))


if __name__ == "__main__":
    main()
