"""The listener's gradient factor: identity forward, gradient scaled by `factor` on the way back."""
from __future__ import annotations

import torch


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: float) -> torch.Tensor:  # type: ignore[override]
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad * ctx.factor, None


def scale_grad(x: torch.Tensor, factor: float) -> torch.Tensor:
    """What a listener hands its head. factor 0 detaches, so no gradient is even computed for it."""
    if factor == 0.0:
        return x.detach()
    if factor == 1.0:
        return x
    return _ScaleGrad.apply(x, factor)
