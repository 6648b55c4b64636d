"""One annotated Doc as a JSON line: text, tokens, per-token columns, entities with character
offsets into `text`, cats, and what a user's component wrote into `doc.user_data` (its public
keys). A column the pipeline does not predict is left out (not empty)."""
from __future__ import annotations

import json
from typing import Any

from ..data.doc import Doc

_TOKEN_COLUMNS = ("tags", "pos", "morphs", "lemmas", "heads", "deps", "sent_starts")


def doc_to_json(doc: Doc) -> str:
    record: dict[str, Any] = {"id": doc.doc_id, "text": doc.text, "tokens": list(doc.words)}
    for col in _TOKEN_COLUMNS:
        values = getattr(doc, col)
        if values is not None:
            record[col] = list(values)
    if doc.ent_spans is not None:
        offsets = doc.char_offsets()
        record["ents"] = [
            {"start": offsets[s], "end": offsets[e - 1] + len(doc.words[e - 1]), "label": label, "token_start": s, "token_end": e}
            for s, e, label in doc.ent_spans
        ]
    if doc.cats is not None:
        record["cats"] = dict(doc.cats)
    for key, value in doc.user_data.items():  # what a user's component wrote (keys with "_": private)
        if not key.startswith("_") and key not in record:
            record[key] = value
    return json.dumps(record, ensure_ascii=False, default=str)
