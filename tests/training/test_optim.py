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
