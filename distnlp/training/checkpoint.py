"""The whole training state on disk: weights, optimizer moments, averages, loop state, and per
rank the data cursor and RNG states (docs/architecture.md, "Checkpoints"). Tensors go to
safetensors, the rest to JSON; nothing is pickled.

The manifest, written last, names the run the checkpoint belongs to (run id and config hash)
and lists every file with its size and SHA-256: sizes make a torn copy visible at a glance,
checksums catch bytes overwritten in place (bit rot, a torn write on network storage) before
anything is loaded. Each checksum is taken from the bytes as they are written (`Writer`), so
committing a checkpoint never reads back what it just wrote.

Layout of one checkpoint directory:
    model.safetensors  optimizer.safetensors  optimizer.json  averages.safetensors  trainer.json
    rank-00000/state.json  rank-00001/state.json  ...   (data cursor + RNG states per replica)
    manifest.json      (written last, by rank 0: only a directory with it is complete)
"""
from __future__ import annotations

import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from ..errors import CheckpointError
from ..hashed_files import Writer, file_sha256
from .optim import load_optimizer_state

MANIFEST = "manifest.json"


def rank_dir(root: Path, rank: int) -> Path:
    return root / f"rank-{rank:05d}"


def save_shared(out: Writer, *, nlp: nn.Module, optimizer: torch.optim.Optimizer, averages: Any, state: Mapping[str, Any]) -> None:
    """What every replica holds identically: written once, by rank 0."""
    out.tensors("model.safetensors", nlp.state_dict())
    tensors, structure = _flatten_optimizer(optimizer.state_dict())
    out.tensors("optimizer.safetensors", tensors)
    out.json("optimizer.json", structure)
    if averages is not None:
        out.tensors("averages.safetensors", averages.averages)
        state = {**state, "averages_num_updates": averages.num_updates}
    out.json("trainer.json", dict(state))


class SavedData(Protocol):
    """What a checkpoint saves and restores of a replica's data (training/virtual_ranks.DataRanks)."""

    keep_global_batch: bool

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def load_resplit(self, states: list[dict[str, Any]]) -> None:
        """Continue len(states) saved data cursors on this world size (elastic re-split)."""

    def hosted_states(self) -> dict[int, dict[str, Any]] | None:
        """Several hosted data ranks' states, or None in the usual one-per-replica case."""

    def load_hosted(self, states: list[Mapping[str, Any]]) -> None:
        """Host the len(states) saved data ranks as they were (keep_global_batch)."""


def rank_state(stream: SavedData) -> dict[str, Any]:
    """What differs per replica, as plain JSON: the data cursor and the random generators.

    Gathered to rank 0, which writes the whole checkpoint (so it also works where ranks share
    no filesystem, as under Ray, where only rank 0's directory is persisted).
    """
    hosted = stream.hosted_states()
    if hosted is not None:  # several data ranks on this replica (training/virtual_ranks.py)
        return {"hosted": {str(v): state for v, state in hosted.items()}}
    return {"stream": stream.state_dict(), **generator_states()}


def generator_states() -> dict[str, Any]:
    """This process's Python, NumPy, torch (and CUDA) generator states, as plain JSON."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state().tolist()
    return state


def by_data_rank(gathered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every replica's `rank_state`, as one state per data rank (a replica hosting several data
    ranks gave a {"hosted": {rank: state}} entry); a checkpoint has one rank directory each."""
    if not any("hosted" in g for g in gathered):
        return gathered
    states: dict[int, dict[str, Any]] = {}
    for replica, g in enumerate(gathered):
        states.update({int(v): s for v, s in g["hosted"].items()} if "hosted" in g else {replica: g})
    return [states[v] for v in range(len(states))]


def write_rank_states(out: Writer, states: list[dict[str, Any]]) -> None:
    for rank, state in enumerate(states):
        out.json(f"{rank_dir(Path(), rank)}/state.json", state)


def restore_rank_state(state: Mapping[str, Any], stream: SavedData) -> None:
    stream.load_state_dict(state["stream"])
    restore_generators(state)


def restore_generators(state: Mapping[str, Any]) -> None:
    """The Python, NumPy, torch (and CUDA) random generators of a saved rank state."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npv = state["numpy"]
    np.random.set_state((npv[0], np.array(npv[1], dtype=np.uint32), npv[2], npv[3], npv[4]))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(torch.tensor(state["cuda"], dtype=torch.uint8))


def write_manifest(out: Writer, info: Mapping[str, Any]) -> None:
    """Written last; lists every file with its size and checksum, as recorded while writing."""
    files = dict(out.files)
    for path in sorted(out.root.rglob("*")):
        name = path.relative_to(out.root).as_posix()
        if path.is_file() and name not in files and name not in (MANIFEST, MANIFEST + ".partial"):
            # Not written through `out` (never by distnlp itself): hash it, so the manifest stays complete.
            files[name] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    tmp = out.root / (MANIFEST + ".partial")
    tmp.write_text(json.dumps({**dict(info), "files": dict(sorted(files.items()))}, indent=2))
    tmp.replace(out.root / MANIFEST)


def read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _entry(value: Any) -> tuple[int, str | None]:
    """(size, sha256) of a manifest entry; manifests before checksums held the size alone."""
    if isinstance(value, Mapping):
        return int(value["size"]), value.get("sha256")
    return int(value), None


def is_complete(root: Path) -> bool:
    """Cheap check: a manifest, and every file it lists present with its size."""
    manifest = read_manifest(root)
    if manifest is None:
        return False
    files = manifest.get("files", {})
    return all((root / name).is_file() and (root / name).stat().st_size == _entry(v)[0] for name, v in files.items())


def verify(root: Path) -> None:
    """Every listed file has its recorded checksum; raises CheckpointError naming the first bad one."""
    manifest = read_manifest(root)
    if manifest is None:
        raise CheckpointError(f"{root}: no readable {MANIFEST}; the checkpoint was never committed")
    for name, value in manifest.get("files", {}).items():
        size, sha = _entry(value)
        path = root / name
        if not path.is_file() or path.stat().st_size != size:
            raise CheckpointError(f"{path}: missing or truncated (expected {size} bytes)")
        if sha is not None and file_sha256(path) != sha:
            raise CheckpointError(f"{path}: checksum mismatch (the file changed after the checkpoint was committed)")


def manifest_step(root: Path) -> int:
    return int(json.loads((root / MANIFEST).read_text())["step"])


def manifest_run_id(root: Path) -> str | None:
    manifest = read_manifest(root)
    return None if manifest is None else manifest.get("run_id")


def load(root: Path, rank: int, *, nlp: nn.Module, optimizer: torch.optim.Optimizer, averages: Any, stream: SavedData, world_size: int) -> dict[str, Any]:
    """Restore everything saved by save_shared + save_rank; returns the loop state."""
    if not is_complete(root):
        raise CheckpointError(f"{root}: incomplete checkpoint (no {MANIFEST}, or files missing or truncated); it was never committed: delete it to resume from an earlier one")
    manifest = json.loads((root / MANIFEST).read_text())
    saved_world = int(manifest.get("world_size", world_size))
    keep_batch = saved_world != world_size and stream.keep_global_batch
    try:
        state_dict = load_file(str(root / "model.safetensors"))
        missing, unexpected = nlp.load_state_dict(state_dict, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{root}: weights do not match the pipeline (missing {missing[:4]}, unexpected {unexpected[:4]}); resume with the config the run started with")
        structure = json.loads((root / "optimizer.json").read_text())
        load_optimizer_state(optimizer, _unflatten_optimizer(load_file(str(root / "optimizer.safetensors")), structure))
        trainer = json.loads((root / "trainer.json").read_text())
        if averages is not None and (root / "averages.safetensors").exists():
            averages.load_state_dict({"num_updates": trainer.get("averages_num_updates", 0), "averages": load_file(str(root / "averages.safetensors"))})
        if saved_world == world_size:
            restore_rank_state(json.loads((rank_dir(root, rank) / "state.json").read_text()), stream)
        else:
            saved = [json.loads((rank_dir(root, r) / "state.json").read_text()) for r in range(saved_world)]
            if keep_batch:  # the saved data ranks continue as they were, hosted by fewer/more replicas
                stream.load_hosted(saved)
            else:  # elastic: every saved cursor together says what the epoch has left; take this rank's share
                stream.load_resplit([state["stream"] for state in saved])
            if rank < saved_world:  # a new rank keeps the generators it was seeded with
                restore_generators(saved[rank])
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{root}: corrupt or unreadable checkpoint ({type(exc).__name__}: {exc}); delete it to resume from the previous one") from None
    return trainer


def _flatten_optimizer(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    per_param: dict[str, dict[str, Any]] = {}
    for idx, slots in state["state"].items():
        entry: dict[str, Any] = {}
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                name = f"{idx}.{key}"
                tensors[name] = value.detach().cpu().contiguous()
                entry[key] = {"tensor": name}
            else:
                entry[key] = {"value": value}
        per_param[str(idx)] = entry
    return tensors, {"state": per_param, "param_groups": state["param_groups"]}


def _unflatten_optimizer(tensors: Mapping[str, torch.Tensor], structure: Mapping[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for idx, entry in structure["state"].items():
        state[int(idx)] = {k: (tensors[v["tensor"]] if "tensor" in v else v["value"]) for k, v in entry.items()}
    return {"state": state, "param_groups": structure["param_groups"]}
