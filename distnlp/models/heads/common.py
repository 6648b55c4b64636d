"""What every task head shares: two-step build (config, then `initialize(n_in, labels)`),
an optional hidden layer, and the helpers that turn Docs into label ids.

Heads read one flat tensor `X[n_tokens_total, width]` for a batch (docs concatenated in order)
plus `lengths` (tokens per doc). Losses are sums over items and come with the item count, so
the training loop can divide by the global count after the all-reduce.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..layers import Maxout

__all__ = ["IGNORE", "Head", "encode_token_labels", "full_precision", "zero_loss"]

IGNORE = -100  # target id of a token without a label (torch's cross-entropy ignore_index)


def full_precision(x: Tensor) -> Tensor:
    """At least float32: losses and decoding never run in half precision (autocast), and a
    float64 model (the equivalence tests' exact arithmetic) stays float64."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


class Head(nn.Module):
    """Base: parameters exist only after `initialize`, once the label inventory is known."""

    def __init__(self, hidden_width: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        if hidden_width < 0:
            raise ValueError(f"hidden_width must be >= 0, not {hidden_width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout}")
        self.hidden_width = hidden_width
        self.dropout = nn.Dropout(dropout)
        self.labels: list[str] = []
        self.n_in = 0
        self.hidden: nn.Module = nn.Identity()
        self.output: nn.Linear | None = None

    @property
    def is_initialized(self) -> bool:
        return self.output is not None

    def _output_labels(self, labels: Sequence[str]) -> list[str]:
        """The output classes for the given inventory (NER expands entity labels to BILUO)."""
        return list(labels)

    def _input_width(self, n_in: int) -> int:
        return n_in

    def initialize(self, n_in: int, labels: Sequence[str]) -> "Head":
        """Create the parameters: call before making the optimizer and before loading weights."""
        if n_in <= 0:
            raise ValueError(f"n_in must be positive, not {n_in}")
        out_labels = self._output_labels(labels)
        if len(out_labels) != len(set(out_labels)):
            raise ValueError(f"duplicate labels in {list(labels)}")
        if not out_labels:
            raise ValueError(f"{type(self).__name__} needs at least one label")
        self.n_in, self.labels = n_in, out_labels
        width = self._input_width(n_in)
        if self.hidden_width:
            self.hidden = Maxout(self.hidden_width, width, nP=3, normalize=True)
            width = self.hidden_width
        self.output = nn.Linear(width, len(out_labels))
        # spaCy's Softmax output layer starts at zero: uniform predictions, no initial bias.
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)
        return self

    def _check(self, X: Tensor) -> None:
        if self.output is None:
            raise RuntimeError(f"{type(self).__name__} is not initialized: call head.initialize(n_in, labels) first")
        if X.dim() != 2 or X.shape[1] != self.n_in:
            raise ValueError(f"expected X of shape [n_tokens, {self.n_in}], got {tuple(X.shape)}")

    def _project(self, X: Tensor) -> Tensor:
        assert self.output is not None
        return self.output(self.hidden(self.dropout(X)))

    @property
    def label_to_id(self) -> dict[str, int]:
        return {lab: i for i, lab in enumerate(self.labels)}


def zero_loss(like: Tensor) -> Tensor:
    """A zero that is still attached to the graph, so backward and gradient reduction run."""
    return like.sum() * 0.0


def encode_token_labels(
    docs: Sequence[Any],
    getter: Callable[[Any], Sequence[str | None] | None],
    labels: Sequence[str] | dict[str, int],
) -> Tensor:
    """Flat LongTensor of label ids for every token of every doc, IGNORE where unlabelled.

    A doc whose column is None, a token whose value is None/"" and a value outside the
    inventory are all ignored rather than guessed.
    """
    ids = labels if isinstance(labels, dict) else {lab: i for i, lab in enumerate(labels)}
    out: list[int] = []
    for doc in docs:
        col = getter(doc)
        n = len(doc)
        if col is None:
            out.extend([IGNORE] * n)
            continue
        if len(col) != n:
            raise ValueError(f"doc {getattr(doc, 'doc_id', None)!r}: {len(col)} labels for {n} tokens")
        out.extend(ids.get(v, IGNORE) if v else IGNORE for v in col)
    return torch.tensor(out, dtype=torch.long)
