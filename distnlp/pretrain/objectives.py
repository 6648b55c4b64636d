"""Pretraining objectives: output heads on top of the tok2vec, as spaCy's multi_task.py.

Both are used inside a masked language model (spaCy's `build_masked_language_model`, "LMAO"):
`mask_docs` picks 15% of the tokens; of those 80% become "[MASK]", 10% a random word, 10% stay;
the tok2vec reads the masked docs, the head predicts a property of the ORIGINAL word, and only
the selected tokens carry loss (spaCy zeroes the gradient of the others).

- `distnlp.PretrainCharacters.v1`: Maxout(hidden, nP) -> LayerNorm -> n_characters softmaxes
  over 256 byte values; targets are UTF-8 bytes in the order first, last, second, second-last,
  ... padded with 255 (spaCy's `Doc.to_utf8_array`). spaCy passes (softmax - one_hot) / n_rows
  back into the softmax, which is the gradient of the cross-entropy: the loss here is that
  cross-entropy, summed over the n_characters positions, per token.
- `distnlp.PretrainVectors.v1`: Maxout(hidden, nP, LayerNorm) -> Linear(vector width, zero W);
  the target is the word's static vector; loss "cosine" (1 - cos, tokens without a vector
  ignored, as CosineDistance(ignore_zeros=True)) or "L2" (squared error).

Every loss is a sum over tokens, and `count(targets)` the number of tokens that carry it, taken
on the host targets before they go to the device: the loop divides by the GLOBAL count
(docs/architecture.md, "The equivalence contract") without reading anything back.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.doc import Doc
from ..errors import ConfigError
from ..models.layers import Maxout
from ..registry import objectives

__all__ = ["PretrainCharacters", "PretrainVectors", "mask_docs", "utf8_array", "MASK"]

MASK = "[MASK]"
PAD_BYTE = 255


def utf8_array(words: Sequence[str], n_characters: int) -> np.ndarray:
    """[n_words, n_characters] uint8: bytes first, last, second, second-last, ...; pad 255."""
    out = np.full((len(words), n_characters), PAD_BYTE, dtype=np.uint8)
    for i, word in enumerate(words):
        bs = word.encode("utf8")
        start, end, j = 0, len(bs) - 1, 0
        while j < n_characters and start <= end:
            out[i, j] = bs[start]
            start += 1
            j += 1
            if j < n_characters and start <= end:
                out[i, j] = bs[end]
                end -= 1
                j += 1
    return out


def mask_docs(
    docs: Sequence[Doc], rng: np.random.RandomState | Any = None, mask_prob: float = 0.15
) -> tuple[list[Doc], np.ndarray]:
    """Masked copies of the docs and a bool array [n_tokens]: True where a token was selected.

    Of the selected tokens 80% become "[MASK]", 10% a random word (spaCy samples by lexeme
    probability; with no lexeme table we sample a token of this batch: a unigram draw), 10% stay.
    `rng` defaults to numpy's global generator (its state goes into checkpoints).
    """
    rng = np.random if rng is None else rng
    words = [w for d in docs for w in d.words]
    n = len(words)
    selected = rng.uniform(0.0, 1.0, (n,)) < mask_prob
    choice = rng.uniform(0.0, 1.0, (n,))
    swap = rng.randint(0, max(1, n), (n,))
    new_words = list(words)
    for i in np.flatnonzero(selected).tolist():
        if choice[i] < 0.8:
            new_words[i] = MASK
        elif choice[i] < 0.9:
            new_words[i] = words[int(swap[i])]
    out: list[Doc] = []
    pos = 0
    for d in docs:
        k = len(d.words)
        out.append(Doc(words=new_words[pos : pos + k], spaces=list(d.spaces)))
        pos += k
    return out, selected


class _Objective(nn.Module):
    needs_vectors = False

    def __init__(self) -> None:
        super().__init__()
        self.n_in: int | None = None

    def initialize(self, n_in: int, vectors: Any = None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_ready(self) -> None:
        if self.n_in is None:
            raise RuntimeError(f"{type(self).__name__}.initialize(n_in) was not called")


class PretrainCharacters(_Objective):
    def __init__(self, maxout_pieces: int = 3, hidden_size: int = 300, n_characters: int = 4) -> None:
        super().__init__()
        for name, value in (("maxout_pieces", maxout_pieces), ("hidden_size", hidden_size), ("n_characters", n_characters)):
            if int(value) < 1:
                raise ConfigError(f"pretrain.objectives.characters.{name}", f"must be >= 1, not {value}")
        self.maxout_pieces, self.hidden_size, self.n_characters = int(maxout_pieces), int(hidden_size), int(n_characters)

    def initialize(self, n_in: int, vectors: Any = None) -> None:
        self.n_in = int(n_in)
        # Maxout(normalize=True) = Maxout >> LayerNorm, as spaCy's head
        self.hidden = Maxout(self.hidden_size, self.n_in, nP=self.maxout_pieces, normalize=True)
        self.output = nn.Linear(self.hidden_size, 256 * self.n_characters)
        nn.init.zeros_(self.output.weight)  # thinc's Softmax: zero-initialized
        nn.init.zeros_(self.output.bias)

    def targets(self, docs: Sequence[Doc]) -> Tensor:
        words = [w for d in docs for w in d.words]
        return torch.from_numpy(utf8_array(words, self.n_characters).astype(np.int64))

    def count(self, targets: Tensor) -> int:
        """Tokens that carry loss (known before the forward pass: the global count is reduced first)."""
        return int(targets.shape[0])

    def forward(self, hidden: Tensor) -> Tensor:
        self._check_ready()
        return self.output(self.hidden(hidden)).view(-1, self.n_characters, 256)

    def loss(self, hidden: Tensor, targets: Tensor) -> Tensor:
        scores = self(hidden)
        return F.cross_entropy(scores.reshape(-1, 256).float(), targets.reshape(-1), reduction="sum")


class PretrainVectors(_Objective):
    needs_vectors = True

    def __init__(self, maxout_pieces: int = 3, hidden_size: int = 300, loss: str = "cosine") -> None:
        super().__init__()
        if loss not in ("cosine", "L2"):
            raise ConfigError("pretrain.objectives.vectors.loss", f"unknown loss {loss!r}", "use cosine or L2")
        self.maxout_pieces, self.hidden_size, self.loss_name = int(maxout_pieces), int(hidden_size), loss
        self.vectors: Any = None

    def initialize(self, n_in: int, vectors: Any = None) -> None:
        if vectors is None:
            raise ConfigError(
                "pretrain.vectors", "the vectors objective needs a static vectors table",
                "create one with `distnlp init vectors` and set pretrain.vectors=DIR (or initialize.vectors)",
            )
        self.n_in = int(n_in)
        self.vectors = vectors
        self.hidden = Maxout(self.hidden_size, self.n_in, nP=self.maxout_pieces, normalize=True)
        self.output = nn.Linear(self.hidden_size, int(vectors.dim))
        nn.init.zeros_(self.output.weight)  # spaCy: Linear(init_W=zero_init)
        nn.init.zeros_(self.output.bias)

    def targets(self, docs: Sequence[Doc]) -> Tensor:
        words = [w for d in docs for w in d.words]
        return torch.from_numpy(np.asarray(self.vectors.get_batch(words), dtype=np.float32).reshape(len(words), -1))

    def count(self, targets: Tensor) -> int:
        """Tokens that carry loss: all of them for L2, those with a vector for cosine. Called on
        the host targets, before they go to the device."""
        if self.loss_name == "L2":
            return int(targets.shape[0])
        return int((targets.abs().sum(dim=-1) > 0).sum())

    def forward(self, hidden: Tensor) -> Tensor:
        self._check_ready()
        return self.output(self.hidden(hidden))

    def loss(self, hidden: Tensor, targets: Tensor) -> Tensor:
        pred = self(hidden).float()
        if self.loss_name == "L2":
            return ((pred - targets) ** 2).sum()
        # ignore_zeros: words without a vector weigh 0. A mask, not a selection, so nothing is
        # read back from the device (a boolean index would wait for it to count the rows).
        known = (targets.abs().sum(dim=-1) > 0).to(pred.dtype)
        # (p . t) / (|p| |t|); the eps keeps the zero-initialized start finite
        cos = (pred * targets).sum(-1) / (pred.norm(dim=-1).clamp_min(1e-8) * targets.norm(dim=-1).clamp_min(1e-8))
        return ((1.0 - cos) * known).sum()


@objectives("distnlp.PretrainCharacters.v1")
def build_pretrain_characters(maxout_pieces: int = 3, hidden_size: int = 300, n_characters: int = 4) -> PretrainCharacters:
    return PretrainCharacters(maxout_pieces, hidden_size, n_characters)


@objectives("distnlp.PretrainVectors.v1")
def build_pretrain_vectors(maxout_pieces: int = 3, hidden_size: int = 300, loss: str = "cosine") -> PretrainVectors:
    return PretrainVectors(maxout_pieces, hidden_size, loss)
