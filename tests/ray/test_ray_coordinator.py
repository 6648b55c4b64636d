"""The Ray coordinator resumes only its own run: a complete checkpoint of another run in the
run directory (same shapes, another run id) is never loaded, nor one handed back by Ray; a
corrupted one is skipped for the previous one. No Ray cluster needed: get_checkpoint is stubbed."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("ray")

from distnlp.errors import CheckpointError  # noqa: E402
from distnlp.training.coordinator import write_checkpoint  # noqa: E402
from distnlp.training.run_identity import RunIdentity  # noqa: E402
from tests.fixtures.saved_data import OneCursor  # noqa: E402


def _write(root: Path, identity: RunIdentity, step: int, value: float) -> None:
    from distnlp.training import checkpoint as ckpt

    model = nn.Linear(2, 2)
    torch.nn.init.constant_(model.weight, value)
    opt = torch.optim.AdamW(model.parameters())
    stream = OneCursor()
    stream.state = {"position": step}
    root.mkdir(parents=True)
    write_checkpoint(root, step=step, world_size=1, identity=identity, nlp=model, optimizer=opt, averages=None,
                     states=[ckpt.rank_state(stream)], state={"step": step})


def test_restores_only_its_own_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray.train

    from distnlp.ray_backend.coordinator import RayCoordinator

    mine, other = RunIdentity("mine", "h"), RunIdentity("other", "h")
    run_dir = tmp_path / "distnlp"
    _write(run_dir / "checkpoint_a", mine, 8, 1.0)
    _write(run_dir / "checkpoint_b", other, 16, 2.0)  # newer, same shapes, another run
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: ray.train.Checkpoint.from_directory(str(run_dir / "checkpoint_b")))
    model, stream = nn.Linear(2, 2), OneCursor()
    coordinator = RayCoordinator(rank=0, world_size=1, gather=lambda o: [o], identity=mine, run_dir=str(run_dir))
    state = coordinator.restore(nlp=model, optimizer=torch.optim.AdamW(model.parameters()), averages=None, stream=stream)
    assert state is not None and state["step"] == 8 and stream.state["position"] == 8
    assert torch.all(model.weight == 1.0)

    # Corrupt the only checkpoint of this run: nothing loads, and a resume says so.
    weights = run_dir / "checkpoint_a" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-8:] = b"\x00" * 8
    weights.write_bytes(bytes(data))
    resuming = RayCoordinator(rank=0, world_size=1, gather=lambda o: [o], identity=RunIdentity("mine", "h", resume=True), run_dir=str(run_dir))
    with pytest.raises(CheckpointError, match="no committed checkpoint of run mine"):
        resuming.restore(nlp=model, optimizer=torch.optim.AdamW(model.parameters()), averages=None, stream=stream)
    fresh = RayCoordinator(rank=0, world_size=1, gather=lambda o: [o], identity=RunIdentity("new", "h"), run_dir=str(run_dir))
    assert fresh.restore(nlp=model, optimizer=torch.optim.AdamW(model.parameters()), averages=None, stream=stream) is None
