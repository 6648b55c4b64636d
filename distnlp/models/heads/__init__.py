"""Task heads (pure torch), registered by name. Importing this module registers them all:
distnlp.TaggerHead.v1, distnlp.NERHead.v1, distnlp.TextcatHead.v1, distnlp.TextcatMultilabelHead.v1,
distnlp.BiaffineParserHead.v1.

Build in two steps: `head = registry.resolve({"_use_": "distnlp.TaggerHead.v1", ...})`, then
`head.initialize(n_in, labels)` once the embedding width and label inventory are known.
"""
from __future__ import annotations

from .common import IGNORE, Head, encode_token_labels, zero_loss
from .ner import NERHead, ner_head, pad_flat
from .parser import BiaffineParserHead, biaffine_parser_head
from .tagging import (
    SENTER_LABELS,
    TaggerHead,
    force_first_token,
    morph_label,
    sent_starts_from_labels,
    senter_labels_from_sent_starts,
    split_morph_label,
    tagger_head,
)
from .textcat import TextcatHead, pool_docs, textcat_head, textcat_multilabel_head

__all__ = [
    "BiaffineParserHead",
    "IGNORE",
    "Head",
    "NERHead",
    "SENTER_LABELS",
    "TaggerHead",
    "TextcatHead",
    "biaffine_parser_head",
    "encode_token_labels",
    "force_first_token",
    "morph_label",
    "ner_head",
    "pad_flat",
    "pool_docs",
    "sent_starts_from_labels",
    "senter_labels_from_sent_starts",
    "split_morph_label",
    "tagger_head",
    "textcat_head",
    "textcat_multilabel_head",
    "zero_loss",
]
