"""spaCy interop (optional extra `spacy`): DocBin in and out, Docs to spaCy, config translation,
and the `distnlp` spaCy pipeline component. Nothing here is imported by train or load, and no
module imports spaCy at import time."""
