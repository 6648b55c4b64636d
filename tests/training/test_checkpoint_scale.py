"""Checkpoints at scale (issue 22, item 4): the manifest's checksums come from the bytes as they
are written (no re-read), old manifests still load, and on restore every rank takes the same
step, agreed through the gather, with each copy hashed once per host however many ranks run
there. A rank that cannot read the agreed step stops every rank with one line.

Ranks are threads here, their gather a barrier: the same collectives as torch.distributed's
all_gather, without processes (tests/distributed covers the real process group)."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save, save_file
from torch import nn

from distnlp.errors import CheckpointError
from distnlp.hashed_files import file_sha256, safetensors_chunks
from distnlp.training import checkpoint as ckpt
from distnlp.training import coordinator as coord
from distnlp.training.coordinator import FileCoordinator, write_checkpoint
from distnlp.training.run_identity import RunIdentity
from tests.fixtures.saved_data import OneCursor

RUN = RunIdentity("run1", "hash1")


def _model(value: float, width: int = 2) -> nn.Module:
    model = nn.Linear(2, width)
    torch.nn.init.constant_(model.weight, value)
    return model


def _commit(directory: Path, step: int, *, world_size: int = 2) -> Path:
    """A committed checkpoint of `world_size` ranks whose weights are all `step`."""
    root = directory / f"step-{step:08d}"
    model = _model(0.0)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    opt.step()  # moments to save
    torch.nn.init.constant_(model.weight, float(step))
    states = [ckpt.rank_state(OneCursor(step * 100 + r)) for r in range(world_size)]
    write_checkpoint(root, step=step, world_size=world_size, identity=RUN, nlp=model, optimizer=opt, averages=None, states=states,
                     state={"step": step})
    return root


class _Threads:
    """N ranks as threads; `gather(rank)` is an all-gather over JSON, as all_gather_json is."""

    def __init__(self, world: int) -> None:
        self.slots: list[Any] = [None] * world
        self.barrier = threading.Barrier(world, timeout=30)

    def gather(self, rank: int) -> Callable[[Any], list[Any]]:
        def gather(obj: Any) -> list[Any]:
            self.slots[rank] = json.loads(json.dumps(obj))
            self.barrier.wait()
            out = list(self.slots)
            self.barrier.wait()
            return out

        return gather


def _on_ranks(world: int, hosts: list[str], body: Callable[[int, Callable[[Any], list[Any]]], Any], monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Run body(rank, gather) on `world` thread ranks, rank r on host hosts[r]; each rank's result or exception."""
    group, local, real_host = _Threads(world), threading.local(), socket.gethostname
    monkeypatch.setattr(coord.socket, "gethostname", lambda: getattr(local, "host", None) or real_host())
    results: list[Any] = [None] * world

    def run(rank: int) -> None:
        local.host = hosts[rank]
        try:
            results[rank] = body(rank, group.gather(rank))
        except Exception as exc:  # the test inspects each rank's outcome
            results[rank] = exc

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _restore(directory: Path, rank: int, world: int, gather: Callable[[Any], list[Any]], model: nn.Module | None = None) -> tuple[Any, nn.Module, OneCursor]:
    model = model or _model(0.0)
    stream = OneCursor()
    coordinator = FileCoordinator(directory, rank=rank, world_size=world, gather=gather, identity=RUN)
    state = coordinator.restore(nlp=model, optimizer=torch.optim.AdamW(model.parameters()), averages=None, stream=stream)
    return state, model, stream


# --- hash while writing --------------------------------------------------------------------------

def test_manifest_checksums_come_from_the_written_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_reread(path: Path) -> str:
        raise AssertionError(f"{path} was read back to hash it")

    monkeypatch.setattr(ckpt, "file_sha256", no_reread)
    root = _commit(tmp_path, 10, world_size=3)
    files = json.loads((root / ckpt.MANIFEST).read_text())["files"]
    on_disk = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != ckpt.MANIFEST)
    assert sorted(files) == on_disk and "rank-00002/state.json" in files
    for name, entry in files.items():
        data = (root / name).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}, name
    monkeypatch.undo()
    ckpt.verify(root)


def test_streamed_safetensors_are_the_library_format() -> None:
    """The writer streams safetensors a tensor at a time: the same bytes safetensors writes, for
    every dtype it covers; another dtype goes through the library's own writer."""
    tensors = {"f64": torch.randn(3, dtype=torch.float64), "f32": torch.randn(4, 3).t(), "bf16": torch.randn(5, dtype=torch.bfloat16),
               "f16": torch.randn(2, dtype=torch.float16), "i64": torch.arange(7), "i32": torch.arange(3, dtype=torch.int32),
               "i16": torch.tensor([-3], dtype=torch.int16), "i8": torch.tensor([1, -2], dtype=torch.int8), "u8": torch.tensor([9], dtype=torch.uint8),
               "bool": torch.tensor(True), "empty": torch.zeros(0), "scalar": torch.tensor(2.5)}
    streamed = b"".join(bytes(c) for c in safetensors_chunks(tensors))
    assert streamed == save({k: v.contiguous() for k, v in tensors.items()})
    other = {"u16": torch.tensor([1, 2], dtype=torch.uint16), "f32": torch.ones(2)}
    assert b"".join(bytes(c) for c in safetensors_chunks(other)) == save(other)


@pytest.mark.parametrize("entries", ["sha256", "size-only"])
def test_checkpoints_written_the_old_way_still_load(tmp_path: Path, entries: str) -> None:
    """Written as before this change: save_file, write_text, then a manifest hashed by re-reading."""
    root = tmp_path / "step-00000010"
    (root / "rank-00000").mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in _model(10.0).state_dict().items()}, str(root / "model.safetensors"))
    save_file({}, str(root / "optimizer.safetensors"))
    (root / "optimizer.json").write_text(json.dumps({"state": {}, "param_groups": torch.optim.AdamW(_model(0.0).parameters()).state_dict()["param_groups"]}))
    (root / "trainer.json").write_text(json.dumps({"step": 10}))
    (root / "rank-00000" / "state.json").write_text(json.dumps(ckpt.rank_state(OneCursor(7))))
    files = {str(p.relative_to(root)): ({"size": p.stat().st_size, "sha256": file_sha256(p)} if entries == "sha256" else p.stat().st_size)
             for p in sorted(root.rglob("*")) if p.is_file()}
    (root / ckpt.MANIFEST).write_text(json.dumps({"step": 10, "world_size": 1, **RUN.as_dict(), "files": files}))
    state, model, stream = _restore(tmp_path, 0, 1, lambda o: [o])
    assert state == {"step": 10} and stream.state == {"position": 7} and torch.all(model.weight == 10.0)


# --- restore: verify once per host, agree on the step --------------------------------------------

def test_each_copy_is_hashed_once_per_host_and_every_rank_restores_the_same_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for step in (10, 20):
        _commit(tmp_path, step, world_size=4)
    hashed: list[str] = []
    real = ckpt.file_sha256
    monkeypatch.setattr(ckpt, "file_sha256", lambda p: hashed.append(str(p)) or real(p))
    results = _on_ranks(4, ["node-a"] * 4, lambda r, g: _restore(tmp_path, r, 4, g), monkeypatch)
    for rank, (state, model, stream) in enumerate(results):
        assert state == {"step": 20} and stream.state == {"position": 2000 + rank} and torch.all(model.weight == 20.0), rank
    files = len(json.loads((tmp_path / "step-00000020" / ckpt.MANIFEST).read_text())["files"])
    assert len(hashed) == len(set(hashed)) == files  # the newest verified, once, not once per rank (4x)


def test_a_copy_corrupt_on_one_host_moves_every_rank_to_the_previous_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Rank 1 runs on another node, with its own copy of the checkpoints; its step 20 is rotten."""
    node_a, node_b = tmp_path / "a", tmp_path / "b"
    for step in (10, 20):
        _commit(node_a, step)
    shutil.copytree(node_a, node_b)
    weights = node_b / "step-00000020" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4:] = b"\xff" * 4  # same size: only the checksum sees it
    weights.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        results = _on_ranks(2, ["node-a", "node-b"], lambda r, g: _restore(node_a if r == 0 else node_b, r, 2, g), monkeypatch)
    for rank, (state, model, stream) in enumerate(results):
        assert state == {"step": 10} and stream.state == {"position": 1000 + rank} and torch.all(model.weight == 10.0), rank
    assert "step-00000020/model.safetensors: checksum mismatch" in caplog.text


def test_a_rank_that_cannot_load_the_agreed_step_stops_every_rank_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _commit(tmp_path, 10)
    # Rank 1's model does not fit the weights (as a config that differs between nodes would make).
    results = _on_ranks(2, ["node-a"] * 2, lambda r, g: _restore(tmp_path, r, 2, g, _model(0.0, width=2 if r == 0 else 3)), monkeypatch)
    assert all(isinstance(r, CheckpointError) for r in results), results
    assert str(results[0]) == str(results[1]) and "\n" not in str(results[0])
    assert str(results[0]).startswith("rank 1 cannot load the checkpoint every rank agreed on") and "step-00000010" in str(results[0])


def test_a_rank_that_sees_no_checkpoint_stops_every_rank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 1's node does not see the checkpoint directory (no shared filesystem): no rank may
    resume from step 10 while rank 1 starts from scratch."""
    _commit(tmp_path / "a", 10)
    (tmp_path / "b").mkdir()
    results = _on_ranks(2, ["node-a", "node-b"], lambda r, g: _restore(tmp_path / ("a" if r == 0 else "b"), r, 2, g), monkeypatch)
    assert all(isinstance(r, CheckpointError) for r in results), results
    assert str(results[0]) == str(results[1]) and "step 10 is missing on rank(s) 1" in str(results[0])


def test_a_step_one_rank_does_not_see_is_skipped_for_one_every_rank_sees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    node_a, node_b = tmp_path / "a", tmp_path / "b"
    _commit(node_a, 10)
    shutil.copytree(node_a, node_b)
    _commit(node_a, 20)  # not (yet) on rank 1's node
    with caplog.at_level(logging.WARNING):
        results = _on_ranks(2, ["node-a", "node-b"], lambda r, g: _restore(node_a if r == 0 else node_b, r, 2, g), monkeypatch)
    assert [r[0] for r in results] == [{"step": 10}, {"step": 10}]
    assert "skipping checkpoint step 20: rank(s) 1 do not see it" in caplog.text


def test_benchmark_runs_tiny() -> None:
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_checkpoint.py"
    done = subprocess.run([sys.executable, str(bench), "--sizes", "1", "--ranks", "1,3", "--size-ranks", "2", "--repeat", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["ranks"] for r in result["by_ranks"]] == [1, 3] and all(r["save_new_s"] > 0 for r in result["by_size"])


def test_ray_ranks_agree_on_the_step_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Ray coordinator restores through the same agreement: rank 1's node misses step 20."""
    ray_train = pytest.importorskip("ray.train")
    from distnlp.ray_backend.coordinator import RayCoordinator

    node_a, node_b = tmp_path / "a", tmp_path / "b"
    _commit(node_a, 10)
    shutil.copytree(node_a, node_b)
    _commit(node_a, 20)
    monkeypatch.setattr(ray_train, "get_checkpoint", lambda: None)

    def restore(rank: int, gather: Callable[[Any], list[Any]]) -> Any:
        model, stream = _model(0.0), OneCursor()
        coordinator = RayCoordinator(rank=rank, world_size=2, gather=gather, identity=RUN, run_dir=str(node_a if rank == 0 else node_b))
        return coordinator.restore(nlp=model, optimizer=torch.optim.AdamW(model.parameters()), averages=None, stream=stream), stream.state

    results = _on_ranks(2, ["node-a", "node-b"], restore, monkeypatch)
    assert results == [({"step": 10}, {"position": 1000}), ({"step": 10}, {"position": 1001})]
