"""distnlp: spaCy-style NLP pipelines trained on many GPUs with Ray."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .pipeline.pipeline import Pipeline  # lazy: for the annotation only (type checkers); never imported here


def load(path: Any, *, trust_code: bool = False) -> "Pipeline":
    """Load a saved pipeline directory (model-best/, model-last/ or any `Pipeline.to_disk` output).

    Loading runs no code from the directory: weights are safetensors and the config names only
    registered callables. A model saved with user code (`code.py`) loads only with
    `trust_code=True`, because that file is imported and can do anything (SECURITY.md).
    """
    from .pipeline.pipeline import Pipeline  # lazy: every `import distnlp.x` runs this file; torch only when loading

    return Pipeline.from_disk(path, trust_code=trust_code)


def to_spacy(docs: Any, vocab_or_nlp: Any) -> list[Any]:
    """spaCy `Doc`s with every annotation of `docs` (needs the `spacy` extra; see interop/to_spacy.py)."""
    from .interop.to_spacy import to_spacy as _to_spacy  # lazy: spaCy is an optional extra, imported only here

    return _to_spacy(docs, vocab_or_nlp)


__all__ = ["load", "to_spacy", "__version__"]
