"""MaxoutWindowEncoder: spaCy's CNN, depth x residual(expand_window >> Maxout >> LayerNorm).

Works on the flat [n_tokens, width] batch plus doc lengths: each window is built from shifted
copies of the batch, with a mask that zeroes neighbours from another doc, so there is no
Python loop over docs and no padding to the longest doc.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import Maxout

__all__ = ["MaxoutWindowEncoder", "window_masks"]


def window_masks(lengths: Tensor, window_size: int, dtype: torch.dtype = torch.float32, n_tokens: int | None = None) -> Tensor:
    """[2*ws, n_tokens, 1] masks: row k (k<ws) = token has a left neighbour at distance ws-k in
    its doc; row ws+k = right neighbour at distance k+1. `n_tokens` (the sum of `lengths`, where
    the caller knows it) saves reading the device back."""
    lengths = lengths.to(torch.int64)
    n = int(lengths.sum()) if n_tokens is None else int(n_tokens)
    starts = torch.cumsum(lengths, 0) - lengths
    pos = torch.arange(n, device=lengths.device) - torch.repeat_interleave(starts, lengths, output_size=n)
    remaining = torch.repeat_interleave(lengths, lengths, output_size=n) - pos - 1
    left = [pos >= d for d in range(window_size, 0, -1)]
    right = [remaining >= d for d in range(1, window_size + 1)]
    return torch.stack(left + right).unsqueeze(-1).to(dtype)


def expand_window(x: Tensor, masks: Tensor, window_size: int) -> Tensor:
    """[n, w] -> [n, w*(2ws+1)]: neighbours [-ws .. +ws] concatenated, zero outside the doc."""
    n, w = x.shape
    zeros = x.new_zeros(window_size, w)
    padded = torch.cat([zeros, x, zeros], dim=0)
    parts = []
    for j, d in enumerate(range(-window_size, window_size + 1)):
        shifted = padded[window_size + d: window_size + d + n]
        if d != 0:
            shifted = shifted * masks[j if d < 0 else j - 1]
        parts.append(shifted)
    return torch.cat(parts, dim=-1)


class MaxoutWindowEncoder(nn.Module):
    def __init__(self, width: int, depth: int, window_size: int, maxout_pieces: int) -> None:
        super().__init__()
        self.width, self.depth, self.window_size, self.maxout_pieces = width, depth, window_size, maxout_pieces
        n_in = width * (2 * window_size + 1)
        self.blocks = nn.ModuleList(Maxout(width, n_in, nP=maxout_pieces, normalize=True) for _ in range(depth))

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x [n_tokens, width] (docs concatenated), lengths int64 [n_docs] -> [n_tokens, width]."""
        if self.window_size == 0:
            for block in self.blocks:
                x = x + block(x)
            return x
        masks = window_masks(lengths.to(x.device), self.window_size, x.dtype, n_tokens=x.shape[0])
        for block in self.blocks:
            x = x + block(expand_window(x, masks, self.window_size))
        return x
