"""Importing spaCy only where interop needs it, with a one-line error when the extra is missing."""
from __future__ import annotations

from types import ModuleType

from ..errors import DistnlpError


def require_spacy(what: str) -> ModuleType:
    """The `spacy` module, or a DistnlpError naming the feature and the fix."""
    try:
        import spacy
    except ImportError:
        raise DistnlpError(f"{what} needs spaCy, which is not installed (pip install 'distnlp[spacy]')") from None
    return spacy
