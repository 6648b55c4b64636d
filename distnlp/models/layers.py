"""Small building blocks shared by the CNN tok2vec: Maxout (thinc's) and HashEmbed (spaCy's)."""
from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["HashEmbed", "Maxout", "hash_rows"]

# Universal hashing modulo a Mersenne prime: every intermediate stays below 2**63, so the
# mixing is exact int64 arithmetic on any device (no reliance on overflow wrap-around).
_PRIME = (1 << 31) - 1
_MASK32 = (1 << 32) - 1


class Maxout(nn.Module):
    """Linear(nI -> nO*nP), max over the nP pieces, then LayerNorm if `normalize` (thinc's Maxout)."""

    def __init__(self, nO: int, nI: int, nP: int = 3, normalize: bool = True) -> None:
        super().__init__()
        self.nO, self.nI, self.nP = nO, nI, nP
        self.linear = nn.Linear(nI, nO * nP)
        self.norm = nn.LayerNorm(nO) if normalize else None
        # thinc's glorot_uniform over (nO, nP, nI): bound sqrt(6 / (nO + nI)); bias zero.
        bound = math.sqrt(6.0 / (nO + nI))
        nn.init.uniform_(self.linear.weight, -bound, bound)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        y = self.linear(x)
        # pieces-major layout: the max runs over contiguous [.., nO] slabs
        y = y.view(*y.shape[:-1], self.nP, self.nO).amax(dim=-2)
        return self.norm(y) if self.norm is not None else y


def _mix_params(seed: int, n: int = 4) -> tuple[list[int], list[int], list[int]]:
    """n (a, b, c) triples for h = (a*lo + b*hi + c) mod p, derived from the seed by blake2b."""
    a, b, c = [], [], []
    for j in range(n):
        d = hashlib.blake2b(f"distnlp.HashEmbed:{seed}:{j}".encode(), digest_size=12).digest()
        a.append(1 + int.from_bytes(d[0:4], "little") % (_PRIME - 1))
        b.append(1 + int.from_bytes(d[4:8], "little") % (_PRIME - 1))
        c.append(int.from_bytes(d[8:12], "little") % _PRIME)
    return a, b, c


def hash_rows(keys: Tensor, a: Tensor, b: Tensor, c: Tensor, rows: int) -> Tensor:
    """keys int64 [...] -> row indices int64 [..., n_mixes], one per (a, b, c) mix."""
    lo = (keys & _MASK32) % _PRIME
    hi = ((keys >> 32) & _MASK32) % _PRIME  # mask after the arithmetic shift = logical shift
    h = (lo.unsqueeze(-1) * a + hi.unsqueeze(-1) * b + c) % _PRIME
    return h % rows


class HashEmbed(nn.Module):
    """spaCy's HashEmbed: each 64-bit key picks 4 rows of a (rows x width) table (4 seeded
    hashes), and the embedding is their sum, so a collision on one row rarely hurts."""

    def __init__(self, width: int, rows: int, seed: int = 0, n_mixes: int = 4) -> None:
        super().__init__()
        if rows < 1:
            raise ValueError(f"HashEmbed rows must be >= 1, not {rows}")
        self.width, self.rows, self.seed = width, rows, seed
        self.weight = nn.Parameter(torch.empty(rows, width).uniform_(-0.1, 0.1))
        a, b, c = _mix_params(seed, n_mixes)
        # derived from the seed, so they need not be saved
        self.register_buffer("_a", torch.tensor(a, dtype=torch.int64), persistent=False)
        self.register_buffer("_b", torch.tensor(b, dtype=torch.int64), persistent=False)
        self.register_buffer("_c", torch.tensor(c, dtype=torch.int64), persistent=False)

    def indices(self, keys: Tensor) -> Tensor:
        return hash_rows(keys, self._a, self._b, self._c, self.rows)

    def forward(self, keys: Tensor) -> Tensor:
        """keys int64 [n] -> [n, width]."""
        return F.embedding_bag(self.indices(keys), self.weight, mode="sum")

    def extra_repr(self) -> str:
        return f"rows={self.rows}, width={self.width}, seed={self.seed}"
