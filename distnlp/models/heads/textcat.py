"""Text classification heads: pool each doc's tokens, then (hidden) -> Linear.

Exclusive classes: softmax cross-entropy against the gold distribution (one-hot cats).
Multilabel: sigmoid binary cross-entropy per label. Either way the loss is a sum over docs
and the item count is the number of labelled docs (spaCy's `scores - truths` gradient).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...registry import architectures
from .common import Head, full_precision

__all__ = ["POOLINGS", "TextcatHead", "pool_docs", "textcat_head", "textcat_multilabel_head"]

POOLINGS = ("mean", "mean_max")


def pool_docs(X: Tensor, lengths: Sequence[int], pooling: str = "mean") -> Tensor:
    """[n_total, W] -> [B, W] (mean) or [B, 2W] (mean then max). Empty docs pool to zeros."""
    counts = [int(n) for n in lengths]  # checked on the host: nothing is read back from the device
    if sum(counts) != X.shape[0]:
        raise ValueError(f"lengths sum to {sum(counts)} but there are {X.shape[0]} rows")
    lens = torch.tensor(counts, dtype=torch.long).to(X.device, non_blocking=True)  # a blocking copy would wait for the device
    B, W = len(counts), X.shape[1]
    doc_of = torch.repeat_interleave(torch.arange(B, device=X.device), lens, output_size=X.shape[0])
    sums = X.new_zeros(B, W).index_add(0, doc_of, X)
    mean = sums / lens.clamp(min=1).unsqueeze(1).to(X.dtype)
    if pooling == "mean":
        return mean
    if pooling == "mean_max":
        mx = X.new_zeros(B, W).scatter_reduce(0, doc_of.unsqueeze(1).expand(-1, W), X, "amax", include_self=False)
        return torch.cat([mean, mx], dim=1)
    raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")


class TextcatHead(Head):
    def __init__(
        self,
        hidden_width: int = 0,
        dropout: float = 0.0,
        exclusive_classes: bool = True,
        pooling: str = "mean",
    ) -> None:
        super().__init__(hidden_width, dropout)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        self.exclusive_classes = exclusive_classes
        self.pooling = pooling

    def _input_width(self, n_in: int) -> int:
        return n_in * (2 if self.pooling == "mean_max" else 1)

    def forward(self, X: Tensor, lengths: Sequence[int]) -> Tensor:
        """Logits [n_docs, n_labels]."""
        self._check(X)
        return self._project(pool_docs(X, lengths, self.pooling))

    def targets(self, docs: Sequence[Any]) -> Tensor:
        """Float [n_docs, n_labels]; NaN = unknown. A doc with cats None is all NaN. For
        exclusive classes a label absent from an annotated doc is 0; for multilabel an
        absent or None label is unknown and left out of the loss."""
        rows = []
        for doc in docs:
            cats = doc.cats
            if cats is None:
                rows.append([math.nan] * len(self.labels))
            elif self.exclusive_classes:
                rows.append([float(cats.get(lab) or 0.0) for lab in self.labels])
            else:
                rows.append([math.nan if cats.get(lab) is None else float(cats[lab]) for lab in self.labels])
        return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), len(self.labels))

    def loss(self, logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """(sum over labelled docs, number of labelled docs), both on the device: docs without
        labels are masked, not gathered out, so nothing is read back."""
        logits = full_precision(logits)
        targets = targets.to(device=logits.device, dtype=logits.dtype)
        known = ~torch.isnan(targets)
        truth = torch.where(known, targets, torch.zeros_like(targets))
        if self.exclusive_classes:
            docs = known.all(dim=1)
            per_doc = -(truth * logits.log_softmax(dim=-1)).sum(dim=1)
            return torch.where(docs, per_doc, torch.zeros_like(per_doc)).sum(), docs.sum()
        bce = F.binary_cross_entropy_with_logits(logits, truth, reduction="none")
        return (bce * known).sum(), known.any(dim=1).sum()

    @torch.no_grad()
    def predict(self, logits: Tensor) -> Tensor:
        """Probabilities [n_docs, n_labels]: softmax (exclusive) or sigmoid (multilabel)."""
        return logits.softmax(dim=-1) if self.exclusive_classes else logits.sigmoid()

    def cats(self, probs: Tensor) -> list[dict[str, float]]:
        """Doc.cats dicts from `predict`'s output."""
        return [dict(zip(self.labels, row)) for row in probs.tolist()]


@architectures("distnlp.TextcatHead.v1")
def textcat_head(
    hidden_width: int = 0, dropout: float = 0.0, exclusive_classes: bool = True, pooling: str = "mean"
) -> TextcatHead:
    return TextcatHead(hidden_width=hidden_width, dropout=dropout, exclusive_classes=exclusive_classes, pooling=pooling)


@architectures("distnlp.TextcatMultilabelHead.v1")
def textcat_multilabel_head(hidden_width: int = 0, dropout: float = 0.0, pooling: str = "mean") -> TextcatHead:
    return TextcatHead(hidden_width=hidden_width, dropout=dropout, exclusive_classes=False, pooling=pooling)
