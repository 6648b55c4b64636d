"""The `distnlp` spaCy pipeline component: a distnlp model annotating spaCy Docs.

    nlp = spacy.blank("en")
    nlp.add_pipe("distnlp", config={"model": "training/model-best"})
    doc = nlp("Text to annotate.")

spaCy finds the factory through the `spacy_factories` entry point (pyproject.toml), which imports
this module. `nlp.to_disk(DIR)` copies the distnlp model into DIR/<component name>/, so
`spacy.load(DIR)` (or a package made from it by `spacy package`) works without the original path.
Its `score` scores what the distnlp model predicts with spaCy's own `Scorer` functions, the ones
spaCy's components use, so `nlp.evaluate` / `spacy evaluate` report spaCy's numbers.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.scorer import Scorer, get_ner_prf
from spacy.tokens import Doc as SpacyDoc
from spacy.training import Example

from ..data.doc import Doc
from ..errors import DistnlpError
from .to_spacy import annotate

FACTORY = "distnlp"


@Language.factory(FACTORY, default_config={"model": None, "batch_size": 128, "device": "cpu", "trust_code": False})
def make_distnlp_component(nlp: Language, name: str, model: str | None, batch_size: int, device: str, trust_code: bool) -> "DistnlpComponent":
    return DistnlpComponent(nlp, name, model=model, batch_size=batch_size, device=device, trust_code=trust_code)


class DistnlpComponent:
    """Runs a saved distnlp pipeline on spaCy Docs (spaCy's tokens; annotations written in place)."""

    def __init__(self, nlp: Language, name: str, *, model: str | None, batch_size: int = 128, device: str = "cpu",
                 trust_code: bool = False) -> None:
        self.name, self.model_dir, self.batch_size = name, model, int(batch_size)
        self.device, self.trust_code = device, bool(trust_code)
        self._pipeline: Any = None  # loaded on first use: spacy.load builds this before from_disk

    @property
    def pipeline(self) -> Any:
        if self._pipeline is None:
            if not self.model_dir:
                raise DistnlpError(f"components.{self.name}.model: no distnlp model given (add_pipe('distnlp', config={{'model': 'training/model-best'}}))")
            # spaCy imports this module to list its factories; torch and the model only when used
            from ..pipeline.device import pick_device  # lazy: see above
            from ..pipeline.pipeline import Pipeline  # lazy: see above

            if not Path(self.model_dir).is_dir():
                raise DistnlpError(f"components.{self.name}.model: {self.model_dir}: model directory not found (pass a model-best/ or model-last/ directory)")
            self._pipeline = Pipeline.from_disk(self.model_dir, device=pick_device(self.device), trust_code=self.trust_code)
        return self._pipeline

    def __call__(self, doc: SpacyDoc) -> SpacyDoc:
        return next(iter(self.pipe([doc], batch_size=1)))

    def pipe(self, docs: Iterable[SpacyDoc], *, batch_size: int | None = None) -> Iterator[SpacyDoc]:
        size = batch_size or self.batch_size
        buf: list[SpacyDoc] = []
        for doc in docs:
            buf.append(doc)
            if len(buf) >= size:
                yield from self._annotate(buf)
                buf = []
        if buf:
            yield from self._annotate(buf)

    def _annotate(self, sdocs: list[SpacyDoc]) -> list[SpacyDoc]:
        inputs = [_input_doc(d) for d in sdocs]
        for sdoc, pred in zip(sdocs, self.pipeline.predict(inputs)):
            annotate(sdoc, pred)
        return sdocs

    # --- scoring: spaCy's scorers for what the model predicts ----------------------------------
    def score(self, examples: Iterable[Example], **kwargs: Any) -> dict[str, Any]:
        textcat = next((c for c in self.pipeline.components.values() if c.factory in ("textcat", "textcat_multilabel")), None)
        return score_examples(list(examples), self.pipeline.scorer().config["attrs"],
                              cats_labels=None if textcat is None else list(textcat.labels),
                              cats_multilabel=textcat is not None and textcat.factory == "textcat_multilabel", **kwargs)

    # --- serialization: the model travels inside the spaCy pipeline directory ------------------
    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        self.pipeline.to_disk(Path(path))

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> "DistnlpComponent":
        self.model_dir, self._pipeline = str(path), None
        _ = self.pipeline  # load now: a broken package fails at spacy.load, not at the first doc
        return self


def score_examples(examples: list[Example], attrs: list[str], *, cats_labels: list[str] | None = None,
                   cats_multilabel: bool = False, **kwargs: Any) -> dict[str, Any]:
    """spaCy's scores for the score groups `attrs` (distnlp's Scorer names), computed the way
    spaCy's own tagger, morphologizer, lemmatizer, senter, parser, ner and textcat score."""
    scores: dict[str, Any] = {}
    for attr in ("tag", "pos", "lemma"):
        if attr in attrs:
            scores.update(Scorer.score_token_attr(examples, attr, **kwargs))
    if "morph" in attrs:
        scores.update(Scorer.score_token_attr(examples, "morph", getter=_morph_getter, **kwargs))
        scores.update(Scorer.score_token_attr_per_feat(examples, "morph", getter=_morph_getter, **kwargs))
    if "sents" in attrs or "dep" in attrs:  # spaCy's parser reports sentences too
        scores.update(Scorer.score_spans(examples, "sents", **kwargs))
    if "dep" in attrs:
        # as spaCy's parser scores: punctuation left out
        scores.update(Scorer.score_deps(examples, "dep", getter=_dep_getter, ignore_labels=("p", "punct"), **kwargs))
    if "ents" in attrs:
        scores.update(get_ner_prf(examples))
    if "cats" in attrs:
        scores.update(Scorer.score_cats(examples, "cats", labels=cats_labels or [], multi_label=cats_multilabel,
                                        threshold=0.5 if cats_multilabel else 0.0, **kwargs))
    return scores


def _input_doc(sdoc: SpacyDoc) -> Doc:
    """The tokens distnlp annotates; sentence boundaries already set (e.g. by a sentencizer or
    gold) are kept, so a parser without a senter parses within them, as distnlp's evaluate does."""
    doc = Doc(words=[t.text for t in sdoc], spaces=[bool(t.whitespace_) for t in sdoc])
    if len(sdoc) and sdoc.has_annotation("SENT_START"):
        doc.sent_starts = [i == 0 or bool(t.is_sent_start) for i, t in enumerate(sdoc)]
    return doc


def _morph_getter(token: Any, attr: str) -> int:
    """spaCy's morphologizer getter: the analysis' hash; 0 (unset) is a missing value."""
    return int(getattr(token, attr).key)


def _dep_getter(token: Any, attr: str) -> str:
    return token.dep_.lower()
