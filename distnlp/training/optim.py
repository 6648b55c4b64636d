"""Optimizer, learning-rate schedule and parameter averages (thinc's use_averages)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .. import registry
from ..errors import ConfigError
from ..schedules import Schedule, as_schedule
from ..config.settings import OptimizerSettings


FUSED_DEVICES = ("cpu", "cuda")


def build_optimizer(model: nn.Module, cfg: OptimizerSettings | Mapping[str, Any]) -> tuple[torch.optim.Optimizer, Schedule]:
    """Adam/AdamW over every trainable parameter. Embedding layers (the shared encoder and any
    private embeddings) may train at `encoder_lr_factor` x the schedule's rate: a transformer
    usually wants a smaller rate than the freshly initialised heads. Errors name `cfg.path`
    (training.optimizer or pretrain.optimizer)."""
    if not isinstance(cfg, OptimizerSettings):
        cfg = OptimizerSettings.from_config(cfg, "training.optimizer")
    where = f"{cfg.path}.learn_rate"
    lr = as_schedule(registry.resolve(cfg.learn_rate, where), where)
    factor = float(cfg.encoder_lr_factor)
    embedding_ids = {id(p) for module in _embedding_modules(model) for p in module.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if id(p) not in embedding_ids], "lr_factor": 1.0},
        {"params": [p for p in trainable if id(p) in embedding_ids], "lr_factor": factor},
    ]
    groups = [g for g in groups if g["params"]]
    algo = cfg.algorithm.lower()
    # Fused: one kernel per step, and it skips a non-finite step on the device (`found_inf`), so
    # the step reads nothing back (training/step.py). The same update as the foreach path; its
    # vectorised loop may round the last bit differently.
    fused = bool(trainable) and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in trainable)
    kwargs = dict(lr=lr(0), betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, weight_decay=cfg.weight_decay, fused=fused or None)
    if algo == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(groups, **kwargs)
    elif algo == "adam":
        opt = torch.optim.Adam(groups, **kwargs)
    else:
        raise ConfigError(f"{cfg.path}.algorithm", f"unknown algorithm {algo!r}", "use adamw or adam")
    set_learn_rate(opt, lr(0))
    return opt, lr


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: Mapping[str, Any]) -> None:
    """A checkpoint's optimizer state, run the way the live optimizer runs: its groups' `fused`,
    `foreach` and `capturable` are how to compute, not what was learned, and a checkpoint from a
    foreach optimizer must not make a fused one foreach again (the step would then read its
    numbers back every step). Step counters move to where the live implementation keeps them."""
    how = ("fused", "foreach", "capturable")
    groups = [{**saved, **{k: live[k] for k in how if k in live}} for saved, live in zip(state["param_groups"], optimizer.param_groups)]
    optimizer.load_state_dict({**state, "param_groups": groups})


def _embedding_modules(model: nn.Module) -> list[nn.Module]:
    out = []
    if getattr(model, "encoder", None) is not None:
        out.append(model.encoder)
    for comp in getattr(model, "components", {}).values() if hasattr(model, "components") else []:
        embed = getattr(comp, "embed", None)
        if embed is not None:
            out.append(embed)
    return out


def set_learn_rate(optimizer: torch.optim.Optimizer, value: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = value * float(group.get("lr_factor", 1.0))


class ParameterAverages:
    """Running averages of the parameters, used for evaluation and saving (thinc's averages).

    thinc's decay: min(0.9999, (1 + n) / (10 + n)) after n updates, so early averages follow
    the weights closely and later ones smooth over many steps.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.averages = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
        device = next(iter(self.averages.values())).device if self.averages else torch.device("cpu")
        # On the device: a step skipped there (non-finite) leaves the averages and the count alone
        # without the host having to know.
        self._updates = torch.zeros((), dtype=torch.float64, device=device)

    @property
    def num_updates(self) -> int:
        return int(self._updates.item())

    @torch.no_grad()
    def update(self, applied: torch.Tensor | float = 1.0) -> None:
        """After an optimizer step; `applied` is 0 where the step made no update (on the device)."""
        self._updates += applied
        decay = ((1 + self._updates) / (10 + self._updates)).clamp(max=0.9999)
        weight = (1 - decay) * applied
        weights: dict[torch.dtype, torch.Tensor] = {}  # cast once per dtype, not once per parameter
        for name, p in self.model.named_parameters():
            avg = self.averages.get(name)
            if avg is not None:
                if avg.dtype not in weights:
                    weights[avg.dtype] = weight.to(avg.dtype)
                avg.lerp_(p.detach(), weights[avg.dtype])

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the live weights and the averages (call twice to restore)."""
        for name, p in self.model.named_parameters():
            avg = self.averages.get(name)
            if avg is not None:
                tmp = p.detach().clone()
                p.copy_(avg)
                avg.copy_(tmp)

    def state_dict(self) -> dict[str, Any]:
        return {"num_updates": self.num_updates, "averages": self.averages}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._updates.fill_(int(state["num_updates"]))
        for name, value in state["averages"].items():
            self.averages[name].copy_(value)
