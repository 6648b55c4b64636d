"""distnlp: spaCy-style NLP pipelines trained on many GPUs with Ray."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .pipeline.pipeline import Pipeline


def load(path: Any) -> "Pipeline":
    """Load a saved pipeline directory (model-best/, model-last/ or any `Pipeline.to_disk` output)."""
    from .pipeline.pipeline import Pipeline

    return Pipeline.from_disk(path)


__all__ = ["load", "__version__"]
