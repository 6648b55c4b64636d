"""Per-token softmax head: tagger (tags/pos), morphologizer (combined POS+feats labels) and
senter (labels ["I", "S"]). spaCy's Tagger.v2 is a single Softmax layer: hidden_width=0."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ...registry import architectures
from .common import IGNORE, Head, full_precision

__all__ = [
    "SENTER_LABELS",
    "TaggerHead",
    "force_first_token",
    "morph_label",
    "sent_starts_from_labels",
    "senter_labels_from_sent_starts",
    "split_morph_label",
    "tagger_head",
]

SENTER_LABELS = ["I", "S"]


class TaggerHead(Head):
    def __init__(self, hidden_width: int = 0, dropout: float = 0.0, label_smoothing: float = 0.0) -> None:
        super().__init__(hidden_width, dropout)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), not {label_smoothing}")
        self.label_smoothing = label_smoothing

    def forward(self, X: Tensor, lengths: Sequence[int] | None = None) -> Tensor:
        """Logits [n_tokens, n_labels]; `lengths` is accepted for a uniform head interface."""
        self._check(X)
        return self._project(X)

    def loss(self, logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """(sum of cross-entropy over labelled tokens, number of labelled tokens), both on the
        device: nothing is read back (no labelled token: a zero still attached to the graph)."""
        targets = targets.to(logits.device)
        loss = F.cross_entropy(
            full_precision(logits), targets, ignore_index=IGNORE, reduction="sum", label_smoothing=self.label_smoothing
        )
        return loss, (targets != IGNORE).sum()

    @torch.no_grad()
    def predict(
        self, logits: Tensor, lengths: Sequence[int] | None = None, first_label: str | None = None
    ) -> Tensor:
        """Label ids [n_tokens]. With `first_label` (the senter passes "S") and `lengths`, the
        first token of every doc gets that label: a doc always starts a sentence."""
        pred = logits.argmax(dim=-1)
        if first_label is not None:
            if lengths is None:
                raise ValueError("first_label needs lengths to find each doc's first token")
            pred = force_first_token(pred, lengths, self.label_to_id[first_label])
        return pred


def force_first_token(pred: Tensor, lengths: Sequence[int], label_id: int) -> Tensor:
    lens = torch.as_tensor(list(lengths), dtype=torch.long)
    starts = torch.cumsum(lens, 0) - lens
    starts = starts[lens > 0].to(pred.device)
    pred = pred.clone()
    pred[starts] = label_id
    return pred


def morph_label(pos: str | None, feats: str | None) -> str:
    """spaCy's morphologizer label: "POS=<upos>|<feats>" ("POS=NOUN", "Number=Sing" if no POS)."""
    feats = "" if feats in (None, "_") else feats
    parts = ([f"POS={pos}"] if pos else []) + ([feats] if feats else [])
    return "|".join(parts)


def split_morph_label(label: str) -> tuple[str, str]:
    """(pos, feats) back from a morphologizer label."""
    pos, feats = "", []
    for part in label.split("|") if label else []:
        if part.startswith("POS="):
            pos = part[4:]
        else:
            feats.append(part)
    return pos, "|".join(feats)


def senter_labels_from_sent_starts(sent_starts: Sequence[bool | None] | None) -> list[str | None] | None:
    if sent_starts is None:
        return None
    return [None if s is None else ("S" if s else "I") for s in sent_starts]


def sent_starts_from_labels(labels: Sequence[str]) -> list[bool]:
    return [lab == "S" for lab in labels]


@architectures("distnlp.TaggerHead.v1")
def tagger_head(hidden_width: int = 0, dropout: float = 0.0, label_smoothing: float = 0.0) -> TaggerHead:
    return TaggerHead(hidden_width=hidden_width, dropout=dropout, label_smoothing=label_smoothing)
