"""Entity recognizer head: per-token BILUO tag scores, trained with cross-entropy and decoded
with a constrained Viterbi search so every predicted tag sequence is well formed."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...registry import architectures
from ..biluo import Spans, allowed_transitions, biluo_labels, biluo_tags_from_spans, spans_from_biluo_tags, viterbi_decode
from .common import IGNORE, Head, full_precision

__all__ = ["NERHead", "ner_head", "pad_flat"]

MISSING = "-"  # spaCy's BILUO marker for a token whose entity annotation is unknown


def pad_flat(X: Tensor, lengths: Sequence[int], fill: float = 0.0) -> Tensor:
    """[n_total, L] -> [B, T_max, L], docs in order, padded with `fill`."""
    lens = [int(n) for n in lengths]
    if sum(lens) != X.shape[0]:
        raise ValueError(f"lengths sum to {sum(lens)} but there are {X.shape[0]} rows")
    T = max(lens, default=0)
    out = X.new_full((len(lens), T, X.shape[1]), fill)
    if lens and T:
        batch_idx = torch.repeat_interleave(torch.arange(len(lens), device=X.device), torch.tensor(lens, device=X.device))
        starts = torch.cumsum(torch.tensor(lens, device=X.device), 0) - torch.tensor(lens, device=X.device)
        pos = torch.arange(X.shape[0], device=X.device) - starts[batch_idx]
        out[batch_idx, pos] = X
    return out


class NERHead(Head):
    """`initialize(n_in, entity_labels)` takes the ENTITY labels (PER, LOC...); the output
    classes are `biluo_labels(entity_labels)` ("O" first), available as `head.labels`."""

    def __init__(self, hidden_width: int = 0, dropout: float = 0.0) -> None:
        super().__init__(hidden_width, dropout)
        self.entity_labels: list[str] = []
        self._masks: tuple[Tensor, Tensor, Tensor] | None = None

    def _output_labels(self, labels: Sequence[str]) -> list[str]:
        bad = [lab for lab in labels if not lab or lab == "O" or lab.startswith(("B-", "I-", "L-", "U-"))]
        if bad:
            raise ValueError(f"NERHead.initialize takes entity labels (PER, LOC...), got {bad}")
        self.entity_labels = sorted(set(labels))
        self._masks = None
        return biluo_labels(labels)

    @property
    def masks(self) -> tuple[Tensor, Tensor, Tensor]:
        if self._masks is None:
            self._masks = allowed_transitions(self.labels)
        return self._masks

    def forward(self, X: Tensor, lengths: Sequence[int] | None = None) -> Tensor:
        """Tag scores [n_tokens, n_tags] (logits; decode uses their log-softmax)."""
        self._check(X)
        return self._project(X)

    def loss(self, scores: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """(sum of cross-entropy over tokens of docs with entity annotation, their count), both on
        the device: nothing is read back (no such token: a zero still attached to the graph)."""
        targets = targets.to(scores.device)
        return F.cross_entropy(full_precision(scores), targets, ignore_index=IGNORE, reduction="sum"), (targets != IGNORE).sum()

    def targets(self, docs: Sequence[Any]) -> Tensor:
        """Flat BILUO tag ids. IGNORE (no loss) for every token of a doc without entity
        annotation, for the tokens of its `ents_missing` ranges (unknown, not "O"), and for the
        tokens of an entity whose label is not in the inventory."""
        ids = self.label_to_id
        out: list[int] = []
        for doc in docs:
            if doc.ent_spans is None:
                out.extend([IGNORE] * len(doc))
                continue
            tags: list[str] = biluo_tags_from_spans(len(doc), doc.ent_spans)
            for s, e in getattr(doc, "ents_missing", None) or ():
                tags[s:e] = [MISSING] * (e - s)
            out.extend(ids.get(t, IGNORE) for t in tags)
        return torch.tensor(out, dtype=torch.long)

    @torch.no_grad()
    def decode(self, scores: Tensor, lengths: Sequence[int]) -> list[list[int]]:
        """Best well-formed tag-id sequence per doc (constrained Viterbi over log-probs)."""
        logp = pad_flat(full_precision(scores).log_softmax(dim=-1), lengths)
        return viterbi_decode(logp, lengths, self.masks)

    @torch.no_grad()
    def predict(self, scores: Tensor, lengths: Sequence[int]) -> list[Spans]:
        """Entity spans (start, end, label) per doc."""
        return [spans_from_biluo_tags([self.labels[i] for i in seq]) for seq in self.decode(scores, lengths)]


@architectures("distnlp.NERHead.v1")
def ner_head(hidden_width: int = 0, dropout: float = 0.0) -> NERHead:
    return NERHead(hidden_width=hidden_width, dropout=dropout)
