"""Optimizer pieces: parameter averages (thinc's decay), encoder learning-rate factor."""
from __future__ import annotations

import torch
from torch import nn

from distnlp.training.optim import ParameterAverages, build_optimizer, set_learn_rate

CFG = {"learn_rate": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "algorithm": "adamw"}


def test_averages_follow_thinc_decay_and_swap_restores() -> None:
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    avg = ParameterAverages(model)
    with torch.no_grad():
        model.weight.fill_(1.0)
    avg.update()  # decay = (1 + 1) / (10 + 1)
    expected = 1.0 - 2 / 11
    torch.testing.assert_close(avg.averages["weight"], torch.full((1, 2), expected))
    avg.swap()
    torch.testing.assert_close(model.weight.detach(), torch.full((1, 2), expected))
    avg.swap()
    torch.testing.assert_close(model.weight.detach(), torch.ones(1, 2))


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(2, 2)
        self.components = nn.ModuleDict({"head": nn.Linear(2, 1)})


def test_encoder_lr_factor_scales_only_the_embedding_parameters() -> None:
    model = _Toy()
    opt, schedule = build_optimizer(model, {**CFG, "encoder_lr_factor": 0.1})
    set_learn_rate(opt, 0.5)
    by_param = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert all(by_param[id(p)] == 0.05 for p in model.encoder.parameters())
    assert all(by_param[id(p)] == 0.5 for p in model.components.parameters())


def test_a_checkpoint_from_a_foreach_optimizer_resumes_fused() -> None:
    """Checkpoints written before the optimizer was fused hold `fused: None` in their groups;
    loading one must not turn the live optimizer back to foreach (the step would then read its
    numbers back every step instead of skipping a non-finite one on the device)."""
    from distnlp.training.optim import load_optimizer_state
    from distnlp.training.step import skips_on_device

    torch.manual_seed(0)
    old_model = nn.Linear(3, 2)
    old = torch.optim.AdamW(old_model.parameters(), lr=0.1)  # foreach: its step counters on the CPU
    old_model(torch.ones(1, 3)).sum().backward()
    old.step()
    model = nn.Linear(3, 2)
    optimizer, _ = build_optimizer(model, CFG)
    assert skips_on_device(optimizer)
    load_optimizer_state(optimizer, old.state_dict())
    assert skips_on_device(optimizer), [g.get("fused") for g in optimizer.param_groups]
    for p_old, p in zip(old_model.parameters(), model.parameters()):
        torch.testing.assert_close(optimizer.state[p]["exp_avg"], old.state[p_old]["exp_avg"])
        assert optimizer.state[p]["step"].device == p.device and float(optimizer.state[p]["step"]) == 1.0
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()  # the fused kernel takes the loaded state
