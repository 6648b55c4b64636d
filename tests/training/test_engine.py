"""The engine's settings and stopping rules: limits validated before any work, every stop
(max_steps, max_epochs, patience) ends with an evaluation and a saved model, and a non-finite
loss or gradient stops the run with the step and component named (or skips the step)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from distnlp.cli.compose import compose_config
from distnlp.errors import ConfigError
from distnlp.training.loop import run_worker
from distnlp.config.settings import pretrain_settings, training_settings
from distnlp.training.optim import ParameterAverages
from distnlp.training.pending_steps import PendingSteps
from distnlp.training.step import NonFiniteError, optimizer_step


def _config(*overrides: str) -> dict:
    return compose_config(["encoder.width=32", "distributed.num_threads=1", "training.max_eval_docs=3", *overrides])


@pytest.mark.parametrize("overrides, key", [
    (["training.max_steps=-3"], "training.max_steps: must be >= 0"),
    (["training.max_steps=0", "training.max_epochs=0", "training.patience=0"], "training.max_steps: max_steps, max_epochs and patience are all 0"),
    (["training.eval_frequency=0"], "training.eval_frequency: must be >= 1"),
    (["training.nonfinite=ignore"], "training.nonfinite: unknown policy"),
])
def test_training_limits_are_validated(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        training_settings(_config(*overrides))


def test_pretraining_limits_and_paths() -> None:
    with pytest.raises(ConfigError, match="pretrain.max_steps: max_steps and max_epochs are all 0"):
        pretrain_settings(_config("pretrain.max_steps=0", "pretrain.max_epochs=0"))
    # Shared builders name the caller's path.
    with pytest.raises(ConfigError, match=r"^pretrain\.optimizer\.learn_rate"):
        from distnlp.training.optim import build_optimizer

        build_optimizer(nn.Linear(2, 2), pretrain_settings(_config("pretrain.optimizer.learn_rate=fast")).optimizer)


def test_max_epochs_stop_evaluates_and_saves(tmp_path: Path) -> None:
    from distnlp.cli.compose import DEMO_DATA

    out = tmp_path / "epochs"
    # one epoch of the demo dev set (a few thousand words): the stop, not the data, is under test
    config = _config(f"training.output_dir={out}", "training.max_steps=0", "training.max_epochs=1", "training.eval_frequency=100000",
                     "training.batcher.size=3000", f"corpus.train={DEMO_DATA / 'dev'}", f"corpus.dev={DEMO_DATA / 'dev'}")
    result = run_worker(config)
    assert result["stop_reason"] == "max_epochs" and result["epoch"] == 1
    evals = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if '"eval"' in l]
    assert [e["step"] for e in evals] == [result["step"]]  # the final evaluation, on the last step
    assert json.loads((out / "model-last" / "meta.json").read_text())["step"] == result["step"]
    assert (out / "model-best").is_dir()


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 1)


class _ToyObjective:
    loss_names = ["ner", "tagger"]

    def __init__(self, bad: str | None) -> None:
        torch.manual_seed(0)
        self.model = _Toy()
        self.bad = bad

    def count(self, sub: torch.Tensor) -> list[float]:
        return [float(len(sub)), float(len(sub))]

    def losses(self, sub: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        out = self.model.head(sub).sum()
        ner = out * float("nan") if self.bad == "loss" else out
        return {"ner": ner, "tagger": out * 2}

    def words(self, sub: torch.Tensor) -> int:
        return len(sub)


def test_nonfinite_loss_stops_naming_step_and_component() -> None:
    objective = _ToyObjective(bad="loss")
    opt = torch.optim.AdamW(objective.model.parameters(), lr=0.1)
    before = [p.clone() for p in objective.model.parameters()]
    with pytest.raises(NonFiniteError, match=r"^step 8: the loss of ner is nan"):
        optimizer_step(objective, [torch.ones(4, 3)], step=7, optimizer=opt, grad_clip=1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, objective.model.parameters()))
    result = optimizer_step(objective, [torch.ones(4, 3)], step=7, optimizer=opt, grad_clip=1.0, nonfinite="skip")
    assert result.skipped and math.isnan(result.losses["ner"])
    assert all(torch.equal(a, b) for a, b in zip(before, objective.model.parameters()))  # skipped: untouched


def test_nonfinite_gradient_names_the_parameters() -> None:
    objective = _ToyObjective(bad=None)
    opt = torch.optim.AdamW(objective.model.parameters(), lr=0.1)
    objective.model.head.weight.register_hook(lambda g: g * float("inf"))  # finite loss, infinite gradient
    with pytest.raises(NonFiniteError, match=r"^step 1: the gradient norm is inf \(non-finite gradients in head.weight\)"):
        optimizer_step(objective, [torch.ones(4, 3)], step=0, optimizer=opt, grad_clip=1.0)


def test_a_fused_optimizer_skips_a_nonfinite_step_on_the_device_and_the_read_names_it() -> None:
    """The loop's optimizer is fused: the step reads nothing back, the update (and the averages)
    are skipped on the device, and the loop's next read stops the run naming the step."""
    objective = _ToyObjective(bad="loss")
    opt = torch.optim.AdamW(objective.model.parameters(), lr=0.1, fused=True)
    averages = ParameterAverages(objective.model)
    objective.model.head.weight.data.add_(1.0)  # the averages now differ from the weights
    before = [p.clone() for p in objective.model.parameters()]
    averaged = {k: v.clone() for k, v in averages.averages.items()}
    with pytest.raises(NonFiniteError, match=r"^step 8: the loss of ner is nan"):  # on its own, the step reads and stops
        optimizer_step(objective, [torch.ones(4, 3)], step=7, optimizer=opt, grad_clip=1.0)
    result = optimizer_step(objective, [torch.ones(4, 3)], step=7, optimizer=opt, grad_clip=1.0, read_later=True)
    averages.update(result.applied)
    assert result.host is None  # nothing read back yet
    assert all(torch.equal(a, b) for a, b in zip(before, objective.model.parameters()))
    assert all(float(state["step"]) == 0 for state in opt.state.values())
    assert averages.num_updates == 0 and all(torch.equal(averaged[k], v) for k, v in averages.averages.items())
    pending = PendingSteps("error")
    pending.add(result)
    with pytest.raises(NonFiniteError, match=r"^step 8: the loss of ner is nan"):
        pending.read()
    pending = PendingSteps("skip")
    pending.add(optimizer_step(objective, [torch.ones(4, 3)], step=8, optimizer=opt, grad_clip=1.0, nonfinite="skip", read_later=True))
    assert pending.read() == 1
    objective.bad = None
    pending.add(optimizer_step(objective, [torch.ones(4, 3)], step=9, optimizer=opt, grad_clip=1.0, nonfinite="skip", read_later=True))
    assert pending.read() == 0 and not torch.equal(before[0], objective.model.head.weight)


def test_a_deferred_nonfinite_gradient_still_names_the_parameters() -> None:
    objective = _ToyObjective(bad=None)
    opt = torch.optim.AdamW(objective.model.parameters(), lr=0.1, fused=True)
    objective.model.head.weight.register_hook(lambda g: g * float("inf"))
    pending = PendingSteps("error")
    pending.add(optimizer_step(objective, [torch.ones(4, 3)], step=0, optimizer=opt, grad_clip=1.0, read_later=True))
    with pytest.raises(NonFiniteError, match=r"^step 1: the gradient norm is inf \(non-finite gradients in head.weight\)"):
        pending.read()


@pytest.mark.parametrize("policy", ["error", "skip"])
def test_a_nonfinite_step_in_a_run_stops_it_at_the_next_read_or_is_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                           policy: str) -> None:
    """Step 3 of 8 has a NaN tagger loss, logging every 4 steps: with nonfinite=error the run
    stops at step 4's read naming step 3, before any model is saved; with skip it trains on,
    the summary counts one skipped step and the log marks none of the logged steps."""
    from distnlp.training.pipeline_objective import PipelineLosses

    losses = PipelineLosses.losses

    def poisoned(self: PipelineLosses, sub_batch: object, step: int) -> dict:
        out = losses(self, sub_batch, step)
        return {**out, "tagger": out["tagger"] * float("nan")} if step == 2 else out

    monkeypatch.setattr(PipelineLosses, "losses", poisoned)
    run = tmp_path / "run"
    config = _config("training.max_steps=8", "training.eval_frequency=8", "training.log_every=4", f"training.nonfinite={policy}",
                     f"training.output_dir={run}")
    if policy == "error":
        with pytest.raises(NonFiniteError, match=r"^step 3: the loss of tagger is nan"):
            run_worker(config)
        assert not (run / "model-last").exists()
        return
    summary = run_worker(config)
    assert summary["skipped_steps"] == 1
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["skipped"]) for r in records if r["event"] == "step"] == [(4, False), (8, False)]
    # The skipped step's NaN is kept out of the running sums (the evaluation's losses, checkpoints).
    (evaluation,) = [r for r in records if r["event"] == "eval"]
    assert all(math.isfinite(v) for v in evaluation["losses"].values()), evaluation["losses"]


def test_parameters_without_gradient_are_not_stepped() -> None:
    """One process: a parameter no loss reached this step is neither decayed nor moved."""
    objective = _ToyObjective(bad=None)
    extra = nn.Parameter(torch.ones(3))
    objective.model.register_parameter("unused", extra)
    opt = torch.optim.AdamW(objective.model.parameters(), lr=0.1, weight_decay=0.5)
    for step in range(3):
        optimizer_step(objective, [torch.ones(2, 3)], step=step, optimizer=opt, grad_clip=0.0)
    assert torch.equal(extra.detach(), torch.ones(3)) and extra not in opt.state
