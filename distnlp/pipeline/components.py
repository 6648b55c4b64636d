"""Task components: they turn gold Docs into targets, run a head on token vectors, and write
predictions back into Docs. One class per kind of annotation; the head itself is a registered
torch module (distnlp.models.heads), so architectures are swappable by name.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .. import registry
from ..data.doc import Doc, join_morph  # noqa: F401  (join_morph: re-exported for training.labels)
from ..errors import ConfigError
from ..lemma.edit_trees import apply_tree, tree_for
from ..models.heads.parser import bounded_starts, sentence_starts

IGNORE = -100
DEFAULT_MAX_SENTENCE_LENGTH = 256  # words; EWT's longest sentence has 159
LEMMA_MEMO_SIZE = 200_000  # (form, edit trees) -> lemma pairs kept by a lemmatizer between batches


class Component(nn.Module):
    """Base: a head plus the label inventory and the Doc <-> tensor conversions.

    A component is one registered class (`@registry.components("name")`, the config's
    `components.NAME.factory`): its labels (`labels_from_meta`), its targets and loss (through
    its head, any registered architecture), its decoding (`set_annotations`) and its scores
    (`score_attrs` for the built-in Scorer groups, `score_counts` for its own). distnlp's own
    components register the same way as a user's `code=` file does (docs/architecture.md,
    "Adding a component")."""

    factory: ClassVar[str] = ""
    # settings this factory takes besides the common ones (listen, model, grad_factor, embed,
    # score_weights), with their types: `distnlp config validate` refuses any other key
    config_keys: ClassVar[dict[str, Any]] = {}
    # names of this component's own P/R/F scores: `score_counts` returns their counts, the
    # Scorer reports NAME_p, NAME_r and NAME_f (None where nothing was counted)
    score_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, head: nn.Module, labels: list[str], settings: Mapping[str, Any]) -> None:
        super().__init__()
        self.name = name
        self.head = head
        self.labels = list(labels)
        self.settings = dict(settings)
        self.label_index = {label: i for i, label in enumerate(self.labels)}

    # Which labels the head predicts, from the training corpus's meta.json label inventories.
    @classmethod
    def labels_from_meta(cls, settings: Mapping[str, Any], labels: Mapping[str, list[str]]) -> list[str]:
        raise NotImplementedError

    def score_attrs(self) -> tuple[str, ...]:
        """Which Scorer groups this component's predictions feed."""
        return self.attrs

    attrs: ClassVar[tuple[str, ...]] = ()

    def initialize(self, n_in: int) -> None:
        self.head.initialize(n_in, self.head_labels())

    def head_labels(self) -> list[str]:
        return self.labels

    def forward(self, X: torch.Tensor, lengths: Sequence[int]) -> Any:
        return self.head(X)

    def targets(self, docs: Sequence[Doc]) -> Any:
        raise NotImplementedError

    def loss(self, scores: Any, targets: Any) -> tuple[torch.Tensor, int]:
        return self.head.loss(scores, targets)

    @staticmethod
    def count(targets: Any) -> int:
        """Labelled items in a batch's targets (tokens with a label; docs for textcat)."""
        return int((targets != IGNORE).sum())

    def set_annotations(self, docs: Sequence[Doc], scores: Any, lengths: Sequence[int]) -> None:
        raise NotImplementedError

    def score_counts(self, gold: Doc, pred: Doc) -> dict[str, list[int]]:
        """[true positives, false positives, false negatives] of each of `score_names` in one
        (gold, predicted) doc pair; counts add up over docs and ranks."""
        return {}


@registry.components("tagger")
class TokenLabelComponent(Component):
    """Predicts one label per token from a corpus column (tagger: tags, pos, ...)."""

    factory = "tagger"
    config_keys = {"column": str}  # any token label column: tags (XPOS), pos (UPOS), ...

    @property
    def column(self) -> str:
        return str(self.settings.get("column", "tags"))

    def score_attrs(self) -> tuple[str, ...]:
        attr = {"tags": "tag", "pos": "pos", "morphs": "morph", "lemmas": "lemma"}.get(self.column)
        return (attr,) if attr else ()

    @classmethod
    def labels_from_meta(cls, settings: Mapping[str, Any], labels: Mapping[str, list[str]]) -> list[str]:
        return list(labels.get(str(settings.get("column", "tags")), []))

    def doc_labels(self, doc: Doc) -> list[str | None] | None:
        return getattr(doc, self.column)

    def targets(self, docs: Sequence[Doc]) -> torch.Tensor:
        out: list[int] = []
        index = self.label_index
        for doc in docs:
            col = self.doc_labels(doc)
            if col is None:
                out.extend([IGNORE] * len(doc))
            else:
                # a missing token (None) and a label outside the inventory carry no loss
                out.extend(IGNORE if v is None else index.get(v, IGNORE) for v in col)
        return torch.tensor(out, dtype=torch.long)

    first_label: ClassVar[str | None] = None

    def set_annotations(self, docs: Sequence[Doc], scores: torch.Tensor, lengths: Sequence[int]) -> None:
        ids = self.head.predict(scores, list(lengths), first_label=self.first_label).tolist()
        pos = 0
        for doc, n in zip(docs, lengths):
            self.write(doc, [self.labels[i] for i in ids[pos : pos + n]])
            pos += n

    def write(self, doc: Doc, values: list[str]) -> None:
        setattr(doc, self.column, values)


@registry.components("morphologizer")
class MorphologizerComponent(TokenLabelComponent):
    """UPOS + morphological features as one label per token ("POS=NOUN|Number=Sing")."""

    factory = "morphologizer"
    config_keys = {}

    def score_attrs(self) -> tuple[str, ...]:
        return ("pos", "morph")

    @classmethod
    def labels_from_meta(cls, settings: Mapping[str, Any], labels: Mapping[str, list[str]]) -> list[str]:
        return list(labels.get("morphologizer", []))

    def doc_labels(self, doc: Doc) -> list[str | None] | None:
        if doc.pos is None or doc.morphs is None:
            return None
        return [join_morph(p, m) for p, m in zip(doc.pos, doc.morphs)]  # None where either is missing

    def write(self, doc: Doc, values: list[str]) -> None:
        if not hasattr(self, "_split"):
            self._split = {label: split_morph(label) for label in self.labels}  # once per label, not per token
        pairs = [self._split[v] for v in values]
        doc.pos = [p for p, _ in pairs]
        doc.morphs = [m for _, m in pairs]


@registry.components("senter")
class SenterComponent(TokenLabelComponent):
    """Sentence starts as a two-label tagger; the first token of a doc always starts a sentence."""

    factory = "senter"
    config_keys = {}
    first_label = "S"

    def score_attrs(self) -> tuple[str, ...]:
        return ("sents",)

    @classmethod
    def labels_from_meta(cls, settings: Mapping[str, Any], labels: Mapping[str, list[str]]) -> list[str]:
        return ["I", "S"]

    def doc_labels(self, doc: Doc) -> list[str | None] | None:
        return None if doc.sent_starts is None else [None if s is None else "S" if s else "I" for s in doc.sent_starts]

    def write(self, doc: Doc, values: list[str]) -> None:
        doc.sent_starts = paragraph_aware_starts(doc.words, [v == "S" for v in values])


def paragraph_aware_starts(words: Sequence[str], predicted: Sequence[bool]) -> list[bool]:
    """The senter's starts with two rules raw text needs: a whitespace token never starts a
    sentence (a start predicted on it moves to the next word), and the first word after a blank
    line always does (a paragraph break is a sentence break, as UDPipe's tokenizer has it)."""
    out = [False] * len(words)
    carry, after_break = True, False  # the doc's first word starts a sentence
    for i, w in enumerate(words):
        if w.isspace() or not w:
            carry = carry or bool(predicted[i])
            after_break = after_break or w.count("\n") >= 2
            continue
        out[i] = carry or after_break or bool(predicted[i])
        carry = after_break = False
    if words and not out[0]:
        out[0] = True  # a doc that opens with whitespace: its first token still starts one
    return out


@registry.components("lemmatizer")
class LemmatizerComponent(TokenLabelComponent):
    """spaCy's trainable_lemmatizer: classify each token among the edit trees seen in training
    (labels are tree strings, distnlp.lemma.edit_trees), then apply the best-scoring tree that
    fits the form; when none of the `top_k` best fits, back off (`backoff`: "orth" = the form,
    "lower" = the lowercased form, null = no lemma). A missing gold lemma, or one whose tree is
    outside the inventory (rarer than `min_tree_freq`), carries no loss."""

    factory = "lemmatizer"
    # top_k trees tried per token, trees rarer than min_tree_freq dropped from the labels,
    # backoff orth | lower | null when no tree fits
    config_keys = {"top_k": int, "min_tree_freq": int, "backoff": (str, type(None))}
    BACKOFFS: ClassVar[tuple[str | None, ...]] = ("orth", "lower", None)

    def __init__(self, name: str, head: nn.Module, labels: list[str], settings: Mapping[str, Any]) -> None:
        super().__init__(name, head, labels, settings)
        if self.settings.get("backoff", "orth") not in self.BACKOFFS:
            raise ConfigError(f"components.{name}.backoff", f"unknown backoff {self.settings['backoff']!r}", "use orth, lower or null")
        if int(self.settings.get("top_k", 1)) < 1:
            raise ConfigError(f"components.{name}.top_k", f"must be at least 1, not {self.settings['top_k']}", "spaCy's default is 1; 5 tries more trees")

    def score_attrs(self) -> tuple[str, ...]:
        return ("lemma",)

    @classmethod
    def labels_from_meta(cls, settings: Mapping[str, Any], labels: Mapping[str, list[str]]) -> list[str]:
        return list(labels.get("lemmatizer", []))

    def doc_labels(self, doc: Doc) -> list[str | None] | None:
        if doc.lemmas is None:
            return None
        return [None if lemma is None else tree_for(form, lemma) for form, lemma in zip(doc.words, doc.lemmas)]

    def set_annotations(self, docs: Sequence[Doc], scores: torch.Tensor, lengths: Sequence[int]) -> None:
        k = min(int(self.settings.get("top_k", 1)), len(self.labels))
        ranked = scores.topk(k, dim=-1).indices.tolist() if scores.shape[0] else []  # one transfer
        backoff = self.settings.get("backoff", "orth")
        # Most tokens are frequent (form, trees) pairs: applying an edit tree in Python per token
        # was a tenth of the whole pipeline's inference time. Bounded memo, cleared when full.
        memos: dict[Any, dict[tuple[str, tuple[int, ...]], str | None]] = self.__dict__.setdefault("_lemma_memos", {})
        memo = memos.setdefault(backoff, {})  # settings may change between calls
        if len(memo) > LEMMA_MEMO_SIZE:
            memo.clear()
        pos = 0
        for doc, n in zip(docs, lengths):
            lemmas: list[str | None] = []
            for form, ids in zip(doc.words, ranked[pos : pos + n]):
                key = (form, tuple(ids))
                if key in memo:
                    lemmas.append(memo[key])
                    continue
                lemma = next((lem for lem in (apply_tree(self.labels[i], form) for i in ids) if lem is not None), None)
                if lemma is None:
                    lemma = form if backoff == "orth" else form.lower() if backoff == "lower" else None
                memo[key] = lemma
                lemmas.append(lemma)
            doc.lemmas = lemmas
            pos += n


@registry.components("ner")
class NERComponent(Component):
    """Entities as BILUO tags, decoded under transition constraints so spans are well formed."""

    factory = "ner"
    attrs = ("ents",)

    @classmethod
    def labels_from_meta(cls, settings: Mapping[str, Any], labels: Mapping[str, list[str]]) -> list[str]:
        return list(labels.get("ents", []))

    def forward(self, X: torch.Tensor, lengths: Sequence[int]) -> Any:
        return self.head(X, list(lengths))

    def targets(self, docs: Sequence[Doc]) -> torch.Tensor:
        return self.head.targets(docs)

    def set_annotations(self, docs: Sequence[Doc], scores: torch.Tensor, lengths: Sequence[int]) -> None:
        for doc, spans in zip(docs, self.head.predict(scores, list(lengths))):
            doc.ent_spans = [(int(s), int(e), str(lab)) for s, e, lab in spans]


@registry.components("textcat")
class TextcatComponent(Component):
    """Document categories: exclusive classes (softmax) or independent labels (sigmoid)."""

    factory = "textcat"
    attrs = ("cats",)

    @classmethod
    def labels_from_meta(cls, settings: Mapping[str, Any], labels: Mapping[str, list[str]]) -> list[str]:
        return list(labels.get("cats", []))

    def forward(self, X: torch.Tensor, lengths: Sequence[int]) -> Any:
        return self.head(X, list(lengths))

    def targets(self, docs: Sequence[Doc]) -> torch.Tensor:
        return self.head.targets(docs)

    @staticmethod
    def count(targets: torch.Tensor) -> int:
        return int((~torch.isnan(targets)).any(dim=1).sum())

    def set_annotations(self, docs: Sequence[Doc], scores: torch.Tensor, lengths: Sequence[int]) -> None:
        for doc, cats in zip(docs, self.head.cats(self.head.predict(scores))):
            doc.cats = cats


@registry.components("textcat_multilabel")
class TextcatMultilabelComponent(TextcatComponent):
    factory = "textcat_multilabel"


@registry.components("parser")
class ParserComponent(Component):
    """Labelled dependency trees, one per sentence (the doc's sentence starts at prediction time:
    a senter's when one ran before, else the given ones, else the whole doc)."""

    factory = "parser"
    # a sentence longer than max_sentence_length words is parsed in segments of at most that many
    config_keys = {"max_sentence_length": int}
    attrs = ("dep",)

    @classmethod
    def labels_from_meta(cls, settings: Mapping[str, Any], labels: Mapping[str, list[str]]) -> list[str]:
        return list(labels.get("deps", []))

    def forward(self, X: torch.Tensor, lengths: Sequence[int]) -> Any:
        return self.head(X, list(lengths))

    def targets(self, docs: Sequence[Doc]) -> dict[str, torch.Tensor]:
        return self.head.targets(docs, self.label_index)

    @staticmethod
    def count(targets: Any) -> int:
        return int((targets["head_pos"] != IGNORE).sum())

    @property
    def max_sentence_length(self) -> int:
        value = int(self.settings.get("max_sentence_length", DEFAULT_MAX_SENTENCE_LENGTH))
        if value < 1:
            raise ConfigError(f"components.{self.name}.max_sentence_length", f"must be at least 1, not {value}", "use a positive word count, e.g. 256")
        return value

    def set_annotations(self, docs: Sequence[Doc], scores: Any, lengths: Sequence[int]) -> None:
        # A sentence past the limit (a paragraph the senter did not split, a document without
        # boundaries) is parsed in segments, each its own sentence, so no doc makes the arc
        # scores or the tree search grow without bound.
        limit = self.max_sentence_length
        starts = [bounded_starts(sentence_starts(doc.sent_starts, n), limit) for doc, n in zip(docs, lengths)]
        flat = torch.from_numpy(np.concatenate(starts)) if starts else torch.zeros(0, dtype=torch.bool)
        space = np.fromiter((w.isspace() for doc in docs for w in doc.words), dtype=bool, count=sum(lengths))
        heads, labels = self.head.decode(scores, flat, no_head=space)
        pos = 0
        for doc, n, st in zip(docs, lengths, starts):
            doc.heads = (heads[pos : pos + n] - pos).tolist()
            doc.deps = [self.labels[i] for i in labels[pos : pos + n]]
            doc.sent_starts = st.tolist()  # the sentences the trees span (segments included)
            pos += n


def component_class(factory: str, path: str) -> type[Component]:
    """The class registered under `factory` (distnlp's, or one a `code=` file registered)."""
    cls = registry.components.get(str(factory), path)
    if not (isinstance(cls, type) and issubclass(cls, Component)):
        raise ConfigError(path, f"{factory!r} is registered as a component but is not a Component class",
                          "register a subclass of distnlp.pipeline.components.Component")
    return cls


def split_morph(label: str) -> tuple[str, str]:
    head, _, rest = label.partition("|")
    return head[4:] if head.startswith("POS=") else head, rest
